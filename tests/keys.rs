//! The repository key over time (issue 22), against a real `dist serve` in a network namespace
//! this test makes: a key swapped in client.yaml binds at once (nothing installs from the copy
//! the old key verified until a sync verified it with the new one); `dist key rotate` is
//! followed by a client that was offline for ten serials and two rotations; `dist key revoke`
//! makes a client refuse the old key, even for a freshly signed index and even when configured
//! by hand; forged rotation statements move nobody.

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
use dist::index::keys::{KeyLog, SignedStatement, Statement};
use dist::index::sign::{Signed, SigningKey};
use netns::Netns;
use nsclient::Client;
use server::{wait_served, Server, SERVER_IP};

struct Repo {
    root: PathBuf,
    pkgs: PathBuf,
}

impl Repo {
    fn dist(&self, args: &[&str]) -> std::process::Output {
        run_ok(dist().arg("--root").arg(&self.root).args(args))
    }

    fn add(&self, name: &str) -> u64 {
        let d = write_package(
            &self.pkgs.join(name),
            name,
            "1.0.0",
            "",
            ("data.txt", name.as_bytes()),
            "#!/bin/sh\nexit 0\n",
        );
        self.dist(&["add", &d.display().to_string()]);
        self.latest()
    }

    fn latest(&self) -> u64 {
        fs::read_to_string(self.root.join("published/LATEST"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        stdout_json(&self.dist(args))
    }

    /// Signs the newest manifest again with `key` (what someone holding that key can serve).
    fn resign_latest(&self, key: &SigningKey) {
        let serial = self.latest();
        let path = self.root.join(format!("published/{serial}.json"));
        let bytes = fs::read(&path).unwrap();
        let m = dist::index::wire::Manifest::parse(&bytes).unwrap();
        let signed = Signed {
            format: m.format,
            serial: m.serial,
            created: m.created,
            repository: dist::repo::Repo::new(&self.root).repository_id().unwrap(),
        };
        let sig = key.sign(&bytes, &signed).unwrap();
        fs::write(
            self.root.join(format!("published/{serial}.json.minisig")),
            sig,
        )
        .unwrap();
    }
}

fn set_key(root: &Path, key: &str) {
    let p = root.join("client.yaml");
    let text = fs::read_to_string(&p).unwrap();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("public_key:") {
                format!("public_key: {key}")
            } else {
                l.to_string()
            }
        })
        .collect();
    fs::write(p, out.join("\n") + "\n").unwrap();
}

fn id_of(key: &str) -> String {
    dist::index::keys::PublicKey::parse(key)
        .unwrap()
        .id()
        .to_string()
}

#[test]
fn keys_bind_rotate_and_revoke_issue_22() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo {
        root: tmp.path().join("repo"),
        pkgs: tmp.path().join("pkgs"),
    };
    repo_init(&repo.root);
    repo.add("first");
    let k1 = repo_key(&repo.root);
    let ns = Netns::new(&[SERVER_IP]).expect("network namespace");
    let _server = Server::start(&ns, &repo.root, tmp.path().join("serve.log"));
    let client = |name: &str| Client::new(&ns, tmp.path().join(name), &k1, SERVER_IP);
    let a = client("a");
    let offline = client("offline");
    for c in [&a, &offline] {
        let r = c.json(&["sync", "--json"]);
        assert_eq!(r["key"], id_of(&k1), "{r}");
    }

    step("A foreign key in client.yaml binds at once", || {
        let foreign = SigningKey::generate().unwrap().public_base64();
        set_key(&a.root, &foreign);
        let e = a.err(&["install", "first"]);
        assert!(
            e.contains(&id_of(&k1)) && e.contains(&id_of(&foreign)) && e.contains("dist sync"),
            "{e}"
        );
        let before = a.index_files();
        let e = a.err(&["sync"]);
        assert!(e.contains("another key"), "{e}");
        assert_eq!(a.index_files(), before, "a refused sync changed the index");
        assert!(a.err(&["install", "first"]).contains(&id_of(&foreign)));
        set_key(&a.root, &k1);
        a.ok(&["install", "first"]);
    });

    let (k2, k3) = step(
        "Two rotations while a client is offline for ten serials",
        || {
            let r = repo.json(&["key", "rotate", "--json"]);
            assert_eq!(r["old_key_id"], id_of(&k1), "{r}");
            let k2 = r["public_key"].as_str().unwrap().to_string();
            assert_eq!(repo_key(&repo.root), k2);
            assert!(repo
                .root
                .join(format!("keys/retired/{}.key", id_of(&k1)))
                .exists());
            for i in 0..4 {
                repo.add(&format!("mid{i}"));
            }
            let r = repo.json(&["key", "rotate", "--json"]);
            let k3 = r["public_key"].as_str().unwrap().to_string();
            for i in 0..4 {
                repo.add(&format!("late{i}"));
            }
            let serial = repo.latest();
            wait_served(&ns, serial);
            let r = offline.json(&["sync", "--json"]);
            assert_eq!(r["serial"], serial, "{r}");
            assert_eq!(r["previous_serial"].as_u64().unwrap() + 10, serial, "{r}");
            assert_eq!(r["key"], id_of(&k3), "{r}");
            let rotations = r["key_rotations"].as_array().unwrap();
            assert_eq!(rotations.len(), 2, "{r}");
            assert_eq!(rotations[0]["from"], id_of(&k1));
            assert_eq!(rotations[1]["to"], id_of(&k3));
            offline.ok(&["install", "late2"]);
            let again = offline.json(&["sync", "--json"]);
            assert_eq!(again["mode"], "unchanged", "{again}");
            assert_eq!(again["key"], id_of(&k3));
            (k2, k3)
        },
    );

    step("Forged rotation statements move nobody", || {
        let evil = SigningKey::generate().unwrap();
        wait_served(&ns, repo.add("forged"));
        let mut log =
            KeyLog::decode(&fs::read(repo.root.join("published/keys.json")).unwrap()).unwrap();
        let honest = log.clone();
        let st = Statement::Rotation {
            old: k3.clone(),
            new: evil.public_base64(),
            created: 1,
        };
        // Signed by the new key only: the old one never agreed.
        log.statements
            .push(SignedStatement::sign(&st, &[&evil]).unwrap());
        fs::write(repo.root.join("published/keys.json"), log.encode().unwrap()).unwrap();
        repo.resign_latest(&evil);
        let before = offline.index_files();
        let e = offline.err(&["sync"]);
        assert!(e.contains("another key"), "{e}");
        assert_eq!(offline.index_files(), before);
        fs::write(
            repo.root.join("published/keys.json"),
            honest.encode().unwrap(),
        )
        .unwrap();
        repo.resign_latest(&SigningKey::load(&repo.root).unwrap());
    });

    step(
        "A revoked key is refused, even freshly signed, even configured by hand",
        || {
            let r = repo.json(&["key", "revoke", &id_of(&k2), "--json"]);
            assert_eq!(r["key_id"], id_of(&k2), "{r}");
            let e = run_err(
                dist()
                    .arg("--root")
                    .arg(&repo.root)
                    .args(["key", "revoke", &k3]),
            );
            assert!(e.contains("current signing key"), "{e}");
            wait_served(&ns, repo.latest());
            let r = offline.json(&["sync", "--json"]);
            assert_eq!(r["revoked_keys"], serde_json::json!([id_of(&k2)]), "{r}");
            // Whoever still holds k2 signs the newest index with it.
            let k2_secret = repo.root.join(format!("keys/retired/{}.key", id_of(&k2)));
            let stolen = SigningKey::read(&k2_secret).unwrap();
            repo.add("after");
            repo.resign_latest(&stolen);
            wait_served(&ns, repo.latest());
            let e = offline.err(&["sync"]);
            assert!(e.contains("another key"), "{e}");
            set_key(&offline.root, &k2);
            let e = offline.err(&["sync"]);
            assert!(e.contains("revoked"), "{e}");
            assert!(offline.err(&["install", "first"]).contains("revoked"));
            set_key(&offline.root, &k1);
            offline.ok(&["list", "--installed"]);
            repo.resign_latest(&SigningKey::load(&repo.root).unwrap());
            let r = offline.json(&["sync", "--json"]);
            assert_eq!(r["key"], id_of(&k3), "{r}");
            offline.ok(&["install", "after"]);
        },
    );
}
