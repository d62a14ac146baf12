//! Installing without a server (issue 22): a local object file is installed when the synced,
//! verified index names its BLAKE3 (and refused, naming the digest, when not); `dist bundle`
//! writes one file that installs a package with its dependencies in a network namespace where
//! no server exists, verified with the configured key; a bundle with a swapped object or made
//! for another key is refused with nothing changed.

mod common;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/client.rs"]
mod nsclient;
#[path = "common/server.rs"]
mod server;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use netns::Netns;
use nsclient::Client;
use server::{Server, SERVER_IP};

fn add(repo: &Path, dirs: &[PathBuf]) {
    run_ok(
        dist()
            .arg("--root")
            .arg(repo)
            .args(["add", "--create"])
            .args(dirs),
    );
}

fn installed(c: &Client) -> Vec<String> {
    let v = c.json(&["list", "--installed", "--json"]);
    let mut names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    names
}

/// The stored object of `name` in the repository, by its row in `add --json`.
fn object_of(repo: &Path, blake3: &str) -> PathBuf {
    repo.join("objects").join(&blake3[..2]).join(&blake3[2..])
}

#[test]
fn local_objects_and_bundles_install_without_a_server_issue_22() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let pkgs = tmp.path().join("pkgs");
    let lib = write_package(
        &pkgs.join("lib"),
        "lib",
        "1.0.0",
        "",
        ("lib.txt", b"lib"),
        "#!/bin/sh\n",
    );
    let app = write_package(
        &pkgs.join("app"),
        "app",
        "1.0.0",
        "depends:\n  lib: ^1\n",
        ("app.txt", b"app"),
        "#!/bin/sh\n",
    );
    add(&repo, &[lib, app]);
    let key = repo_key(&repo);
    let ns = Netns::new(&[SERVER_IP, "10.77.0.2"]).expect("network namespace");
    let _server = Server::start(&ns, &repo, tmp.path().join("serve.log"));
    let a = Client::new(&ns, tmp.path().join("a"), &key, "10.77.0.2");
    a.ok(&["sync"]);
    let info = a.json(&["info", "lib", "--json"]);
    let lib_b3 = info["versions"][0]["blake3"].as_str().unwrap().to_string();

    step(
        "A local object the index names installs; another is refused",
        || {
            let file = tmp.path().join("lib-1.0.0.tar");
            fs::copy(object_of(&repo, &lib_b3), &file).unwrap();
            let out = a.json(&["install", "--json", file.to_str().unwrap()]);
            assert_eq!(out[0]["name"], "lib", "{out}");
            assert_eq!(out[0]["source"], "cached", "{out}");
            assert_eq!(installed(&a), ["lib@1.0.0"]);
            let stranger = tmp.path().join("stranger.tar");
            fs::write(&stranger, b"not an object of this repository").unwrap();
            let digest = blake3::hash(b"not an object of this repository")
                .to_hex()
                .to_string();
            let e = a.err(&["install", stranger.to_str().unwrap()]);
            assert!(e.contains(&digest) && e.contains("no synced index"), "{e}");
            assert_eq!(installed(&a), ["lib@1.0.0"]);
        },
    );

    let bundle = tmp.path().join("app.bundle");
    step(
        "dist bundle writes the package, its dependency and the index",
        || {
            let b = a.json(&["bundle", "app", "-o", bundle.to_str().unwrap(), "--json"]);
            let mut names: Vec<&str> = b["packages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            names.sort();
            assert_eq!(names, ["app", "lib"], "{b}");
            assert_eq!(
                b["bytes"].as_u64().unwrap(),
                fs::metadata(&bundle).unwrap().len()
            );
        },
    );

    // A machine with no server: a namespace of its own, the server's address unreachable.
    let island = Netns::new(&["10.77.0.9"]).expect("network namespace");
    step("The bundle installs where there is no network", || {
        let c = Client::new(&island, tmp.path().join("c"), &key, "10.77.0.9");
        assert!(!c.cmd(&["sync"]).status.success(), "a server is reachable");
        let out = c.json(&[
            "install",
            "--json",
            "--from-bundle",
            bundle.to_str().unwrap(),
            "app",
        ]);
        assert_eq!(out.as_array().unwrap().len(), 2, "{out}");
        assert_eq!(installed(&c), ["app@1.0.0", "lib@1.0.0"]);
        c.ok(&["verify"]);
    });

    step(
        "A swapped object or a foreign key: refused, nothing changed",
        || {
            let d = Client::new(&island, tmp.path().join("d"), &key, "10.77.0.9");
            let mut bytes = fs::read(&bundle).unwrap();
            // Flip a byte inside the last object's data (the archive ends with 1024 zero bytes).
            let end = bytes.len() - 1024;
            let data = (0..end).rev().find(|i| bytes[*i] != 0).unwrap();
            bytes[data] ^= 0x55;
            let swapped = tmp.path().join("swapped.bundle");
            fs::write(&swapped, bytes).unwrap();
            let e = d.err(&["install", "--from-bundle", swapped.to_str().unwrap(), "app"]);
            assert!(e.contains("damaged or swapped"), "{e}");
            assert!(installed_or_none(&d).is_empty());
            assert!(!d.root.join("index/index.db").exists(), "the index changed");
            let foreign = dist::index::sign::SigningKey::generate()
                .unwrap()
                .public_base64();
            let f = Client::new(&island, tmp.path().join("f"), &foreign, "10.77.0.9");
            let e = f.err(&["install", "--from-bundle", bundle.to_str().unwrap(), "app"]);
            assert!(e.contains("does not verify with the trusted key"), "{e}");
            assert!(!f.root.join("index/index.db").exists());
        },
    );
}

fn installed_or_none(c: &Client) -> Vec<String> {
    let o = c.cmd(&["list", "--installed", "--json"]);
    match serde_json::from_slice::<serde_json::Value>(&o.stdout) {
        Ok(serde_json::Value::Array(v)) => v.iter().map(|p| p["name"].to_string()).collect(),
        _ => Vec::new(),
    }
}
