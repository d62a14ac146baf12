//! Network namespaces that tests and benchmarks make for themselves: a fresh namespace with `lo`
//! up and one /32 address per daemon, commands run inside it, and on drop every process still
//! in it killed and the namespace removed.
//!
//! transmission-daemon 3.00 refuses peers at 127.x, so a swarm on one host needs its own
//! addresses; a namespace gives them without touching the host's network. Only std: xtask
//! includes this file with `#[path]`. Each includer uses part of it, hence the `dead_code`
//! allowances on the items (not on the module: xtask allows it where it declares the module).

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where the tests, the demo and the benchmarks run `dist serve` inside their namespace.
#[allow(dead_code)]
pub const SERVER_IP: &str = "10.77.0.1";
#[allow(dead_code)]
pub const HTTP: &str = "10.77.0.1:7380";
#[allow(dead_code)]
pub const TRACKER: &str = "10.77.0.1:6969";

/// `dist --root ROOT serve` on those addresses, to run inside the namespace.
#[allow(dead_code)]
pub fn serve_command(ns: &Netns, dist: &Path, root: &Path) -> Command {
    let mut c = ns.command(dist);
    c.arg("--root").arg(root).args([
        "serve",
        "--http",
        HTTP,
        "--tracker",
        TRACKER,
        "--bind",
        SERVER_IP,
    ]);
    c
}

/// How long drop waits for killed processes to leave the namespace.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A network namespace owned by this process.
pub struct Netns {
    name: String,
    kind: Kind,
}

enum Kind {
    /// As root: `ip netns add NAME`, entered with `ip netns exec NAME`.
    Named,
    /// Without root: `unshare -rn sleep infinity` holds a user + network namespace, entered
    /// with `nsenter -t PID -U -n --preserve-credentials`.
    Holder(Child),
}

#[allow(dead_code)]
impl Netns {
    /// Creates a fresh namespace named `dist-<pid>-<counter>`, brings `lo` up and adds each
    /// address to it (as /32 unless it has a prefix). As root it is an `ip netns`; otherwise a
    /// user namespace held by an `unshare` process.
    pub fn new(addrs: &[&str]) -> io::Result<Netns> {
        if effective_uid()? == 0 {
            Netns::named(addrs)
        } else {
            Netns::unprivileged(addrs)
        }
    }

    /// The root flavour: a named namespace from `ip netns add`.
    pub fn named(addrs: &[&str]) -> io::Result<Netns> {
        let netns = loop {
            let name = unique_name();
            let out = Command::new("ip")
                .args(["netns", "add", &name])
                .output()
                .map_err(|e| tool_error("ip", e))?;
            if out.status.success() {
                break Netns {
                    name,
                    kind: Kind::Named,
                };
            }
            let err = String::from_utf8_lossy(&out.stderr);
            // A leftover of an earlier run that had the same pid: take the next number.
            if !err.contains("File exists") {
                return Err(io::Error::other(format!(
                    "ip netns add {name} failed: {}",
                    err.trim()
                )));
            }
        };
        netns.configure(addrs)?;
        Ok(netns)
    }

    /// The unprivileged flavour: `unshare -rn` holding a user + network namespace. Works as
    /// root too, which lets tests cover it. (opentracker cannot run in it: it chroots and
    /// drops to `nobody`, which a one-uid user namespace cannot do.)
    pub fn unprivileged(addrs: &[&str]) -> io::Result<Netns> {
        // With newuidmap (Debian's uidmap) and subordinate uids for this user, `--map-auto` maps
        // them too, so `nobody` exists inside and opentracker can drop to it; else one uid only.
        let map_auto = Path::new("/usr/bin/newuidmap").exists() && has_subuids();
        let args: &[&str] = if map_auto {
            &["-rn", "--map-auto", "sleep", "infinity"]
        } else {
            &["-rn", "sleep", "infinity"]
        };
        let mut holder = Command::new("unshare")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| tool_error("unshare", e))?;
        let pid = holder.id();
        // Wait until unshare has made the namespaces, written the uid map and exec'd `sleep`.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = holder.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = holder.stderr.take() {
                    let _ = io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(io::Error::other(format!(
                    "unshare -rn exited ({status}): {}",
                    err.trim()
                )));
            }
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                break;
            }
            if Instant::now() > deadline {
                let _ = holder.kill();
                let _ = holder.wait();
                return Err(io::Error::other("unshare -rn did not start within 5 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let netns = Netns {
            name: unique_name(),
            kind: Kind::Holder(holder),
        };
        netns.configure(addrs)?;
        Ok(netns)
    }

    fn configure(&self, addrs: &[&str]) -> io::Result<()> {
        self.run(&["ip", "link", "set", "lo", "up"])?;
        for a in addrs {
            let cidr = if a.contains('/') {
                a.to_string()
            } else {
                format!("{a}/32")
            };
            self.run(&["ip", "addr", "add", &cidr, "dev", "lo"])?;
        }
        Ok(())
    }

    /// Runs a command inside to completion; a failure carries its stderr.
    pub fn run(&self, argv: &[&str]) -> io::Result<String> {
        let mut cmd = self.command(argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null());
        let out = cmd.output().map_err(|e| tool_error(argv[0], e))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "`{}` in namespace {} failed ({}): {}",
                argv.join(" "),
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `program` inside the namespace; `ip netns exec` and `nsenter`
    /// exec it in place, so the child's pid is the program's.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        match &self.kind {
            Kind::Named => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &self.name]).arg(program);
                c
            }
            Kind::Holder(holder) => {
                let mut c = Command::new("nsenter");
                c.args(["-t", &holder.id().to_string(), "-U", "-n"])
                    .arg("--preserve-credentials")
                    .arg(program);
                c
            }
        }
    }

    /// The namespace's identity: device and inode of its nsfs file.
    fn ns_id(&self) -> Option<(u64, u64)> {
        let path = match &self.kind {
            Kind::Named => format!("/run/netns/{}", self.name),
            Kind::Holder(holder) => format!("/proc/{}/ns/net", holder.id()),
        };
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }

    /// Every live process inside the namespace (not counting an `unshare` holder).
    pub fn pids(&self) -> Vec<u32> {
        let Some(id) = self.ns_id() else {
            return Vec::new();
        };
        let holder = match &self.kind {
            Kind::Holder(h) => Some(h.id()),
            Kind::Named => None,
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| Some(*pid) != holder)
            .filter(|pid| {
                std::fs::metadata(format!("/proc/{pid}/ns/net"))
                    .is_ok_and(|m| (m.dev(), m.ino()) == id)
            })
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        match &mut self.kind {
            Kind::Named => {
                let _ = Command::new("ip")
                    .args(["netns", "del", &self.name])
                    .stderr(Stdio::null())
                    .status();
            }
            Kind::Holder(holder) => {
                let _ = holder.kill();
                let _ = holder.wait();
            }
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0).
#[allow(dead_code)]
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind 127.0.0.1:0")
}

fn unique_name() -> String {
    format!(
        "dist-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn effective_uid() -> io::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| io::Error::other("no Uid line in /proc/self/status"))
}

fn tool_error(tool: &str, e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::NotFound {
        io::Error::new(
            e.kind(),
            format!("{tool} not found (Debian packages iproute2 and util-linux)"),
        )
    } else {
        io::Error::new(e.kind(), format!("cannot run {tool}: {e}"))
    }
}

/// Whether /etc/subuid grants the current user a range (what `unshare --map-auto` needs).
fn has_subuids() -> bool {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    std::fs::read_to_string("/etc/subuid")
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split(':').next())
                .any(|owner| (!user.is_empty() && owner == user) || owner == uid)
        })
        .unwrap_or(false)
}
