//! The client's BitTorrent engines (issue 20) against a real `dist serve` (opentracker,
//! transmission-daemon, HTTP) in a network namespace this test makes: with `engine: libtorrent`
//! the installing process downloads with libtorrent (`install --json` says `engine`), its root's
//! background seeder takes the object over and `daemon status --json` lists it (engine
//! `libtorrent`); a SIGKILLed seeder is started again by the next install and seeds again at
//! once; transmission and libtorrent clients share one swarm; `gc` withdraws a collected object
//! from the seeder; `daemon stop` ends it. The server hands out a stripe with every `.torrent`.

mod common;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/client.rs"]
mod nsclient;
#[path = "common/server.rs"]
mod server;

use std::fs;
use std::time::Duration;

use common::*;
use netns::Netns;
use nsclient::Client;
use server::{serve_command, Server, HTTP, SERVER_IP};

impl Client<'_> {
    fn with_engine(self, engine: &str) -> Self {
        let path = self.root.join("client.yaml");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, format!("{text}engine: {engine}\n")).unwrap();
        self
    }

    fn status(&self) -> serde_json::Value {
        self.json(&["daemon", "status", "--json"])
    }

    /// Waits until the daemon status lists `infohash` as `state` (or, with `None`, not at all).
    fn wait_listed(&self, infohash: &str, state: Option<&str>) {
        wait_until("the daemon's listing", Duration::from_secs(60), || {
            let st = self.status();
            let found = st["torrents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["infohash"] == infohash)
                .map(|t| t["state"].as_str().unwrap_or("").to_string());
            match (found.as_deref(), state) {
                (None, None) => Ok(()),
                (Some(s), Some(want)) if s == want => Ok(()),
                _ => Err(format!("{st}")),
            }
        });
    }
}

#[test]
fn libtorrent_downloads_in_process_and_its_seeder_takes_over_issue_20() {
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
            .arg(noise_package(&pkgs, "big", 6 << 20)),
    ));
    let (infohash, size) = (
        added[0]["infohash"].as_str().unwrap().to_string(),
        added[0]["size"].as_u64().unwrap(),
    );
    let key = repo_key(&repo);
    let ns = Netns::new(&[SERVER_IP, "10.77.0.2", "10.77.0.3", "10.77.0.4"]).expect("namespace");
    let server = Server::spawn_command(
        serve_command(&ns, &dist_bin(), &repo),
        tmp.path().join("serve.log"),
    );
    server.wait_healthy(&ns);
    let a = Client::new(&ns, tmp.path().join("a"), &key, "10.77.0.2").with_engine("libtorrent");
    let b = Client::new(&ns, tmp.path().join("b"), &key, "10.77.0.3").with_engine("libtorrent");
    let c = Client::new(&ns, tmp.path().join("c"), &key, "10.77.0.4").with_engine("transmission");
    for cl in [&a, &b, &c] {
        cl.ok(&["sync"]);
    }

    step("libtorrent downloads in process and says so", || {
        let v = a.json(&["install", "--json", "--transport", "torrent", "big"]);
        let e = &v[0];
        assert_eq!(e["engine"], "libtorrent", "{e}");
        assert_eq!(e["transport"], "torrent", "{e}");
        let got =
            e["bytes_from_peers"].as_u64().unwrap() + e["bytes_from_webseed"].as_u64().unwrap();
        assert!(got >= size, "{e}");
        let shown = a.json(&["config", "show", "--json"]);
        assert_eq!(
            shown["settings"]["engine"]["value"], "libtorrent",
            "{shown}"
        );
        assert_eq!(shown["settings"]["engine"]["source"], "file", "{shown}");
    });

    step("the root's seeder takes the object over", || {
        a.wait_listed(&infohash, Some("seeding"));
        let st = a.status();
        assert_eq!(st["engine"], "libtorrent", "{st}");
        assert_eq!(st["running"], true, "{st}");
    });

    step(
        "a killed seeder is started again by the next install and seeds at once",
        || {
            let pid = a.status()["pid"].as_u64().unwrap() as i32;
            rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).unwrap(),
                rustix::process::Signal::KILL,
            )
            .unwrap();
            wait_until("the seeder to die", Duration::from_secs(10), || {
                match a.status()["running"] == false {
                    true => Ok(()),
                    false => Err("still running".into()),
                }
            });
            // An install that fetches nothing over HTTP still offers what it got: here, a reinstall.
            a.ok(&["install", "--reinstall", "--transport", "torrent", "big"]);
            a.wait_listed(&infohash, Some("seeding"));
        },
    );

    step(
        "transmission and libtorrent clients share the swarm",
        || {
            let e = &b.json(&["install", "--json", "--transport", "torrent", "big"])[0];
            assert_eq!(e["engine"], "libtorrent", "{e}");
            let e = &c.json(&["install", "--json", "--transport", "torrent", "big"])[0];
            assert_eq!(e["engine"], "transmission", "{e}");
            assert_eq!(c.status()["engine"], "transmission");
            let e = &c.json(&[
                "install",
                "--json",
                "--transport",
                "http",
                "--reinstall",
                "big",
            ])[0];
            assert!(e["engine"].is_null(), "over HTTP no engine: {e}");
        },
    );

    step(
        "the server tells each client of an object its stripe in turn",
        || {
            let url = format!("http://{HTTP}/torrents/{infohash}.torrent");
            let stripes: Vec<String> = (0..3)
                .map(|_| {
                    let o = ns
                        .command("curl")
                        .args(["-s", "-D", "-", "-o", "/dev/null", &url])
                        .output()
                        .unwrap();
                    let head = String::from_utf8_lossy(&o.stdout).to_lowercase();
                    head.lines()
                        .find_map(|l| l.strip_prefix("x-dist-stripe: "))
                        .map(|v| v.trim().to_string())
                        .unwrap_or_default()
                })
                .collect();
            let k: Vec<u32> = stripes
                .iter()
                .map(|s| s.split('/').next().unwrap().parse().unwrap())
                .collect();
            assert!(stripes.iter().all(|s| s.ends_with("/8")), "{stripes:?}");
            assert_eq!(k[1], (k[0] + 1) % 8, "{stripes:?}");
            assert_eq!(k[2], (k[0] + 2) % 8, "{stripes:?}");
        },
    );

    step(
        "gc withdraws what it collects from the seeder; daemon stop ends it",
        || {
            a.ok(&["uninstall", "big"]);
            a.ok(&["gc", "--keep", "1"]);
            a.wait_listed(&infohash, None);
            let v = a.json(&["daemon", "stop", "--json"]);
            assert_eq!(v["stopped"], true, "{v}");
            assert_eq!(a.status()["running"], false);
        },
    );
    drop(server);
}
