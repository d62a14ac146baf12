//! The POSIX ustar header block as format v1 uses it (store-format.md §2, points 3–5): where each
//! field sits, octal fields, the header checksum, block padding and PAX records. The one
//! definition of the layout, shared by the writer (`format::canon`) and the strict reader
//! (`object::reader`). Which values go into the fields is `canon`'s business; which values are
//! accepted is the reader's.

use std::fmt;
use std::ops::Range;

/// A tar block: every header is one, and file data is padded to whole blocks.
pub const BLOCK: usize = 512;

pub const NAME: Range<usize> = 0..100;
pub const MODE: Range<usize> = 100..108;
pub const UID: Range<usize> = 108..116;
pub const GID: Range<usize> = 116..124;
pub const SIZE: Range<usize> = 124..136;
pub const MTIME: Range<usize> = 136..148;
pub const CHKSUM: Range<usize> = 148..156;
pub const TYPEFLAG: usize = 156;
pub const LINKNAME: Range<usize> = 157..257;
pub const MAGIC: Range<usize> = 257..263;
pub const VERSION: Range<usize> = 263..265;
// The layout is complete even where format v1 only ever writes NUL.
#[allow(dead_code)]
pub const UNAME: Range<usize> = 265..297;
#[allow(dead_code)]
pub const GNAME: Range<usize> = 297..329;
pub const DEVMAJOR: Range<usize> = 329..337;
pub const DEVMINOR: Range<usize> = 337..345;
/// Never used by format v1 (long paths go into PAX records); the 12 bytes after it are padding.
pub const PREFIX: Range<usize> = 345..500;

/// The contents of [`MAGIC`] and [`VERSION`] in a POSIX ustar header.
pub const USTAR_MAGIC: &[u8] = b"ustar\0";
pub const USTAR_VERSION: &[u8] = b"00";

/// Typeflags format v1 writes. Readers also meet NUL (an old-style regular file).
pub const TYPE_FILE: u8 = b'0';
pub const TYPE_SYMLINK: u8 = b'2';
pub const TYPE_DIR: u8 = b'5';
/// A PAX extended header: its data are records that apply to the next entry.
pub const TYPE_PAX: u8 = b'x';

/// Name of the PAX extended header entry that carries long paths.
pub const PAX_NAME: &str = "././@PaxHeader";

/// Bytes of file data that follow a header, padded to whole blocks.
pub fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// Zero bytes that follow `size` bytes of data to fill the last block.
pub fn padding(size: u64) -> usize {
    (padded(size) - size) as usize
}

/// Writes `value` into a numeric field: zero-padded octal digits filling all but the last byte,
/// then NUL. Panics if the value does not fit (callers check limits first).
pub fn encode_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    assert!(
        s.len() == digits,
        "value {value} does not fit a {digits}-digit field"
    );
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// Reads a numeric field: optional leading spaces, octal digits, then NULs or spaces. `None` for
/// anything else, including an empty field and base-256 numbers.
pub fn decode_octal(field: &[u8]) -> Option<u64> {
    let s = field.iter().skip_while(|&&c| c == b' ');
    let digits: Vec<u8> = s
        .clone()
        .take_while(|c| c.is_ascii_digit())
        .copied()
        .collect();
    let rest_ok = s.skip(digits.len()).all(|&c| c == 0 || c == b' ');
    if digits.is_empty() || !rest_ok || digits.len() > 21 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let d = (d as char).to_digit(8)? as u64;
        acc.checked_mul(8)?.checked_add(d)
    })
}

/// A string field: the bytes before the first NUL.
pub fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    &field[..end]
}

/// The header checksum: the sum of all bytes of the block, the checksum field read as spaces.
pub fn checksum(block: &[u8; BLOCK]) -> u64 {
    block[..CHKSUM.start]
        .iter()
        .chain(std::iter::repeat_n(&b' ', CHKSUM.len()))
        .chain(&block[CHKSUM.end..])
        .map(|&x| x as u64)
        .sum()
}

/// Fills the checksum field of an otherwise complete header: six octal digits, NUL, space.
pub fn set_checksum(block: &mut [u8; BLOCK]) {
    let s = format!("{:06o}", checksum(block));
    let field = &mut block[CHKSUM];
    field[..6].copy_from_slice(s.as_bytes());
    field[6] = 0;
    field[7] = b' ';
}

/// One PAX record: `"<len> <key>=<value>\n"` where `<len>` counts the whole record.
pub fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    format!("{len} {key}={value}\n")
}

/// The records of a PAX header's data, in order, as `(key, value)` byte strings. A malformed
/// record ends the iteration with an error; what keys mean is the caller's business.
pub fn pax_records(data: &[u8]) -> PaxRecords<'_> {
    PaxRecords { rest: data }
}

pub struct PaxRecords<'a> {
    rest: &'a [u8],
}

/// Why PAX data could not be split into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedPax(pub &'static str);

impl fmt::Display for MalformedPax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed PAX record ({})", self.0)
    }
}

impl<'a> Iterator for PaxRecords<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), MalformedPax>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let record = split_record(self.rest);
        self.rest = match record {
            Ok((_, _, len)) => &self.rest[len..],
            Err(_) => &[],
        };
        Some(record.map(|(key, value, _)| (key, value)))
    }
}

/// The first record of `rest`: its key, its value and its whole length.
fn split_record(rest: &[u8]) -> Result<(&[u8], &[u8], usize), MalformedPax> {
    let sp = rest
        .iter()
        .position(|&c| c == b' ')
        .ok_or(MalformedPax("no length"))?;
    let len = std::str::from_utf8(&rest[..sp])
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&l| l > sp + 1 && l <= rest.len())
        .ok_or(MalformedPax("bad length"))?;
    let body = rest[sp + 1..len]
        .strip_suffix(b"\n")
        .ok_or(MalformedPax("no trailing newline"))?;
    let eq = body
        .iter()
        .position(|&c| c == b'=')
        .ok_or(MalformedPax("no `=`"))?;
    Ok((&body[..eq], &body[eq + 1..], len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::canon;
    use crate::format::package::{Entry, EntryKind};

    #[test]
    fn octal_fields() {
        assert_eq!(decode_octal(b"0000644\0"), Some(0o644));
        assert_eq!(decode_octal(b"  755 \0"), Some(0o755));
        assert_eq!(decode_octal(b"00000000005\0"), Some(5));
        assert_eq!(decode_octal(b"\0\0\0\0"), None);
        assert_eq!(decode_octal(b"0008\0"), None);
        assert_eq!(decode_octal(b"12x4\0"), None);
        assert_eq!(decode_octal(&[0x80, 0, 0, 0, 0, 0, 0, 1]), None); // base-256 is refused
        let mut field = [0xffu8; 12];
        encode_octal(&mut field, 0o17);
        assert_eq!(&field, b"00000000017\0");
        assert_eq!(decode_octal(&field), Some(0o17));
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for n in [1usize, 5, 90, 95, 96, 97, 200, 994, 995, 996, 9990] {
            let v = "x".repeat(n);
            let r = pax_record("path", &v);
            let len: usize = r.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(len, r.len(), "value of {n} bytes");
        }
    }

    #[test]
    fn pax_records_round_trip_and_report_malformed_data() {
        let long = "assets/".repeat(30);
        let data = pax_record("path", &long) + &pax_record("linkpath", "../x");
        let got: Vec<_> = pax_records(data.as_bytes()).collect();
        assert_eq!(
            got,
            [
                Ok((&b"path"[..], long.as_bytes())),
                Ok((&b"linkpath"[..], &b"../x"[..]))
            ]
        );
        for (data, why) in [
            (&b"path=x\n"[..], "no length"),
            (b"99 path=x\n", "bad length"),
            (b"10 path=xy", "no trailing newline"),
            (b"8 pathx\n", "no `=`"),
        ] {
            let got: Vec<_> = pax_records(data).collect();
            assert_eq!(got, [Err(MalformedPax(why))], "{data:?}");
        }
    }

    /// A header the writer makes parses back, field by field, with the reader's functions.
    #[test]
    fn written_header_reads_back() {
        let target = format!("../{}", "t".repeat(120));
        let entry = Entry {
            path: "assets/link".into(),
            kind: EntryKind::Symlink {
                target: target.clone(),
            },
        };
        let bytes = canon::header(&entry);
        assert_eq!(bytes.len(), 3 * BLOCK); // PAX header, its records, the entry
        let blocks: Vec<&[u8; BLOCK]> =
            bytes.chunks(BLOCK).map(|c| c.try_into().unwrap()).collect();
        for b in &blocks[..] {
            if b[MAGIC] != *USTAR_MAGIC {
                continue; // the PAX data block
            }
            assert_eq!(decode_octal(&b[CHKSUM]), Some(checksum(b)));
            assert_eq!(b[CHKSUM][6..], *b"\0 ");
            assert_eq!(&b[VERSION], USTAR_VERSION);
            for zero in [UID, GID, MTIME, DEVMAJOR, DEVMINOR] {
                assert_eq!(decode_octal(&b[zero]), Some(0));
            }
            assert!(cstr(&b[UNAME]).is_empty() && cstr(&b[GNAME]).is_empty());
            assert!(b[PREFIX].iter().all(|&x| x == 0));
        }
        let (pax, data, main) = (blocks[0], blocks[1], blocks[2]);
        assert_eq!(cstr(&pax[NAME]), PAX_NAME.as_bytes());
        assert_eq!(pax[TYPEFLAG], TYPE_PAX);
        assert_eq!(decode_octal(&pax[MODE]), Some(0o644));
        let len = decode_octal(&pax[SIZE]).unwrap() as usize;
        let records: Vec<_> = pax_records(&data[..len]).collect();
        assert_eq!(records, [Ok((&b"linkpath"[..], target.as_bytes()))]);
        assert!(data[len..].iter().all(|&x| x == 0));

        assert_eq!(cstr(&main[NAME]), b"assets/link");
        assert_eq!(main[TYPEFLAG], TYPE_SYMLINK);
        assert_eq!(decode_octal(&main[MODE]), Some(0o777));
        assert_eq!(decode_octal(&main[SIZE]), Some(0));
        assert_eq!(cstr(&main[LINKNAME]), &target.as_bytes()[..100]);
    }

    #[test]
    fn a_changed_byte_breaks_the_checksum() {
        let entry = Entry {
            path: "assets".into(),
            kind: EntryKind::Dir,
        };
        let mut b: [u8; BLOCK] = canon::header(&entry).try_into().unwrap();
        assert_eq!(decode_octal(&b[CHKSUM]), Some(checksum(&b)));
        b[NAME.start] = b'b';
        assert_ne!(decode_octal(&b[CHKSUM]), Some(checksum(&b)));
        set_checksum(&mut b);
        assert_eq!(decode_octal(&b[CHKSUM]), Some(checksum(&b)));
    }
}
