//! Process supervision shared by every part that runs a child (the daemons, the client's seeder
//! and install scripts, `dist serve`):
//! port checks before a start, spawn errors that say which package to install, signals,
//! bounded waits for an exit, and log tails for error messages.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Fails if `addr` cannot be bound (TCP, and UDP too with `udp`): the daemons do not report
/// a taken port by exiting (opentracker even shares it through SO_REUSEPORT).
pub fn ensure_free(addr: SocketAddr, udp: bool, what: &str) -> Result<()> {
    let explain = |proto: &str, e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow!("{what} {addr} is already in use ({proto})"),
        std::io::ErrorKind::AddrNotAvailable => {
            anyhow!(
                "{what} {addr}: {} is not an address of this host",
                addr.ip()
            )
        }
        _ => anyhow!(e).context(format!("cannot bind {what} {addr} ({proto})")),
    };
    // A port can look taken for a few milliseconds after its last user closed it: a child
    // forked meanwhile by another thread holds a copy of the socket until it execs. Only a
    // port still taken after a short while is reported.
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        let tried = TcpListener::bind(addr).map(drop).map_err(|e| ("tcp", e));
        let tried = tried.and_then(|()| match udp {
            true => UdpSocket::bind(addr).map(drop).map_err(|e| ("udp", e)),
            false => Ok(()),
        });
        match tried {
            Ok(()) => return Ok(()),
            Err((_, e))
                if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((proto, e)) => return Err(explain(proto, e)),
        }
    }
}

/// The error for a program that would not start; a missing one names its Debian package.
pub fn spawn_error(e: std::io::Error, program: &Path, package: &str) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow!(
            "{} not found: install the Debian package {package}",
            program.display()
        )
    } else {
        anyhow!(e).context(format!("cannot start {}", program.display()))
    }
}

/// Spawns `cmd` (the daemon `program`, from the Debian `package`) in its own process group, stdin
/// closed, stdout and stderr both into the file `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path, program: &Path, package: &str) -> Result<Child> {
    File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    // Appending: a script's log may be cut at its head while the script runs
    // (`client::script_log`), and its next writes must land after what was kept.
    let out = File::options()
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("cannot reopen {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| spawn_error(e, program, package))
}

/// "LOG ends with: ..." (the last lines), for errors about a daemon that misbehaved.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n");
    if tail.trim().is_empty() {
        format!("{} is empty", path.display())
    } else {
        format!("{} ends with:\n{tail}", path.display())
    }
}

/// The signals dist sends to the daemons it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Makes opentracker reload its whitelist.
    Hup,
    /// Asks a daemon to exit.
    Term,
    /// Ends a daemon that ignored [`Signal::Term`].
    Kill,
}

impl Signal {
    /// The name `kill -l` gives it ("HUP", ...).
    fn name(self) -> &'static str {
        match self {
            Signal::Hup => "HUP",
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
        }
    }

    fn number(self) -> rustix::process::Signal {
        match self {
            Signal::Hup => rustix::process::Signal::HUP,
            Signal::Term => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
        }
    }
}

/// Sends `signal` to the process `pid` (kill(2), to that process only: never to a group, and a
/// pid of 0 or above `i32::MAX`, which kill(2) would read as a group or as "every process", is
/// an error).
pub fn signal(pid: u32, signal: Signal) -> Result<()> {
    let (name, target) = (signal.name(), kill_target(pid, signal, false)?);
    rustix::process::kill_process(target, signal.number())
        .map_err(|e| anyhow!("kill -{name} {pid} failed: {e}"))
}

/// Sends `signal` to every process of the process group `pgid` (a child started with
/// `process_group(0)` leads its own group, so its pid is the group id).
pub fn signal_group(pgid: u32, signal: Signal) -> Result<()> {
    let (name, target) = (signal.name(), kill_target(pgid, signal, true)?);
    rustix::process::kill_process_group(target, signal.number())
        .map_err(|e| anyhow!("kill -{name} -{pgid} failed: {e}"))
}

/// `id` as a pid kill(2) reads as exactly that process (or group): 0 and anything above
/// `i32::MAX` would mean "my group" or "every process", and are refused.
fn kill_target(id: u32, signal: Signal, group: bool) -> Result<rustix::process::Pid> {
    let (name, sign, what) = match group {
        false => (signal.name(), "", "a process id"),
        true => (signal.name(), "-", "a process group id"),
    };
    i32::try_from(id)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| anyhow!("kill -{name} {sign}{id}: not {what}"))
}

/// A free TCP port on `ip` (the kernel's choice), for ports nobody configured.
pub fn free_port(ip: &str) -> Result<u16> {
    let l = match TcpListener::bind((ip, 0)) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => bail!(
            "{ip} is not an address of this machine ({e}): a bind address must be one of its own"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot find a free port on {ip}")),
    };
    Ok(l.local_addr()?.port())
}

/// The live processes running `program` (as the kernel names it: at most 15 bytes) whose
/// arguments hold `flag` directly followed by `value`: how a daemon started on a state
/// directory is found again when the process that started it died without stopping it.
pub fn find_by_arg(program: &str, flag: &str, value: &Path) -> Vec<u32> {
    let comm = &program.as_bytes()[..program.len().min(15)];
    let value = value.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let name = std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
            let args = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = args.split(|b| *b == 0).collect();
            name.strip_suffix(b"\n") == Some(comm)
                && args
                    .windows(2)
                    .any(|w| w[0] == flag.as_bytes() && w[1] == value)
                && alive(*pid)
        })
        .collect();
    found.sort();
    found
}

/// Whether `pid` names a live process (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// SIGTERM to our child, a bounded wait, SIGKILL as a last resort (then an error); always
/// reaps it.
pub fn terminate(child: &mut Child, name: &str, timeout: Duration) -> Result<()> {
    let pid = child.id();
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let sent = signal(pid, Signal::Term);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return sent;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child
        .wait()
        .with_context(|| format!("cannot reap {name} (pid {pid})"))?;
    bail!("{name} (pid {pid}) did not exit within {timeout:?} of SIGTERM and was killed")
}

/// The same for a process that is not our child: waits for the pid to disappear.
pub fn terminate_pid(pid: u32, name: &str, timeout: Duration) -> Result<()> {
    signal(pid, Signal::Term)?;
    if wait_gone(pid, timeout) {
        return Ok(());
    }
    let _ = signal(pid, Signal::Kill);
    if !wait_gone(pid, Duration::from_secs(2)) {
        bail!("{name} (pid {pid}) survived SIGKILL");
    }
    bail!("{name} (pid {pid}) did not exit within {timeout:?} of SIGTERM and was killed")
}

fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    use super::*;

    #[test]
    fn a_signal_reaches_the_process() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        signal(child.id(), Signal::Hup).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(1));
    }

    #[test]
    fn terminate_ends_and_reaps_a_child() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        terminate(&mut child, "sleep", Duration::from_secs(5)).unwrap();
        assert_eq!(child.try_wait().unwrap().unwrap().signal(), Some(15));
    }

    #[test]
    fn a_daemon_is_found_by_its_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        // A process that stays alive with `FLAG VALUE` among its arguments, as the daemons do
        // (`-g CONFIG_DIR`): `tail -f /dev/null DIR` follows /dev/null for ever.
        let mut child = Command::new("tail")
            .arg("-f")
            .arg("/dev/null")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Right after fork, /proc shows the parent's command line until exec: wait for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while find_by_arg("tail", "/dev/null", dir.path()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            find_by_arg("tail", "/dev/null", dir.path()),
            vec![child.id()]
        );
        assert!(find_by_arg("tail", "-f", dir.path()).is_empty());
        assert!(find_by_arg("tail", "/dev/null", &dir.path().join("x")).is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(find_by_arg("tail", "/dev/null", dir.path()).is_empty());
    }

    #[test]
    fn pids_that_kill_would_read_as_groups_are_refused() {
        // kill(2) reads 0 as "my process group" and -1 (u32::MAX as i32) as "every process".
        let e = signal(0, Signal::Term).unwrap_err();
        assert_eq!(e.to_string(), "kill -TERM 0: not a process id");
        let e = signal(u32::MAX, Signal::Kill).unwrap_err();
        assert_eq!(e.to_string(), "kill -KILL 4294967295: not a process id");
    }
}
