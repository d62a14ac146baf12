//! Keeping a script's log bounded (issue 25: 300 MiB of output made a 300 MiB log). The script
//! appends to `ROOT/logs/<name>-<version>-<which>.log` directly (a file, not a pipe: see
//! `scripts::run`); whoever follows it calls [`Cap::check`] between reads, and once the file
//! passes [`LOG_MAX`] its head is cut in place: the file becomes one line saying how many
//! earlier bytes were cut, then the last [`LOG_KEEP`] bytes (from a line start), and the
//! script's next writes land after them (its descriptor is `O_APPEND`). The file therefore stays
//! under `LOG_MAX` plus what the script writes between two checks.
//!
//! The cut cannot be atomic against a script that is writing: the kept part is written over the
//! file's head, then the file is truncated after it, so what the script appended between the
//! last read of the tail and the truncation (microseconds) is lost; it is never reordered. The
//! marker line says output was cut there.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The size from which a log's head is cut.
pub const LOG_MAX: u64 = 4 << 20;
/// How much of the end a cut keeps.
pub const LOG_KEEP: u64 = 1 << 20;

/// The writing side of one log, for cutting it, and what was cut so far.
pub struct Cap {
    file: File,
    /// Bytes of the script's output cut so far.
    cut: u64,
    /// The length of the marker line the last cut wrote (0 before the first).
    marker: u64,
}

impl Cap {
    /// Opens `log` (which the script appends to) for cutting. Not in append mode: the kept part
    /// is written at offset 0.
    pub fn open(log: &Path) -> std::io::Result<Cap> {
        let file = File::options().read(true).write(true).open(log)?;
        Ok(Cap {
            file,
            cut: 0,
            marker: 0,
        })
    }

    /// Cuts the log's head if it passed [`LOG_MAX`]; `Some(p)` is where a reader that was at
    /// `pos` goes on reading (the same bytes, moved; or the first kept byte if it had not
    /// reached them), `None` when nothing was cut.
    pub fn check(&mut self, pos: u64) -> std::io::Result<Option<u64>> {
        let size = self.file.metadata()?.len();
        if size <= LOG_MAX {
            return Ok(None);
        }
        let (from, tail) = self.tail(size)?;
        self.cut += from.saturating_sub(self.marker);
        let mut head = format!(
            "[dist: {} earlier bytes of output cut, the log keeps the last {} MiB]\n",
            self.cut,
            LOG_KEEP >> 20
        )
        .into_bytes();
        self.marker = head.len() as u64;
        head.extend_from_slice(&tail);
        self.file.write_all_at(&head, 0)?;
        self.file.set_len(head.len() as u64)?;
        Ok(Some(self.marker + pos.saturating_sub(from)))
    }

    /// The last [`LOG_KEEP`] bytes of a log of `size` bytes, from the start of a line, with
    /// what the script appended while they were read; and where they start.
    fn tail(&self, size: u64) -> std::io::Result<(u64, Vec<u8>)> {
        let mut from = size - LOG_KEEP;
        let mut tail = vec![0; LOG_KEEP as usize];
        self.file.read_exact_at(&mut tail, from)?;
        loop {
            let now = self.file.metadata()?.len();
            let end = from + tail.len() as u64;
            if now <= end {
                break;
            }
            let mut more = vec![0; (now - end) as usize];
            self.file.read_exact_at(&mut more, end)?;
            tail.extend_from_slice(&more);
        }
        if let Some(nl) = tail.iter().position(|&b| b == b'\n') {
            if nl + 1 < tail.len() {
                tail.drain(..=nl);
                from += nl as u64 + 1;
            }
        }
        Ok((from, tail))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_log_past_the_cap_keeps_its_tail_and_says_it_was_cut_issue_25() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let mut script = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cap = Cap::open(&log).unwrap();
        let line = |i: u64| format!("line {i:09}\n");
        let mut i = 0;
        let mut last_cut_at = 0;
        while i < 1_000_000 {
            script.write_all(line(i).as_bytes()).unwrap();
            i += 1;
            if i % 1000 == 0 && cap.check(0).unwrap().is_some() {
                last_cut_at = i;
            }
            assert!(std::fs::metadata(&log).unwrap().len() <= LOG_MAX + 15_000);
        }
        assert!(last_cut_at > 0, "never cut");
        let text = std::fs::read_to_string(&log).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("[dist: ") && first.contains("bytes of output cut"));
        // Nothing after the marker is lost or out of order: it ends with the last line.
        let kept: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(*kept.last().unwrap(), line(i - 1).trim_end());
        let n0: u64 = kept[0][5..].parse().unwrap();
        for (k, l) in kept.iter().enumerate() {
            assert_eq!(*l, line(n0 + k as u64).trim_end());
        }
        // A reader that had read everything goes on after what it read.
        script.write_all(&vec![b'x'; LOG_MAX as usize]).unwrap();
        let size = std::fs::metadata(&log).unwrap().len();
        let pos = cap.check(size).unwrap().unwrap();
        assert_eq!(pos, std::fs::metadata(&log).unwrap().len());
    }
}
