//! Several packages of one install are fetched over HTTP side by side (issue 11), at most
//! `HTTP_PARALLEL` at once, for `--transport http` and for `auto`'s direct downloads alike. The
//! repository is real (`dist add`); a real HTTP server on loopback serves its published index
//! and objects, and holds each object request until `HTTP_PARALLEL` of them are open together
//! (a client that fetches one object at a time releases that hold only after 15 s, and the
//! server then saw one object request at a time). No `.torrent` is served, so no daemon starts.
//! A failed download and a Ctrl-C while downloads are in flight end the install as before.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    copy_tree, dist, noise, repo_init, repo_key, run_ok, stdout_json, wait_until, write_package,
};
use dist::client::install::HTTP_PARALLEL;
use files::FileServer;

/// More packages than `HTTP_PARALLEL`, requested out of name order.
const NAMES: [&str; 6] = ["pkg-f", "pkg-b", "pkg-d", "pkg-a", "pkg-e", "pkg-c"];

/// How long the server holds an object request waiting for others (a bound, never reached by a
/// client that fetches side by side).
const HOLD: Duration = Duration::from_secs(15);

/// A repository of the [`NAMES`] packages (256 KiB of their own noise each), laid out for the
/// file server in `www`; its public key.
fn repository(tmp: &Path) -> (PathBuf, String) {
    let repo = tmp.join("repo");
    let pkgs: Vec<PathBuf> = NAMES
        .iter()
        .zip(1u64..)
        .map(|(name, seed)| {
            write_package(
                &tmp.join("pkgs").join(name),
                name,
                "1.0.0",
                "",
                ("data.bin", &noise(seed, 256 << 10)),
                "#!/bin/sh\nexit 0\n",
            )
        })
        .collect();
    repo_init(&repo);
    run_ok(dist().arg("--root").arg(&repo).arg("add").args(&pkgs));
    let key = repo_key(&repo);
    (repo, key)
}

/// `dist --root ROOT --server-url URL --public-key KEY ARGS…`, stdin closed.
fn client(root: &Path, server: &FileServer, key: &str, args: &[&str]) -> Command {
    let mut c = dist();
    c.arg("--root")
        .arg(root)
        .args(["--server-url", &server.url, "--public-key", key])
        .args(args)
        .stdin(Stdio::null());
    c
}

#[test]
fn several_objects_are_fetched_side_by_side_at_most_http_parallel_at_once_issue_11() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, key) = repository(tmp.path());
    let www = tmp.path().join("www");
    published::lay_out(&repo, &www);
    // `--transport http` (every object configured for HTTP), then `auto` (every object small,
    // no tracker in the index: each is a direct download the origin admits).
    for (label, transport) in [("http", &["--transport", "http"][..]), ("auto", &[][..])] {
        let server = FileServer::start_overlapping(&www, HTTP_PARALLEL, HOLD);
        let root = tmp.path().join(label);
        run_ok(&mut client(&root, &server, &key, &["sync"]));
        let out = run_ok(&mut client(
            &root,
            &server,
            &key,
            &[&["install", "--json"], transport, &NAMES].concat(),
        ));
        let entries = stdout_json(&out);
        let entries = entries.as_array().unwrap();
        // One entry per package, in the order asked, each fetched over HTTP with its own time.
        let names: Vec<&str> = entries
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, NAMES, "{label}: {entries:?}");
        for e in entries {
            assert_eq!(e["transport"], "http", "{label}: {e}");
            assert!(e["phases_ms"]["fetch"].is_u64(), "{label}: {e}");
            if label == "auto" {
                let why = e["transport_reason"].as_str().unwrap();
                assert!(why.contains("origin admitted"), "{label}: {why}");
            }
        }
        let most = server.most_objects_at_once();
        assert_eq!(
            most,
            HTTP_PARALLEL,
            "{label}: the server saw at most {most} object request(s) open at once, not \
             HTTP_PARALLEL ({HTTP_PARALLEL}) of the {} objects",
            NAMES.len()
        );
    }
}

#[test]
fn a_failed_download_fails_the_install_with_its_own_error_and_switches_nothing_issue_11() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, key) = repository(tmp.path());
    // The objects are a copy (not `lay_out`'s link to the repository's), one of them missing.
    let www = tmp.path().join("www");
    copy_tree(&repo.join("objects"), &www.join("objects"));
    published::lay_out(&repo, &www);
    let missing = fs::read_dir(www.join("objects"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().len() == 2)
        .flat_map(|e| fs::read_dir(e.path()).unwrap().flatten())
        .map(|e| e.path())
        .next()
        .unwrap();
    fs::remove_file(&missing).unwrap();
    let missing = missing
        .strip_prefix(&www)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let server = FileServer::start_overlapping(&www, HTTP_PARALLEL, HOLD);
    let root = tmp.path().join("client");
    run_ok(&mut client(&root, &server, &key, &["sync"]));
    let out = client(
        &root,
        &server,
        &key,
        &[&["install", "--transport", "http"][..], &NAMES].concat(),
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {err}");
    // The download that failed is the reason given, not the others it stopped.
    assert!(err.contains(&missing) && err.contains("404"), "{err}");
    assert!(
        !err.contains("interrupted") && !err.contains("panicked"),
        "{err}"
    );
    assert!(fs::symlink_metadata(root.join("current")).is_err(), "{err}");
    assert_eq!(server.most_objects_at_once(), HTTP_PARALLEL, "{err}");
}

#[test]
fn ctrl_c_while_objects_download_side_by_side_switches_nothing_issue_11() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, key) = repository(tmp.path());
    let www = tmp.path().join("www");
    published::lay_out(&repo, &www);
    // More than the client ever opens at once: every request is held until `release`.
    let server = FileServer::start_overlapping(&www, NAMES.len() + 1, HOLD);
    let root = tmp.path().join("client");
    run_ok(&mut client(&root, &server, &key, &["sync"]));
    let mut child = client(
        &root,
        &server,
        &key,
        &[&["install", "--transport", "http"][..], &NAMES].concat(),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_until(
        "HTTP_PARALLEL object requests in flight",
        Duration::from_secs(30),
        || match server.objects_open() {
            n if n == HTTP_PARALLEL => Ok(()),
            n => Err(format!("{n} open")),
        },
    );
    run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    server.release();
    wait_until("the install to exit", Duration::from_secs(60), || {
        child
            .try_wait()
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} object requests open", server.objects_open()))
    });
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("interrupted") && !err.contains("panicked"),
        "{err}"
    );
    assert!(fs::symlink_metadata(root.join("current")).is_err(), "{err}");
    assert_eq!(server.most_objects_at_once(), HTTP_PARALLEL, "{err}");
}
