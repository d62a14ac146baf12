//! Mirrors (issue 11, part 5): `dist serve --mirror-of URL --public-key KEY` keeps a verified
//! copy of another repository, serves its signed index byte for byte and its objects, seeds
//! them in the same swarms (announcing to the upstream's tracker too), follows new publishes,
//! and refuses what does not verify. Against real `dist serve`s (opentracker,
//! transmission-daemon, HTTP) in a network namespace this test makes, and a real file server
//! for the hostile upstream.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/client.rs"]
mod nsclient;
#[path = "common/published.rs"]
mod published;
#[path = "common/server.rs"]
mod server;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use dist::format::torrent::Info;
use files::FileServer;
use netns::{free_loopback_port, Netns};
use nsclient::Client;
use server::{http_get, serve_command, Server, HTTP, SERVER_IP, TRACKER};

const MIRROR_IP: &str = "10.77.0.5";
const MIRROR_HTTP: &str = "10.77.0.5:7380";
const MIRROR_TRACKER: &str = "10.77.0.5:6969";

fn add(repo: &Path, dirs: &[PathBuf]) -> serde_json::Value {
    stdout_json(&run_ok(
        dist()
            .arg("--root")
            .arg(repo)
            .args(["add", "--create", "--json"])
            .args(dirs),
    ))
}

/// `dist serve --mirror-of` outside any namespace, on loopback ports: what it refuses needs
/// no swarm.
fn loopback_mirror(root: &Path, upstream: &str, key: &str, log: PathBuf) -> Server {
    let mut c = Command::new(dist_bin());
    c.arg("--root").arg(root).args([
        "serve",
        "--http",
        &format!("127.0.0.1:{}", free_loopback_port()),
        "--tracker",
        &format!("127.0.0.1:{}", free_loopback_port()),
        "--bind",
        "127.0.0.1",
        "--mirror-of",
        upstream,
        "--public-key",
        key,
        "--mirror-interval",
        "1",
    ]);
    Server::spawn_command(c, log)
}

#[test]
fn a_mirror_serves_seeds_and_follows_a_verified_copy_issue_11() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let (repo, pkgs, mirror_root) = (
        tmp.path().join("repo"),
        tmp.path().join("pkgs"),
        tmp.path().join("mirror"),
    );
    let added = add(
        &repo,
        &[
            noise_package(&pkgs, "alpha", 64 << 10),
            noise_package(&pkgs, "beta", 3 << 20),
        ],
    );
    let infohash = |name: &str| -> String {
        added
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["infohash"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let key = repo_key(&repo);
    let ns = Netns::new(&[SERVER_IP, MIRROR_IP, "10.77.0.2", "10.77.0.3"]).expect("namespace");
    let mirror_url = format!("http://{MIRROR_HTTP}");
    let mut origin_cmd = serve_command(&ns, &dist_bin(), &repo);
    origin_cmd.args(["--web-seed", &mirror_url]);
    let origin = Server::spawn_command(origin_cmd, tmp.path().join("origin.log"));
    origin.wait_healthy(&ns);

    let mut mirror_cmd = ns.command(dist_bin());
    mirror_cmd.arg("--root").arg(&mirror_root).args([
        "serve",
        "--http",
        MIRROR_HTTP,
        "--tracker",
        MIRROR_TRACKER,
        "--bind",
        MIRROR_IP,
        "--mirror-of",
        &format!("http://{HTTP}"),
        "--public-key",
        &key,
        "--mirror-interval",
        "1",
    ]);
    let mirror = Server::spawn_command(mirror_cmd, tmp.path().join("mirror.log"));
    let get = |url: &str| http_get(&ns, url, None);
    let wait_mirror_healthy = || {
        wait_until(
            "the mirror's /health = 200",
            Duration::from_secs(90),
            || {
                let (code, body) = get(&format!("{mirror_url}/health"));
                (code == 200).then_some(()).ok_or_else(|| {
                    format!(
                        "{code} {}\nmirror log:\n{}",
                        String::from_utf8_lossy(&body),
                        mirror.log()
                    )
                })
            },
        )
    };
    wait_mirror_healthy();

    step(
        "The mirror serves the upstream's signed index byte for byte, and its objects",
        || {
            for path in ["index.json", "index.json.minisig"] {
                let (a, b) = (
                    get(&format!("http://{HTTP}/{path}")),
                    get(&format!("{mirror_url}/{path}")),
                );
                assert_eq!((a.0, b.0), (200, 200), "{path}");
                assert_eq!(a.1, b.1, "{path} differs between origin and mirror");
            }
            let beta = &added
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "beta")
                .unwrap();
            let b3 = beta["blake3"].as_str().unwrap();
            let (code, body) = get(&format!("{mirror_url}/objects/{}/{}", &b3[..2], &b3[2..]));
            assert_eq!(code, 200);
            assert_eq!(blake3::hash(&body).to_hex().as_str(), b3);
        },
    );

    step(
        "The mirror's .torrent has the same infohash, both trackers and both web seeds; the origin's lists the mirror's web seed",
        || {
            let h = infohash("beta");
            let (code, t) = get(&format!("{mirror_url}/torrents/{h}.torrent"));
            assert_eq!(code, 200);
            assert_eq!(Info::parse_torrent(&t).unwrap().infohash().to_hex(), h);
            let text = String::from_utf8_lossy(&t);
            for want in [
                format!("http://{MIRROR_TRACKER}/announce"),
                format!("http://{TRACKER}/announce"),
                format!("{mirror_url}/objects/"),
                format!("http://{HTTP}/objects/"),
            ] {
                assert!(text.contains(&want), "the mirror's torrent lacks {want}: {text:?}");
            }
            let (_, t) = get(&format!("http://{HTTP}/torrents/{h}.torrent"));
            let text = String::from_utf8_lossy(&t);
            assert!(text.contains(&format!("{mirror_url}/objects/")), "{text:?}");
        },
    );

    step(
        "The mirror seeds in the upstream's swarm: the origin's tracker knows it",
        || {
            let h = dist::format::ids::InfoHash::parse(&infohash("beta")).unwrap();
            let announce = format!("http://{TRACKER}/announce");
            wait_until(
                "two seeds at the origin's tracker",
                Duration::from_secs(60),
                || {
                    let n = server::seeds(&ns, &announce, &h);
                    (n >= 2).then_some(()).ok_or(format!("{n} seeds"))
                },
            );
        },
    );

    let client = Client::new(&ns, tmp.path().join("client"), &key, "10.77.0.2");
    // Only the mirror: what is trusted is the signature and the digests, not the server.
    fs::write(
        client.root.join("client.yaml"),
        format!(
            "server_url: {mirror_url}\npublic_key: {key}\nbind_address: 10.77.0.2\nfetch_timeout: 120\n"
        ),
    )
    .unwrap();

    step(
        "A client of the mirror alone syncs and installs over HTTP and over the swarm",
        || {
            client.ok(&["sync"]);
            let e = &client.json(&["install", "--json", "--transport", "http", "alpha"])[0];
            assert_eq!(e["transport"], "http", "{e}");
            let e = &client.json(&["install", "--json", "--transport", "torrent", "beta"])[0];
            assert_eq!(e["transport"], "torrent", "{e}");
        },
    );

    step(
        "A publish on the origin reaches the mirror, and its clients",
        || {
            add(&repo, &[noise_package(&pkgs, "gamma", 32 << 10)]);
            let latest = fs::read_to_string(repo.join("published/LATEST")).unwrap();
            let manifest =
                fs::read(repo.join(format!("published/{}.json", latest.trim()))).unwrap();
            wait_until("the mirror to follow", Duration::from_secs(60), || {
                (get(&format!("{mirror_url}/index.json")).1 == manifest)
                    .then_some(())
                    .ok_or_else(|| format!("mirror log:\n{}", mirror.log()))
            });
            wait_mirror_healthy();
            client.ok(&["sync"]);
            let e = &client.json(&["install", "--json", "gamma"])[0];
            assert_eq!(e["name"], "gamma", "{e}");
        },
    );

    step(
        "A key rotation on the origin: the mirror follows it and copies keys.json, its clients follow through it",
        || {
            let r = stdout_json(&run_ok(
                dist().arg("--root").arg(&repo).args(["key", "rotate", "--json"]),
            ));
            let new_id = r["new_key_id"].as_str().unwrap().to_string();
            let latest = fs::read_to_string(repo.join("published/LATEST")).unwrap();
            let manifest =
                fs::read(repo.join(format!("published/{}.json", latest.trim()))).unwrap();
            wait_until("the mirror to follow the rotation", Duration::from_secs(60), || {
                (get(&format!("{mirror_url}/index.json")).1 == manifest)
                    .then_some(())
                    .ok_or_else(|| format!("mirror log:\n{}", mirror.log()))
            });
            let (code, keys) = get(&format!("{mirror_url}/index/keys.json"));
            assert_eq!(code, 200);
            assert_eq!(keys, fs::read(repo.join("published/keys.json")).unwrap());
            let s = client.json(&["sync", "--json"]);
            assert_eq!(s["key"], new_id.as_str(), "{s}");
            assert_eq!(s["key_rotations"][0]["to"], new_id.as_str(), "{s}");
        },
    );

    step("Nothing can be published into a mirror's root", || {
        let err = run_err(
            dist()
                .arg("--root")
                .arg(&mirror_root)
                .arg("add")
                .arg(noise_package(&pkgs, "delta", 1 << 10)),
        );
        assert!(err.contains("is a mirror of"), "{err}");
    });
    drop(client);
    drop(mirror);
    drop(origin);
}

#[test]
fn a_mirror_refuses_an_upstream_that_does_not_verify_issue_11() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, pkgs) = (tmp.path().join("repo"), tmp.path().join("pkgs"));
    let added = add(&repo, &[noise_package(&pkgs, "one", 40 << 10)]);
    let key = repo_key(&repo);
    let other_key = {
        let other = tmp.path().join("other");
        add(&other, &[noise_package(&pkgs, "two", 1 << 10)]);
        repo_key(&other)
    };
    // A real HTTP server with the repository's files, the one object copied and then flipped
    // in one byte: the index is signed and whole, the object is not the one it names.
    let www = tmp.path().join("www");
    published::lay_out(&repo, &www);
    fs::remove_file(www.join("objects")).unwrap();
    copy_tree(&repo.join("objects"), &www.join("objects"));
    let b3 = added[0]["blake3"].as_str().unwrap();
    let object = www.join(format!("objects/{}/{}", &b3[..2], &b3[2..]));
    let mut bytes = fs::read(&object).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    fs::write(&object, bytes).unwrap();
    let upstream = FileServer::start(&www);

    for (i, (case, key, expect)) in [
        ("signed by another key", &other_key, "failed verification"),
        (
            "an object that is not the one the index names",
            &key,
            "the signed index says",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let root = tmp.path().join(format!("mirror-{i}"));
        let m = loopback_mirror(
            &root,
            &upstream.url,
            key,
            tmp.path().join(format!("{case}.log")),
        );
        wait_until(case, Duration::from_secs(30), || {
            let log = m.log();
            log.contains(expect)
                .then_some(())
                .ok_or_else(|| format!("log:\n{log}"))
        });
        assert!(
            !root.join("published/LATEST").exists(),
            "{case}: the mirror published what did not verify"
        );
        if case.starts_with("an object") {
            assert!(m.log().contains("one@1.0.0"), "{}", m.log());
        }
        drop(m);
    }
}
