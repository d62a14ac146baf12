//! The container of a bundle: a plain POSIX ustar archive (so `tar tf` lists it) of regular
//! files with short names, written and read here. The reader is strict: regular files only,
//! names checked by the caller before anything is written, sizes bounded, nothing follows the
//! two zero blocks that end it.

use std::io::{self, Read, Write};

use anyhow::{bail, Context, Result};

use crate::format::ustar::{self, BLOCK};

/// Writes entries one after another.
pub struct Writer<W: Write> {
    out: W,
    bytes: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer { out, bytes: 0 }
    }

    /// One regular file of `size` bytes read from `data`.
    pub fn file(&mut self, name: &str, size: u64, data: &mut dyn Read) -> Result<()> {
        if name.len() >= ustar::NAME.len() {
            bail!("bundle entry name `{name}` is too long");
        }
        if size >= 1 << 33 {
            bail!("bundle entry `{name}` is {size} bytes: more than a ustar entry holds (8 GiB)");
        }
        let mut h = [0u8; BLOCK];
        h[ustar::NAME][..name.len()].copy_from_slice(name.as_bytes());
        ustar::encode_octal(&mut h[ustar::MODE], 0o644);
        ustar::encode_octal(&mut h[ustar::UID], 0);
        ustar::encode_octal(&mut h[ustar::GID], 0);
        ustar::encode_octal(&mut h[ustar::SIZE], size);
        ustar::encode_octal(&mut h[ustar::MTIME], 0);
        h[ustar::TYPEFLAG] = ustar::TYPE_FILE;
        h[ustar::MAGIC].copy_from_slice(ustar::USTAR_MAGIC);
        h[ustar::VERSION].copy_from_slice(ustar::USTAR_VERSION);
        ustar::set_checksum(&mut h);
        self.out.write_all(&h)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            bail!("bundle entry `{name}`: {copied} bytes instead of {size}");
        }
        self.out.write_all(&vec![0u8; ustar::padding(size)])?;
        self.bytes += BLOCK as u64 + ustar::padded(size);
        Ok(())
    }

    pub fn bytes_file(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.file(name, data.len() as u64, &mut &data[..])
    }

    /// The two zero blocks that end the archive; the output and the archive's size.
    pub fn finish(mut self) -> Result<(W, u64)> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok((self.out, self.bytes + 2 * BLOCK as u64))
    }
}

/// Reads entries one after another; `next` hands each name to `accept`, which returns where
/// the data goes (and the largest size allowed) or refuses the entry.
pub struct Reader<R: Read> {
    input: R,
}

impl<R: Read> Reader<R> {
    pub fn new(input: R) -> Reader<R> {
        Reader { input }
    }

    /// The next entry's name and size, `None` at the end. The caller must then read exactly
    /// the data with [`Reader::data`].
    pub fn next(&mut self) -> Result<Option<(String, u64)>> {
        let mut h = [0u8; BLOCK];
        self.input
            .read_exact(&mut h)
            .context("the bundle is cut off (no end-of-archive blocks)")?;
        if h.iter().all(|b| *b == 0) {
            let mut second = [0u8; BLOCK];
            self.input
                .read_exact(&mut second)
                .context("the bundle is cut off")?;
            if second.iter().any(|b| *b != 0) {
                bail!("the bundle has data after an empty header block");
            }
            return Ok(None);
        }
        let stored = ustar::decode_octal(&h[ustar::CHKSUM]);
        if stored != Some(ustar::checksum(&h)) {
            bail!("a bundle header's checksum is wrong: the file is damaged");
        }
        if h[ustar::TYPEFLAG] != ustar::TYPE_FILE {
            bail!("the bundle holds something other than regular files");
        }
        let name = std::str::from_utf8(ustar::cstr(&h[ustar::NAME]))
            .context("a bundle entry's name is not UTF-8")?
            .to_string();
        let size = ustar::decode_octal(&h[ustar::SIZE])
            .with_context(|| format!("bundle entry `{name}`: malformed size"))?;
        Ok(Some((name, size)))
    }

    /// Copies the current entry's `size` bytes (and skips its padding) into `out`.
    pub fn data(&mut self, size: u64, out: &mut dyn Write) -> Result<()> {
        let copied = io::copy(&mut (&mut self.input).take(size), out)?;
        if copied != size {
            bail!("the bundle is cut off inside an entry");
        }
        let mut pad = vec![0u8; ustar::padding(size)];
        self.input
            .read_exact(&mut pad)
            .context("the bundle is cut off")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut w = Writer::new(Vec::new());
        w.bytes_file("a.json", b"{}").unwrap();
        w.bytes_file("objects/x.tar", &[7u8; 700]).unwrap();
        let (bytes, size) = w.finish().unwrap();
        assert_eq!(size, bytes.len() as u64);
        let mut r = Reader::new(&bytes[..]);
        let mut got = Vec::new();
        while let Some((name, size)) = r.next().unwrap() {
            let mut data = Vec::new();
            r.data(size, &mut data).unwrap();
            got.push((name, data));
        }
        assert_eq!(got[0], ("a.json".to_string(), b"{}".to_vec()));
        assert_eq!(got[1].1, vec![7u8; 700]);
        let mut damaged = bytes.clone();
        damaged[10] ^= 1;
        assert!(Reader::new(&damaged[..]).next().is_err());
        let cut = &bytes[..bytes.len() - 600];
        let mut r = Reader::new(cut);
        r.next().unwrap();
        r.data(2, &mut Vec::new()).unwrap();
        let (_, size) = r.next().unwrap().unwrap();
        assert!(r.data(size, &mut Vec::new()).is_err() || r.next().is_err());
    }
}
