//! `cargo xtask campaign kill [N] [--seed S]`: at least N (default 200) SIGKILLs against a real
//! `dist serve` and a real client in a private network namespace, the origin capped with `tc`
//! so that fetches of the two 32 MiB versions of `big` last seconds. Each cycle kills `dist add`
//! (a new package), an install of `big@1.0.0` over HTTP or BitTorrent (or, every fourth cycle,
//! the client's transmission-daemon during that install: the client's `engine` is
//! `transmission`), the upgrade to `big@2.0.0` over the other transport (the `upgrade` verb),
//! `rollback`, `repair` of big's corrupted store path, `apply` of a set that adds `app` and its
//! dependency `lib`, `autoremove` of `lib` once `app` is uninstalled, `uninstall [--purge]
//! big`, `gc --keep 1`, `dist serve` (starting, or following a publish), `dist key rotate`, and
//! a mirror (`dist serve --mirror-of`) while it copies a publish or, every fourth cycle, makes
//! its first copy (`campaign_kill/verbs.rs`, issue 25); every fourth cycle installs with the
//! libtorrent engine (killed mid-download), and another kills the root's libtorrent seeder
//! while it seeds. big has a configuration file and keeps state (issue 21). Delays are random
//! (printed seed) over the operation's calibrated length. After each kill the invariants of
//! `campaign_kill/check.rs` are checked, the state must be the one before or after the
//! operation, the killed command (or its idempotent form) is run again and must succeed with
//! the expected result, and a killed server or mirror must restart and reach `/health` 200.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::lab::args::Usage;
use crate::lab::campaign::{self as c, Hit, Rng};
use crate::lab::env::{in_namespace, Env};
use crate::lab::packages::Package;
use crate::lab::server::Server;

mod check;
mod rounds;
mod verbs;

const USAGE: Usage = Usage {
    line: "usage: cargo xtask campaign kill [N] [--seed S]",
    values: &["--seed"],
    switches: &[],
    positionals: 1,
};
const BIG_MIB: u64 = 32;
const CAP_MBIT: u32 = 64;
/// How long a command run to completion after a kill may take.
const LIMIT: Duration = Duration::from_secs(300);
pub(crate) const HEALTH_LIMIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Add,
    ServeStart,
    ServeFollow,
    InstallHttp,
    InstallTorrent,
    InstallLibtorrent,
    Upgrade,
    Rollback,
    Uninstall,
    Purge,
    Gc,
    Daemon,
    Seeder,
    Repair,
    Apply,
    Autoremove,
    Rotate,
    MirrorFollow,
    MirrorFresh,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Add => "add",
            Kind::ServeStart => "serve (start)",
            Kind::ServeFollow => "serve (follow)",
            Kind::InstallHttp => "install http",
            Kind::InstallTorrent => "install torrent",
            Kind::InstallLibtorrent => "install libtorrent",
            Kind::Upgrade => "upgrade",
            Kind::Rollback => "rollback",
            Kind::Uninstall => "uninstall",
            Kind::Purge => "uninstall --purge",
            Kind::Gc => "gc",
            Kind::Daemon => "client daemon",
            Kind::Seeder => "libtorrent seeder",
            Kind::Repair => "repair",
            Kind::Apply => "apply",
            Kind::Autoremove => "autoremove",
            Kind::Rotate => "key rotate",
            Kind::MirrorFollow => "mirror (follow)",
            Kind::MirrorFresh => "mirror (1st copy)",
        }
    }
}

/// What the kills of one kind did.
#[derive(Default)]
struct Tally {
    sent: usize,
    landed: usize,
    before_exec: usize,
    finished: usize,
    phases: BTreeMap<&'static str, usize>,
    delays: Vec<Duration>,
}

struct Campaign<'a> {
    env: &'a Env,
    rng: Rng,
    repo: PathBuf,
    client: PathBuf,
    pkgs: PathBuf,
    server: Option<Server>,
    /// Calibrated length of each operation: kill delays are drawn over it.
    est: BTreeMap<Kind, Duration>,
    tally: BTreeMap<Kind, Tally>,
    violations: Vec<String>,
    findings: Vec<String>,
    /// BLAKE3 of big 1.0.0 and 2.0.0.
    b3: BTreeMap<&'static str, String>,
    /// Which kill this is, and what it was, for messages.
    context: String,
    serves: usize,
    adds: usize,
    began: Instant,
    /// The keys the repository's `LATEST` may be signed with: its current one (and, in a
    /// rotation round, the one before it).
    keys: Vec<String>,
    /// Every key the repository had, oldest first: a mirror's copy may lag behind a rotation.
    all_keys: Vec<String>,
    mirror: Option<Server>,
    mirrors: usize,
}

pub fn run(args: &[&str]) -> Result<()> {
    let a = USAGE.parse(args)?;
    let (n, seed) = (a.positional(0, "N")?.unwrap_or(200), a.value("--seed")?);
    let (rng, seed) = Rng::new(seed);
    println!("kill campaign: {n} kills, seed {seed} (again: cargo xtask campaign kill {n} --seed {seed})");
    let t = Instant::now();
    in_namespace("campaign-kill", |env| {
        let mut k = Campaign::setup(env, rng)?;
        let result = k.campaign(n);
        let stopped = k.shutdown();
        k.report(t.elapsed());
        result?;
        stopped?;
        if !k.violations.is_empty() {
            bail!("{} invariant violations", k.violations.len());
        }
        Ok(())
    })
}

impl<'a> Campaign<'a> {
    fn setup(env: &'a Env, rng: Rng) -> Result<Campaign<'a>> {
        let began = Instant::now();
        let pkgs = env.tmp.join("pkgs");
        let big1 = big("1.0.0", 1).write_in(&pkgs)?;
        let big2 = big("2.0.0", 2).write_in(&pkgs)?;
        let repo = env.tmp.join("repo");
        let (lib, app) = verbs::lib_and_app(&pkgs)?;
        let added = c::ok(
            env,
            &repo,
            &[
                "add",
                "--create",
                "--json",
                &disp(&big1),
                &disp(&big2),
                &disp(&lib),
                &disp(&app),
            ],
        )?;
        let added: Vec<Value> = serde_json::from_str(&added)?;
        let mut b3 = BTreeMap::new();
        verbs::write_set(&env.tmp.join("set-a"), &added)?;
        for (v, a) in ["1.0.0", "2.0.0"].into_iter().zip(&added) {
            b3.insert(v, a["blake3"].as_str().context("add --json")?.to_string());
        }
        let key = c::ok(env, &repo, &["key", "show"])?.trim().to_string();
        c::shape_origin(env, CAP_MBIT)?;
        let client = env.tmp.join("client");
        c::client_root(&client, &key, c::CLIENT_IP, &[])?;
        // The rounds that kill transmission-daemon need it as the engine (the default is
        // libtorrent); the libtorrent rounds ask for theirs with `--engine`.
        let yaml = fs::read_to_string(client.join("client.yaml"))?;
        fs::write(client.join("client.yaml"), yaml + "engine: transmission\n")?;
        let mut k = Campaign {
            env,
            rng,
            repo,
            client,
            pkgs,
            server: None,
            est: BTreeMap::new(),
            tally: BTreeMap::new(),
            violations: Vec::new(),
            findings: Vec::new(),
            b3,
            context: String::new(),
            serves: 0,
            adds: 0,
            began,
            keys: vec![key.clone()],
            all_keys: vec![key],
            mirror: None,
            mirrors: 0,
        };
        let t = k.start_server()?;
        k.est.insert(Kind::ServeStart, t);
        c::ok(env, &k.client, &["sync"])?;
        k.calibrate()?;
        Ok(k)
    }

    /// One cycle without kills, timing each operation.
    fn calibrate(&mut self) -> Result<()> {
        let (_, dir) = self.new_package("pkg")?;
        let t = Instant::now();
        c::ok(self.env, &self.repo, &["add", &disp(&dir)])?;
        self.est.insert(Kind::Add, t.elapsed());
        let t = Instant::now();
        let env = self.env;
        self.server_mut()?.wait_healthy(env, HEALTH_LIMIT)?;
        self.est.insert(Kind::ServeFollow, t.elapsed());
        let steps: [(Kind, &[&str]); 7] = [
            (
                Kind::InstallHttp,
                &["install", "big@1.0.0", "--transport", "http"],
            ),
            (
                Kind::InstallTorrent,
                &["install", "big@2.0.0", "--transport", "torrent"],
            ),
            (Kind::Rollback, &["rollback"]),
            (Kind::Uninstall, &["uninstall", "big"]),
            (
                Kind::InstallHttp,
                &["install", "big@1.0.0", "--transport", "http"],
            ),
            (Kind::Purge, &["uninstall", "--purge", "big"]),
            (Kind::Gc, &["gc", "--keep", "1"]),
        ];
        for (kind, args) in steps {
            let t = Instant::now();
            c::ok(self.env, &self.client, args)?;
            // The first run of a kind is the one that does the work (a second install of
            // big@1.0.0 finds its store path).
            self.est.entry(kind).or_insert(t.elapsed());
        }
        let torrent = self.est[&Kind::InstallTorrent];
        self.est.insert(Kind::Daemon, torrent);
        // A seeder is killed at any moment of its first few seconds of seeding.
        self.est.insert(Kind::Seeder, Duration::from_secs(3));
        self.calibrate_verbs()?;
        let shown: Vec<String> = self
            .est
            .iter()
            .map(|(k, d)| format!("{} {}", k.name(), c::secs(*d)))
            .collect();
        let at = c::secs(self.began.elapsed());
        println!(
            "calibration (one unkilled cycle, done at {at}): {}",
            shown.join(", ")
        );
        let bad = self.checks(&self.keys.clone());
        if !bad.is_empty() {
            bail!("the invariants fail before any kill: {bad:?}");
        }
        Ok(())
    }

    fn campaign(&mut self, n: usize) -> Result<()> {
        let mut cycle = 0usize;
        while self.sent() < n {
            let torrent_first = cycle % 2 == 1;
            let (t1, t2) = if torrent_first {
                ("torrent", "http")
            } else {
                ("http", "torrent")
            };
            for step in 0..12 {
                if self.sent() >= n {
                    break;
                }
                match step {
                    0 => self.add_round()?,
                    1 if cycle % 4 == 1 => self.daemon_round()?,
                    1 if cycle % 4 == 3 => self.seeder_round()?,
                    1 if cycle % 4 == 2 => {
                        self.install_round(Kind::InstallLibtorrent, "1.0.0", "libtorrent")?
                    }
                    1 => {
                        let kind = if torrent_first {
                            Kind::InstallTorrent
                        } else {
                            Kind::InstallHttp
                        };
                        self.install_round(kind, "1.0.0", t1)?
                    }
                    2 => self.upgrade_round(t2)?,
                    3 => self.rollback_round()?,
                    4 => self.repair_round()?,
                    5 => self.apply_round()?,
                    6 => self.autoremove_round()?,
                    7 => self.uninstall_round(cycle % 2 == 1)?,
                    8 => self.gc_round()?,
                    9 if cycle.is_multiple_of(2) => self.serve_round(Kind::ServeStart)?,
                    9 => self.serve_round(Kind::ServeFollow)?,
                    10 => self.rotate_round()?,
                    _ => self.mirror_round(cycle % 4 == 3)?,
                }
            }
            cycle += 1;
            let landed: usize = self.tally.values().map(|t| t.landed).sum();
            println!(
                "cycle {cycle} done at {}: {} kills sent, {landed} landed, {} violations",
                c::secs(self.began.elapsed()),
                self.sent(),
                self.violations.len()
            );
        }
        Ok(())
    }

    fn sent(&self) -> usize {
        self.tally.values().map(|t| t.sent).sum()
    }

    /// A kill delay for `kind`: uniform over 0..1.1 × its calibrated length.
    fn delay(&mut self, kind: Kind) -> Duration {
        self.est[&kind].mul_f64(1.1 * self.rng.unit())
    }

    fn record(&mut self, kind: Kind, hit: Hit, delay: Duration, phase: &'static str) {
        let t = self.tally.entry(kind).or_default();
        t.sent += 1;
        t.delays.push(delay);
        match hit {
            Hit::Landed => {
                t.landed += 1;
                *t.phases.entry(phase).or_default() += 1;
            }
            Hit::BeforeExec => t.before_exec += 1,
            Hit::Finished => t.finished += 1,
        }
        self.context = format!(
            "kill #{} ({}, {:?} after start, {hit:?}, phase {phase})",
            self.sent(),
            kind.name(),
            delay
        );
    }

    fn violation(&mut self, what: String) {
        let v = format!("{}: {what}", self.context);
        println!("VIOLATION {v}");
        self.violations.push(v);
    }

    fn finding(&mut self, what: String) {
        let v = format!("{}: {what}", self.context);
        println!("finding   {v}");
        self.findings.push(v);
    }

    /// Spawns `dist ARGS` in `root` and kills it after a random delay over the length of the
    /// operation `like`.
    fn kill_dist(&mut self, like: Kind, root: &Path, args: &[&str]) -> Result<(Hit, Duration)> {
        let delay = self.delay(like);
        let mut child = c::dist_cmd(self.env, root, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let hit = c::kill_at(&mut child, Instant::now(), delay)?;
        Ok((hit, delay))
    }

    /// The invariants of every root (client, repository signed by one of `keys`, mirror).
    fn checks(&self, keys: &[String]) -> Vec<String> {
        let mut bad = [
            check::client(self.env, &self.client),
            check::state(&self.client, &CONF_TEXTS),
            check::repo(&self.repo, keys),
        ]
        .concat();
        if check::latest(&self.mirror_root()).is_some() {
            // Any key the repository had: the mirror may lag behind a rotation, or have copied
            // the serial of one that is still being checked.
            let mut all = self.all_keys.clone();
            all.extend(keys.iter().cloned());
            let mirror = check::repo(&self.mirror_root(), &all);
            bad.extend(mirror.into_iter().map(|b| format!("mirror: {b}")));
        }
        bad
    }

    /// The invariants of every root, each failure a violation.
    fn check(&mut self, when: &str) {
        for b in self.checks(&self.keys.clone()) {
            self.violation(format!("{when}: {b}"));
        }
    }

    /// Runs `dist ARGS` to completion after a kill: it must succeed, and leave no leftovers.
    fn rerun(&mut self, root: &Path, args: &[&str]) -> bool {
        match c::run_dist(self.env, root, args, LIMIT) {
            Ok(o) if o.status.success() => {
                let left = check::leftovers(root);
                if !left.is_empty() {
                    self.violation(format!(
                        "`dist {}` left leftovers: {left:?}",
                        args.join(" ")
                    ));
                }
                true
            }
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
                self.violation(format!(
                    "the next `dist {}` failed ({}): {err}",
                    args.join(" "),
                    o.status
                ));
                self.retry(root, args);
                false
            }
            Err(e) => {
                self.violation(format!("the next `dist {}`: {e:#}", args.join(" ")));
                self.retry(root, args);
                false
            }
        }
    }

    /// One more run after a failed one, to get the cycle back on track; says how it went.
    fn retry(&mut self, root: &Path, args: &[&str]) {
        let how = match c::run_dist(self.env, root, args, LIMIT) {
            Ok(o) if o.status.success() => "succeeded".to_string(),
            Ok(o) => format!("failed too: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => format!("failed too: {e:#}"),
        };
        println!("          a second `dist {}` {how}", args.join(" "));
    }

    /// Starts a server and waits for `/health` 200; on failure it is stopped again.
    fn start_server(&mut self) -> Result<Duration> {
        self.serves += 1;
        let log = self.env.tmp.join(format!("serve-{}.log", self.serves));
        let mut s = Server::spawn(self.env, &self.repo, &log)?;
        match s.wait_healthy(self.env, HEALTH_LIMIT) {
            Ok(_) => {
                let t = s.started.elapsed();
                self.server = Some(s);
                Ok(t)
            }
            Err(e) => {
                let _ = s.stop();
                Err(e)
            }
        }
    }

    fn server_mut(&mut self) -> Result<&mut Server> {
        self.server.as_mut().context("no server runs")
    }

    /// Graceful stop (SIGTERM) of the running server; it must exit 0.
    fn stop_server(&mut self) -> Result<()> {
        if let Some(s) = self.server.take() {
            let status = s.stop()?;
            if !status.success() {
                self.finding(format!("dist serve exited {status} on SIGTERM"));
            }
        }
        Ok(())
    }

    /// Stops the client daemon and the server; anything still in the namespace is a finding.
    fn shutdown(&mut self) -> Result<()> {
        let daemon = c::ok(self.env, &self.client, &["daemon", "stop"]);
        if let Some(m) = self.mirror.take() {
            if let Ok(s) = m.stop() {
                if !s.success() {
                    self.finding(format!("the mirror exited {s} on SIGTERM"));
                }
            }
        }
        let server = self.stop_server();
        std::thread::sleep(Duration::from_millis(200));
        for pid in self.env.ns.pids() {
            self.context = "at the end".into();
            self.finding(format!("process {pid} still ran: {}", c::cmdline(pid)));
            c::terminate(pid);
        }
        daemon.and(server).map(drop)
    }

    fn report(&self, total: Duration) {
        println!("\n== kill campaign report ==");
        println!(
            "{:<16} {:>5} {:>7} {:>12} {:>9}  {:<24} landed, by phase",
            "kind", "sent", "landed", "before exec", "finished", "delay min/p50/max"
        );
        let mut sum = Tally::default();
        for (kind, t) in &self.tally {
            let d = |p: f64| format!("{:.0}", c::percentile(&t.delays, p).as_secs_f64() * 1000.0);
            let phases: Vec<String> = t.phases.iter().map(|(p, n)| format!("{p} {n}")).collect();
            println!(
                "{:<16} {:>5} {:>7} {:>12} {:>9}  {:<24} {}",
                kind.name(),
                t.sent,
                t.landed,
                t.before_exec,
                t.finished,
                format!("{}/{}/{} ms", d(0.0), d(50.0), d(100.0)),
                phases.join(", ")
            );
            sum.sent += t.sent;
            sum.landed += t.landed;
            sum.before_exec += t.before_exec;
            sum.finished += t.finished;
        }
        println!(
            "{:<16} {:>5} {:>7} {:>12} {:>9}",
            "total", sum.sent, sum.landed, sum.before_exec, sum.finished
        );
        println!("violations: {}", self.violations.len());
        for v in &self.violations {
            println!("  - {v}");
        }
        println!(
            "findings (not invariant violations): {}",
            self.findings.len()
        );
        for f in &self.findings {
            println!("  - {f}");
        }
        let s = total.as_secs();
        println!("total time: {} min {:02} s", s / 60, s % 60);
    }
}

/// big's configuration file, as each version ships it.
const CONF_TEXTS: [&str; 2] = ["version=1.0.0\n", "version=2.0.0\n"];

/// big at `version`: `BIG_MIB` MiB of random content from `seed`, a configuration file, and an
/// install script that keeps state (written by rename), so that kills land in the transition's
/// script and configuration steps too (issue 21).
fn big(version: &str, seed: u64) -> Package {
    Package::new("big", version)
        .random("data.bin", BIG_MIB << 20, seed)
        .config("big.conf", format!("version={version}\n"))
        .install_script(
            "#!/bin/sh\nset -e\necho \"$DIST_VERSION\" > \"$DIST_STATE_DIR/.version.new\"\n\
             mv \"$DIST_STATE_DIR/.version.new\" \"$DIST_STATE_DIR/version\"\n",
        )
}

fn disp(p: &Path) -> String {
    p.display().to_string()
}
