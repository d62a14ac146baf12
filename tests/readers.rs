//! Read-only commands never wait for the root's lock (issue 23, finding 1): while an install
//! holds it (its install script is still running), `list`, `search`, `info`, `generations`,
//! `outdated`, `files`, `export` and `config show` answer at once from the consistent state the
//! install has not switched yet; the install then finishes as ever.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use local::Local;

#[test]
fn readers_do_not_wait_for_an_install_issue_23() {
    let tmp = tempfile::tempdir().unwrap();
    let pkgs = tmp.path().join("pkgs");
    let gate = tmp.path().join("gate");
    let started = tmp.path().join("started");
    // The install script says it started, then waits (bounded) for the test to open the gate.
    let script = format!(
        "#!/bin/sh\ntouch {}\ni=0\nwhile [ ! -e {} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n",
        started.display(),
        gate.display()
    );
    let slow = write_package(
        &pkgs.join("slow"),
        "slow",
        "1.0.0",
        "",
        ("a.txt", b"a"),
        &script,
    );
    let quick = write_package(
        &pkgs.join("quick"),
        "quick",
        "1.0.0",
        "",
        ("b.txt", b"b"),
        "#!/bin/sh\n",
    );
    repo_init(&tmp.path().join("repo"));
    run_ok(
        dist()
            .arg("--root")
            .arg(tmp.path().join("repo"))
            .arg("add")
            .args([&slow, &quick]),
    );
    let l = Local::serve(tmp);
    l.ok(&["install", "quick"]);
    let mut install = dist()
        .arg("--root")
        .arg(&l.root)
        .args(["install", "slow"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the install script to start",
        Duration::from_secs(60),
        || started.exists().then_some(()).ok_or("not yet".to_string()),
    );
    let asset = l.root.join("current/quick/assets/b.txt");
    let asset = asset.to_str().unwrap();
    for args in [
        &["list", "--installed", "--json"][..],
        &["search", "qui"],
        &["info", "slow"],
        &["generations"],
        &["outdated"],
        &["files", "quick"],
        &["owner", asset],
        &["why", "quick"],
        &["export"],
        &["config", "show"],
        &["daemon", "status"],
    ] {
        let mut all = vec!["--lock-timeout", "0"];
        all.extend_from_slice(args);
        let o = l.run(&all);
        assert!(
            o.status.success(),
            "dist {args:?} during an install: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // What they read is the state before the switch.
    let listed = stdout_json(&l.ok(&["list", "--installed", "--json"]));
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["quick"]);
    // A writer still waits for the install, and says so.
    let (_, e) = l.err(&["--lock-timeout", "0", "uninstall", "quick"]);
    assert!(e.contains("lock"), "{e}");
    fs::write(&gate, b"").unwrap();
    assert!(install.wait().unwrap().success());
    let listed = stdout_json(&l.ok(&["list", "--installed", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}
