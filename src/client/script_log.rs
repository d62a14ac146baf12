//! Keeping a script's log bounded (issue 25: 300 MiB of output made a 300 MiB log). The script
//! appends to `ROOT/logs/<name>-<version>-<which>.log` directly (a file, not a pipe: see
//! `scripts::run`); whoever follows it calls [`Cap::check`] between reads, and once the file
//! passes [`LOG_MAX`] its head is cut in place: the file becomes one line saying how many
//! earlier bytes were cut, then the last [`LOG_KEEP`] bytes (from a line start), and the
//! script's next writes land after them (its descriptor is `O_APPEND`).
//!
//! The cut cannot be atomic against a script that is writing: the kept part is written over the
//! file's head, then the file is truncated after it, so what the script appended in between
//! would be lost. So a log is cut when it has not grown for [`QUIET`] (the script pauses) or the
//! script is over, and only past [`LOG_HARD`] while the script writes without such a pause; then
//! what it wrote during the cut may be lost (never reordered), and the marker says "at least".

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The size from which a log's head is cut.
pub const LOG_MAX: u64 = 4 << 20;
/// How much of the end a cut keeps.
pub const LOG_KEEP: u64 = 1 << 20;
/// The size from which a log is cut even while the script writes without pause.
pub const LOG_HARD: u64 = 64 << 20;
/// How long a log must not grow for its script to count as quiet.
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(100);

/// Where a reader of a log that was just cut goes on.
pub struct Resume {
    /// The same bytes it was at, moved; or the first kept byte if it had not reached them.
    pub pos: u64,
    /// It had not reached them, and the kept part starts a line: the line it was in ended in
    /// what was cut.
    pub skipped_to_line: bool,
}

/// The writing side of one log, for cutting it, and what was cut so far.
pub struct Cap {
    file: File,
    /// Bytes of the script's output cut so far.
    cut: u64,
    /// The length of the marker line the last cut wrote (0 before the first).
    marker: u64,
    /// The size the previous check saw, and since when the log has had it.
    seen: (u64, std::time::Instant),
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
            seen: (0, std::time::Instant::now()),
        })
    }

    /// Cuts the log's head if it passed [`LOG_MAX`]; `Some` says where a reader that was at
    /// `pos` goes on reading, `None` when nothing was cut.
    /// `over`: the script has exited (its log is quiet unless something it left writes on).
    pub fn check(&mut self, pos: u64, over: bool) -> std::io::Result<Option<Resume>> {
        let size = self.file.metadata()?.len();
        if size != self.seen.0 {
            self.seen = (size, std::time::Instant::now());
        }
        let quiet = over || self.seen.1.elapsed() >= QUIET;
        if size <= LOG_MAX || (!quiet && size <= LOG_HARD) {
            return Ok(None);
        }
        let (from, tail, at_line) = self.tail(size)?;
        self.cut += from.saturating_sub(self.marker);
        let mut head = format!(
            "[dist: {}{} earlier bytes of output cut, the log keeps the last {} MiB]\n",
            if quiet { "" } else { "at least " },
            self.cut,
            LOG_KEEP >> 20
        )
        .into_bytes();
        self.marker = head.len() as u64;
        head.extend_from_slice(&tail);
        self.file.write_all_at(&head, 0)?;
        self.file.set_len(head.len() as u64)?;
        self.seen = (head.len() as u64, std::time::Instant::now());
        Ok(Some(Resume {
            pos: self.marker + pos.saturating_sub(from),
            skipped_to_line: pos < from && at_line,
        }))
    }

    /// The last [`LOG_KEEP`] bytes of a log of `size` bytes, from the start of a line, with
    /// what the script appended while they were read; where they start, and whether that is
    /// a line's start.
    fn tail(&self, size: u64) -> std::io::Result<(u64, Vec<u8>, bool)> {
        // A script that writes faster than the tail is read moves the tail on: read again from
        // the new end, so what is held stays near `LOG_KEEP`.
        let mut size = size;
        let (mut from, mut tail) = loop {
            let from = size.saturating_sub(LOG_KEEP);
            let mut tail = vec![0; (size - from) as usize];
            self.file.read_exact_at(&mut tail, from)?;
            let now = self.file.metadata()?.len();
            if now.saturating_sub(size) > LOG_KEEP / 4 {
                size = now;
                continue;
            }
            if now > size {
                let mut more = vec![0; (now - size) as usize];
                self.file.read_exact_at(&mut more, size)?;
                tail.extend_from_slice(&more);
            }
            break (from, tail);
        };
        let mut at_line = false;
        if let Some(nl) = tail.iter().position(|&b| b == b'\n') {
            if nl + 1 < tail.len() {
                tail.drain(..=nl);
                from += nl as u64 + 1;
                at_line = true;
            }
        }
        Ok((from, tail, at_line))
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
            // As when the script is over (quiet by definition).
            if i % 1000 == 0
                && cap
                    .check(0, true)
                    .unwrap()
                    .is_some_and(|r| r.skipped_to_line)
            {
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
        assert!(
            cap.check(size, false).unwrap().is_none(),
            "cut while it grows"
        );
        let pos = cap.check(size, true).unwrap().unwrap().pos;
        assert_eq!(pos, std::fs::metadata(&log).unwrap().len());
    }
}
