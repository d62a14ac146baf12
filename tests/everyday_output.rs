//! Everyday use, second pass (issue 23): what a user is told. The seeding an install leaves
//! behind, a transfer that does not move, output that reads one way (sizes, plurals, columns,
//! colour, `--verbose`, holds, dates, dry runs), and what users look for (the PATH hint,
//! `dist doctor`, proxies, `download_limit`, the catalog's `dist init` line). Against a real HTTP
//! server holding a repository's published files, the real libtorrent seeder, a real proxy.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use files::FileServer;

/// A repository of command packages, published and served over HTTP (with each package's
/// `.torrent` at `/torrents/<infohash>.torrent`, as `dist serve` hands it out), and a client
/// root configured for it; the client's seeding daemon is stopped on drop.
struct Env {
    tmp: tempfile::TempDir,
    server: FileServer,
    client: local::ClientRoot,
    /// `dist pack --json` of each package, by name.
    packed: BTreeMap<String, serde_json::Value>,
}

impl Env {
    /// Packages `names` (each with the command `bin/<name>`), published; the client's
    /// `client.yaml` names the server and key, binds 127.0.0.1, and adds `yaml`.
    fn new(names: &[&str], yaml: &str) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, www, pkgs) = (
            tmp.path().join("repo"),
            tmp.path().join("www"),
            tmp.path().join("pkgs"),
        );
        let dirs: Vec<PathBuf> = names
            .iter()
            .map(|n| local::command_package(&pkgs, n, n))
            .collect();
        run_ok(dist().arg("--root").arg(&repo).arg("add").args(&dirs));
        published::lay_out(&repo, &www);
        fs::create_dir_all(www.join("torrents")).unwrap();
        let mut packed = BTreeMap::new();
        for (n, d) in names.iter().zip(&dirs) {
            let out = tmp.path().join(format!("{n}.tar"));
            let v = stdout_json(&run_ok(
                dist().args(["pack", "--json", "-o"]).arg(&out).arg(d),
            ));
            let ih = v["infohash"].as_str().unwrap();
            fs::copy(
                v["torrent"].as_str().unwrap(),
                www.join(format!("torrents/{ih}.torrent")),
            )
            .unwrap();
            packed.insert(n.to_string(), v);
        }
        let server = FileServer::start(&www);
        let client = local::ClientRoot {
            root: tmp.path().join("client"),
        };
        fs::create_dir_all(&client.root).unwrap();
        fs::write(
            client.root.join("client.yaml"),
            format!(
                "server_url: {}\npublic_key: {}\nbind_address: 127.0.0.1\n{yaml}",
                server.url,
                repo_key(&repo)
            ),
        )
        .unwrap();
        client.ok(&["sync"]);
        Env {
            tmp,
            server,
            client,
            packed,
        }
    }

    fn www(&self) -> PathBuf {
        self.tmp.path().join("www")
    }
}

impl std::ops::Deref for Env {
    type Target = local::ClientRoot;
    fn deref(&self) -> &local::ClientRoot {
        &self.client
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.client.run(&["daemon", "stop"]);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_first_install_that_seeds_says_so_and_daemon_status_shows_it_issue_23_finding_2() {
    let env = Env::new(&["hello", "world"], "transport: http\nengine: libtorrent\n");
    let first = env.ok(&["install", "hello"]);
    let err = stderr(&first);
    // What seeds, that it keeps running, its limit, and the three ways out, in one notice.
    for want in [
        "note: hello@1.0.0 is now seeded to other clients by a background process",
        "libtorrent seeder",
        "keeps running after dist exits",
        "at most 12500 kB/s (upload_limit)",
        "`dist daemon status`",
        "`dist daemon stop`",
        "`seed: false` in",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // Said once: the next install, seeded by the same process, says nothing of it.
    let second = env.ok(&["install", "world"]);
    assert!(!stderr(&second).contains("seeded"), "{}", stderr(&second));
    // `daemon status` is where to look: the process, its cap, what it seeds, how to stop it.
    wait_until(
        "the seeder lists both",
        std::time::Duration::from_secs(30),
        || {
            let text = stdout(&env.ok(&["daemon", "status"]));
            match text.contains("hello-1.0.0.tar") && text.contains("world-1.0.0.tar") {
                true => Ok(text),
                false => Err(text),
            }
        },
    );
    let text = stdout(&env.ok(&["daemon", "status"]));
    for want in [
        "libtorrent seeder (`dist daemon run`), pid ",
        "seeding 2 objects",
        "upload at most 12500 kB/s (upload_limit)",
        "stop it: dist daemon stop",
        "`seed: false`",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let v = stdout_json(&env.ok(&["daemon", "status", "--json"]));
    assert_eq!(v["upload_limit"], 12500, "{v}");
    assert_eq!(v["engine"], "libtorrent");
    // Stopped, the next install that seeds starts it again, and says so again.
    env.ok(&["daemon", "stop"]);
    let text = stdout(&env.ok(&["daemon", "status"]));
    assert!(text.contains("nothing is seeding for this root"), "{text}");
    env.ok(&["uninstall", "hello"]);
    env.ok(&["gc", "--keep", "1"]);
    let again = env.ok(&["install", "hello"]);
    assert!(
        stderr(&again).contains("is now seeded"),
        "{}",
        stderr(&again)
    );
    // `seed: false`: no notice, nothing seeds.
    env.ok(&["daemon", "stop"]);
    let yaml = env.root.join("client.yaml");
    let text = fs::read_to_string(&yaml).unwrap();
    fs::write(&yaml, format!("{text}seed: false\n")).unwrap();
    env.ok(&["uninstall", "world"]);
    env.ok(&["gc", "--keep", "1"]);
    let leech = env.ok(&["install", "world"]);
    assert!(!stderr(&leech).contains("seeded"), "{}", stderr(&leech));
    assert_eq!(
        stdout_json(&env.ok(&["daemon", "status", "--json"]))["running"],
        false
    );
}

/// A loopback port nothing listens on (bound, then let go).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_transfer_that_does_not_move_says_why_issue_23_finding_7() {
    let env = Env::new(
        &["hello"],
        "transport: torrent\nengine: libtorrent\nfetch_timeout: 22\n",
    );
    // The server hands out a `.torrent` whose tracker is down and whose web seed (the server
    // itself) no longer has the object: nothing can move.
    let tracker = format!("http://127.0.0.1:{}/announce", dead_port());
    let v = &env.packed["hello"];
    let (ih, blake3) = (
        v["infohash"].as_str().unwrap(),
        v["blake3"].as_str().unwrap(),
    );
    let web_seed = format!(
        "{}/objects/{}/{}",
        env.server.url,
        &blake3[..2],
        &blake3[2..]
    );
    let info = dist::format::torrent::Info::parse_torrent(
        &fs::read(v["torrent"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    fs::write(
        env.www().join(format!("torrents/{ih}.torrent")),
        info.render(
            std::slice::from_ref(&tracker),
            std::slice::from_ref(&web_seed),
        ),
    )
    .unwrap();
    fs::remove_file(env.www().join("objects")).unwrap();
    let o = env.run(&["install", "hello"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    // After 15 s without a byte: what dist sees of each source, and what to try.
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: hello@1.0.0: nothing received for 1"))
        .unwrap_or_else(|| panic!("no stall warning in:\n{err}"));
    for want in [
        "0 peers connected",
        &format!("tracker {tracker} unreachable: "),
        "refused",
        &format!("web seed {web_seed} fails: HTTP 404"),
        "no peer is known (no tracker answers) and no web seed serves it",
    ] {
        assert!(warning.contains(want), "missing {want:?} in:\n{warning}");
    }
    // The timeout's error says it again, with the advice.
    let error = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    for want in [
        "timed out after 22 s downloading hello@1.0.0",
        &format!("tracker {tracker} unreachable"),
        "HTTP 404",
        "no web seed serves it",
    ] {
        assert!(error.contains(want), "missing {want:?} in:\n{error}");
    }
}
