//! The canonical tarball, format v1 (store-format.md, "Canonical tarball"): how each entry's
//! header is encoded byte for byte, how large the archive is, and the piece-length rule.
//! Pure functions: no I/O here, so the encoding can be tested in isolation.

use crate::format::package::{Entry, EntryKind};

/// The version of the object format; bump it with store-format.md when any byte changes.
pub const FORMAT_VERSION: u32 = 1;

pub const BLOCK: usize = 512;

/// Largest regular file format v1 stores (the 11-digit octal size field).
pub const MAX_FILE_SIZE: u64 = 0o77777777777;

/// Name of the PAX extended header entry that carries long paths.
const PAX_NAME: &str = "././@PaxHeader";

/// Bytes of file data that follow a header, padded to whole blocks.
pub fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// Zero bytes that follow `size` bytes of data to fill the last block.
pub fn padding(size: u64) -> usize {
    (padded(size) - size) as usize
}

/// The header block(s) of one entry, including a PAX header when the path or link target does
/// not fit the ustar fields.
pub fn header(entry: &Entry) -> Vec<u8> {
    let (typeflag, mode, size, link) = match &entry.kind {
        EntryKind::Dir => (b'5', 0o755, 0, ""),
        EntryKind::File { size, executable } => {
            (b'0', if *executable { 0o755 } else { 0o644 }, *size, "")
        }
        EntryKind::Symlink { target } => (b'2', 0o777, 0, target.as_str()),
    };
    let name = match entry.kind {
        EntryKind::Dir => format!("{}/", entry.path),
        _ => entry.path.clone(),
    };
    let mut out = Vec::with_capacity(BLOCK);
    let mut records = String::new();
    if name.len() > 100 {
        records.push_str(&pax_record("path", &name));
    }
    if link.len() > 100 {
        records.push_str(&pax_record("linkpath", link));
    }
    if !records.is_empty() {
        out.extend_from_slice(&ustar_block(
            PAX_NAME,
            b'x',
            0o644,
            records.len() as u64,
            "",
        ));
        out.extend_from_slice(records.as_bytes());
        out.resize(out.len() + padding(records.len() as u64), 0);
    }
    out.extend_from_slice(&ustar_block(
        truncate(&name, 100),
        typeflag,
        mode,
        size,
        truncate(link, 100),
    ));
    out
}

/// Total archive size for these entries: headers, data and the two zero end blocks.
pub fn archive_size(entries: &[Entry]) -> u64 {
    let mut total = 0u64;
    for e in entries {
        total += header(e).len() as u64;
        if let EntryKind::File { size, .. } = e.kind {
            total += padded(size);
        }
    }
    total + 2 * BLOCK as u64
}

/// The BitTorrent piece length for an archive of `size` bytes: the smallest power of two of at
/// least 16 KiB that keeps the piece count at or below 2048, at most 16 MiB.
pub fn piece_length(size: u64) -> u64 {
    const MIN: u64 = 16 * 1024;
    const MAX: u64 = 16 * 1024 * 1024;
    size.div_ceil(2048).next_power_of_two().clamp(MIN, MAX)
}

/// Cuts `s` to at most `n` bytes on a char boundary (the full value is in the PAX record).
fn truncate(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One PAX record: `"<len> <key>=<value>\n"` where `<len>` counts the whole record.
fn pax_record(key: &str, value: &str) -> String {
    let body = key.len() + value.len() + 3; // space, '=', newline
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    format!("{len} {key}={value}\n")
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    assert!(
        s.len() == digits,
        "value {value} does not fit a {digits}-digit field"
    );
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

fn ustar_block(name: &str, typeflag: u8, mode: u32, size: u64, link: &str) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut b[100..108], mode as u64); // mode
    octal(&mut b[108..116], 0); // uid
    octal(&mut b[116..124], 0); // gid
    octal(&mut b[124..136], size); // size
    octal(&mut b[136..148], 0); // mtime
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link.as_bytes());
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // uname and gname stay empty; devmajor/devminor are zero-filled octal.
    octal(&mut b[329..337], 0);
    octal(&mut b[337..345], 0);
    // The checksum is computed with its own field read as eight spaces.
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| x as u32).sum();
    let s = format!("{sum:06o}");
    b[148..154].copy_from_slice(s.as_bytes());
    b[154] = 0;
    b[155] = b' ';
    b
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn piece_length_rule() {
        assert_eq!(piece_length(0), 16 * 1024);
        assert_eq!(piece_length(1 << 20), 16 * 1024);
        assert_eq!(piece_length(750 << 20), 512 * 1024);
        assert_eq!(piece_length(1 << 40), 16 << 20);
    }

    #[test]
    fn header_fields() {
        let e = Entry {
            path: "assets/hello".into(),
            kind: EntryKind::File {
                size: 5,
                executable: true,
            },
        };
        let h = header(&e);
        assert_eq!(h.len(), BLOCK);
        assert_eq!(&h[100..108], b"0000755\0");
        assert_eq!(&h[124..136], b"00000000005\0");
        assert_eq!(&h[136..148], b"00000000000\0");
        assert_eq!(&h[257..265], b"ustar\x0000");
        let long = Entry {
            path: format!("assets/{}", "d/".repeat(60))
                .trim_end_matches('/')
                .into(),
            kind: EntryKind::Dir,
        };
        let h = header(&long);
        assert_eq!(h.len(), 3 * BLOCK);
        assert_eq!(h[156], b'x');
    }
}
