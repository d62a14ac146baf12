//! The index on the wire (issue 10), against a real `dist serve` in a network namespace this
//! test makes: a first sync fetches the compressed snapshot, an unchanged one costs one request
//! and no body, a sync after a publish applies the signed deltas and ends with exactly the
//! content a fresh full sync gets; a tampered, missing or lying delta is refused (the local
//! index unchanged until a verified full snapshot replaces it); a client further behind than
//! the retention fetches the full snapshot; `published/` stays bounded.

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
use server::{http_get, wait_served, Server, HTTP, SERVER_IP};

fn package(dir: &Path, name: &str, version: &str) -> PathBuf {
    write_package(
        &dir.join(format!("{name}-{version}")),
        name,
        version,
        &format!("description: the {name} package\n"),
        ("data.txt", format!("{name} {version}\n").as_bytes()),
        "#!/bin/sh\nexit 0\n",
    )
}

/// What only this test asks of a client.
impl Client<'_> {
    fn sync(&self) -> serde_json::Value {
        let o = self.cmd(&["sync", "--json"]);
        assert!(
            o.status.success(),
            "sync failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        stdout_json(&o)
    }

    fn list(&self) -> serde_json::Value {
        stdout_json(&self.cmd(&["list", "--json"]))
    }
}

struct Repo {
    root: PathBuf,
    pkgs: PathBuf,
}

impl Repo {
    fn add(&self, name: &str, version: &str, retention: &str) -> u64 {
        let d = package(&self.pkgs, name, version);
        run_ok(
            dist()
                .arg("--root")
                .arg(&self.root)
                .args(["add", "--index-retention", retention])
                .arg(d),
        );
        self.latest()
    }

    fn latest(&self) -> u64 {
        fs::read_to_string(self.root.join("published/LATEST"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn published(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root.join("published"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Re-signs the manifest of `serial` after `edit` changed it (the repository's own key: only
    /// the content is hostile).
    fn resign(&self, serial: u64, edit: impl FnOnce(&mut dist::index::wire::Manifest)) {
        use dist::index::sign::{Signed, SigningKey};
        let path = self.root.join(format!("published/{serial}.json"));
        let mut m = dist::index::wire::Manifest::parse(&fs::read(&path).unwrap()).unwrap();
        edit(&mut m);
        let bytes = serde_json::to_vec(&m).unwrap();
        let sig = SigningKey::load(&self.root)
            .unwrap()
            .sign(
                &bytes,
                &Signed {
                    format: m.format,
                    serial: m.serial,
                    created: m.created,
                    repository: dist::repo::Repo::new(&self.root).repository_id().unwrap(),
                },
            )
            .unwrap();
        fs::write(
            self.root.join(format!("published/{serial}.json.minisig")),
            sig,
        )
        .unwrap();
        fs::write(path, bytes).unwrap();
    }
}

#[test]
fn sync_by_snapshot_delta_and_not_at_all_and_refuse_bad_deltas_issue_10() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo {
        root: tmp.path().join("repo"),
        pkgs: tmp.path().join("pkgs"),
    };
    repo_init(&repo.root);
    for n in ["alpha", "beta", "gamma"] {
        repo.add(n, "1.0.0", "3");
    }
    let key = repo_key(&repo.root);
    let ns = Netns::new(&[SERVER_IP]).expect("network namespace");
    let server = Server::start(&ns, &repo.root, tmp.path().join("serve.log"));
    // Sync only: no daemon starts, so the server's own address serves as `bind_address`.
    let client = |name: &str| Client::new(&ns, tmp.path().join(name), &key, SERVER_IP);
    let a = client("a");

    step("A first sync fetches the whole compressed snapshot", || {
        let r = a.sync();
        assert_eq!(r["mode"], "full", "{r}");
        assert_eq!(r["changed"], true);
        assert_eq!(r["packages"], 3);
        let serial = repo.latest();
        let zst = fs::metadata(repo.root.join(format!("published/{serial}.db.zst")))
            .unwrap()
            .len();
        let on_wire = r["bytes_on_wire"].as_u64().unwrap();
        assert!(on_wire > zst && on_wire < zst + 8192, "{on_wire} vs {zst}");
        assert_eq!(a.list().as_array().unwrap().len(), 3);
    });

    step(
        "An unchanged index: one conditional request, no body",
        || {
            let r = a.sync();
            assert_eq!(r["mode"], "unchanged", "{r}");
            assert_eq!(r["changed"], false);
            assert_eq!(r["bytes_on_wire"], 0);
            assert_eq!(r["packages"], 3);
        },
    );

    step(
        "After one publish: the delta, a few hundred bytes, and exactly the full content",
        || {
            let serial = repo.add("delta", "1.0.0", "3");
            wait_served(&ns, serial);
            let r = a.sync();
            assert_eq!(r["mode"], "delta", "{r}");
            assert_eq!(r["serial"], serial);
            assert_eq!(r["packages"], 4);
            assert!(r["fallback_reason"].is_null(), "{r}");
            let on_wire = r["bytes_on_wire"].as_u64().unwrap();
            assert!(on_wire < 64 << 10, "{on_wire}");
            let b = client("b");
            assert_eq!(b.sync()["mode"], "full");
            assert_eq!(a.list(), b.list());
            // Search goes through the local search table, kept in step with the delta.
            let names = |term: &str| -> Vec<String> {
                stdout_json(&a.cmd(&["search", term, "--json"]))
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect()
            };
            assert_eq!(names("ELT"), ["delta"]);
            assert_eq!(names("the delta package"), ["delta"]);
            assert_eq!(names("ta"), ["beta", "delta"]);
            assert_eq!(names("alp"), ["alpha"]);
            assert!(names("zzz").is_empty());
            let info = stdout_json(&a.cmd(&["info", "delta", "--json"]));
            assert_eq!(info["versions"][0]["version"], "1.0.0");
            assert!(info["versions"][0]["magnet"]
                .as_str()
                .unwrap()
                .contains("&tr=http%3A%2F%2F10.77.0.1%3A6969%2Fannounce"));
        },
    );

    step(
        "A tampered delta: refused, then the verified full snapshot",
        || {
            let serial = repo.add("tampered", "1.0.0", "3");
            let path = repo.root.join(format!("published/{serial}.delta.zst"));
            let mut bytes = fs::read(&path).unwrap();
            let n = bytes.len();
            bytes[n / 2] ^= 0x20;
            fs::write(&path, bytes).unwrap();
            wait_served(&ns, serial);
            let r = a.sync();
            assert_eq!(r["mode"], "full", "{r}");
            let why = r["fallback_reason"].as_str().unwrap();
            assert!(
                why.contains("is not the file the signed manifest names"),
                "{why}"
            );
            assert_eq!(a.list().as_array().unwrap().len(), 5);
        },
    );

    step(
        "A signed delta whose result is not the signed content, with no snapshot to fall back to: refused, the local index unchanged",
        || {
            let serial = repo.add("lying", "1.0.0", "3");
            // The delta of a package that does not exist, published under the real key.
            let path = repo.root.join(format!("published/{serial}.delta.zst"));
            let mut delta = dist::index::wire::Delta::decode(&fs::read(&path).unwrap(), 1 << 20)
                .unwrap();
            if let dist::index::wire::Op::Put(row) = &mut delta.ops[0] {
                row[0] = "intruder".into();
            }
            let bytes = delta.encode().unwrap();
            fs::write(&path, &bytes).unwrap();
            repo.resign(serial, |m| {
                let last = m.deltas.last_mut().unwrap();
                last.blake3 = dist::format::ids::Digest::of(&bytes);
                last.size = bytes.len() as u64;
            });
            let snapshot = repo.root.join(format!("published/{serial}.db.zst"));
            let kept = fs::read(&snapshot).unwrap();
            fs::remove_file(&snapshot).unwrap();
            wait_served(&ns, serial);
            let before = a.index_files();
            let o = a.cmd(&["sync"]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{err}");
            assert!(err.contains("HTTP 404"), "{err}");
            assert_eq!(a.index_files(), before, "a refused sync changed the local index");
            // With the snapshot back, the same sync refuses the delta and takes the snapshot.
            fs::write(&snapshot, kept).unwrap();
            let r = a.sync();
            assert_eq!(r["mode"], "full", "{r}");
            let why = r["fallback_reason"].as_str().unwrap();
            assert!(why.contains("is not the content signed"), "{why}");
            let names: Vec<String> = a
                .list()
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            assert!(names.contains(&"lying".to_string()) && !names.contains(&"intruder".to_string()));
        },
    );

    step(
        "A client further behind than the retention fetches the full snapshot; published/ stays bounded",
        || {
            let c = client("c");
            c.sync();
            let mut serial = 0;
            for i in 0..5 {
                serial = repo.add("many", &format!("1.0.{i}"), "3");
            }
            wait_served(&ns, serial);
            let r = c.sync();
            assert_eq!(r["mode"], "full", "{r}");
            assert!(r["fallback_reason"].is_null(), "{r}");
            assert_eq!(a.sync()["mode"], "full");
            assert_eq!(c.list(), a.list());
            let files = repo.published();
            let count = |suffix: &str| files.iter().filter(|f| f.ends_with(suffix)).count();
            assert_eq!(count(".delta.zst"), 3, "{files:?}");
            assert_eq!(count(".db.zst"), 2, "{files:?}");
            assert_eq!(count(".json"), 2, "{files:?}");
            let d = client("d");
            d.sync();
            repo.add("more", "1.0.0", "3");
            wait_served(&ns, repo.latest());
            assert_eq!(d.sync()["mode"], "delta");
        },
    );

    step(
        "A client of index format 1 is told to upgrade; a format-1 local state re-syncs in full once",
        || {
            let (code, body) = http_get(&ns, &format!("http://{HTTP}/index.db"), None);
            assert_eq!(code, 410);
            assert!(String::from_utf8_lossy(&body).contains("upgrade dist"));
            let state = a.root.join("index/state.json");
            let mut v: serde_json::Value =
                serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
            let obj = v.as_object_mut().unwrap();
            obj.remove("format");
            obj.remove("content");
            fs::write(&state, serde_json::to_vec(&v).unwrap()).unwrap();
            assert_eq!(a.sync()["mode"], "full");
            assert_eq!(a.sync()["mode"], "unchanged");
        },
    );
    drop(server);
}
