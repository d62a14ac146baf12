//! Regression tests for what an outside red team found (issue 9), each named after its finding.
//! The repository is real (`dist add`); a real HTTP server on loopback serves its published
//! index and objects; clients install over HTTP (no `.torrent` is served, so no daemon starts).

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{
    dist, output_within, repo_init, repo_key, require_tool, run_ok, stdout_json, wait_until,
};
use files::FileServer;

/// A package directory with an install script and, optionally, commands in `assets/bin`.
fn package(dir: &Path, name: &str, install: &str, bins: &[&str]) -> PathBuf {
    let d = dir.join(name);
    fs::create_dir_all(d.join("assets/bin")).unwrap();
    fs::create_dir_all(d.join("scripts")).unwrap();
    fs::write(
        d.join("manifest.yaml"),
        format!("name: {name}\nversion: 1.0.0\n"),
    )
    .unwrap();
    fs::write(d.join("assets/README"), format!("{name}\n")).unwrap();
    for b in bins {
        let p = d.join("assets/bin").join(b);
        fs::write(&p, "#!/bin/sh\necho tool\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(d.join("scripts/install.sh"), install).unwrap();
    fs::write(d.join("scripts/uninstall.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    d
}

/// A repository holding `pkgs`, served over HTTP, and its public key.
struct Served {
    repo: PathBuf,
    key: String,
    server: FileServer,
}

fn serve(tmp: &Path, pkgs: &[PathBuf]) -> Served {
    let repo = tmp.join("repo");
    repo_init(&repo);
    run_ok(dist().arg("--root").arg(&repo).arg("add").args(pkgs));
    let key = repo_key(&repo);
    let www = tmp.join("www");
    fs::create_dir_all(&www).unwrap();
    published::lay_out(&repo, &www);
    Served {
        repo,
        key,
        server: FileServer::start(&www),
    }
}

impl Served {
    /// `dist --root ROOT --server-url … --public-key …` with a clean environment.
    fn client(&self, root: &Path) -> Command {
        let mut c = dist();
        c.arg("--root")
            .arg(root)
            .args(["--server-url", &self.server.url, "--public-key", &self.key])
            .stdin(Stdio::null());
        c
    }

    fn synced(&self, root: &Path) -> PathBuf {
        run_ok(self.client(root).arg("sync"));
        root.to_path_buf()
    }
}

/// A served repository of one package (no commands) and a client root synced with it.
fn one_package(tmp: &Path, name: &str, install: &str) -> (Served, PathBuf) {
    let s = serve(tmp, &[package(&tmp.join("pkgs"), name, install, &[])]);
    let root = s.synced(&tmp.join("client"));
    (s, root)
}

fn failed(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "succeeded, stderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Whether a process whose command line contains `marker` is alive.
fn running(marker: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", marker])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn gc_in_a_root_that_is_also_a_repository_keeps_what_it_publishes_issue_9() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    repo_init(&root);
    run_ok(
        dist()
            .arg("--root")
            .arg(&root)
            .arg("add")
            .arg(common::fixture("hello-1.0.0")),
    );
    let objects = || -> Vec<PathBuf> {
        fs::read_dir(root.join("objects"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().len() == 2)
            .flat_map(|e| fs::read_dir(e.path()).unwrap().flatten().map(|f| f.path()))
            .collect()
    };
    let before = objects();
    assert_eq!(before.len(), 1);
    let r = stdout_json(&run_ok(
        dist().arg("--root").arg(&root).args(["gc", "--json"]),
    ));
    assert_eq!(r["objects_removed"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(objects(), before);
}

#[test]
fn an_install_script_that_never_exits_is_killed_after_script_timeout_issue_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, root) = one_package(
        tmp.path(),
        "hang",
        "#!/bin/sh\necho started\nsleep 987651\n",
    );
    let out = output_within(
        s.client(&root).args([
            "install",
            "hang",
            "--transport",
            "http",
            "--script-timeout",
            "2",
        ]),
        Duration::from_secs(30),
        "the install to give up on its hanging script after script_timeout (2 s)",
    );
    let err = failed(&out);
    assert!(
        err.contains("install script of hang@1.0.0 timed out after 2s"),
        "{err}"
    );
    assert!(
        !root.join("current").exists(),
        "a generation was switched to"
    );
    assert!(
        !running("sleep 987651"),
        "the script's process group was not killed"
    );
    let log = fs::read_to_string(root.join("logs/hang-1.0.0-install.log")).unwrap();
    assert!(log.contains("started"), "{log}");
}

#[test]
fn a_background_child_of_a_script_does_not_hold_up_install_issue_9() {
    let tmp = tempfile::tempdir().unwrap();
    let pkgs = tmp.path().join("pkgs");
    // The child inherits the script's stdout and stderr, as a service started naively would.
    let s = serve(
        tmp.path(),
        &[package(
            &pkgs,
            "service",
            "#!/bin/sh\nsleep 987652 &\necho started\n",
            &[],
        )],
    );
    let root = s.synced(&tmp.path().join("client"));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        output_within(
            s.client(&root)
                .args(["install", "service", "--transport", "http"]),
            Duration::from_secs(30),
            "the install not to wait for its script's background child",
        )
    }));
    let _ = Command::new("pkill").args(["-f", "sleep 987652"]).status();
    let out = out.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(root.join("current/service").exists());
}

#[test]
fn scripts_get_a_clean_environment_and_their_output_is_logged_issue_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, root) = one_package(
        tmp.path(),
        "envy",
        "#!/bin/sh\nenv > \"$DIST_ROOT/env.txt\"\necho hello-from-script\n",
    );
    run_ok(s.client(&root).env("SECRET_TOKEN", "do-not-leak").args([
        "install",
        "envy",
        "--transport",
        "http",
    ]));
    let env = fs::read_to_string(root.join("env.txt")).unwrap();
    assert!(!env.contains("SECRET_TOKEN"), "{env}");
    for var in [
        "DIST_ROOT=",
        "DIST_PACKAGE=envy",
        "DIST_VERSION=1.0.0",
        "DIST_STORE_PATH=",
        "DIST_PROFILE=",
        "PATH=",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(var)),
            "no {var} in:\n{env}"
        );
    }
    let log = fs::read_to_string(root.join("logs/envy-1.0.0-install.log")).unwrap();
    assert!(log.contains("hello-from-script"), "{log}");
}

#[test]
fn ctrl_c_during_an_install_script_switches_nothing_and_kills_the_script_issue_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, root) = one_package(
        tmp.path(),
        "slow",
        "#!/bin/sh\necho started\nsleep 987653\n",
    );
    let mut child = s
        .client(&root)
        .args(["install", "slow", "--transport", "http"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = root.join("logs/slow-1.0.0-install.log");
    wait_until("the script to start", Duration::from_secs(30), || {
        let text = fs::read_to_string(&log).unwrap_or_default();
        text.contains("started").then_some(()).ok_or(text)
    });
    run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    wait_until(
        "the interrupted install to end",
        Duration::from_secs(60),
        || match child.try_wait().unwrap() {
            Some(_) => Ok(()),
            None => Err(format!("pid {} still runs", child.id())),
        },
    );
    let out = child.wait_with_output().unwrap();
    let err = failed(&out);
    assert!(err.contains("interrupted"), "{err}");
    assert!(!root.join("current").exists());
    assert!(!running("sleep 987653"));
}

#[test]
fn a_transmission_partial_file_does_not_poison_an_http_install_issue_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, root) = one_package(tmp.path(), "pt", "#!/bin/sh\n");
    let plan = stdout_json(&run_ok(s.client(&root).args(["list", "--json"])));
    let (ih, size) = (
        plan[0]["infohash"].as_str().unwrap().to_string(),
        plan[0]["size"].as_u64().unwrap(),
    );
    // What a transmission-daemon killed mid-download leaves: a preallocated `NAME.part`.
    let dir = root.join("downloads").join(&ih);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("pt-1.0.0.tar.part"), vec![0u8; size as usize]).unwrap();
    run_ok(
        s.client(&root)
            .args(["install", "pt", "--transport", "http"]),
    );
    assert!(root.join("current/pt").exists());
    // And gc copes with a download entry that is a file, and with trash leftovers.
    fs::write(root.join("downloads").join("ab".repeat(20)), b"stray").unwrap();
    fs::write(root.join("downloads/.trash-x-1"), b"leftover").unwrap();
    run_ok(dist().arg("--root").arg(&root).args(["gc"]));
    assert!(!root.join("downloads").join("ab".repeat(20)).exists());
}

#[test]
fn a_file_conflict_is_found_before_any_install_script_runs_issue_9() {
    let tmp = tempfile::tempdir().unwrap();
    let pkgs = tmp.path().join("pkgs");
    let s = serve(
        tmp.path(),
        &[
            package(&pkgs, "first", "#!/bin/sh\n", &["tool"]),
            package(
                &pkgs,
                "second",
                "#!/bin/sh\ntouch \"$DIST_ROOT/second-ran\"\n",
                &["tool"],
            ),
        ],
    );
    let root = s.synced(&tmp.path().join("client"));
    run_ok(
        s.client(&root)
            .args(["install", "first", "--transport", "http"]),
    );
    let current = fs::read_link(root.join("current")).unwrap();
    let err = failed(
        &s.client(&root)
            .args(["install", "second", "--transport", "http"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("both first and second provide bin/tool"),
        "{err}"
    );
    assert!(
        !root.join("second-ran").exists(),
        "the losing package's script ran"
    );
    assert_eq!(fs::read_link(root.join("current")).unwrap(), current);
    // Now that its files are known (unpacked in the store), the plan itself sees the conflict:
    // `--dry-run` reports it, before any fetch.
    let err = failed(
        &s.client(&root)
            .args(["install", "second", "--dry-run"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("both first and second provide bin/tool"),
        "{err}"
    );
}

#[test]
fn read_only_commands_work_for_a_user_who_cannot_write_the_root_issue_9() {
    require_tool("setpriv");
    if !is_root() {
        eprintln!("skipped: needs root to run a command as another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let s = serve(tmp.path(), &[common::fixture("hello-1.0.0")]);
    let root = s.synced(&tmp.path().join("client"));
    for args in [
        &["list"][..],
        &["search", "hello"],
        &["info", "hello"],
        &["generations"],
    ] {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(common::dist_bin())
            .arg("--root")
            .arg(&root)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dist {args:?} as nobody: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = &s.repo;
}

fn is_root() -> bool {
    String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        == "0"
}
