//! `dist doctor` (issue 23, finding 11): what can keep a client root from working, each checked
//! for real and named, with what to do: the configuration, each server (reachable, and its
//! index verifies with the key this root trusts), the local index copy (synced, not stale), the
//! seeding process (running when something is offered to it), `PATH`, disk space, and the
//! clock (against the server's `Date`). Nothing here changes the root.

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::config::Settings;
use super::{seeder, seeding, Layout};
use crate::index::{keys, wire};
use crate::net::ServerUrl;
use crate::text::size;

/// One check: its name (`config`, `server`, `key`, `index`, `daemon`, `path`, `disk`, `clock`),
/// whether it passed, and what was found or what to do.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok,
            detail: detail.into(),
        }
    }
}

/// Below this much free space on the root's file system, `disk` fails.
pub const MIN_FREE: u64 = 1 << 30;
/// A clock further than this from the server's fails `clock`.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// Every check for the root `layout` with `settings` (or the error that kept the configuration
/// from resolving), `path` being the `PATH` to look in and `env_line` the shell line that puts
/// the profile on it.
pub fn run(
    layout: &Layout,
    settings: Result<&Settings, String>,
    path: &OsStr,
    env_line: &str,
) -> Vec<Check> {
    let mut out = Vec::new();
    let settings = match settings {
        Ok(s) => {
            out.push(Check::new("config", true, "the configuration resolves"));
            Some(s)
        }
        Err(e) => {
            out.push(Check::new("config", false, e));
            None
        }
    };
    let mut server_clock = None;
    if let Some(s) = settings {
        for repo in &s.repositories {
            server_clock = server_clock.or(servers(layout, s, repo, &mut out));
        }
        out.push(daemon(layout, s));
    }
    out.push(on_path_check(layout, path, env_line));
    out.push(disk(layout));
    out.push(clock(server_clock));
    out
}

/// What was learnt of a server's clock: its `Date`, when the answer came, and its URL.
type ServerClock = (SystemTime, SystemTime, String);

/// The `server`, `key` and `index` checks of one repository; the first server clock seen.
fn servers(
    layout: &Layout,
    s: &Settings,
    repo: &super::config::Repository,
    out: &mut Vec<Check>,
) -> Option<ServerClock> {
    let named = |what: &str| match repo.implicit {
        true => what.to_string(),
        false => format!("repository `{}`: {what}", repo.name),
    };
    let list = match repo.servers() {
        Ok(l) => l,
        Err(e) => {
            out.push(Check::new("server", false, named(&format!("{e:#}"))));
            return None;
        }
    };
    let mut clock = None;
    for server in list {
        let (check, date) = reach(server, s.http_timeout);
        out.push(Check {
            detail: named(&check.detail),
            ..check
        });
        clock = clock.or(date);
    }
    let idx = layout.index_dir(repo);
    out.push(match verify(&idx, repo, list, s.http_timeout) {
        Ok(d) => Check::new("key", true, named(&d)),
        Err(e) => Check::new("key", false, named(&e)),
    });
    out.push(index_age(&idx, s, &named));
    clock
}

/// GET `server/index.json`: reachable and 200, and the server's `Date` if it sent one.
fn reach(server: &str, timeout: Duration) -> (Check, Option<ServerClock>) {
    let url = format!("{server}/index.json");
    let agent = match crate::net::agent(&url, timeout) {
        Ok(a) => a,
        Err(e) => return (Check::new("server", false, format!("{e:#}")), None),
    };
    let t = Instant::now();
    match agent.get(&url).call() {
        Ok(resp) => {
            let date = resp
                .header("Date")
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .map(|d| (d, SystemTime::now(), server.to_string()));
            let ms = t.elapsed().as_millis();
            (
                Check::new("server", true, format!("{url} answers ({ms} ms)")),
                date,
            )
        }
        Err(ureq::Error::Status(code, _)) => (
            Check::new(
                "server",
                false,
                format!("{url}: HTTP {code}: is this a dist server? (server_url)"),
            ),
            None,
        ),
        Err(ureq::Error::Transport(t)) => (
            Check::new(
                "server",
                false,
                format!(
                    "{url} unreachable: {}: is the server up, and server_url right?",
                    crate::net::transport_cause(&t)
                ),
            ),
            None,
        ),
    }
}

/// The first server's manifest, verified with the key this root trusts (following a published
/// rotation as sync does).
fn verify(
    idx: &super::index_copy::IndexDir,
    repo: &super::config::Repository,
    servers: &[ServerUrl],
    timeout: Duration,
) -> Result<String, String> {
    let trust = idx.trust(repo).map_err(|e| format!("{e:#}"))?;
    let mut last = String::from("no server");
    for server in servers {
        let agent = crate::net::agent(server, timeout).map_err(|e| format!("{e:#}"))?;
        let mut remote = wire::Remote::new(agent, server);
        match keys::fetch_manifest(&mut remote, trust.key(), trust.revoked(), None, 4 << 20) {
            Ok((Some(m), followed)) => {
                let rotated = match followed {
                    Some(f) if !f.rotations.is_empty() => {
                        " (after a key rotation `dist sync` will record)"
                    }
                    _ => "",
                };
                return Ok(format!(
                    "{server}: index serial {} verifies with key {}{rotated}",
                    m.manifest.serial,
                    trust.key().id()
                ));
            }
            Ok((None, _)) => return Ok(format!("{server}: the index verifies")),
            Err(e) => {
                let signature = e
                    .chain()
                    .any(|c| c.is::<crate::index::sign::VerifyError>() || c.is::<keys::KeyError>());
                let hint = match signature {
                    true => ": check public_key against `dist key show` on the repository",
                    false => "",
                };
                last = format!("{server}: {e:#}{hint}");
            }
        }
    }
    Err(last)
}

/// The local copy: synced, and not older than `stale_after`.
fn index_age(
    idx: &super::index_copy::IndexDir,
    s: &Settings,
    named: &dyn Fn(&str) -> String,
) -> Check {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match idx.state() {
        Ok(Some(st)) => {
            let age = now.saturating_sub(st.created);
            let ok = age <= s.stale_after;
            let detail = format!(
                "serial {}, signed {} ago{}",
                st.serial,
                ago(age),
                if ok { "" } else { ": run `dist sync`" }
            );
            Check::new("index", ok, named(&detail))
        }
        Ok(None) => Check::new("index", false, named("never synced: run `dist sync`")),
        Err(e) => Check::new("index", false, named(&format!("{e:#}"))),
    }
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// The seeding process: running when objects are offered to it (or `seed: false`).
fn daemon(layout: &Layout, s: &Settings) -> Check {
    let running = seeding::running(layout, s.upload_limit);
    if let Some(d) = running.first() {
        let fresh = match d.engine {
            super::config::Engine::Libtorrent => {
                seeder::status_age(layout).is_some_and(|a| a < Duration::from_secs(10))
            }
            // `seeding::running` asked its RPC already.
            super::config::Engine::Transmission => true,
        };
        let detail = format!("{} runs (pid {}) and {}", d.engine, d.pid, match fresh {
            true => "reports what it seeds",
            false => "has not reported for 10 s: look at `dist daemon status`, or restart it with `dist daemon stop` and the next install",
        });
        return Check::new("daemon", fresh, detail);
    }
    if !s.seed {
        return Check::new("daemon", true, "seed: false: nothing is seeded");
    }
    if let Some(st) = layout.daemon_state() {
        return Check::new(
            "daemon",
            false,
            format!("transmission-daemon (pid {}) seeded this root and is not running (stopped, or the machine restarted): the next install starts it", st.pid),
        );
    }
    if seeder::has_offers(layout) {
        return Check::new(
            "daemon",
            false,
            "installed objects are offered for seeding but no seeder runs (stopped, or the machine restarted): the next install starts it; `seed: false` in client.yaml if that is intended",
        );
    }
    Check::new("daemon", true, "nothing to seed yet (no seeder needed)")
}

/// Whether `dir` is one of `path`'s directories (compared after resolving symlinks).
pub fn on_path(dir: &Path, path: &OsStr) -> bool {
    let want = std::fs::canonicalize(dir).ok();
    std::env::split_paths(path)
        .any(|p| p == dir || (want.is_some() && std::fs::canonicalize(&p).ok() == want))
}

fn on_path_check(layout: &Layout, path: &OsStr, env_line: &str) -> Check {
    let bin = layout.current_link().join("bin");
    match on_path(&bin, path) {
        true => Check::new("path", true, format!("{} is on PATH", bin.display())),
        false => Check::new(
            "path",
            false,
            format!(
                "{} is not on PATH: add `{env_line}` to your shell's startup file (~/.bashrc, ~/.zshrc, ~/.profile)",
                bin.display()
            ),
        ),
    }
}

/// Free space on the root's file system (of its nearest existing ancestor).
fn disk(layout: &Layout) -> Check {
    let mut dir = layout.root.as_path();
    while !dir.exists() {
        match dir.parent() {
            Some(p) => dir = p,
            None => break,
        }
    }
    match rustix::fs::statvfs(dir) {
        Ok(st) => {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            let total = st.f_blocks.saturating_mul(st.f_frsize);
            let ok = free >= MIN_FREE;
            let detail = format!(
                "{} free of {} on {}{}",
                size(free),
                size(total),
                dir.display(),
                if ok {
                    ""
                } else {
                    ": installs may fail; `dist gc --keep 3` frees old generations"
                }
            );
            Check::new("disk", ok, detail)
        }
        Err(e) => Check::new("disk", false, format!("cannot stat {}: {e}", dir.display())),
    }
}

/// This machine's clock against the first server's `Date` header.
fn clock(server: Option<ServerClock>) -> Check {
    let Some((date, at, server)) = server else {
        return Check::new("clock", true, "not compared (no server sent its time)");
    };
    let (skew, ahead) = match at.duration_since(date) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    // `Date` has whole seconds.
    let secs = skew.as_secs();
    let ok = skew <= MAX_SKEW;
    let detail = match (secs, ahead) {
        (0, _) => format!("within a second of {server}'s"),
        (s, true) => format!("{s} s ahead of {server}'s"),
        (s, false) => format!("{s} s behind {server}'s"),
    };
    let fix = if ok {
        ""
    } else {
        ": signatures and stale warnings need the right time; set the clock (NTP)"
    };
    Check::new("clock", ok, format!("{detail}{fix}"))
}
