//! The rounds issue 25 added to the kill campaign: `repair`, `apply`, `autoremove`,
//! `key rotate` and a mirror's copy (`dist serve --mirror-of` following a publish, or making
//! its first copy). After each kill the state must be the one before the operation or the one
//! after it (installed set, store paths, index serial, `keys.json`, the mirror's serial), the
//! next command must bring it to the one after, and the common invariants must hold.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::{check, disp, Campaign, Kind, HEALTH_LIMIT};
use crate::lab::campaign::{self as c, Hit};
use crate::lab::packages::Package;
use crate::lab::server::Server;
use crate::netns::HTTP;

/// The mirror's addresses: the namespace's third (the client has the second).
const MIRROR_IP: &str = "10.77.0.3";
const MIRROR_HTTP: &str = "10.77.0.3:7380";
const MIRROR_TRACKER: &str = "10.77.0.3:6969";
/// How long a (re)started mirror may take to copy everything and be healthy.
const MIRROR_LIMIT: Duration = Duration::from_secs(300);

/// An installed set: name → version, from the current generation.
type Set = BTreeMap<String, String>;

/// `lib` 1.0.0 (1 MiB) and `app` 1.0.0 (256 KiB), which depends on it: what `apply` brings
/// and `autoremove` takes away again.
pub(super) fn lib_and_app(pkgs: &Path) -> Result<(PathBuf, PathBuf)> {
    let deps = pkgs.join("deps");
    let lib = Package::data("lib", 1 << 20, 7).write_in(&deps)?;
    let app = Package::data("app", 256 << 10, 8).depends("lib", "^1");
    Ok((lib, app.write_in(&deps)?))
}

/// The set `apply` makes current (store-format.md §6.2): big 1.0.0 and app requested, lib
/// as app's dependency. `added` is `add --json` of big 1.0.0, big 2.0.0, lib and app.
pub(super) fn write_set(path: &Path, added: &[Value]) -> Result<()> {
    let b3 = |i: usize| -> Result<&str> { added[i]["blake3"].as_str().context("add --json") };
    let text = format!(
        "dist-set 1\nbig 1.0.0 default {} requested\napp 1.0.0 default {} requested\nlib 1.0.0 default {} dependency\n",
        b3(0)?,
        b3(3)?,
        b3(2)?
    );
    fs::write(path, text)?;
    Ok(())
}

fn set_a() -> Set {
    [("app", "1.0.0"), ("big", "1.0.0"), ("lib", "1.0.0")]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Flips the first byte of `file` in place (as root, whatever its mode).
fn corrupt(file: &Path) -> Result<()> {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .with_context(|| format!("cannot open {}", file.display()))?;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 0)?;
    f.write_all_at(&[!b[0]], 0)?;
    Ok(())
}

impl Campaign<'_> {
    pub(super) fn mirror_root(&self) -> PathBuf {
        self.env.tmp.join("mirror")
    }

    fn set_file(&self) -> PathBuf {
        self.env.tmp.join("set-a")
    }

    /// The current generation's packages.
    pub(super) fn installed_set(&self) -> Set {
        let Some(g) = self.current_generation() else {
            return Set::new();
        };
        let packages = g["packages"].as_object().cloned().unwrap_or_default();
        packages
            .into_iter()
            .map(|(n, p)| (n, p["version"].as_str().unwrap_or("?").to_string()))
            .collect()
    }

    /// One unkilled run of each of these verbs, timed: big 1.0.0 installed, corrupted and
    /// repaired; `apply`; app uninstalled and `autoremove`; big uninstalled and `gc` (the state
    /// a cycle starts from); a key rotation; the mirror's first copy, then its copy of a publish.
    pub(super) fn calibrate_verbs(&mut self) -> Result<()> {
        let client = self.client.clone();
        c::ok(
            self.env,
            &client,
            &["install", "big@1.0.0", "--transport", "http"],
        )?;
        corrupt(&self.big_data().context("big is not installed")?)?;
        let set = disp(&self.set_file());
        let steps: [(Option<Kind>, Vec<&str>); 6] = [
            (Some(Kind::Repair), vec!["repair"]),
            (Some(Kind::Apply), vec!["apply", &set]),
            (None, vec!["uninstall", "app"]),
            (Some(Kind::Autoremove), vec!["autoremove"]),
            (None, vec!["uninstall", "big"]),
            (None, vec!["gc", "--keep", "1"]),
        ];
        for (kind, args) in steps {
            let t = Instant::now();
            c::ok(self.env, &client, &args)?;
            if let Some(k) = kind {
                self.est.insert(k, t.elapsed());
            }
        }
        let t = Instant::now();
        c::ok(self.env, &self.repo, &["key", "rotate"])?;
        self.est.insert(Kind::Rotate, t.elapsed());
        self.rotated()?;
        c::ok(self.env, &client, &["sync"])?;
        let t = Instant::now();
        self.start_mirror()?;
        self.est.insert(Kind::MirrorFresh, t.elapsed());
        let (_, dir) = self.new_package("mirrored")?;
        c::ok(self.env, &self.repo, &["add", &disp(&dir)])?;
        let t = Instant::now();
        self.wait_mirror_caught_up()?;
        self.est.insert(Kind::MirrorFollow, t.elapsed());
        Ok(())
    }

    /// After a completed rotation: the repository's key is the new one.
    fn rotated(&mut self) -> Result<String> {
        let key = c::ok(self.env, &self.repo, &["key", "show"])?
            .trim()
            .to_string();
        self.keys = vec![key.clone()];
        if !self.all_keys.contains(&key) {
            self.all_keys.push(key.clone());
        }
        Ok(key)
    }

    /// `assets/data.bin` of big's store path in the current generation.
    fn big_data(&self) -> Option<PathBuf> {
        let g = self.current_generation()?;
        let sp = g["packages"]["big"]["store_path"].as_str()?;
        Some(PathBuf::from(sp).join("assets/data.bin"))
    }

    /// big's store path corrupted, then `dist repair` killed: the checks must then find
    /// exactly what they found before it ran (nothing repaired yet) or nothing (repaired);
    /// the next `repair` must leave the same installed set, whole.
    pub(super) fn repair_round(&mut self) -> Result<()> {
        let Some(data) = self.big_data() else {
            self.finding("big is not installed: repair round skipped".into());
            return Ok(());
        };
        corrupt(&data)?;
        let set = self.installed_set();
        let keys = self.keys.clone();
        let before = self.checks(&keys);
        if before.is_empty() {
            self.finding(format!(
                "{} corrupted, yet no check noticed",
                data.display()
            ));
        }
        let (hit, delay) = self.kill_dist(Kind::Repair, &self.client.clone(), &["repair"])?;
        let now = self.checks(&keys);
        let phase = match (now.is_empty(), now == before) {
            (true, _) => "after switch",
            (false, true) => "before switch",
            (false, false) => "torn",
        };
        self.record(Kind::Repair, hit, delay, phase);
        if phase == "torn" {
            let new: Vec<&String> = now.iter().filter(|b| !before.contains(b)).collect();
            self.violation(format!(
                "after the kill, neither the corrupted state nor the repaired one: {new:?}"
            ));
        }
        self.stray_daemons();
        if self.rerun(&self.client.clone(), &["repair"]) {
            if self.installed_set() != set {
                let now = self.installed_set();
                self.violation(format!(
                    "repair changed the installed set {set:?} to {now:?}"
                ));
            }
            self.check("after the next command");
        }
        Ok(())
    }

    /// `dist apply` of set A (big 1.0.0, app, lib): after the kill the installed set is the
    /// one before or set A; the next `apply` makes it set A.
    pub(super) fn apply_round(&mut self) -> Result<()> {
        let before = self.installed_set();
        let file = disp(&self.set_file());
        let args = ["apply", file.as_str()];
        let (hit, delay) = self.kill_dist(Kind::Apply, &self.client.clone(), &args)?;
        let phase = self.set_phase(&before, &set_a());
        self.record(Kind::Apply, hit, delay, phase);
        self.finish_client(&args, |k| k.expect_set(&set_a()));
        Ok(())
    }

    /// app uninstalled (not killed), then `dist autoremove` killed: lib, app's dependency, is
    /// still installed or gone; the next `autoremove` removes it.
    pub(super) fn autoremove_round(&mut self) -> Result<()> {
        if let Err(e) = c::ok(self.env, &self.client.clone(), &["uninstall", "app"]) {
            self.violation(format!("uninstall app before the autoremove kill: {e:#}"));
            return Ok(());
        }
        let before = self.installed_set();
        let mut after = before.clone();
        after.remove("lib");
        let (hit, delay) =
            self.kill_dist(Kind::Autoremove, &self.client.clone(), &["autoremove"])?;
        let phase = self.set_phase(&before, &after);
        self.record(Kind::Autoremove, hit, delay, phase);
        self.finish_client(&["autoremove"], |k| k.expect_set(&after));
        Ok(())
    }

    /// Where a killed command that moves the installed set from `before` to `after` was; a
    /// third set is a violation.
    fn set_phase(&mut self, before: &Set, after: &Set) -> &'static str {
        let now = self.installed_set();
        if now == *after {
            "after switch"
        } else if now == *before {
            "before switch"
        } else {
            self.violation(format!(
                "the installed set is {now:?}: neither {before:?} nor {after:?}"
            ));
            "torn"
        }
    }

    fn expect_set(&self, want: &Set) -> Result<(), String> {
        match self.installed_set() {
            s if s == *want => Ok(()),
            s => Err(format!("the installed set is {s:?}, expected {want:?}")),
        }
    }
}

/// The statements of `published/keys.json` (none when there is no such file).
fn statements(repo: &Path) -> Vec<Value> {
    let log: Option<Value> = fs::read(repo.join("published/keys.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    log.and_then(|l| l["statements"].as_array().cloned())
        .unwrap_or_default()
}

/// The (old, new) keys of a rotation statement.
fn rotation(statement: &Value) -> Option<(String, String)> {
    let text = statement["statement"].as_str()?;
    let s: Value = serde_json::from_str(text).ok()?;
    if s["type"] != "rotation" {
        return None;
    }
    Some((
        s["old"].as_str()?.to_string(),
        s["new"].as_str()?.to_string(),
    ))
}

/// `after` is `before` plus rotations that chain from `old`: the keys they rotate to, in order.
fn added_rotations(before: &[Value], after: &[Value], old: &str) -> Result<Vec<String>, String> {
    if after.get(..before.len()) != Some(before) {
        return Err("keys.json lost or changed earlier statements".into());
    }
    let mut key = old.to_string();
    let mut keys = Vec::new();
    for s in &after[before.len()..] {
        match rotation(s) {
            Some((from, to)) if from == key => {
                keys.push(to.clone());
                key = to;
            }
            other => {
                return Err(format!(
                    "keys.json gained {other:?}, not a rotation from {key}"
                ))
            }
        }
    }
    Ok(keys)
}

impl Campaign<'_> {
    /// `dist key rotate` killed: `keys.json` is the one before or it plus the rotation from
    /// the current key, and `LATEST` is signed by the old key or the new one. Unless the new
    /// key already signs `LATEST`, the next command is `key rotate` again; then the client's
    /// `sync` must follow to the key `key show` prints.
    pub(super) fn rotate_round(&mut self) -> Result<()> {
        let old = self.keys[0].clone();
        let (before, serial) = (statements(&self.repo), self.latest());
        let (hit, delay) = self.kill_dist(Kind::Rotate, &self.repo.clone(), &["key", "rotate"])?;
        let added = added_rotations(&before, &statements(&self.repo), &old);
        let mut accepted = vec![old.clone()];
        accepted.extend(added.clone().unwrap_or_default());
        let done = self.latest() != serial
            && self.latest().is_some_and(|s| {
                accepted[1..]
                    .iter()
                    .any(|k| check::signed_by(&self.repo, s, k))
            });
        let phase = match added.as_ref().map(Vec::len) {
            Ok(0) => "before the statement",
            _ if done => "published",
            _ => "statement, before the serial",
        };
        self.record(Kind::Rotate, hit, delay, phase);
        match &added {
            Ok(keys) if keys.len() <= 1 => {}
            Ok(keys) => self.violation(format!("one rotation added {} statements", keys.len())),
            Err(e) => self.violation(format!("after the kill: {e}")),
        }
        for b in self.checks(&accepted) {
            self.violation(format!("after the kill: {b}"));
        }
        if !done && !self.rerun(&self.repo.clone(), &["key", "rotate"]) {
            return Ok(());
        }
        let new = self.rotated()?;
        self.check_rotation(&before, &old, &new);
        self.check("after the next command");
        Ok(())
    }

    /// After a rotation finished: `keys.json` chains from `old` to `new` (a second rotation is
    /// a finding: the rerun rotated again instead of finishing), `LATEST` is signed by `new`,
    /// and the client's `sync` follows to it.
    fn check_rotation(&mut self, before: &[Value], old: &str, new: &str) {
        match added_rotations(before, &statements(&self.repo), old) {
            Ok(keys) if keys.last().map(String::as_str) == Some(new) => {
                if keys.len() > 1 {
                    self.finding(format!(
                        "the rerun rotated again ({} rotations)",
                        keys.len()
                    ));
                }
            }
            other => self.violation(format!("keys.json after the rotation to {new}: {other:?}")),
        }
        let signed = self
            .latest()
            .is_some_and(|s| check::signed_by(&self.repo, s, new));
        if !signed {
            self.violation(format!(
                "LATEST is not signed by the key `key show` prints ({new})"
            ));
        }
        // The origin serves the serial its watcher has taken up: until then a client syncs the
        // one before the rotation, signed by the old key.
        if let Some(server) = self.server.as_mut() {
            if let Err(e) = server.wait_healthy(self.env, HEALTH_LIMIT) {
                self.violation(format!("the origin after the rotation: {e:#}"));
            }
        }
        let synced = c::ok(self.env, &self.client.clone(), &["sync", "--json"]);
        let shown = c::ok(self.env, &self.repo.clone(), &["key", "show", "--json"]);
        let id = |r: &Result<String>, k: &str| -> Option<String> {
            let v: Value = serde_json::from_str(r.as_ref().ok()?).ok()?;
            v[k].as_str().map(str::to_string)
        };
        let (trusted, want) = (id(&synced, "key"), id(&shown, "key_id"));
        if trusted.is_none() || trusted != want {
            self.violation(format!(
                "the client's sync after the rotation trusts {trusted:?}, the repository's key is {want:?} ({:?})",
                synced.err().map(|e| format!("{e:#}"))
            ));
        }
    }
}

impl Campaign<'_> {
    /// `dist serve --mirror-of` the origin, from the mirror's root and addresses, following
    /// every second; not yet waited for.
    fn spawn_mirror(&mut self) -> Result<Server> {
        self.mirrors += 1;
        let log = self.env.tmp.join(format!("mirror-{}.log", self.mirrors));
        let mut cmd = self.env.ns.command(&self.env.dist);
        cmd.arg("--root")
            .arg(self.mirror_root())
            .args(["serve", "--mirror-of", &format!("http://{HTTP}")])
            .args(["--public-key", &self.all_keys[0], "--mirror-interval", "1"])
            .args(["--http", MIRROR_HTTP, "--tracker", MIRROR_TRACKER])
            .args(["--bind", MIRROR_IP]);
        Server::start(cmd, &log).context("cannot start the mirror")
    }

    /// Starts the mirror and waits until it is healthy and holds the origin's serial.
    fn start_mirror(&mut self) -> Result<()> {
        let m = self.spawn_mirror()?;
        let m = self.mirror.insert(m);
        m.wait_healthy_at(self.env, MIRROR_HTTP, MIRROR_LIMIT)?;
        self.wait_mirror_caught_up()
    }

    /// Waits until the mirror's `LATEST` is the origin's.
    fn wait_mirror_caught_up(&mut self) -> Result<()> {
        let t = Instant::now();
        loop {
            let (m, o) = (check::latest(&self.mirror_root()), self.latest());
            if m == o {
                return Ok(());
            }
            let exited = match self.mirror.as_mut() {
                Some(server) => server.child.try_wait()?,
                None => None,
            };
            if let Some(s) = exited {
                bail!("the mirror exited ({s}) at serial {m:?}");
            }
            if t.elapsed() > MIRROR_LIMIT {
                bail!("the mirror is at serial {m:?}, the origin at {o:?}, after {MIRROR_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The mirror killed while it copies: a new package published (following), or a fresh
    /// root (its first copy, every object). Its serial is then one it had or the origin's,
    /// its published state whole; restarted, it must be healthy, catch up, and the killed
    /// one's tracker and seeder must be gone.
    pub(super) fn mirror_round(&mut self, fresh: bool) -> Result<()> {
        let kind = if fresh {
            Kind::MirrorFresh
        } else {
            Kind::MirrorFollow
        };
        if fresh {
            if let Some(m) = self.mirror.take() {
                m.stop()?;
            }
            fs::remove_dir_all(self.mirror_root())?;
            let m = self.spawn_mirror()?;
            self.mirror = Some(m);
        } else {
            // From a mirror that holds the origin's serial: one that lags behind an earlier
            // publish (a rotation's) may stop at that serial, which is whole but neither.
            self.wait_mirror_caught_up()?;
            let (_, dir) = self.new_package("mirrored")?;
            c::ok(self.env, &self.repo, &["add", &disp(&dir)])?;
        }
        let (target, before) = (self.latest(), check::latest(&self.mirror_root()));
        let delay = self.delay(kind);
        let mut m = self.mirror.take().context("no mirror to kill")?;
        let started = if fresh { m.started } else { Instant::now() };
        let hit = c::kill_at(&mut m.child, started, delay)?;
        let now = check::latest(&self.mirror_root());
        let (hit, phase) = match now {
            _ if now == target && hit == Hit::Landed => (Hit::Finished, "caught up"),
            _ if now == before => (hit, "copying"),
            _ => (hit, "torn"),
        };
        self.record(kind, hit, delay, phase);
        if phase == "torn" {
            self.violation(format!(
                "the mirror is at serial {now:?}: neither {before:?} nor the origin's {target:?}"
            ));
        }
        self.check("after the kill");
        self.restart_mirror()
    }

    fn restart_mirror(&mut self) -> Result<()> {
        if let Err(e) = self.start_mirror() {
            self.violation(format!("the restarted mirror: {e:#}"));
            return Ok(());
        }
        let needle = format!("{}/serve/", disp(&self.mirror_root()));
        let keep = self.mirror.as_ref().map(Server::pid);
        let strays: Vec<(u32, String)> = c::processes_with(self.env, &needle)
            .into_iter()
            .filter(|(pid, _)| c::ppid(*pid) != keep)
            .collect();
        for (pid, _) in &strays {
            c::terminate(*pid);
        }
        if !strays.is_empty() {
            self.violation(format!(
                "the killed mirror's children still ran beside the new ones: {strays:?}"
            ));
        }
        self.check("after the restart");
        Ok(())
    }
}
