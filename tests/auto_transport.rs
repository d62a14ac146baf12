//! `auto` decides with what the system knows (issue 11), against a real `dist serve` (real
//! opentracker, transmission-daemon and HTTP) in a network namespace this test makes: a lone
//! small download goes over HTTP; an object whose swarm the tracker knows goes to the swarm; an
//! origin whose whole-object slots are taken answers 503, and `auto` takes the swarm while an
//! `http` client waits its turn. `install --json` says which transport and why (`reason`). A
//! client's own downloads, side by side, never make the origin busy for it.

mod common;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/client.rs"]
mod nsclient;
#[path = "common/server.rs"]
mod server;

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use dist::format::ids::InfoHash;
use netns::Netns;
use nsclient::Client;
use server::{serve_command, Server, HTTP, SERVER_IP, TRACKER};

/// What only this test asks of a client.
impl Client<'_> {
    /// The same command, to spawn (output captured).
    fn cmd_child(&self, args: &[&str]) -> std::process::Command {
        let mut c = self.command(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// `install --json` of one package: its entry.
    fn install(&self, args: &[&str]) -> serde_json::Value {
        let o = self.cmd(&[&["install", "--json"], args].concat());
        assert!(
            o.status.success(),
            "install {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        stdout_json(&o)[0].clone()
    }
}

#[test]
fn auto_takes_http_alone_the_swarm_when_there_is_one_and_when_the_origin_is_busy_issue_11() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let pkgs = tmp.path().join("pkgs");
    repo_init(&repo);
    let added = stdout_json(&run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--json"])
            .arg(noise_package(&pkgs, "lone", 64 << 10))
            .arg(noise_package(&pkgs, "busy", 64 << 10))
            .arg(noise_package(&pkgs, "hog", 32 << 20))
            .arg(noise_package(&pkgs, "trio-a", 4 << 20))
            .arg(noise_package(&pkgs, "trio-b", 4 << 20))
            .arg(noise_package(&pkgs, "trio-c", 4 << 20)),
    ));
    let by_name = |n: &str| -> serde_json::Value {
        added
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    let key = repo_key(&repo);
    let ns =
        Netns::new(&[SERVER_IP, "10.77.0.2", "10.77.0.3", "10.77.0.4"]).expect("network namespace");
    let mut cmd = serve_command(&ns, &dist_bin(), &repo);
    cmd.args(["--http-slots", "1", "--webseed-window", "120"]);
    let server = Server::spawn_command(cmd, tmp.path().join("serve.log"));
    server.wait_healthy(&ns);
    let a = Client::new(&ns, tmp.path().join("a"), &key, "10.77.0.2");
    let b = Client::new(&ns, tmp.path().join("b"), &key, "10.77.0.3");
    let c = Client::new(&ns, tmp.path().join("c"), &key, "10.77.0.4");
    for cl in [&a, &b, &c] {
        assert!(cl.cmd(&["sync"]).status.success());
    }

    step("A lone small download goes over HTTP, and says why", || {
        let e = a.install(&["lone"]);
        assert_eq!(e["transport"], "http", "{e}");
        let why = e["transport_reason"].as_str().unwrap();
        assert!(why.contains("origin admitted"), "{why}");
    });

    step(
        "Seeds alone are no crowd (issue 20): with the origin and a client seeding it, the next lone client still gets it over HTTP",
        || {
            let hash = InfoHash::parse(by_name("lone")["infohash"].as_str().unwrap()).unwrap();
            let announce = format!("http://{TRACKER}/announce");
            wait_until("the first client to seed", Duration::from_secs(60), || {
                let seeds = server::seeds(&ns, &announce, &hash);
                if seeds >= 2 {
                    Ok(())
                } else {
                    Err(format!("{seeds} seeds"))
                }
            });
            let e = b.install(&["lone"]);
            assert_eq!(e["transport"], "http", "{e}");
            let why = e["transport_reason"].as_str().unwrap();
            assert!(why.contains("no crowd fetching it"), "{why}");
        },
    );

    step(
        "The origin's one whole-object slot is taken: auto takes the swarm, http waits its turn",
        || {
            let hog = by_name("hog");
            let b3 = hog["blake3"].as_str().unwrap();
            let url = format!("http://{HTTP}/objects/{}/{}", &b3[..2], &b3[2..]);
            // A slow whole-object download holds the slot (32 MiB at 512 KiB/s, more than loopback
            // socket buffers take).
            let part = tmp.path().join("hog.part");
            let mut slow = ns
                .command("curl")
                .args(["-s", "-o"])
                .arg(&part)
                .args(["--limit-rate", "512K", &url])
                .spawn()
                .unwrap();
            // It holds the slot once object bytes arrive (a 503 would be a short sentence).
            wait_until(
                "the slow download to stream",
                Duration::from_secs(10),
                || match fs::metadata(&part).map(|m| m.len()) {
                    Ok(n) if n >= 64 << 10 => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            );
            let e = c.install(&["busy"]);
            assert_eq!(e["transport"], "torrent", "{e}");
            let why = e["transport_reason"].as_str().unwrap();
            assert!(why.contains("origin is busy"), "{why}");
            // A range request (what a web seed sends) is not refused by the slots. With a
            // web-seed window (`--webseed-window`), the same piece again within it: the swarm
            // has it, ask the peers (503); an open range (a resumed HTTP download) is served
            // all the same.
            let code = |range: &str| {
                let o = ns
                    .command("curl")
                    .args([
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        "-r",
                        range,
                        &url,
                    ])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&o.stdout).to_string()
            };
            assert_eq!(code("0-99"), "206");
            assert_eq!(
                code("0-99"),
                "503",
                "a piece sent moments ago is sent again"
            );
            assert_eq!(code("16384-32767"), "206", "a fresh piece is refused");
            assert_eq!(code("100-"), "206", "a resumed download is refused");
            // `--transport http` waits for the slot instead of failing: it says it waits, and
            // is done once the slow download is gone.
            let mut waiting = a
                .cmd_child(&["install", "--json", "busy", "--transport", "http"])
                .spawn()
                .unwrap();
            let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
            let reader = {
                let mut stderr = waiting.stderr.take().unwrap();
                let said = said.clone();
                std::thread::spawn(move || {
                    let mut buf = [0; 4096];
                    while let Ok(n @ 1..) = std::io::Read::read(&mut stderr, &mut buf) {
                        said.lock()
                            .unwrap()
                            .push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                })
            };
            wait_until(
                "the install to wait for the busy origin",
                Duration::from_secs(60),
                || {
                    let text = said.lock().unwrap().clone();
                    match waiting.try_wait().unwrap() {
                        Some(status) => Err(format!("it ended first ({status}): {text}")),
                        None if text.contains("the origin is busy; asking again") => Ok(()),
                        None => Err(text),
                    }
                },
            );
            let _ = slow.kill();
            let _ = slow.wait();
            let o = waiting.wait_with_output().unwrap();
            reader.join().unwrap();
            let err = said.lock().unwrap().clone();
            assert!(o.status.success(), "{err}");
            assert_eq!(stdout_json(&o)[0]["transport"], "http");
        },
    );
    step(
        "`seed: false`: leech only, nothing of the install is left seeding; `server_urls`: a dead first server is skipped",
        || {
            let d_root = tmp.path().join("d");
            let d = Client::new(&ns, d_root.clone(), &key, "10.77.0.4");
            let yaml = fs::read_to_string(d_root.join("client.yaml")).unwrap();
            // The first server refuses connections (nothing listens on port 9): the mirror list
            // goes on to the real one.
            let yaml = yaml.replace(
                &format!("server_url: http://{HTTP}\n"),
                &format!("server_url: http://{SERVER_IP}:9\nserver_urls: [\"http://{HTTP}\"]\nseed: false\n"),
            );
            fs::write(d_root.join("client.yaml"), yaml).unwrap();
            let o = d.cmd(&["sync", "--json"]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(stdout_json(&o)["server"], format!("http://{HTTP}"));
            let e = d.install(&["hog", "--transport", "torrent"]);
            assert_eq!(e["transport"], "torrent", "{e}");
            let status = stdout_json(&d.cmd(&["daemon", "status", "--json"]));
            let hog_hash = by_name("hog")["infohash"].as_str().unwrap().to_string();
            assert!(
                !status["torrents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["infohash"] == hog_hash.as_str()),
                "a leech-only client still seeds: {status}"
            );
            drop(d);
        },
    );
    step(
        "Three small packages in one install, side by side, against the origin's one slot: its own downloads do not make the origin busy for a client",
        || {
            let o = b.cmd(&["install", "--json", "trio-a", "trio-b", "trio-c"]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{err}");
            assert!(!err.contains("busy"), "{err}");
            let entries = stdout_json(&o);
            let entries = entries.as_array().unwrap();
            assert_eq!(entries.len(), 3, "{entries:?}");
            for (e, name) in entries.iter().zip(["trio-a", "trio-b", "trio-c"]) {
                assert_eq!(e["name"], name, "{e}");
                assert_eq!(e["transport"], "http", "{e}");
                let why = e["transport_reason"].as_str().unwrap();
                assert!(why.contains("origin admitted"), "{why}");
            }
        },
    );
    drop((a, b, c));
    drop(server);
}

/// Caps what 10.77.0.1 (the server) sends inside the namespace at `mbit`, whatever the
/// protocol (field notes: an HTB class on the namespace's `lo`).
fn cap_origin(ns: &Netns, mbit: u32) {
    let rate = format!("{mbit}mbit");
    for args in [
        vec![
            "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "20",
        ],
        vec![
            "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", &rate,
            "ceil", &rate,
        ],
        vec![
            "class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", "10gbit",
        ],
        vec![
            "filter",
            "add",
            "dev",
            "lo",
            "protocol",
            "ip",
            "parent",
            "1:",
            "prio",
            "1",
            "u32",
            "match",
            "ip",
            "src",
            "10.77.0.1/32",
            "flowid",
            "1:10",
        ],
    ] {
        let o = ns.command("tc").args(&args).output().unwrap();
        assert!(
            o.status.success(),
            "tc {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn a_lone_large_object_comes_over_http_and_a_slow_one_is_handed_to_the_swarm_issue_20() {
    for t in ["opentracker", "transmission-daemon", "tc"] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let pkgs = tmp.path().join("pkgs");
    repo_init(&repo);
    let added = stdout_json(&run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--json"])
            .arg(noise_package(&pkgs, "large", 80 << 20))
            .arg(noise_package(&pkgs, "slow", 8 << 20)),
    ));
    let hash = InfoHash::parse(added[1]["infohash"].as_str().unwrap()).unwrap();
    let key = repo_key(&repo);
    let ns =
        Netns::new(&[SERVER_IP, "10.77.0.2", "10.77.0.3", "10.77.0.4"]).expect("network namespace");
    let mut cmd = serve_command(&ns, &dist_bin(), &repo);
    cmd.args(["--http-slots", "1"]);
    let server = Server::spawn_command(cmd, tmp.path().join("serve.log"));
    server.wait_healthy(&ns);
    let a = Client::new(&ns, tmp.path().join("a"), &key, "10.77.0.2");
    let b = Client::new(&ns, tmp.path().join("b"), &key, "10.77.0.3");
    let c = Client::new(&ns, tmp.path().join("c"), &key, "10.77.0.4");
    for cl in [&a, &b, &c] {
        assert!(cl.cmd(&["sync"]).status.success());
    }

    step(
        "A lone client gets a large object over HTTP (no size threshold)",
        || {
            let e = a.install(&["large"]);
            assert_eq!(e["transport"], "http", "{e}");
            assert!(e["engine"].is_null(), "{e}");
            let why = e["transport_reason"].as_str().unwrap();
            assert!(why.contains("origin admitted"), "{why}");
        },
    );

    step(
        "A slow direct download is handed to the swarm once one forms",
        || {
            cap_origin(&ns, 8);
            let first = a.cmd_child(&["install", "--json", "slow"]).spawn().unwrap();
            // The first client holds the origin's one slot (8 MiB at 8 mbit/s: ~8 s).
            // Its own download directory (the first step left `large` beside it).
            let partial = tmp.path().join("a/downloads").join(hash.to_hex());
            wait_until(
                "the first download to stream",
                Duration::from_secs(20),
                || {
                    let n: u64 = walk_sizes(&partial);
                    if n >= 256 << 10 {
                        Ok(())
                    } else {
                        Err(format!("{n} bytes"))
                    }
                },
            );
            let second = b.cmd_child(&["install", "--json", "slow"]).spawn().unwrap();
            // Once the second client fetches from the swarm, a third one arriving goes there too:
            // refused by the busy origin, or handed over from a slow direct download.
            let announce = format!("http://{TRACKER}/announce");
            wait_until(
                "a peer fetching from the swarm",
                Duration::from_secs(30),
                || match server::leechers(&ns, &announce, &hash) {
                    0 => Err("no leecher yet".to_string()),
                    _ => Ok(()),
                },
            );
            let e = c.install(&["slow"]);
            assert_eq!(e["transport"], "torrent", "{e}");
            let why = e["transport_reason"].as_str().unwrap();
            assert!(
                why.contains("origin is busy") || why.contains("direct download was slow"),
                "{why}"
            );
            let o = second.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let e = &stdout_json(&o)[0];
            assert_eq!(e["transport"], "torrent", "{e}");
            // Refused while the first held the slot, or admitted once it had handed over.
            let why = e["transport_reason"].as_str().unwrap();
            assert!(
                why.contains("origin is busy") || why.contains("direct download was slow"),
                "{why}"
            );
            let o = first.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let e = &stdout_json(&o)[0];
            assert_eq!(e["transport"], "torrent", "{e}");
            let why = e["transport_reason"].as_str().unwrap();
            assert!(why.contains("direct download was slow"), "{why}");
            let webseed = e["bytes_from_webseed"].as_u64().unwrap();
            assert!(webseed > 0, "the bytes it had are counted: {e}");
        },
    );
    drop((a, b, c, server));
}

/// The bytes of every file under `dir`.
fn walk_sizes(dir: &std::path::Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => walk_sizes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
