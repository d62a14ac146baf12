//! `dist serve` against the real opentracker, transmission-daemon and HTTP, inside a network
//! namespace this test makes: an independent client (aria2c, and a separate transmission-daemon
//! driven by transmission-remote) downloads by magnet and by .torrent, `minisign` verifies the
//! published index, and the web seed alone completes a download with tracker and seeder gone.

mod common;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/server.rs"]
mod server;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use netns::Netns;
use server::{http_get, Server, HTTP, SERVER_IP};

fn added(root: &Path, dirs: &[PathBuf]) -> serde_json::Value {
    let mut c = dist();
    c.arg("--root")
        .arg(root)
        .args(["add", "--create"])
        .arg("--json")
        .args(dirs);
    stdout_json(&run_ok(&mut c))
}

/// A leecher transmission-daemon inside the namespace, driven by transmission-remote.
struct Leecher {
    dir: PathBuf,
    rpc_port: u16,
    child: Option<Child>,
}

impl Leecher {
    fn start(ns: &Netns, dir: &Path, ip: &str, rpc_port: u16, peer_port: u16) -> Leecher {
        let cfg = dir.join("config");
        let dl = dir.join("downloads");
        fs::create_dir_all(&cfg).unwrap();
        fs::create_dir_all(&dl).unwrap();
        let settings = serde_json::json!({
            "dht-enabled": false, "lpd-enabled": false, "port-forwarding-enabled": false,
            "pex-enabled": true, "peer-port": peer_port, "rpc-port": rpc_port,
            "rpc-bind-address": "127.0.0.1", "rpc-authentication-required": false,
            "rpc-whitelist": "127.0.0.1", "rpc-whitelist-enabled": true,
            "bind-address-ipv4": ip, "download-dir": dl,
            "download-queue-enabled": false, "seed-queue-enabled": false,
            "queue-stalled-enabled": false, "ratio-limit-enabled": false,
            "idle-seeding-limit-enabled": false, "incomplete-dir-enabled": false,
        });
        fs::write(cfg.join("settings.json"), settings.to_string()).unwrap();
        let child = ns
            .command("transmission-daemon")
            .arg("-f")
            .arg("-g")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("daemon.log")).unwrap())
            .spawn()
            .unwrap();
        let l = Leecher {
            dir: dir.to_path_buf(),
            rpc_port,
            child: Some(child),
        };
        wait_until("the leecher's RPC", Duration::from_secs(20), || {
            let o = l.remote(ns, &["-l"]);
            if o.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).into_owned())
            }
        });
        l
    }

    fn remote(&self, ns: &Netns, args: &[&str]) -> std::process::Output {
        ns.command("transmission-remote")
            .arg(format!("127.0.0.1:{}", self.rpc_port))
            .args(args)
            .output()
            .unwrap()
    }

    fn stop(&mut self, ns: &Netns) {
        // Stopped torrents announce `stopped` to the tracker; wait until transmission lists
        // each as stopped (bounded: it is stopped by its pid below either way).
        let _ = self.remote(ns, &["-t", "all", "-S"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let list = String::from_utf8_lossy(&self.remote(ns, &["-l"]).stdout).to_string();
            let rows = list
                .lines()
                .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()));
            if rows.clone().all(|l| l.contains("Stopped")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = wait_until("the leecher to exit", Duration::from_secs(15), || {
                c.try_wait()
                    .map_err(|e| e.to_string())?
                    .ok_or("running".to_string())
            });
        }
    }
}

impl Drop for Leecher {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `file` exists with the expected BLAKE3.
fn wait_for_file(
    file: &Path,
    blake3: &str,
    timeout: Duration,
    what: &str,
    state: impl Fn() -> String,
) {
    wait_until(what, timeout, || match fs::read(file) {
        Ok(b) if blake3::hash(&b).to_string() == blake3 => Ok(()),
        Ok(b) => Err(format!("{} bytes so far; {}", b.len(), state())),
        Err(_) => Err(format!("no file yet; {}", state())),
    });
}

/// Fetches the newest index through HTTP the way a client does: the signed manifest, then
/// the compressed snapshot it names (checked by BLAKE3), decompressed into `idx`. Returns the
/// manifest and signature paths.
fn fetch_index(ns: &Netns, dir: &Path, idx: &Path) -> (PathBuf, PathBuf) {
    let manifest = dir.join("index.json");
    let sig = dir.join("index.json.minisig");
    assert_eq!(
        http_get(ns, &format!("http://{HTTP}/index.json"), Some(&manifest)).0,
        200
    );
    assert_eq!(
        http_get(ns, &format!("http://{HTTP}/index.json.minisig"), Some(&sig)).0,
        200
    );
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    let zst = dir.join("index.db.zst");
    let url = format!("http://{HTTP}/index/{}.db.zst", m["serial"]);
    assert_eq!(http_get(ns, &url, Some(&zst)).0, 200);
    let bytes = fs::read(&zst).unwrap();
    assert_eq!(
        blake3::hash(&bytes).to_hex().as_str(),
        m["snapshot"]["blake3"]
    );
    fs::write(idx, dist::index::wire::decompress(&bytes, 1 << 30).unwrap()).unwrap();
    (manifest, sig)
}

#[test]
fn add_serve_download_by_magnet_torrent_and_web_seed() {
    for t in [
        "opentracker",
        "transmission-daemon",
        "transmission-remote",
        "aria2c",
        "minisign",
        "curl",
    ] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let first = added(&root, &[fixture("hello-1.0.0")]);
    let hello = first[0].clone();

    let ns =
        Netns::new(&[SERVER_IP, "10.77.0.2", "10.77.0.3", "10.77.0.4"]).expect("network namespace");
    let mut server = Server::start(&ns, &root, tmp.path().join("serve.log"));

    let idx = tmp.path().join("index.db");
    let tfile = tmp.path().join("hello-1.0.0.torrent");
    step(
        "The published index verifies with the repository key, through HTTP",
        || {
            let (manifest, sig) = fetch_index(&ns, tmp.path(), &idx);
            let key = String::from_utf8(
                run_ok(dist().arg("--root").arg(&root).args(["key", "show"])).stdout,
            )
            .unwrap();
            run_ok(
                Command::new("minisign")
                    .arg("-V")
                    .arg("-P")
                    .arg(key.trim())
                    .arg("-m")
                    .arg(&manifest)
                    .arg("-x")
                    .arg(&sig),
            );
        },
    );
    step(
        "serve republished with the tracker and web seed in the magnets",
        || {
            let snap = dist::index::record::Snapshot::open(&idx).unwrap();
            let rec = snap.versions("hello").unwrap()[0].clone();
            assert!(
                rec.magnet
                    .contains("&tr=http%3A%2F%2F10.77.0.1%3A6969%2Fannounce"),
                "{}",
                rec.magnet
            );
            assert!(
                rec.magnet
                    .contains("&ws=http%3A%2F%2F10.77.0.1%3A7380%2Fobjects%2F"),
                "{}",
                rec.magnet
            );
        },
    );
    let hello11 = step(
        "A package added while serve runs is picked up and seeded",
        || {
            let second = added(&root, &[fixture("hello-1.1.0")]);
            let hello11 = second[0].clone();
            server.wait_healthy(&ns);
            let (code, torrent) = http_get(
                &ns,
                &format!(
                    "http://{HTTP}/torrents/{}.torrent",
                    hello11["infohash"].as_str().unwrap()
                ),
                None,
            );
            assert_eq!(code, 200);
            let info = dist::format::torrent::Info::parse_torrent(&torrent).unwrap();
            assert_eq!(
                info.infohash().to_hex(),
                hello11["infohash"].as_str().unwrap()
            );
            hello11
        },
    );
    step("Independent client 1: aria2c by magnet link", || {
        let aria = tmp.path().join("aria");
        fs::create_dir_all(&aria).unwrap();
        let magnet = dist::index::record::Snapshot::open(&{
            fetch_index(&ns, tmp.path(), &idx);
            idx.clone()
        })
        .unwrap()
        .versions("hello")
        .unwrap()
        .iter()
        .find(|r| r.version.to_string() == "1.1.0")
        .unwrap()
        .magnet
        .clone();
        let o = ns
            .command("timeout")
            .arg("120")
            .arg("aria2c")
            .args([
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
            ])
            .args([
                "--seed-time=0",
                "--bt-tracker-interval=5",
                "--interface=10.77.0.2",
                "--summary-interval=0",
            ])
            .arg(format!("--dir={}", aria.display()))
            .arg(&magnet)
            .output()
            .unwrap();
        if !o.status.success() {
            let log = String::from_utf8_lossy(&o.stdout);
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            let _ = fs::copy(tmp.path().join("aria2c.log"), "/tmp/aria2c-debug.log");
            panic!(
                "aria2c failed:\n{}\nserve log:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                server.log()
            );
        }
        let got = aria.join("hello-1.1.0.tar");
        assert_eq!(
            blake3::hash(&fs::read(&got).unwrap()).to_string(),
            hello11["blake3"].as_str().unwrap()
        );
    });
    step(
        "Independent client 2: a separate transmission-daemon driven by transmission-remote",
        || {
            let mut leecher =
                Leecher::start(&ns, &tmp.path().join("leecher"), "10.77.0.3", 9191, 51500);
            http_get(
                &ns,
                &format!(
                    "http://{HTTP}/torrents/{}.torrent",
                    hello["infohash"].as_str().unwrap()
                ),
                Some(&tfile),
            );
            let o = leecher.remote(&ns, &["-a", tfile.to_str().unwrap()]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let dl = leecher.dir.join("downloads/hello-1.0.0.tar");
            wait_for_file(
                &dl,
                hello["blake3"].as_str().unwrap(),
                Duration::from_secs(90),
                "transmission-remote download",
                || String::from_utf8_lossy(&leecher.remote(&ns, &["-l"]).stdout).into_owned(),
            );
            leecher.stop(&ns);
        },
    );
    step(
        "Web seed alone: stop the tracker and the seeder serve started, keep HTTP",
        || {
            let state: serde_json::Value =
                serde_json::from_slice(&fs::read(root.join("serve/state.json")).unwrap()).unwrap();
            for k in ["tracker_pid", "seeder_pid"] {
                let pid = state[k].as_u64().unwrap();
                run_ok(Command::new("kill").arg("-TERM").arg(pid.to_string()));
                wait_until(
                    &format!("{k} {pid} to exit"),
                    Duration::from_secs(20),
                    || {
                        if Path::new(&format!("/proc/{pid}")).exists()
                            && !fs::read_to_string(format!("/proc/{pid}/stat"))
                                .unwrap_or_default()
                                .contains(") Z")
                        {
                            Err("alive".into())
                        } else {
                            Ok(())
                        }
                    },
                );
            }
            let mut web =
                Leecher::start(&ns, &tmp.path().join("webseed"), "10.77.0.4", 9192, 51501);
            let o = web.remote(&ns, &["-a", tfile.to_str().unwrap()]);
            assert!(o.status.success());
            let dl = web.dir.join("downloads/hello-1.0.0.tar");
            wait_for_file(
                &dl,
                hello["blake3"].as_str().unwrap(),
                Duration::from_secs(90),
                "web-seed-only download",
                || String::from_utf8_lossy(&web.remote(&ns, &["-l"]).stdout).into_owned(),
            );
            web.stop(&ns);
        },
    );
    step(
        "Graceful stop: exit 0, nothing of ours left in the namespace",
        || {
            let status = server.stop();
            assert!(
                status.success(),
                "serve exited with {status}\n{}",
                server.log()
            );
            wait_until(
                "every process in the namespace to exit",
                Duration::from_secs(20),
                || {
                    let left = ns.pids();
                    if left.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("{left:?}"))
                    }
                },
            );
        },
    );
    step(
        "Started again with another tracker: the seeder forgets the old announce URL (issue 9)",
        || {
            let mut cmd = ns.command(dist_bin());
            cmd.arg("--root").arg(&root).args([
                "serve",
                "--http",
                HTTP,
                "--tracker",
                "10.77.0.1:6970",
                "--bind",
                SERVER_IP,
            ]);
            let mut again = Server::spawn_command(cmd, tmp.path().join("serve-again.log"));
            // /health is 200 only once every torrent announced successfully to a tracker.
            again.wait_healthy(&ns);
            assert!(again.stop().success(), "{}", again.log());
        },
    );
}

#[test]
fn serve_reports_a_port_in_use_and_leaves_nothing_running() {
    require_tool("opentracker");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    added(&root, &[fixture("hello-1.0.0")]);
    let ns = Netns::new(&[SERVER_IP]).expect("network namespace");
    // Something already listens on the tracker port (aria2c's RPC, bound to every address).
    let mut blocker = ns
        .command("aria2c")
        .args([
            "--enable-rpc",
            "--rpc-listen-all=true",
            "--rpc-listen-port=6969",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("aria2c to listen on 6969", Duration::from_secs(30), || {
        let o = ns
            .command("bash")
            .args(["-c", "exec 3<>/dev/tcp/127.0.0.1/6969"])
            .output()
            .unwrap();
        o.status
            .success()
            .then_some(())
            .ok_or_else(|| String::from_utf8_lossy(&o.stderr).into_owned())
    });
    let o = server::serve_command(&ns, &dist_bin(), &root)
        .output()
        .unwrap();
    let _ = blocker.kill();
    let _ = blocker.wait();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("6969"), "{err}");
    assert!(ns.pids().is_empty(), "left running: {:?}", ns.pids());
}

/// `n` small packages `pkg0`..`pkgN-1` (1.0.0) under `dir`.
fn synthetic_packages(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let name = format!("pkg{i}");
            let data = format!("payload {i}\n");
            write_package(
                &dir.join(&name),
                &name,
                "1.0.0",
                "",
                ("data.txt", data.as_bytes()),
                "true\n",
            )
        })
        .collect()
}

/// The seeder's torrents (infohash → "Date added" line), through transmission-remote inside
/// the namespace, from the RPC port in `serve/state.json`.
fn seeder_torrents(ns: &Netns, root: &Path) -> std::collections::BTreeMap<String, String> {
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("serve/state.json")).unwrap()).unwrap();
    let port = state["rpc_port"].as_u64().unwrap();
    let o = ns
        .command("transmission-remote")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-t", "all", "-i"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut out = std::collections::BTreeMap::new();
    let mut hash = None;
    for line in text.lines().map(str::trim) {
        if let Some(h) = line.strip_prefix("Hash: ") {
            hash = Some(h.to_string());
        } else if let Some(d) = line.strip_prefix("Date added: ") {
            out.insert(hash.take().expect("a hash before its date"), d.to_string());
        }
    }
    out
}

#[test]
fn hot_set_promotion_and_restart_reuse_issue_10() {
    for t in [
        "opentracker",
        "transmission-daemon",
        "transmission-remote",
        "curl",
    ] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let pkgs = synthetic_packages(&tmp.path().join("pkgs"), 5);
    let listed = added(&root, &pkgs);
    let hash = |i: usize| listed[i]["infohash"].as_str().unwrap().to_string();
    let ns = Netns::new(&[SERVER_IP]).expect("network namespace");
    let serve_with = |tracker: &str, log: &str| {
        let mut cmd = ns.command(dist_bin());
        cmd.arg("--root").arg(&root).args([
            "serve",
            "--http",
            HTTP,
            "--tracker",
            tracker,
            "--bind",
            SERVER_IP,
            "--hot-set",
            "2",
        ]);
        Server::spawn_command(cmd, tmp.path().join(log))
    };

    let mut server = serve_with("10.77.0.1:6969", "serve.log");
    server.wait_healthy(&ns);
    step(
        "Healthy with only the hot set (2 of 5) in the seeder",
        || {
            let held = seeder_torrents(&ns, &root);
            // One batch: the same added_at, so the first two names are the hot set.
            let want: Vec<String> = vec![hash(0), hash(1)];
            assert_eq!(held.keys().cloned().collect::<Vec<_>>(), {
                let mut w = want.clone();
                w.sort();
                w
            });
        },
    );
    step(
        "A cold package's .torrent answers (tracker and web seed) and promotes it",
        || {
            let (code, body) = http_get(
                &ns,
                &format!("http://{HTTP}/torrents/{}.torrent", hash(3)),
                None,
            );
            assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
            let info = dist::format::torrent::Info::parse_torrent(&body).unwrap();
            assert_eq!(info.infohash().to_hex(), hash(3));
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains("http://10.77.0.1:6969/announce"), "{text}");
            assert!(text.contains("http://10.77.0.1:7380/objects/"), "{text}");
            wait_until(
                "the seeder to take the promoted object",
                Duration::from_secs(20),
                || {
                    let held = seeder_torrents(&ns, &root);
                    if held.len() == 3 && held.contains_key(&hash(3)) {
                        Ok(())
                    } else {
                        Err(format!("{held:?}"))
                    }
                },
            );
            server.wait_healthy(&ns);
            let (code, _) = http_get(
                &ns,
                &format!("http://{HTTP}/torrents/{}.torrent", "ab".repeat(20)),
                None,
            );
            assert_eq!(code, 404);
        },
    );
    step(
        "A GET of a cold object (the web seed's path) promotes it too",
        || {
            let b3 = listed[4]["blake3"].as_str().unwrap();
            let out = tmp.path().join("object4");
            let url = format!("http://{HTTP}/objects/{}/{}", &b3[..2], &b3[2..]);
            assert_eq!(http_get(&ns, &url, Some(&out)).0, 200);
            assert_eq!(blake3::hash(&fs::read(&out).unwrap()).to_string(), b3);
            wait_until(
                "the seeder to take the requested object",
                Duration::from_secs(20),
                || {
                    let held = seeder_torrents(&ns, &root);
                    if held.len() == 4 && held.contains_key(&hash(4)) {
                        Ok(())
                    } else {
                        Err(format!("{held:?}"))
                    }
                },
            );
        },
    );
    let before = seeder_torrents(&ns, &root);
    step("Graceful stop leaves nothing running", || {
        assert!(server.stop().success(), "{}", server.log());
        wait_until("the namespace to empty", Duration::from_secs(20), || {
            let left = ns.pids();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        });
        let resume = fs::read_dir(root.join("serve/transmission/resume"))
            .unwrap()
            .count();
        assert_eq!(resume, 4, "the seeder's resume files survive the stop");
    });
    step(
        "Restarted with another tracker: nothing re-added, the torrents re-pointed, healthy",
        || {
            let mut again = serve_with("10.77.0.1:6970", "serve-again.log");
            again.wait_healthy(&ns);
            let after = seeder_torrents(&ns, &root);
            // The promotions were not kept across the restart; the hot set was.
            for h in [hash(0), hash(1)] {
                assert_eq!(after.get(&h), before.get(&h), "{h} was added again");
            }
            assert_eq!(after.len(), 2, "{after:?}");
            let mut linked: Vec<String> = fs::read_dir(root.join("serve/seed"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect();
            linked.sort();
            let mut hot = vec![hash(0), hash(1)];
            hot.sort();
            assert_eq!(linked, hot, "only the hot set's data links are left");
            let log = again.log();
            // The promoted torrents are forgotten before the seeder starts, the others re-pointed.
            assert!(log.contains("hot set 2: 0 added, 2 removed"), "{log}");
            assert!(log.contains("0 added, 0 removed, 2 re-pointed"), "{log}");
            let (code, body) = http_get(
                &ns,
                &format!("http://{HTTP}/torrents/{}.torrent", hash(0)),
                None,
            );
            assert_eq!(code, 200);
            assert!(String::from_utf8_lossy(&body).contains("http://10.77.0.1:6970/announce"));
            assert!(again.stop().success(), "{}", again.log());
        },
    );
    step(
        "SIGTERM during the start stops it promptly, no daemon left",
        || {
            let s = serve_with("10.77.0.1:6969", "serve-term.log");
            wait_until("HTTP to answer", Duration::from_secs(20), || {
                let (code, _) = http_get(&ns, &format!("http://{HTTP}/index.json"), None);
                if code == 200 {
                    Ok(())
                } else {
                    Err(code.to_string())
                }
            });
            let mut s = s;
            // Promptness is `Server::stop`'s bounded wait on the pid; how long is not asserted.
            assert!(s.stop().success(), "{}", s.log());
            wait_until("the namespace to empty", Duration::from_secs(5), || {
                let left = ns.pids();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{left:?}"))
                }
            });
        },
    );
}
