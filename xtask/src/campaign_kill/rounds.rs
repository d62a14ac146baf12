//! The rounds of the kill campaign. Each one kills one operation after a random delay, notes
//! the phase it was in from what it left on disk, checks the invariants, runs the command again
//! (or its idempotent form) to completion and checks that the result is the expected one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use super::{disp, Campaign, Kind, LIMIT};
use crate::lab::campaign::{self as c, Hit};
use crate::lab::packages::Package;
use crate::lab::server::Server;

impl Campaign<'_> {
    /// `dist add` of a new package: killed while it validates, packs or publishes.
    pub(super) fn add_round(&mut self) -> Result<()> {
        let (name, dir) = self.new_package("pkg")?;
        let args = ["add", &disp(&dir)];
        let before = self.latest();
        let (hit, delay) = self.kill_dist(Kind::Add, &self.repo.clone(), &args)?;
        let phase = self.add_phase(before);
        self.record(Kind::Add, hit, delay, phase);
        self.check("after the kill");
        if self.rerun(&self.repo.clone(), &args) {
            if !self.published_names().contains(&name) {
                self.violation(format!(
                    "after `dist add` completed, LATEST does not list {name}"
                ));
            }
            self.check("after the next command");
        }
        Ok(())
    }

    /// Where a killed `add` was: packing (its staged archive still there), publishing (the
    /// archive moved into `objects/`, `LATEST` not yet replaced), or past `LATEST`. The staging
    /// directory goes last, after `LATEST`.
    fn add_phase(&self, before: Option<u64>) -> &'static str {
        if self.latest() != before {
            return "after LATEST";
        }
        let staging: Vec<PathBuf> = list(&self.repo.join("objects"))
            .into_iter()
            .filter(|p| file_name(p).starts_with(".tmp-staging"))
            .collect();
        // `N.tar` (or its `.tmp-` partial) until the transaction moves it into `objects/`;
        // the `N.tar.torrent` beside it stays until the end.
        let packing = |p: &PathBuf| {
            let n = file_name(p);
            n.ends_with(".tar") || n.starts_with(".tmp-")
        };
        let tars: usize = staging
            .iter()
            .map(|d| list(d).iter().filter(|p| packing(p)).count())
            .sum();
        match (staging.is_empty(), tars) {
            (true, _) => "validate/open",
            (false, 0) => "publish",
            (false, _) => "pack",
        }
    }

    pub(super) fn latest(&self) -> Option<u64> {
        let text = fs::read_to_string(self.repo.join("published/LATEST")).ok()?;
        text.trim().parse().ok()
    }

    fn published_names(&self) -> Vec<String> {
        let Some(serial) = self.latest() else {
            return Vec::new();
        };
        let db = self.repo.with_extension("names.db");
        if crate::util::published_snapshot(&self.repo, serial, &db).is_err() {
            return Vec::new();
        }
        let o = std::process::Command::new("sqlite3")
            .arg("-readonly")
            .arg(&db)
            .arg("SELECT name FROM packages")
            .output();
        let names = o.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        names
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A new package of 256 KiB to 4.25 MiB under `pkgs/added/`: its name and directory.
    pub(super) fn new_package(&mut self, prefix: &str) -> Result<(String, PathBuf)> {
        self.adds += 1;
        let size = (256 << 10) + self.rng.next_u64() % (4 << 20);
        let name = format!("{prefix}-{}", self.adds);
        let p = Package::data(name.as_str(), size, 100 + self.adds as u64);
        Ok((name, p.write_in(&self.pkgs.join("added"))?))
    }

    /// `dist install big@VERSION --transport T`, killed while it fetches, unpacks or switches.
    pub(super) fn install_round(
        &mut self,
        kind: Kind,
        version: &str,
        transport: &str,
    ) -> Result<()> {
        let spec = format!("big@{version}");
        let args: Vec<&str> = match transport {
            "libtorrent" => vec![
                "install",
                &spec,
                "--transport",
                "torrent",
                "--engine",
                "libtorrent",
            ],
            t => vec!["install", &spec, "--transport", t],
        };
        let like = match transport {
            "torrent" | "libtorrent" => Kind::InstallTorrent,
            _ => Kind::InstallHttp,
        };
        let (hit, delay) = self.kill_dist(like, &self.client.clone(), &args)?;
        let phase = self.install_phase(version);
        self.record(kind, hit, delay, phase);
        self.finish_client(&args, |k| k.expect_big(Some(version)));
        Ok(())
    }

    /// Where a killed install of big@`version` was, from what it left.
    fn install_phase(&self, version: &str) -> &'static str {
        let b3 = &self.b3[version];
        let store = self
            .client
            .join("store")
            .join(format!("{}-big-{version}", &b3[..32]));
        let object = self.client.join("objects").join(&b3[..2]).join(&b3[2..]);
        if self.big_version().as_deref() == Some(version) {
            "after switch"
        } else if store.exists() {
            "switch"
        } else if object.exists() {
            "unpack"
        } else {
            "fetch"
        }
    }

    /// SIGKILL to the client's transmission-daemon during an install over BitTorrent; then the
    /// same install must succeed.
    pub(super) fn daemon_round(&mut self) -> Result<()> {
        let args = ["install", "big@1.0.0", "--transport", "torrent"];
        let delay = self.delay(Kind::Daemon);
        let mut child = c::dist_cmd(self.env, &self.client, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let started = Instant::now();
        while started.elapsed() < delay && child.try_wait()?.is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The install starts the daemon if none runs: give it the time to.
        let pid = loop {
            match self.daemon_pid().filter(|p| c::alive(*p)) {
                Some(p) => break Some(p),
                None if started.elapsed() < delay + Duration::from_secs(20) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                None => break None,
            }
        };
        let Some(pid) = pid else {
            self.finding("no client daemon ran to be killed: round skipped".into());
            c::wait_for(&mut child, LIMIT)?;
            return Ok(());
        };
        let running = child.try_wait()?.is_none();
        c::sigkill(pid);
        let hit = if running { Hit::Landed } else { Hit::Finished };
        let phase = self.install_phase("1.0.0");
        self.record(Kind::Daemon, hit, started.elapsed(), phase);
        if c::wait_for(&mut child, Duration::from_secs(120))?.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            self.violation("the install did not end within 120 s of its daemon's death".into());
        }
        // The killed daemon may have finished the download first, and the install then went
        // on without it; only a next install that still has to fetch needs (and starts) one.
        let must_fetch = self.install_phase("1.0.0") == "fetch";
        self.finish_client(&args, |k| k.expect_big(Some("1.0.0")));
        if must_fetch && !self.daemon_pid().is_some_and(c::alive) {
            self.violation("after the next install, which fetched, no client daemon runs".into());
        }
        Ok(())
    }

    /// big@1.0.0 installed with the libtorrent engine, then SIGKILL to the root's libtorrent
    /// seeder while it seeds; the next install (which fetches nothing) must start it again.
    pub(super) fn seeder_round(&mut self) -> Result<()> {
        let args = [
            "install",
            "big@1.0.0",
            "--transport",
            "torrent",
            "--engine",
            "libtorrent",
        ];
        if let Err(e) = c::ok(self.env, &self.client.clone(), &args) {
            self.violation(format!(
                "the libtorrent install before the seeder kill failed: {e:#}"
            ));
            return Ok(());
        }
        let delay = self.delay(Kind::Seeder);
        std::thread::sleep(delay);
        let Some(pid) = self.seeder_pid().filter(|p| c::alive(*p)) else {
            self.finding("no libtorrent seeder ran to be killed: round skipped".into());
            return Ok(());
        };
        c::sigkill(pid);
        self.record(Kind::Seeder, Hit::Landed, delay, "seeding");
        self.finish_client(&args, |k| match k.seeder_pid().filter(|p| c::alive(*p)) {
            Some(p) if p != pid => Ok(()),
            _ => Err("after the next install no libtorrent seeder runs".into()),
        });
        Ok(())
    }

    fn seeder_pid(&self) -> Option<u32> {
        let bytes = fs::read(self.client.join("daemon/libtorrent/state.json")).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        v["pid"].as_u64().map(|p| p as u32)
    }

    /// `dist rollback`; the next command is `rollback --to` the generation it aimed at.
    pub(super) fn rollback_round(&mut self) -> Result<()> {
        let cur = self.current_number();
        let target = self
            .generation_numbers()
            .into_iter()
            .filter(|g| Some(*g) < cur)
            .max();
        let Some(target) = target else {
            self.finding(format!(
                "nothing to roll back to from {cur:?}: round skipped"
            ));
            return Ok(());
        };
        let (hit, delay) = self.kill_dist(Kind::Rollback, &self.client.clone(), &["rollback"])?;
        let phase = match self.current_number() == Some(target) {
            true => "after switch",
            false => "before switch",
        };
        self.record(Kind::Rollback, hit, delay, phase);
        let to = target.to_string();
        self.finish_client(&["rollback", "--to", &to], |k| match k.current_number() {
            Some(n) if n == target => Ok(()),
            n => Err(format!("current is generation {n:?}, not {target}")),
        });
        Ok(())
    }

    /// `dist upgrade --transport T` from big 1.0.0 to 2.0.0, killed while it fetches, runs
    /// scripts or switches; the next command is the same.
    pub(super) fn upgrade_round(&mut self, transport: &str) -> Result<()> {
        let args = ["upgrade", "--transport", transport];
        let like = match transport {
            "torrent" => Kind::InstallTorrent,
            _ => Kind::InstallHttp,
        };
        let (hit, delay) = self.kill_dist(like, &self.client.clone(), &args)?;
        let phase = self.install_phase("2.0.0");
        self.record(Kind::Upgrade, hit, delay, phase);
        self.finish_client(&args, |k| k.expect_big(Some("2.0.0")));
        Ok(())
    }

    /// `dist uninstall [--purge] big`; the next command is the same while big is still current
    /// (or, for a purge, its state or configuration is left), else a `sync`. A purge must leave
    /// neither `var/big` nor `etc/big`.
    pub(super) fn uninstall_round(&mut self, purge: bool) -> Result<()> {
        let (kind, args): (Kind, &[&str]) = match purge {
            true => (Kind::Purge, &["uninstall", "--purge", "big"]),
            false => (Kind::Uninstall, &["uninstall", "big"]),
        };
        let (hit, delay) = self.kill_dist(kind, &self.client.clone(), args)?;
        let still = self.big_version().is_some();
        let left =
            purge && (self.client.join("var/big").exists() || self.client.join("etc/big").exists());
        let phase = match (still, left) {
            (true, _) => "before switch",
            (false, true) => "purging",
            (false, false) => "after switch",
        };
        self.record(kind, hit, delay, phase);
        let next: &[&str] = if still || left { args } else { &["sync"] };
        self.finish_client(next, |k| {
            k.expect_big(None)?;
            let kept = ["var/big", "etc/big"].map(|d| k.client.join(d).exists());
            match purge && kept.contains(&true) {
                true => Err(format!("purged, but var/big, etc/big exist: {kept:?}")),
                false => Ok(()),
            }
        });
        Ok(())
    }

    /// `dist gc --keep 1` after big was uninstalled: the newest and the current generation
    /// stay, and nothing of big unless one of them holds it.
    pub(super) fn gc_round(&mut self) -> Result<()> {
        let args = ["gc", "--keep", "1"];
        let gens = self.generation_numbers();
        let mut keep: Vec<u64> = gens
            .last()
            .copied()
            .into_iter()
            .chain(self.current_number())
            .collect();
        keep.sort();
        keep.dedup();
        let (hit, delay) = self.kill_dist(Kind::Gc, &self.client.clone(), &args)?;
        let phase = if self.generation_numbers().len() > keep.len() {
            "generations"
        } else if !self.big_leftovers().is_empty() {
            "store/objects"
        } else {
            "done"
        };
        self.record(Kind::Gc, hit, delay, phase);
        self.finish_client(&args, |k| {
            let (gens, left) = (k.generation_numbers(), k.big_leftovers());
            let big_kept = gens.iter().any(|g| k.generation_has_big(*g));
            match gens == keep && (left.is_empty() || big_kept) {
                true => Ok(()),
                false => Err(format!(
                    "generations {gens:?} (expected {keep:?}), {left:?} remain"
                )),
            }
        });
        Ok(())
    }

    fn generation_has_big(&self, n: u64) -> bool {
        let meta = self.client.join(format!("generations/{n}/generation.json"));
        let g: Option<Value> = fs::read(meta)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        g.is_some_and(|g| g["packages"].get("big").is_some())
    }

    /// Store paths, objects and downloads of big in the client root.
    fn big_leftovers(&self) -> Vec<String> {
        let mut left: Vec<PathBuf> = list(&self.client.join("store"))
            .into_iter()
            .filter(|p| file_name(p).contains("-big-"))
            .collect();
        left.extend(list(&self.client.join("downloads")));
        for b3 in self.b3.values() {
            let obj = self.client.join("objects").join(&b3[..2]).join(&b3[2..]);
            left.extend(obj.exists().then_some(obj));
        }
        left.iter().map(|p| disp(p)).collect()
    }

    /// After a client kill: the invariants, stray daemons, then `next` must succeed with the
    /// `expect`ed result and the invariants hold again.
    pub(super) fn finish_client(
        &mut self,
        next: &[&str],
        expect: impl Fn(&Self) -> Result<(), String>,
    ) {
        self.check("after the kill");
        self.stray_daemons();
        if self.rerun(&self.client.clone(), next) {
            if let Err(e) = expect(self) {
                self.violation(format!("after `dist {}` completed: {e}", next.join(" ")));
            }
            self.check("after the next command");
        }
    }

    fn expect_big(&self, version: Option<&str>) -> Result<(), String> {
        let found = self.big_version();
        match found.as_deref() == version {
            true => Ok(()),
            false => Err(format!("current has big {found:?}, expected {version:?}")),
        }
    }

    /// Client transmission-daemons running without a record in `daemon/state.json` (left by a
    /// kill between their start and that record): a finding each, then stopped.
    pub(super) fn stray_daemons(&mut self) {
        let config = format!("-g {}", disp(&self.client.join("daemon/config")));
        let recorded = self.daemon_pid();
        for (pid, cmd) in c::processes_with(self.env, &config) {
            if Some(pid) != recorded && cmd.starts_with("transmission-daemon") {
                self.finding(format!(
                    "client transmission-daemon {pid} runs unrecorded; stopped"
                ));
                c::terminate(pid);
            }
        }
    }

    fn daemon_pid(&self) -> Option<u32> {
        let bytes = fs::read(self.client.join("daemon/state.json")).ok()?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        v["pid"].as_u64().map(|p| p as u32)
    }

    pub(super) fn current_generation(&self) -> Option<Value> {
        let target = fs::read_link(self.client.join("current")).ok()?;
        let bytes = fs::read(self.client.join(target).join("generation.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn big_version(&self) -> Option<String> {
        let g = self.current_generation()?;
        g["packages"]["big"]["version"].as_str().map(str::to_string)
    }

    pub(super) fn current_number(&self) -> Option<u64> {
        self.current_generation()?["number"].as_u64()
    }

    fn generation_numbers(&self) -> Vec<u64> {
        let mut v: Vec<u64> = list(&self.client.join("generations"))
            .into_iter()
            .filter(|d| d.join("generation.json").exists())
            .filter_map(|d| file_name(&d).parse().ok())
            .collect();
        v.sort();
        v
    }

    /// After a server was killed: a new one must reach `/health` 200, and the killed one's
    /// tracker and seeder must be gone (the new one's are its children).
    pub(super) fn restart_server(&mut self) -> Result<()> {
        match self.start_server() {
            Ok(t) => {
                let est = self.est[&Kind::ServeStart];
                self.est.insert(Kind::ServeStart, (est * 3 + t) / 4);
            }
            Err(e) => {
                self.violation(format!("the restarted dist serve failed: {e:#}"));
                let stale = self.stop_strays(None);
                println!("          stopped what the killed server left running: {stale:?}");
                self.start_server()
                    .context("dist serve does not start even after its leftovers were stopped")?;
            }
        }
        let pid = self.server.as_ref().map(Server::pid);
        let stale = self.stop_strays(pid);
        if !stale.is_empty() {
            self.violation(format!(
                "the killed server's children still ran beside the new ones: {stale:?}"
            ));
        }
        Ok(())
    }

    /// Stops the tracker and seeder processes of the repository whose parent is not `keep`
    /// (the running server); returns what was stopped.
    pub(super) fn stop_strays(&mut self, keep: Option<u32>) -> Vec<(u32, String)> {
        let needle = format!("{}/serve/", disp(&self.repo));
        let strays: Vec<(u32, String)> = c::processes_with(self.env, &needle)
            .into_iter()
            .filter(|(pid, _)| keep.is_none() || c::ppid(*pid) != keep)
            .collect();
        for (pid, _) in &strays {
            c::terminate(*pid);
        }
        strays
    }

    /// `dist serve` killed while it starts, or while it follows a publish; it must start
    /// again and reach `/health` 200.
    pub(super) fn serve_round(&mut self, kind: Kind) -> Result<()> {
        let mut serial = None;
        if kind == Kind::ServeStart {
            self.stop_server()?;
            self.serves += 1;
            let log = self.env.tmp.join(format!("serve-{}.log", self.serves));
            self.server = Some(Server::spawn(self.env, &self.repo, &log)?);
        } else {
            let (_, dir) = self.new_package("follow")?;
            c::ok(self.env, &self.repo, &["add", &disp(&dir)])?;
            serial = self.latest();
        }
        let delay = self.delay(kind);
        let mut server = self.server.take().context("no server to kill")?;
        let started = match kind {
            Kind::ServeStart => server.started,
            _ => Instant::now(),
        };
        let hit = c::kill_at(&mut server.child, started, delay)?;
        let (hit, phase) = serve_phase(hit, &server.log, serial);
        self.record(kind, hit, delay, phase);
        self.check("after the kill");
        self.restart_server()
    }
}

/// Whether a killed server was still starting (no "ready" line yet) or still following the
/// publish of `serial` (no "ready" line after its "index serial" line).
fn serve_phase(hit: Hit, log: &Path, serial: Option<u64>) -> (Hit, &'static str) {
    let text = fs::read_to_string(log).unwrap_or_default();
    let ready = |s: &str| s.lines().any(|l| l.starts_with("ready"));
    match serial {
        None if hit == Hit::Landed && ready(&text) => (Hit::Finished, "ready"),
        None => (hit, "starting"),
        Some(n) => {
            let line = format!("index    serial {n},");
            match text.find(&line) {
                Some(at) if hit == Hit::Landed && ready(&text[at..]) => {
                    (Hit::Finished, "caught up")
                }
                Some(_) => (hit, "following"),
                None => (hit, "not yet noticed"),
            }
        }
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let rd = fs::read_dir(dir).into_iter().flatten().flatten();
    rd.map(|e| e.path()).collect()
}
