//! The client against a real `dist serve` (opentracker, transmission-daemon, HTTP) in a network
//! namespace this test makes: every verb, both transports, and the failures that must change
//! nothing (bad signature, foreign key, replayed older serial, corrupted object from a malicious
//! web seed, failing install script).

mod common;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/client.rs"]
mod nsclient;
#[path = "common/server.rs"]
mod server;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use netns::Netns;
use nsclient::Client;
use server::{Server, SERVER_IP};

/// What only this test asks of a client.
impl Client<'_> {
    fn current(&self) -> Option<PathBuf> {
        fs::read_link(self.root.join("current")).ok()
    }

    fn run_hello(&self) -> String {
        let o = Command::new(self.root.join("current/bin/hello"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

fn package(dir: &Path, name: &str, version: &str, install: &str) -> PathBuf {
    let d = dir.join(format!("{name}-{version}"));
    fs::create_dir_all(d.join("assets/bin")).unwrap();
    fs::create_dir_all(d.join("scripts")).unwrap();
    fs::write(
        d.join("manifest.yaml"),
        format!("name: {name}\nversion: {version}\n"),
    )
    .unwrap();
    fs::write(
        d.join("assets/bin").join(name),
        format!("#!/bin/sh\necho {name} {version}\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        d.join("assets/bin").join(name),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::write(d.join("assets/payload.bin"), vec![7u8; 64 * 1024]).unwrap();
    fs::write(d.join("scripts/install.sh"), install).unwrap();
    fs::write(d.join("scripts/uninstall.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    d
}

fn add(root: &Path, dirs: &[PathBuf]) {
    run_ok(
        dist()
            .arg("--root")
            .arg(root)
            .args(["add", "--create"])
            .args(dirs),
    );
}

#[test]
fn every_verb_both_transports_and_failures_that_change_nothing() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    add(
        &repo,
        &[
            fixture("hello-1.0.0"),
            fixture("hello-1.1.0"),
            fixture("hello-2.0.0-rc.1"),
            fixture("nested-0.3.0+build.7"),
        ],
    );
    let key = repo_key(&repo);
    let ns =
        Netns::new(&[SERVER_IP, "10.77.0.2", "10.77.0.3", "10.77.0.4"]).expect("network namespace");
    let server = Server::start(&ns, &repo, tmp.path().join("serve.log"));

    let a = Client::new(&ns, tmp.path().join("a"), &key, "10.77.0.2");
    step(
        "sync: changed, then a conditional GET that costs no body",
        || {
            let s = a.json(&["sync", "--json"]);
            assert_eq!(s["changed"], true);
            assert!(s["bytes"].as_u64().unwrap() > 0);
            let serial = s["serial"].as_u64().unwrap();
            let s = a.json(&["sync", "--json"]);
            assert_eq!(s["changed"], false);
            assert_eq!(s["bytes"], 0);
            assert_eq!(s["serial"], serial);
        },
    );
    step(
        "Dry run changes nothing; plain NAME is the highest non-pre-release",
        || {
            let plan = a.json(&["install", "hello", "--dry-run", "--json"]);
            assert_eq!(plan[0]["version"], "1.1.0");
            assert!(a.current().is_none());
        },
    );
    step("install over http", || {
        let r = a.json(&["install", "hello", "--transport", "http", "--json"]);
        assert_eq!(r[0]["name"], "hello");
        assert_eq!(r[0]["version"], "1.1.0");
        assert_eq!(r[0]["transport"], "http");
        assert_eq!(
            r[0]["bytes_from_webseed"].as_u64().unwrap()
                + r[0]["bytes_from_peers"].as_u64().unwrap(),
            r[0]["bytes_from_webseed"].as_u64().unwrap()
        );
        assert_eq!(a.run_hello(), "HELLO, WORLD 1.1.0");
        for phase in ["resolve", "fetch", "verify", "unpack", "scripts", "switch"] {
            assert!(r[0]["phases_ms"][phase].is_u64(), "no {phase} time in {r}");
        }
        let listed = a.json(&["list", "--installed", "--json"]);
        assert_eq!(listed[0]["name"], "hello");
        assert_eq!(listed[0]["version"], "1.1.0");
        let store = PathBuf::from(listed[0]["store_path"].as_str().unwrap());
        assert!(a.root.join("current/hello/assets/README").is_file());
        assert!(
            fs::metadata(store.join("assets/README"))
                .unwrap()
                .permissions()
                .readonly(),
            "store paths are read-only"
        );
    });
    step(
        "install another version over BitTorrent: a downgrade by exact version",
        || {
            let r = a.json(&["install", "hello@1.0.0", "--transport", "torrent", "--json"]);
            assert_eq!(r[0]["transport"], "torrent");
            assert_eq!(r[0]["version"], "1.0.0");
            let total = r[0]["bytes_from_peers"].as_u64().unwrap()
                + r[0]["bytes_from_webseed"].as_u64().unwrap();
            assert!(total > 0, "{r}");
            assert_eq!(a.run_hello(), "hello, world 1.0.0");
        },
    );
    step(
        "When the server cannot hand out the .torrent, the signed magnet link is the fallback",
        || {
            let o = a.ok(&[
                "install",
                "nested",
                "--transport",
                "torrent",
                "--server-url",
                "http://10.77.0.1:9",
                "--json",
            ]);
            assert!(String::from_utf8_lossy(&o.stderr).contains("falling back to the magnet link"));
            assert_eq!(stdout_json(&o)[0]["transport"], "torrent");
            assert!(a
                .root
                .join("current/nested/assets/lib/libnested.so.1")
                .is_file());
            a.ok(&["uninstall", "nested"]);
        },
    );
    step(
        "A requirement picks the highest match, pre-releases only when asked for",
        || {
            let r = a.json(&[
                "install",
                "hello@>=2.0.0-rc.1",
                "--transport",
                "http",
                "--json",
            ]);
            assert_eq!(r[0]["version"], "2.0.0-rc.1");
            let gens = a.json(&["generations", "--json"]);
            let gens = gens.as_array().unwrap();
            assert_eq!(gens.len(), 5);
            assert_eq!(gens[4]["current"], true);
            assert_eq!(gens[4]["packages"][0]["version"], "2.0.0-rc.1");
            assert_eq!(gens[0]["packages"][0]["name"], "hello");
            assert_eq!(gens[0]["packages"][0]["version"], "1.1.0");
        },
    );
    step("rollback to the previous, then to a number", || {
        a.ok(&["rollback"]);
        assert_eq!(a.run_hello(), "hello, world 1.0.0");
        a.ok(&["rollback", "--to", "1"]);
        assert_eq!(a.run_hello(), "HELLO, WORLD 1.1.0");
        let gens = a.json(&["generations", "--json"]);
        assert_eq!(gens[0]["current"], true);
        let err = a.err(&["rollback", "--to", "99"]);
        assert!(err.contains("no generation 99"), "{err}");
    });
    step("info shows every version and the installed one", || {
        let info = a.json(&["info", "hello", "--json"]);
        assert_eq!(info["installed"], "1.1.0");
        assert_eq!(info["versions"].as_array().unwrap().len(), 3);
    });
    step("uninstall: a new generation without it", || {
        a.ok(&["uninstall", "hello"]);
        assert!(!a.root.join("current/hello").exists());
        assert_eq!(
            a.json(&["list", "--installed", "--json"])
                .as_array()
                .unwrap()
                .len(),
            0
        );
        let err = a.err(&["uninstall", "hello"]);
        assert!(err.contains("not installed"), "{err}");
    });
    step("Reinstall comes from the store, no download", || {
        let r = a.json(&["install", "hello@1.1.0", "--json"]);
        assert_eq!(r[0]["source"], "store");
    });
    step(
        "The daemon keeps seeding what was installed; `daemon stop` is graceful",
        || {
            let st = a.json(&["daemon", "status", "--json"]);
            assert_eq!(st["running"], true);
            assert!(!st["torrents"].as_array().unwrap().is_empty());
        },
    );
    step(
        "Two packages over BitTorrent in one install: added together, awaited together",
        || {
            let e = Client::new(&ns, tmp.path().join("e"), &key, "10.77.0.4");
            e.ok(&["sync"]);
            let r = e.json(&[
                "install",
                "hello@1.0.0",
                "nested",
                "--transport",
                "torrent",
                "--json",
            ]);
            assert_eq!(r.as_array().unwrap().len(), 2, "{r}");
            for p in r.as_array().unwrap() {
                assert_eq!(p["transport"], "torrent", "{r}");
                assert_eq!(p["source"], "fetch", "{r}");
                assert!(p["phases_ms"]["verify"].is_u64(), "{r}");
            }
            assert_eq!(e.run_hello(), "hello, world 1.0.0");
            assert!(e.root.join("current/nested").is_dir());
            let gens = e.json(&["generations", "--json"]);
            assert_eq!(
                gens.as_array().unwrap().len(),
                1,
                "one install, one generation"
            );
        },
    );

    step(
        "Ctrl-C during a BitTorrent install: nothing switches, nothing is left downloading (issue 9)",
        || {
            let f = Client::new(&ns, tmp.path().join("f"), &key, "10.77.0.4");
            f.ok(&["sync"]);
            let rec = dist::index::record::Snapshot::open_local(&f.root.join("index/index.db"))
                .unwrap()
                .versions("hello")
                .unwrap()
                .into_iter()
                .find(|r| r.version.to_string() == "2.0.0-rc.1")
                .unwrap()
                .clone();
            let child = ns
                .command(dist_bin())
                .arg("--root")
                .arg(&f.root)
                .args(["install", "hello@2.0.0-rc.1", "--transport", "torrent"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let downloads = f.root.join("downloads").join(rec.infohash.to_hex());
            wait_until("the torrent to be added", Duration::from_secs(30), || {
                downloads.exists().then_some(()).ok_or_else(|| "not yet".to_string())
            });
            run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && err.contains("interrupted"), "{err}");
            assert!(f.current().is_none());
            let st = f.json(&["daemon", "status", "--json"]);
            let left: Vec<&serde_json::Value> = st["torrents"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["infohash"] == rec.infohash.to_hex())
                .collect();
            assert!(left.is_empty(), "still in the daemon: {st}");
        },
    );

    // --- failures that change nothing -----------------------------------------------------
    let before = a.current();
    let pkgs = tmp.path().join("pkgs");
    step("A failing install script", || {
        add(
            &repo,
            &[
                package(
                    &pkgs,
                    "broken",
                    "1.0.0",
                    "#!/bin/sh\necho 'cannot configure' >&2\nexit 3\n",
                ),
                package(&pkgs, "victim", "1.0.0", "#!/bin/sh\nexit 0\n"),
            ],
        );
        server.wait_healthy(&ns);
        a.ok(&["sync"]);
        let err = a.err(&["install", "broken", "--transport", "http"]);
        assert!(
            err.contains("install script of broken@1.0.0 failed")
                && err.contains("cannot configure"),
            "{err}"
        );
        assert_eq!(a.current(), before);
    });
    step(
        "A malicious web seed serves corrupted bytes: verification refuses them",
        || {
            let rec = dist::index::record::Snapshot::open_local(&a.root.join("index/index.db"))
                .unwrap()
                .versions("victim")
                .unwrap()[0]
                .clone();
            let obj = repo.join("objects").join(rec.blake3.rel_path());
            let good = fs::read(&obj).unwrap();
            let mut bytes = good.clone();
            bytes[3000] ^= 0x55;
            // A new inode under the object's name: the HTTP server serves the bad bytes, while
            // the seeder's hard link keeps the good ones (corrupting in place made transmission
            // re-check its copy and stop seeding, which broke the later health waits).
            let replace = |with: &[u8]| {
                let tmp = obj.with_extension("replacing");
                fs::write(&tmp, with).unwrap();
                fs::rename(&tmp, &obj).unwrap();
            };
            replace(&bytes);
            let err = a.err(&["install", "victim", "--transport", "http"]);
            assert!(
                // Issue 25: the download is hashed as it arrives, and the server named.
                err.contains("sent bad data for victim@1.0.0"),
                "{err}"
            );
            assert_eq!(a.current(), before);
            assert!(!a.root.join("current/victim").exists());
            let store_entries: Vec<String> = fs::read_dir(a.root.join("store"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(
                !store_entries.iter().any(|n| n.contains("victim")),
                "{store_entries:?}"
            );
            replace(&good);
        },
    );
    let latest = step(
        "A tampered signature on a new snapshot: sync refuses and keeps the local index",
        || {
            let b = Client::new(&ns, tmp.path().join("b"), &key, "10.77.0.3");
            add(
                &repo,
                &[package(&pkgs, "extra", "1.0.0", "#!/bin/sh\nexit 0\n")],
            );
            server.wait_healthy(&ns);
            let latest: u64 = fs::read_to_string(repo.join("published/LATEST"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let sig_path = repo.join(format!("published/{latest}.json.minisig"));
            let good_sig = fs::read(&sig_path).unwrap();
            let mut lines: Vec<String> = String::from_utf8(good_sig.clone())
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            lines[2] = lines[2].replace("serial=", "serial=9");
            fs::write(&sig_path, lines.join("\n") + "\n").unwrap();
            let idx_a = a.index_files();
            let err = a.err(&["sync"]);
            assert!(err.contains("verification failed"), "{err}");
            assert_eq!(
                a.index_files(),
                idx_a,
                "a refused sync changed the local index"
            );
            let err = b.err(&["sync"]);
            assert!(err.contains("verification failed"), "{err}");
            assert!(!b.root.join("index/index.db").exists());
            fs::write(&sig_path, &good_sig).unwrap();
            latest
        },
    );
    step("A foreign key", || {
        let other = tmp.path().join("other-repo");
        repo_init(&other);
        let foreign = repo_key(&other);
        let c = Client::new(&ns, tmp.path().join("c"), &foreign, "10.77.0.4");
        let err = c.err(&["sync"]);
        assert!(err.contains("verification failed"), "{err}");
        assert!(!c.root.join("index/index.db").exists());
    });
    step("An oversized index is refused before it is parsed; a stale one is installed with a warning", || {
        let d = Client::new(&ns, tmp.path().join("d"), &key, "10.77.0.4");
        let yaml = fs::read_to_string(d.root.join("client.yaml")).unwrap();
        fs::write(
            d.root.join("client.yaml"),
            format!("{yaml}max_index_size: 1000\n"),
        )
        .unwrap();
        let err = d.err(&["sync"]);
        assert!(err.contains("larger than the 1000-byte limit"), "{err}");
        assert!(!d.root.join("index/index.db").exists());
        fs::write(
            d.root.join("client.yaml"),
            format!("{yaml}stale_after: 0\n"),
        )
        .unwrap();
        // `stale_after: 0`: stale once the clock has passed the second it was published in.
        let published = std::time::SystemTime::now();
        wait_until("the next second", Duration::from_secs(5), || {
            let secs = |t: std::time::SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
            };
            (secs(std::time::SystemTime::now()) > secs(published))
                .then_some(())
                .ok_or_else(|| format!("{published:?}"))
        });
        let o = d.ok(&["sync"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("warning: the index was published"), "{err}");

    });
    step(
        "An older (validly signed) serial replayed: refused as a rollback attack",
        || {
            a.ok(&["sync"]);
            fs::write(repo.join("published/LATEST"), format!("{}\n", latest - 1)).unwrap();
            server.wait_healthy(&ns);
            let idx_a = a.index_files();
            let err = a.err(&["sync"]);
            assert!(err.contains("older than the serial"), "{err}");
            assert_eq!(a.index_files(), idx_a);
            fs::write(repo.join("published/LATEST"), format!("{latest}\n")).unwrap();
        },
    );
    step("daemon stop leaves no daemon of this client", || {
        a.ok(&["daemon", "stop"]);
        assert_eq!(a.json(&["daemon", "status", "--json"])["running"], false);
    });
    drop(server);
}
