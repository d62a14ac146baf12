//! Running a package's lifecycle scripts (`scripts/install.sh`, `scripts/uninstall.sh`):
//! `/bin/sh` in the store path, in its own process group, with a clean environment that says
//! what is happening (`DIST_ACTION`, the versions on both sides), output to a log under
//! `ROOT/logs/` that is followed line by line for the reporter, killed on timeout or Ctrl-C
//! with everything it started, detached or not (`reaper.rs`). Which script runs when is `transition.rs`'s business.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::generation::Installed;
use super::{interrupt, Layout, Reporter};
use crate::process;

/// A package's lifecycle scripts (store-format.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Install,
    Uninstall,
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Script::Install => "install",
            Script::Uninstall => "uninstall",
        })
    }
}

/// `DIST_ACTION`: why a script runs (README "Scripts", after dpkg's maintainer-script
/// arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `install.sh` of a package new to the set.
    Install,
    /// Both scripts of a version change to a higher version: the old one's `uninstall.sh`,
    /// then the new one's `install.sh`.
    Upgrade,
    /// The same, to a lower version.
    Downgrade,
    /// `install.sh` of the same object unpacked again (`repair`, `install --reinstall`).
    Reinstall,
    /// `uninstall.sh` of a package leaving the set.
    Remove,
    /// `uninstall.sh` of a package leaving the set with its state and configuration
    /// (`uninstall --purge`).
    Purge,
    /// `uninstall.sh` of a package whose install this transition undoes (it was new).
    AbortInstall,
    /// Undoing a version change: the new version's `uninstall.sh`, then the old version's
    /// `install.sh` (to restore the old version's state).
    AbortUpgrade,
    /// `install.sh` of a package whose removal this transition undoes.
    AbortRemove,
    /// A package that enters or leaves by `dist rollback` (a version change in a rollback is
    /// an upgrade or a downgrade): its state must outlive it, the user may roll forward again.
    Rollback,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Install => "install",
            Action::Upgrade => "upgrade",
            Action::Downgrade => "downgrade",
            Action::Reinstall => "reinstall",
            Action::Remove => "remove",
            Action::Purge => "purge",
            Action::AbortInstall => "abort-install",
            Action::AbortUpgrade => "abort-upgrade",
            Action::AbortRemove => "abort-remove",
            Action::Rollback => "rollback",
        })
    }
}

/// One run of one script: which, why, the versions on both sides of the change.
pub struct Run<'a> {
    pub package: &'a Installed,
    pub script: Script,
    pub action: Action,
    pub old_version: Option<&'a semver::Version>,
    pub new_version: Option<&'a semver::Version>,
    /// Ctrl-C stops it (false while undoing: an undo is seen through, bounded by the timeout).
    pub interruptible: bool,
}

/// The environment a script gets, and nothing else (README "Scripts"): the five documented
/// `DIST_*` variables, a standard `PATH`, `HOME` and `LANG`. The caller's environment (tokens,
/// proxies, ...) is not passed on.
const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Layout {
    /// `ROOT/var/<name>/`: a package's state (`DIST_STATE_DIR`), made before its first install
    /// script, kept across upgrades, downgrades and rollbacks, removed only by a purge.
    pub fn state_dir(&self, name: &crate::format::ids::PackageName) -> PathBuf {
        self.root.join("var").join(name.as_str())
    }

    /// `ROOT/etc/<name>/`: a package's configuration files (`DIST_CONFIG_DIR`), the user's
    /// once copied there; removed only by a purge.
    pub fn config_dir(&self, name: &crate::format::ids::PackageName) -> PathBuf {
        self.root.join("etc").join(name.as_str())
    }
}

/// Runs `scripts/<which>.sh` of an installed package with `/bin/sh`, in its store path, in its
/// own process group, its output (stdout and stderr together) in
/// `ROOT/logs/<name>-<version>-<which>.log` and, line by line as the script writes it, to
/// `report.script_output`. It fails if the script fails (the error names the log and quotes its
/// last lines), runs longer than `timeout` (it is killed with every process it started, its
/// group and whatever left it, `reaper.rs`) or the user interrupts. A background child the script leaves running (a service) does not hold it up:
/// the output goes to a file, not a pipe, so nothing waits for the child to close it.
pub fn run(layout: &Layout, run: &Run<'_>, timeout: Duration, report: &dyn Reporter) -> Result<()> {
    let p = run.package;
    let which = run.script;
    let script = p.store_path.join(format!("scripts/{which}.sh"));
    let log = layout.script_log(p, which)?;
    let state = layout.state_dir(&p.name);
    std::fs::create_dir_all(&state)
        .with_context(|| format!("cannot create {}", state.display()))?;
    let mut cmd = command(layout, run, &script);
    // Before the spawn: from now on an orphan of the script's tree comes back to dist.
    let reaper = super::reaper::Reaper::start();
    let mut child = process::spawn_logged(&mut cmd, &log, Path::new("/bin/sh"), "dash")
        .with_context(|| format!("cannot run {}", script.display()))?;
    let id = p.id();
    // Opened after the spawn created it anew: this handle reads the file the script writes.
    let mut output = match File::open(&log) {
        Ok(file) => Some(Follow::new(file).with_cap(super::script_log::Cap::open(&log).ok())),
        Err(e) => {
            report.warn(&format!(
                "cannot follow the output of {which} script of {id} in {}: {e}",
                log.display()
            ));
            None
        }
    };
    let mut show = |line: &str| report.script_output(&id, line);
    let status = wait(
        &mut child,
        &reaper,
        &mut output,
        &mut show,
        (timeout, run.interruptible),
    );
    if let Some(o) = output.as_mut() {
        o.drain(&log, &mut show);
    }
    let status = status.map_err(|stop| match stop {
        // Kept as its type: the command reports it as an interruption (`--json` kind).
        Stop::Interrupted(e) => anyhow::Error::new(e).context(format!(
            "{which} script of {id} stopped; its processes were killed (log: {})",
            log.display()
        )),
        Stop::Other(why) => anyhow::anyhow!(
            "{which} script of {id} {why}; its processes were killed (log: {})",
            log.display()
        ),
    })?;
    if !status.success() {
        let tail = output.map(|o| o.lines.tail).unwrap_or_default();
        let tail = Vec::from(tail).join("\n");
        bail!(
            "{which} script of {id} failed ({status}, log: {}){}",
            log.display(),
            match tail.trim() {
                "" => String::new(),
                tail => format!(": {tail}"),
            }
        );
    }
    Ok(())
}

/// The command for one run, with exactly the documented environment.
fn command(layout: &Layout, run: &Run<'_>, script: &Path) -> std::process::Command {
    let p = run.package;
    let version = |v: Option<&semver::Version>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg(script)
        .current_dir(&p.store_path)
        .env_clear()
        .env("PATH", SCRIPT_PATH)
        .env(
            "HOME",
            std::env::var_os("HOME").unwrap_or_else(|| "/".into()),
        )
        .env("LANG", "C.UTF-8")
        .env("DIST_ROOT", &layout.root)
        .env("DIST_PACKAGE", p.name.as_str())
        .env("DIST_VERSION", p.version.to_string())
        .env("DIST_STORE_PATH", &p.store_path)
        .env("DIST_PROFILE", layout.current_link())
        .env("DIST_ACTION", run.action.to_string())
        .env("DIST_OLD_VERSION", version(run.old_version))
        .env("DIST_NEW_VERSION", version(run.new_version))
        .env("DIST_STATE_DIR", layout.state_dir(&p.name))
        .env("DIST_CONFIG_DIR", layout.config_dir(&p.name));
    cmd
}

/// Why a script was killed before it exited.
enum Stop {
    Interrupted(interrupt::Interrupted),
    /// A timeout, or a child that could not be waited for.
    Other(String),
}

/// Follows the output until the script exits; `Err` with why it was killed (timeout, Ctrl-C).
fn wait(
    child: &mut std::process::Child,
    reaper: &super::reaper::Reaper,
    output: &mut Option<Follow>,
    show: &mut dyn FnMut(&str),
    (timeout, interruptible): (Duration, bool),
) -> Result<std::process::ExitStatus, Stop> {
    let start = Instant::now();
    // Most scripts are done in a few milliseconds: poll often at first, then every 20 ms (a
    // fixed 20 ms was most of a lone small install's time).
    let mut nap = Duration::from_millis(1);
    loop {
        // A read that filled the buffer may have left more behind: look again at once.
        let busy = output.as_mut().is_some_and(|o| o.step(show));
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(Stop::Other(format!("could not be waited for ({e})"))),
        }
        let stop = if start.elapsed() > timeout {
            Some(Stop::Other(format!(
                "timed out after {}s (script_timeout)",
                timeout.as_secs()
            )))
        } else if interruptible {
            interrupt::check().err().map(Stop::Interrupted)
        } else {
            None
        };
        if let Some(why) = stop {
            // Its group, and what left the group (`setsid`) or its parent.
            reaper.kill_all(child.id());
            let _ = child.wait();
            return Err(why);
        }
        if !busy {
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(20));
        }
    }
}

/// How much of one output line is kept: a longer line is shown (and quoted) cut there, marked
/// with `…`, and the rest of it skipped. With [`READ_CHUNK`] and [`TAIL_LINES`] this bounds
/// what following a script's output holds in memory, whatever the script prints (the log file
/// keeps the last MiB of it at least, `script_log`).
const LINE_MAX: usize = 4096;
/// The last lines of its output a failing script's error quotes.
const TAIL_LINES: usize = 10;
/// How much of the log one look reads, between two checks of the script's state (so a script
/// that prints without pause still meets its timeout).
const READ_CHUNK: usize = 64 << 10;

/// Reads a script's log while the script writes it: each look reads what was added since the
/// last one (stdout and stderr share one file offset, so the file holds them interleaved, in
/// order) and hands the complete lines on.
struct Follow {
    file: File,
    buf: Vec<u8>,
    lines: Lines,
    /// Cuts the log's head when it grows past its bound.
    cap: Option<super::script_log::Cap>,
}

impl Follow {
    fn new(file: File) -> Follow {
        Follow {
            file,
            buf: vec![0; READ_CHUNK],
            lines: Lines::default(),
            cap: None,
        }
    }

    fn with_cap(self, cap: Option<super::script_log::Cap>) -> Follow {
        Follow { cap, ..self }
    }

    /// Cuts the log if it passed its bound (`over`: the script has exited), and goes on reading
    /// at the same bytes (or the first kept one); lines it had not read yet are not shown.
    fn bound(&mut self, show: &mut dyn FnMut(&str), over: bool) {
        let Some(cap) = self.cap.as_mut() else { return };
        let Ok(pos) = self.file.stream_position() else {
            return;
        };
        if let Ok(Some(next)) = cap.check(pos, over) {
            if next.skipped_to_line {
                self.lines.finish(show);
            }
            let _ = self.file.seek(std::io::SeekFrom::Start(next.pos));
        }
    }

    /// Reads one chunk of what is new; true if it filled the buffer (more may be waiting).
    /// A read error ends the following (the log still has everything).
    fn step(&mut self, show: &mut dyn FnMut(&str)) -> bool {
        self.bound(show, false);
        match self.file.read(&mut self.buf) {
            Ok(n) => {
                self.lines.push(&self.buf[..n], show);
                n == self.buf.len()
            }
            Err(_) => false,
        }
    }

    /// Once the script is over: reads up to the log's length now (a background child it left
    /// may go on writing; that is only in the log) and hands on the last, unfinished line.
    fn drain(&mut self, log: &Path, show: &mut dyn FnMut(&str)) {
        self.bound(show, true);
        let end = std::fs::metadata(log).map_or(0, |m| m.len());
        let mut left = end.saturating_sub(self.file.stream_position().unwrap_or(end));
        while left > 0 {
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            match self.file.read(&mut self.buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.lines.push(&self.buf[..n], show);
                    left -= n as u64;
                }
            }
        }
        self.lines.finish(show);
    }
}

/// Cuts output that arrives in arbitrary chunks into lines: `\n` ends a line (a `\r` before it
/// is dropped), bytes that are not UTF-8 become U+FFFD, a line longer than [`LINE_MAX`] bytes
/// is cut there, and the last [`TAIL_LINES`] lines are kept for an error message. Control
/// characters are passed on as they are: escaping them is the terminal side's job.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    cut: bool,
    tail: VecDeque<String>,
}

impl Lines {
    fn push(&mut self, mut bytes: &[u8], show: &mut dyn FnMut(&str)) {
        while !bytes.is_empty() {
            let (chunk, rest, ends) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &bytes[bytes.len()..], false),
            };
            if !self.cut {
                let room = LINE_MAX - self.partial.len();
                if chunk.len() > room {
                    self.partial.extend_from_slice(&chunk[..room]);
                    self.cut = true;
                } else {
                    self.partial.extend_from_slice(chunk);
                }
            }
            if ends {
                self.end_line(show);
            }
            bytes = rest;
        }
    }

    /// Hands on an unfinished last line (output that does not end with a line break).
    fn finish(&mut self, show: &mut dyn FnMut(&str)) {
        if !self.partial.is_empty() || self.cut {
            self.end_line(show);
        }
    }

    fn end_line(&mut self, show: &mut dyn FnMut(&str)) {
        if self.cut {
            // Not in the middle of a character: back to where the last whole one ends.
            if let Err(e) = std::str::from_utf8(&self.partial) {
                if e.error_len().is_none() {
                    self.partial.truncate(e.valid_up_to());
                }
            }
        } else if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        let mut line = String::from_utf8_lossy(&self.partial).into_owned();
        if self.cut {
            line.push('…');
        }
        show(&line);
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
        self.partial.clear();
        self.cut = false;
    }
}

impl Layout {
    /// `ROOT/logs/<name>-<version>-<which>.log` (never under a store path), the previous
    /// run's log removed so that the spawn creates a new file: a background process that run
    /// left behind, still writing to the old file, does not write into this run's log.
    fn script_log(&self, p: &Installed, which: Script) -> Result<PathBuf> {
        let dir = self.root.join("logs");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let log = dir.join(format!("{}-{}-{which}.log", p.name, p.version));
        match std::fs::remove_file(&log) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", log.display()))
            }
            _ => Ok(log),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn cut(chunks: &[&[u8]]) -> (Vec<String>, Lines) {
        let (mut lines, mut seen) = (Lines::default(), Vec::new());
        for c in chunks {
            lines.push(c, &mut |l| seen.push(l.to_string()));
        }
        lines.finish(&mut |l| seen.push(l.to_string()));
        (seen, lines)
    }

    #[test]
    fn output_is_cut_into_lines_whatever_the_chunks() {
        let (seen, _) = cut(&[b"one\ntw", b"o\r\n", b"\n", b"thr", b"ee"]);
        assert_eq!(seen, ["one", "two", "", "three"]);
        let (seen, _) = cut(&[b"bad \xff byte\n", b"a\rb\n"]);
        assert_eq!(seen, ["bad \u{fffd} byte", "a\rb"]);
        let (seen, _) = cut(&[b""]);
        assert!(seen.is_empty());
    }

    #[test]
    fn a_line_of_megabytes_is_cut_and_memory_stays_bounded() {
        let mut lines = Lines::default();
        let mut seen = Vec::new();
        let chunk = vec![b'x'; READ_CHUNK];
        for _ in 0..160 {
            lines.push(&chunk, &mut |l| seen.push(l.to_string()));
            assert!(lines.partial.capacity() <= 2 * LINE_MAX);
        }
        lines.push(b"\nnext\n", &mut |l| seen.push(l.to_string()));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], format!("{}…", "x".repeat(LINE_MAX)));
        assert_eq!(seen[1], "next");
        // A cut never splits a character.
        let long = format!("a{}\n", "é".repeat(LINE_MAX));
        let (seen, _) = cut(&[long.as_bytes()]);
        assert_eq!(seen[0], format!("a{}…", "é".repeat((LINE_MAX - 1) / 2)));
    }

    #[test]
    fn the_last_lines_are_kept_for_the_error() {
        let text: String = (1..=25).map(|i| format!("line {i}\n")).collect();
        let (seen, lines) = cut(&[text.as_bytes()]);
        assert_eq!(seen.len(), 25);
        let tail: Vec<String> = (16..=25).map(|i| format!("line {i}")).collect();
        assert_eq!(Vec::from(lines.tail), tail);
    }

    #[test]
    fn following_reads_what_the_writer_adds_and_stops_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let mut writer = File::create(&log).unwrap();
        let mut follow = Follow::new(File::open(&log).unwrap());
        let mut seen = Vec::new();
        writer.write_all(b"a\nb").unwrap();
        assert!(!follow.step(&mut |l| seen.push(l.to_string())));
        assert_eq!(seen, ["a"]);
        writer.write_all(b"c\nd").unwrap();
        follow.step(&mut |l| seen.push(l.to_string()));
        follow.drain(&log, &mut |l| seen.push(l.to_string()));
        assert_eq!(seen, ["a", "bc", "d"]);
    }
}
