//! The canonical tarball, format v1 (store-format.md, "Canonical tarball"): which bytes each
//! entry's header holds, how large the archive is, and the piece-length rule. The header layout
//! itself (field offsets, octal, checksum, PAX records) is `format::ustar`. Pure functions: no
//! I/O here, so the encoding can be tested in isolation.

use crate::format::package::{Entry, EntryKind};
use crate::format::ustar::{self, padded, padding, BLOCK};

/// The version of the object format; bump it with store-format.md when any byte changes.
pub const FORMAT_VERSION: u32 = 1;

/// Largest regular file format v1 stores (the 11-digit octal size field).
pub const MAX_FILE_SIZE: u64 = 0o77777777777;

/// The header block(s) of one entry, including a PAX header when the path or link target does
/// not fit the ustar fields.
pub fn header(entry: &Entry) -> Vec<u8> {
    let (typeflag, mode, size, link) = match &entry.kind {
        EntryKind::Dir => (ustar::TYPE_DIR, 0o755, 0, ""),
        EntryKind::File { size, executable } => (
            ustar::TYPE_FILE,
            if *executable { 0o755 } else { 0o644 },
            *size,
            "",
        ),
        EntryKind::Symlink { target } => (ustar::TYPE_SYMLINK, 0o777, 0, target.as_str()),
    };
    let name = match entry.kind {
        EntryKind::Dir => format!("{}/", entry.path),
        _ => entry.path.clone(),
    };
    let mut out = Vec::with_capacity(BLOCK);
    let mut records = String::new();
    if name.len() > ustar::NAME.len() {
        records.push_str(&ustar::pax_record("path", &name));
    }
    if link.len() > ustar::LINKNAME.len() {
        records.push_str(&ustar::pax_record("linkpath", link));
    }
    if !records.is_empty() {
        out.extend_from_slice(&ustar_block(
            ustar::PAX_NAME,
            ustar::TYPE_PAX,
            0o644,
            records.len() as u64,
            "",
        ));
        out.extend_from_slice(records.as_bytes());
        out.resize(out.len() + padding(records.len() as u64), 0);
    }
    out.extend_from_slice(&ustar_block(
        truncate(&name, ustar::NAME.len()),
        typeflag,
        mode,
        size,
        truncate(link, ustar::LINKNAME.len()),
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

/// One ustar block with the canonical values: owner, group and mtime zero, no user or group
/// names, zero device numbers, no prefix.
fn ustar_block(name: &str, typeflag: u8, mode: u32, size: u64, link: &str) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[ustar::NAME][..name.len()].copy_from_slice(name.as_bytes());
    ustar::encode_octal(&mut b[ustar::MODE], mode as u64);
    ustar::encode_octal(&mut b[ustar::UID], 0);
    ustar::encode_octal(&mut b[ustar::GID], 0);
    ustar::encode_octal(&mut b[ustar::SIZE], size);
    ustar::encode_octal(&mut b[ustar::MTIME], 0);
    b[ustar::TYPEFLAG] = typeflag;
    b[ustar::LINKNAME][..link.len()].copy_from_slice(link.as_bytes());
    b[ustar::MAGIC].copy_from_slice(ustar::USTAR_MAGIC);
    b[ustar::VERSION].copy_from_slice(ustar::USTAR_VERSION);
    // UNAME and GNAME stay all NUL.
    ustar::encode_octal(&mut b[ustar::DEVMAJOR], 0);
    ustar::encode_octal(&mut b[ustar::DEVMINOR], 0);
    ustar::set_checksum(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

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
