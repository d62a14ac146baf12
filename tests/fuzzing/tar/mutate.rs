//! The mutations of the `tar` target: they know the ustar layout of format v1 (where each field
//! sits, the checksum, PAX records, entry boundaries) and the paths and link targets that
//! matter to an unpacker, so that most inputs get past the checksum and reach the checks that
//! matter: paths, kinds, order, parents, symlink targets, PAX records, sizes.

use crate::fuzzing::Rng;

/// A tar block: a header, or a unit of padded data.
pub const BLOCK: usize = 512;

/// Entry paths and link targets the mutations write.
pub struct Tokens {
    pub paths: Vec<Vec<u8>>,
    pub links: Vec<Vec<u8>>,
}

/// Hostile and ordinary entry paths and link targets; `abs` is an absolute path inside the
/// sentinel, the only absolute entry path (so that even a broken unpacker writes nowhere else).
/// No token climbs more than four levels.
pub fn tokens(abs: &str) -> Tokens {
    let mut paths: Vec<Vec<u8>> = [
        "assets/x",
        "assets/bin/hello",
        "assets/bin",
        "assets",
        "scripts",
        "manifest.yaml",
        "scripts/install.sh",
        "../x",
        "../../../../escaped",
        "assets/../../../escaped",
        "assets/../x",
        "assets/./x",
        "assets//x",
        ".",
        "..",
        "",
        "./assets/x",
        "assets/x/",
        "assets/a\\b",
        "assets/\x1b[2J",
        "assets/lib/share-link/evil",
        "assets/lib/libnested.so/evil",
        "assets/bin/hello/x",
        "assets/\u{e9}",
        "assets/x\ny",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    paths.push(abs.as_bytes().to_vec());
    paths.push(format!("assets/{}", "d".repeat(200)).into_bytes());
    paths.push(format!("assets/{}f", "a/".repeat(60)).into_bytes());
    paths.push(format!("assets/{}", "n".repeat(5000)).into_bytes());
    paths.push(b"assets/\xff\xfe".to_vec());
    paths.push(b"assets/x\0y".to_vec());
    let mut links: Vec<Vec<u8>> = [
        "..",
        "../..",
        "../../..",
        "../../../../escaped",
        "/",
        "/etc/passwd",
        ".",
        "",
        "x",
        "bin/../..",
        "share-link/../..",
        "share-link/../../..",
        "libnested.so",
        "../share",
        "../manifest.yaml",
        "a/../../b",
        "../lib/share-link/../../..",
        "hello",
        "../bin/hello",
        "l",
        "./../",
        "share-link/../../../..",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    links.push(abs.as_bytes().to_vec());
    links.push(b"x\0y".to_vec());
    links.push(b"\xff".to_vec());
    links.push(format!("{}x", "./".repeat(3000)).into_bytes());
    // As long as a PAX record may be (the reader takes 64 KiB), in many components.
    links.push("a/".repeat(30_000).into_bytes());
    Tokens { paths, links }
}

/// Header offsets, walking leniently from the start (a header, its data padded to blocks) until
/// a zero block or the end.
pub fn headers(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + BLOCK <= data.len() && data[at..at + BLOCK].iter().any(|&b| b != 0) {
        out.push(at);
        let size = octal(&data[at + 124..at + 136]).unwrap_or(0);
        let padded = size.div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64);
        match usize::try_from(padded)
            .ok()
            .and_then(|p| at.checked_add(BLOCK + p))
        {
            Some(next) => at = next,
            None => break,
        }
    }
    out
}

/// Entry boundaries: every header offset, then where the walk stopped.
pub fn boundaries(data: &[u8]) -> Vec<usize> {
    let mut b = headers(data);
    let end = b.last().map_or(0, |&h| {
        let size = octal(&data[h + 124..h + 136]).unwrap_or(0) as usize;
        (h + BLOCK + size.div_ceil(BLOCK) * BLOCK).min(data.len())
    });
    b.push(end);
    b
}

fn octal(field: &[u8]) -> Option<u64> {
    let s: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&c| c != 0 && c != b' ')
        .collect();
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

/// Writes the ustar checksum of a 512-byte header: six octal digits, NUL, space.
pub fn set_checksum(block: &mut [u8]) {
    block[148..156].fill(b' ');
    let sum: u64 = block.iter().map(|&b| b as u64).sum();
    block[148..154].copy_from_slice(format!("{:06o}", sum % 0o1_000_000).as_bytes());
    block[154] = 0;
    block[155] = b' ';
}

fn put(field: &mut [u8], value: impl AsRef<[u8]>) {
    let value = value.as_ref();
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

impl Tokens {
    /// Rewrites one field of one header with a value chosen for it, and usually the checksum.
    pub fn header_field(&self, rng: &mut Rng, data: &mut [u8]) {
        let hs = headers(data);
        if hs.is_empty() {
            return;
        }
        let h = *rng.pick(&hs);
        let b = &mut data[h..h + BLOCK];
        match rng.below(9) {
            0 | 1 => put(&mut b[0..100], rng.pick(&self.paths)),
            2 => put(&mut b[157..257], rng.pick(&self.links)),
            3 => b[156] = *rng.pick(b"0\x00123456 7xgLKSA5"),
            4 => put(
                &mut b[100..108],
                rng.pick(&[
                    &b"0000644"[..],
                    b"0000755",
                    b"0004755",
                    b"7777777",
                    b"0000000",
                    b"       ",
                    b"9999999",
                    b"\x80\0\0\0\0\0\0\x01",
                ]),
            ),
            5 => {
                let old = octal(&b[124..136]).unwrap_or(0);
                let new = match rng.below(5) {
                    0 => old + 1,
                    1 => old.saturating_sub(1),
                    2 => old + *rng.pick(&[511, 512, 513, 1 << 20]),
                    3 => *rng.pick(&[0, 1, 0o77777777777, 0o7777777777]),
                    _ => rng.below(4096) as u64,
                };
                let text = match rng.below(4) {
                    0 => format!("{new:o}"),
                    1 => format!(" {new:10o}"),
                    2 => "99999999999".to_string(),
                    _ => format!("{new:011o}"),
                };
                put(&mut b[124..136], text.as_bytes());
            }
            6 => put(
                &mut b[257..265],
                rng.pick(&[
                    &b"ustar\x0000"[..],
                    b"ustar  \0",
                    b"ustar\x00\x00\x00",
                    b"USTAR\x0000",
                ]),
            ),
            7 => put(
                &mut b[345..500],
                rng.pick(&[&b"assets"[..], b"..", b"/tmp", b"\x01"]),
            ),
            _ => {
                let at = *rng.pick(&[108usize, 116, 136, 265, 297, 329, 337, 500]);
                b[at] = rng.next() as u8;
            }
        }
        if rng.chance(90) {
            set_checksum(b);
        }
    }

    /// Inserts a well-formed entry (mostly a symlink, else a directory or a small file) with a
    /// chosen path and target, behind a correct PAX header when they do not fit the fields.
    pub fn new_entry(&self, rng: &mut Rng, data: &mut Vec<u8>) {
        let kind = *rng.pick(b"2225550");
        let name: Vec<u8> = if rng.chance(70) {
            let leaf = rng.pick(&["l", "x", "bin/l", "lib/l", "lib/share-link/l", "d", "d/l"]);
            format!("assets/{leaf}").into_bytes()
        } else {
            rng.pick(&self.paths).clone()
        };
        let link = if kind == b'2' {
            rng.pick(&self.links).clone()
        } else {
            Vec::new()
        };
        let mut records = Vec::new();
        if name.len() > 100 {
            records.extend(good_record(b"path", &name));
        }
        if link.len() > 100 {
            records.extend(good_record(b"linkpath", &link));
        }
        let mut entry = Vec::new();
        if !records.is_empty() {
            entry.extend(header(b"././@PaxHeader", b'x', records.len(), b""));
            entry.extend(padded(records));
        }
        let size = if kind == b'0' { rng.below(1000) } else { 0 };
        entry.extend(header(&name, kind, size, &link));
        entry.extend(padded((0..size).map(|i| i as u8).collect()));
        let bs = boundaries(data);
        let at = *rng.pick(&bs);
        data.splice(at..at, entry);
    }

    /// Points an existing symlink somewhere else.
    pub fn retarget(&self, rng: &mut Rng, data: &mut [u8]) {
        let links: Vec<usize> = headers(data)
            .into_iter()
            .filter(|&h| data[h + 156] == b'2')
            .collect();
        if links.is_empty() {
            return;
        }
        let h = *rng.pick(&links);
        put(&mut data[h + 157..h + 257], rng.pick(&self.links));
        set_checksum(&mut data[h..h + BLOCK]);
    }

    /// Inserts a PAX extended header with odd records before a random entry.
    pub fn insert_pax(&self, rng: &mut Rng, data: &mut Vec<u8>) {
        let mut records = Vec::new();
        for _ in 0..1 + rng.below(3) {
            records.extend(self.pax_record(rng));
        }
        let named: &[u8] = if rng.chance(80) {
            b"././@PaxHeader"
        } else {
            rng.pick(&self.paths).as_slice()
        };
        let size = match rng.below(10) {
            0 => records.len() + 1,
            1 => records.len().saturating_sub(1),
            2 => 100_000,
            _ => records.len(),
        };
        let typeflag = if rng.chance(90) { b'x' } else { b'g' };
        let mut block = header(named, typeflag, size, b"").to_vec();
        block.extend(padded(records));
        let bs = boundaries(data);
        let at = *rng.pick(&bs);
        data.splice(at..at, block);
    }

    /// One PAX record, usually well formed, with a key and value chosen to matter.
    fn pax_record(&self, rng: &mut Rng) -> Vec<u8> {
        let key: &[u8] = rng.pick::<&[u8]>(&[
            &b"path"[..],
            b"linkpath",
            b"path",
            b"linkpath",
            b"uid",
            b"size",
            b"mtime",
            b"comment",
            b"",
            b"path ",
            b"PATH",
            b"gnu.sparse.name",
            b"linkpath=x",
            b"pa\0th",
        ]);
        let value: &[u8] = if rng.chance(50) {
            rng.pick(&self.paths).as_slice()
        } else {
            rng.pick(&self.links).as_slice()
        };
        let len = record_len(key, value);
        let len_text = match rng.below(12) {
            0 => (len + 1).to_string(),
            1 => (len - 1).to_string(),
            2 => (len + 10).to_string(),
            3 => "0".into(),
            4 => String::new(),
            5 => "-5".into(),
            6 => format!("0{len}"),
            7 => "99999999999999999999999".into(),
            _ => len.to_string(),
        };
        let mut r = len_text.into_bytes();
        r.push(b' ');
        r.extend_from_slice(key);
        if !rng.chance(5) {
            r.push(b'=');
        }
        r.extend_from_slice(value);
        if !rng.chance(5) {
            r.push(b'\n');
        }
        r
    }
}

/// A ustar header as format v1 writes it, with the checksum set.
fn header(name: &[u8], typeflag: u8, size: usize, link: &[u8]) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    put(&mut h[0..100], name);
    let mode: &[u8] = match typeflag {
        b'2' => b"0000777",
        b'5' => b"0000755",
        _ => b"0000644",
    };
    put(&mut h[100..108], mode);
    put(&mut h[108..116], b"0000000");
    put(&mut h[116..124], b"0000000");
    put(&mut h[124..136], format!("{size:011o}").as_bytes());
    put(&mut h[136..148], b"00000000000");
    h[156] = typeflag;
    put(&mut h[157..257], link);
    put(&mut h[257..265], b"ustar\x0000");
    put(&mut h[329..337], b"0000000");
    put(&mut h[337..345], b"0000000");
    set_checksum(&mut h);
    h
}

fn padded(mut data: Vec<u8>) -> Vec<u8> {
    data.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
    data
}

/// A PAX record with its length right.
fn good_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = format!("{} ", record_len(key, value)).into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// The length of the record `"<len> key=value\n"`, counting its own digits.
fn record_len(key: &[u8], value: &[u8]) -> usize {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    len
}

/// Removes, duplicates or swaps entries, or brings one in from another archive, or puts one
/// entry's header over another's.
pub fn splice(rng: &mut Rng, data: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let bs = boundaries(data);
    if bs.len() < 2 {
        return;
    }
    let i = rng.below(bs.len() - 1);
    let entry = data[bs[i]..bs[i + 1]].to_vec();
    match rng.below(5) {
        0 => {
            data.drain(bs[i]..bs[i + 1]);
        }
        1 => {
            let at = *rng.pick(&bs);
            data.splice(at..at, entry);
        }
        2 if i + 2 < bs.len() => {
            let next = data[bs[i + 1]..bs[i + 2]].to_vec();
            data.splice(bs[i]..bs[i + 2], next.into_iter().chain(entry));
        }
        3 => {
            let other = rng.pick(seeds);
            let obs = boundaries(other);
            if obs.len() >= 2 {
                let j = rng.below(obs.len() - 1);
                let at = *rng.pick(&bs);
                data.splice(at..at, other[obs[j]..obs[j + 1]].iter().copied());
            }
        }
        _ => {
            let j = rng.below(bs.len() - 1);
            let header = data[bs[j]..bs[j] + BLOCK].to_vec();
            data[bs[i]..bs[i] + BLOCK].copy_from_slice(&header);
        }
    }
}

pub fn truncate_or_append(rng: &mut Rng, data: &mut Vec<u8>) {
    let len = data.len();
    match rng.below(5) {
        0 => data.truncate(rng.below(len + 1)),
        1 => data.truncate(rng.below(len / BLOCK + 1) * BLOCK),
        2 => data.truncate(len.saturating_sub(BLOCK)),
        3 => data.extend(std::iter::repeat_n(0u8, BLOCK * (1 + rng.below(2)))),
        _ => {
            let n = 1 + rng.below(BLOCK);
            data.extend((0..n).map(|_| rng.next() as u8));
        }
    }
}
