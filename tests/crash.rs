//! Crash safety and client maintenance against a real `dist serve` in a test-made namespace:
//! SIGKILL at random points of install, upgrade, uninstall, rollback and gc must leave `current`
//! on a whole generation, no half-made store path, and the next command working; two clients
//! racing on one root must not corrupt it; gc, verify, search and pack --check do their jobs.

mod common;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/server.rs"]
mod server;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use netns::Netns;
use server::{Server, HTTP};

/// A repository with these fixtures served in a fresh namespace, and a synced client root.
fn setup(fixtures: &[&str]) -> (tempfile::TempDir, Netns, Server, PathBuf) {
    let paths: Vec<PathBuf> = fixtures.iter().map(|f| fixture(f)).collect();
    setup_with(tempfile::tempdir().unwrap(), &paths)
}

/// The same with package directories of the caller's, in `tmp`.
fn setup_with(
    tmp: tempfile::TempDir,
    packages: &[PathBuf],
) -> (tempfile::TempDir, Netns, Server, PathBuf) {
    let repo = tmp.path().join("repo");
    repo_init(&repo);
    let mut add = dist();
    add.arg("--root").arg(&repo).arg("add").args(packages);
    run_ok(&mut add);
    let key = repo_key(&repo);
    let ns = Netns::new(&["10.77.0.1", "10.77.0.2"]).expect("network namespace");
    let server = Server::start(&ns, &repo, tmp.path().join("serve.log"));
    let root = client_root(&tmp.path().join("client"), &key);
    ok(&ns, &root, &["sync"]);
    (tmp, ns, server, root)
}

fn client_root(dir: &Path, key: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("client.yaml"),
        format!("server_url: http://{HTTP}\npublic_key: {key}\nbind_address: 10.77.0.2\ntransport: http\n"),
    )
    .unwrap();
    dir.to_path_buf()
}

fn run(ns: &Netns, root: &Path, args: &[&str]) -> Output {
    ns.command(dist_bin())
        .arg("--root")
        .arg(root)
        .arg("--quiet")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(ns: &Netns, root: &Path, args: &[&str]) -> Output {
    let o = run(ns, root, args);
    assert!(
        o.status.success(),
        "dist {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The invariants after any kill: `current` (if any) names a generation whose
/// `generation.json` exists and whose every store path exists with its install record; every
/// store path visible under its final name is complete (matches its record).
fn check_invariants(root: &Path) -> Result<(), String> {
    if let Ok(target) = fs::read_link(root.join("current")) {
        let gen = root.join(&target);
        let meta = fs::read(gen.join("generation.json")).map_err(|e| {
            format!(
                "current -> {} has no generation.json: {e}",
                target.display()
            )
        })?;
        let g: serde_json::Value =
            serde_json::from_slice(&meta).map_err(|e| format!("generation.json: {e}"))?;
        for (name, p) in g["packages"].as_object().unwrap() {
            let sp = PathBuf::from(p["store_path"].as_str().unwrap());
            if !sp.join("manifest.yaml").is_file() {
                return Err(format!(
                    "current generation needs {name} at {}, which is incomplete",
                    sp.display()
                ));
            }
            if !gen.join(name).exists() {
                return Err(format!("current generation lacks its link {name}"));
            }
        }
    }
    for e in fs::read_dir(root.join("store"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".record.json") {
            continue;
        }
        let mut rec = e.path().into_os_string();
        rec.push(".record.json");
        let recorded: Vec<dist::store::tree::TreeEntry> = serde_json::from_slice(
            &fs::read(&rec).map_err(|_| format!("store path {name} has no record"))?,
        )
        .unwrap();
        let actual = dist::store::tree::tree_record(&e.path()).map_err(|e| e.to_string())?;
        let diff = dist::store::tree::diff_tree(&recorded, &actual);
        if !diff.is_empty() {
            return Err(format!("store path {name} is half-made: {diff:?}"));
        }
    }
    Ok(())
}

/// Kills `dist <args>` with SIGKILL after `delay`; returns whether it had already finished.
fn kill_after(ns: &Netns, root: &Path, args: &[&str], delay: Duration) -> bool {
    let mut child: Child = ns
        .command(dist_bin())
        .arg("--root")
        .arg(root)
        .arg("--quiet")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while start.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

#[test]
fn kill_9_anywhere_leaves_a_whole_generation_and_a_working_root() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let iterations: usize = std::env::var("DIST_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let (_tmp, ns, _server, root) = setup(&["hello-1.0.0", "hello-1.1.0", "nested-0.3.0+build.7"]);

    let steps: [&[&str]; 6] = [
        &["install", "hello@1.0.0", "nested"],
        &["install", "hello@1.1.0"],
        &["rollback"],
        &["uninstall", "nested"],
        &["gc", "--keep", "1"],
        &["install", "hello@1.0.0"],
    ];
    let mut kills = 0;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..iterations {
        for step in steps {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let delay = Duration::from_micros(500 + seed % 30_000);
            if !kill_after(&ns, &root, step, delay) {
                kills += 1;
            }
            if let Err(e) = check_invariants(&root) {
                panic!("after killing `dist {step:?}` at {delay:?} (iteration {i}): {e}");
            }
            // The next command works (it cleans leftovers first) and restores a known state.
            let o = run(&ns, &root, step);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success()
                    || err.contains("nothing to roll back")
                    || err.contains("not installed"),
                "dist {step:?} after a kill failed: {err}"
            );
            check_invariants(&root).unwrap();
            let leftovers: Vec<String> = ["store", "generations", "."]
                .iter()
                .flat_map(|d| fs::read_dir(root.join(d)).into_iter().flatten().flatten())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tmp-") || n.starts_with(".trash-"))
                .collect();
            assert!(
                leftovers.is_empty(),
                "leftovers after a completed command: {leftovers:?}"
            );
        }
    }
    eprintln!(
        "crash test: {} commands killed, 0 invariant violations",
        kills
    );
    assert!(
        kills > 0,
        "no command was killed mid-way: the delays are too long"
    );
    ok(&ns, &root, &["verify"]);
    ok(&ns, &root, &["daemon", "stop"]);
}

#[test]
fn racing_clients_gc_verify_search_and_pack_check() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let (tmp, ns, _server, root) = setup(&[
        "hello-1.0.0",
        "hello-1.1.0",
        "hello-2.0.0-rc.1",
        "nested-0.3.0+build.7",
        "The-Package-Name-1.2.3",
    ]);

    let installed = step(
        "Two clients racing on one root: both finish, one after the other, and the root is whole",
        || {
            let spawn = |args: &[&str]| {
                ns.command(dist_bin())
                    .arg("--root")
                    .arg(&root)
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            };
            let a = spawn(&["install", "hello@1.0.0"]);
            let b = spawn(&["install", "nested"]);
            let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
            assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
            assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
            check_invariants(&root).unwrap();
            let installed = stdout_json(&ok(&ns, &root, &["list", "--installed", "--json"]));
            assert_eq!(installed.as_array().unwrap().len(), 2, "{installed}");
            installed
        },
    );
    step(
        "A held lock makes the next command wait, say so, and time out",
        || {
            let holder = Command::new("flock")
                .arg(root.join("lock"))
                .args(["sleep", "5"])
                .spawn();
            if let Ok(mut h) = holder {
                // Held once a non-blocking attempt of another process fails.
                wait_until("flock to take the lock", Duration::from_secs(30), || {
                    let o = Command::new("flock")
                        .args(["-n", "-E", "99"])
                        .arg(root.join("lock"))
                        .arg("true")
                        .status()
                        .unwrap();
                    (o.code() == Some(99))
                        .then_some(())
                        .ok_or_else(|| format!("a second flock got it: {o}"))
                });
                let o = run(&ns, &root, &["--lock-timeout", "1", "uninstall", "nested"]);
                let o2 = ns
                    .command(dist_bin())
                    .arg("--root")
                    .arg(&root)
                    .args(["--lock-timeout", "1", "uninstall", "nested"])
                    .output()
                    .unwrap();
                let _ = h.kill();
                let _ = h.wait();
                assert!(!o.status.success());
                let err = String::from_utf8_lossy(&o2.stderr);
                assert!(
                    err.contains("waiting for the lock") && err.contains("timed out"),
                    "{err}"
                );
            }
        },
    );
    step("search: name and description, newest first", || {
        let hits = stdout_json(&ok(&ns, &root, &["search", "hello", "--json"]));
        let versions: Vec<&str> = hits
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["2.0.0-rc.1", "1.1.0", "1.0.0"]);
        let hits = stdout_json(&ok(&ns, &root, &["search", "SYMLINKS", "--json"]));
        assert_eq!(hits[0]["name"], "nested");
        assert_eq!(
            stdout_json(&ok(&ns, &root, &["search", "zzz-none", "--json"]))
                .as_array()
                .unwrap()
                .len(),
            0
        );
    });
    step(
        "pack --check: the fixture rebuilds bit for bit; a changed tree does not",
        || {
            let o = ok(
                &ns,
                &root,
                &["pack", fixture("hello-1.1.0").to_str().unwrap(), "--check"],
            );
            assert!(String::from_utf8_lossy(&o.stdout).contains("reproducible"));
            let changed = tmp.path().join("changed");
            copy_tree(&fixture("hello-1.1.0"), &changed);
            fs::write(changed.join("assets/README"), "tampered\n").unwrap();
            let o = run(&ns, &root, &["pack", changed.to_str().unwrap(), "--check"]);
            assert!(!o.status.success());
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("not reproducible") && err.matches("blake3").count() >= 2,
                "{err}"
            );
            let unknown = tmp.path().join("unknown");
            copy_tree(&fixture("hello-1.1.0"), &unknown);
            fs::write(
                unknown.join("manifest.yaml"),
                "name: hello\nversion: 9.9.9\n",
            )
            .unwrap();
            let err = String::from_utf8_lossy(
                &run(&ns, &root, &["pack", unknown.to_str().unwrap(), "--check"]).stderr,
            )
            .into_owned();
            assert!(err.contains("has no hello@9.9.9"), "{err}");
        },
    );
    step(
        "verify: clean, then a changed file, a removed file and a chmod are reported",
        || {
            ok(&ns, &root, &["verify"]);
            let store = PathBuf::from(
                installed
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == "nested")
                    .unwrap()["store_path"]
                    .as_str()
                    .unwrap(),
            );
            let mk_writable = |p: &Path| {
                use std::os::unix::fs::PermissionsExt;
                let m = fs::metadata(p).unwrap().permissions().mode();
                fs::set_permissions(p, fs::Permissions::from_mode(m | 0o200)).unwrap();
            };
            mk_writable(&store.join("assets/lib"));
            mk_writable(&store.join("assets/lib/libnested.so.1"));
            fs::write(store.join("assets/lib/libnested.so.1"), "evil").unwrap();
            mk_writable(&store.join("assets/empty-dir"));
            fs::remove_file(store.join("assets/empty-dir/.keep")).unwrap();
            let o = run(&ns, &root, &["verify", "--json"]);
            assert!(
                !o.status.success(),
                "verify must fail on a changed store path"
            );
            let v = stdout_json(&o);
            let nested = v
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "nested")
                .unwrap();
            let diffs: Vec<&str> = nested["differences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap())
                .collect();
            assert!(
                diffs
                    .iter()
                    .any(|d| d.contains("libnested.so.1: content changed")),
                "{diffs:?}"
            );
            assert!(
                diffs.iter().any(|d| d.contains("empty-dir/.keep: missing")),
                "{diffs:?}"
            );
        },
    );
    step(
        "gc: old generations go, then what nothing references; the current one stays whole",
        || {
            ok(&ns, &root, &["install", "hello@1.1.0"]);
            ok(&ns, &root, &["uninstall", "nested"]);
            let gens_before = stdout_json(&ok(&ns, &root, &["generations", "--json"]))
                .as_array()
                .unwrap()
                .len();
            assert!(gens_before >= 4);
            let r = stdout_json(&ok(&ns, &root, &["gc", "--keep", "1", "--json"]));
            assert_eq!(
                r["generations_removed"].as_array().unwrap().len(),
                gens_before - 1
            );
            assert!(
                r["store_paths_removed"].as_array().unwrap().len() >= 2,
                "{r}"
            );
            assert!(r["bytes_freed"].as_u64().unwrap() > 0);
            let gens = stdout_json(&ok(&ns, &root, &["generations", "--json"]));
            assert_eq!(gens.as_array().unwrap().len(), 1);
            assert_eq!(gens[0]["current"], true);
            check_invariants(&root).unwrap();
            ok(&ns, &root, &["verify"]);
            let o = Command::new(root.join("current/bin/hello"))
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&o.stdout).trim(),
                "HELLO, WORLD 1.1.0"
            );
            ok(&ns, &root, &["daemon", "stop"]);
        },
    );
}

/// A package `big` 1.0.0 of `mib` MiB of pseudo-random bytes.
fn big_package(dir: &Path, mib: usize) -> PathBuf {
    write_package(
        &dir.join("big"),
        "big",
        "1.0.0",
        "",
        ("data.bin", &noise(0x9E37_79B9_7F4A_7C15, mib << 20)),
        "#!/bin/sh\n",
    )
}

fn pid_in(state: &Path, key: &str) -> u32 {
    let v: serde_json::Value = serde_json::from_slice(&fs::read(state).unwrap()).unwrap();
    v[key].as_u64().unwrap() as u32
}

fn gone(pid: u32) -> Result<(), String> {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat)
            if !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z') =>
        {
            Err(format!("pid {pid} still runs"))
        }
        _ => Ok(()),
    }
}

#[test]
fn a_server_killed_with_sigkill_starts_again_and_stops_what_it_left_kill_campaign() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let (tmp, ns, server, root) = setup(&["hello-1.0.0"]);
    let repo = tmp.path().join("repo");
    let state = repo.join("serve/state.json");
    let (tracker, seeder) = (pid_in(&state, "tracker_pid"), pid_in(&state, "seeder_pid"));
    // SIGKILL leaves the tracker and the seeder running; the next start found the tracker port
    // taken ("tracker port 10.77.0.1:6969 is already in use") and never became healthy.
    run_ok(Command::new("kill").args(["-KILL", &server.pid().to_string()]));
    let again = Server::start(&ns, &repo, tmp.path().join("serve2.log"));
    wait_until(
        "the killed server's tracker to go",
        Duration::from_secs(10),
        || gone(tracker),
    );
    wait_until(
        "the killed server's seeder to go",
        Duration::from_secs(10),
        || gone(seeder),
    );
    assert!(
        again
            .log()
            .contains("left running by a dist serve that was killed"),
        "{}",
        again.log()
    );
    // While it runs, no second server takes the same root (it would stop this one's children).
    let o = ns
        .command(dist_bin())
        .arg("--root")
        .arg(&repo)
        .args([
            "serve",
            "--http",
            "10.77.0.1:7381",
            "--tracker",
            "10.77.0.1:6970",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("another dist serve runs"),
        "{err}"
    );
    ok(&ns, &root, &["install", "hello"]);
    ok(&ns, &root, &["daemon", "stop"]);
    drop(server);
}

#[test]
fn a_client_daemon_killed_before_its_resume_file_is_replaced_and_install_succeeds_kill_campaign() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let big = big_package(&tmp.path().join("pkgs"), 4);
    let (_tmp, ns, _server, root) = setup_with(tmp, &[big]);
    let install = [
        "install",
        "big",
        "--transport",
        "torrent",
        "--engine",
        "transmission",
    ];
    let mut first = ns
        .command(dist_bin())
        .arg("--root")
        .arg(&root)
        .arg("--quiet")
        .args(install)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // transmission writes the .torrent at once, the resume file (with the torrent's download
    // directory) minutes later: a daemon killed in between reloads the torrent into downloads/.
    let config = root.join("daemon/config");
    wait_until(
        "the torrent in the client daemon",
        Duration::from_secs(30),
        || match fs::read_dir(config.join("torrents")).map(|d| d.count()) {
            Ok(n) if n > 0 => Ok(()),
            n => Err(format!("{n:?}")),
        },
    );
    let daemon = pid_in(&root.join("daemon/state.json"), "pid");
    run_ok(Command::new("kill").args(["-KILL", &daemon.to_string()]));
    let _ = first.wait();
    let resumes = fs::read_dir(config.join("resume"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        resumes, 0,
        "the daemon saved its resume file before the kill"
    );
    // Before the fix: "the downloaded object failed verification" (the killed daemon's .part).
    ok(&ns, &root, &install);
    ok(&ns, &root, &["verify"]);
    let strays: Vec<String> = fs::read_dir(root.join("downloads"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() != 40)
        .collect();
    assert!(
        strays.is_empty(),
        "downloaded beside downloads/<infohash>/: {strays:?}"
    );

    // gc killed between removing a store path and its record left the record for good.
    let installed = stdout_json(&ok(&ns, &root, &["list", "--installed", "--json"]));
    let store = PathBuf::from(installed[0]["store_path"].as_str().unwrap());
    ok(&ns, &root, &["uninstall", "big"]);
    run_ok(Command::new("chmod").arg("-R").arg("u+w").arg(&store));
    fs::remove_dir_all(&store).unwrap();
    ok(&ns, &root, &["gc", "--keep", "1"]);
    let records: Vec<String> = fs::read_dir(root.join("store"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(records.is_empty(), "gc left {records:?}");
    ok(&ns, &root, &["daemon", "stop"]);
}
