//! Real software, repackaged (issue 26): Debian 12's `jq` 1.6 with `libjq` and `libonig` as
//! separate dist packages (`tests/common/debian.rs`), published, synced and installed over
//! HTTP. `ROOT/current/bin/jq` runs from a clean environment even where the system's copies of
//! the libraries are hidden (a private mount namespace binds /dev/null over them); the
//! libraries mapped into the running program are the profile's (`/proc/PID/maps`), its manual
//! is found through `dist env`'s MANPATH, and after an upgrade of `libjq` and a rollback the
//! program maps the library of the generation that is current.

mod common;
#[path = "common/debian.rs"]
mod debian;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// `env -i PATH=ROOT/current/bin:/usr/bin:/bin ARGS`: how a user with nothing set runs it.
fn clean(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("env");
    c.arg("-i")
        .arg(format!(
            "PATH={}:/usr/bin:/bin",
            root.join("current/bin").display()
        ))
        .args(args);
    c
}

/// The store path of the installed `name`.
fn store_path(c: &local::ClientRoot, name: &str) -> PathBuf {
    let v = stdout_json(&c.ok(&["list", "--installed", "--json"]));
    let p = v.as_array().unwrap().iter().find(|p| p["name"] == name);
    PathBuf::from(
        p.unwrap_or_else(|| panic!("{name} is not installed: {v}"))["store_path"]
            .as_str()
            .unwrap(),
    )
}

/// The file `libjq.so.1` resolves to in a store path of libjq.
fn library(store_path: &Path) -> PathBuf {
    std::fs::canonicalize(store_path.join("assets/lib/libjq.so.1")).unwrap()
}

/// The files `jq` (started from the profile, reading a stdin kept open) has mapped whose names
/// start with `prefix` (`libjq.so`), read from `/proc/PID/maps` once the loader mapped one.
fn mapped(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut jq = clean(root, &["jq", "."])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let maps = format!("/proc/{}/maps", jq.id());
    let found = wait_until(
        &format!("{prefix} mapped by jq"),
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&maps).map_err(|e| e.to_string())?;
            let mut paths: Vec<PathBuf> = text
                .lines()
                .filter_map(|l| l.split_whitespace().nth(5))
                .map(PathBuf::from)
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .collect();
            paths.dedup();
            if paths.is_empty() {
                return Err(text);
            }
            Ok(paths)
        },
    );
    jq.stdin.take().unwrap().write_all(b"{}").unwrap();
    assert!(jq.wait().unwrap().success());
    found
}

/// The system's own copies of the libraries (to hide), resolved, each once.
fn system_copies() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in ["/lib", "/usr/lib", "/usr/local/lib", "/lib64", "/usr/lib64"] {
        let mut dirs = vec![PathBuf::from(dir)];
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().contains("-linux-") {
                dirs.push(e.path());
            }
        }
        for d in dirs {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("libjq.so") || name.starts_with("libonig.so") {
                    if let Ok(real) = std::fs::canonicalize(e.path()) {
                        found.push(real);
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn debian_jq_runs_from_the_profile_with_its_own_libraries_issue_26() {
    require_tool("apt-get");
    require_tool("dpkg-deb");
    require_tool("unshare");
    let tmp = tempfile::tempdir().unwrap();
    let pkgs = tmp.path().join("pkgs");
    std::fs::create_dir_all(&pkgs).unwrap();
    let dirs = debian::jq_packages(Path::new(env!("CARGO_TARGET_TMPDIR")), &pkgs)
        .unwrap_or_else(|e| panic!("{e}"));
    let (repo, www) = (tmp.path().join("repo"), tmp.path().join("www"));
    repo_init(&repo);
    run_ok(dist().arg("--root").arg(&repo).arg("add").args(&dirs[..3]));
    let c = local::Local::serve(tmp);
    let root = c.root.clone();
    c.ok(&["install", "jq"]);

    step("jq runs from a clean environment", || {
        let o = run_ok(&mut clean(&root, &["jq", "--version"]));
        assert_eq!(String::from_utf8_lossy(&o.stdout), "jq-1.6\n");
        let mut jq = clean(&root, &["jq", "-c", ".a | map(. + 1)"]);
        let o = jq
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        o.stdin
            .as_ref()
            .unwrap()
            .write_all(br#"{"a": [1, 2]}"#)
            .unwrap();
        let o = o.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), "[2,3]\n");
    });

    step(
        "it runs where the system's copies are hidden, and the store's alone does not",
        || {
            let root_user = rustix::process::geteuid().is_root();
            let ns: &[&str] = if root_user {
                &["--mount"]
            } else {
                &["--user", "--map-root-user", "--mount"]
            };
            let script = "for f in \"$@\"; do mount --bind /dev/null \"$f\" || exit 99; done\n\
                      \"$STORE_JQ\" --version 2>&1; echo \"direct: $?\"\n\
                      env -i PATH=\"$PROFILE_PATH\" jq --version 2>&1; echo \"profile: $?\"\n";
            let o = run_ok(
                Command::new("unshare")
                    .args(ns)
                    .args(["--propagation", "private", "sh", "-c", script, "sh"])
                    .args(system_copies())
                    .env("STORE_JQ", store_path(&c, "jq").join("assets/bin/jq"))
                    .env(
                        "PROFILE_PATH",
                        format!("{}:/usr/bin:/bin", root.join("current/bin").display()),
                    ),
            );
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
                out.contains("error while loading shared libraries"),
                "{out}"
            );
            assert!(out.contains("jq-1.6\nprofile: 0\n"), "{out}");
        },
    );

    step("the libraries mapped are the profile's", || {
        let libjq = store_path(&c, "libjq");
        assert_eq!(mapped(&root, "libjq.so"), [library(&libjq)]);
        let onig = mapped(&root, "libonig.so");
        assert!(
            onig.len() == 1 && onig[0].starts_with(store_path(&c, "libonig")),
            "{onig:?}"
        );
    });

    step("man finds its page through dist env's MANPATH", || {
        require_tool("man");
        let o = run_ok(
            Command::new("bash")
                .args([
                    "-c",
                    "eval \"$(\"$DIST\" --root \"$ROOT\" env)\" && man -w jq",
                ])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HOME", &root)
                .env("DIST", dist_bin())
                .env("ROOT", &root),
        );
        // The profile's page (man-db prints it through the profile or resolved).
        let found = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        assert!(found.starts_with(&root), "{}", found.display());
        let page = store_path(&c, "jq").join("assets/share/man/man1/jq.1.gz");
        assert_eq!(std::fs::canonicalize(&found).unwrap(), page);
    });

    step(
        "owner and files know the library in the profile; verify passes",
        || {
            let lib = root.join("current/lib/libjq.so.1");
            let v = stdout_json(&c.ok(&["owner", lib.to_str().unwrap(), "--json"]));
            assert_eq!(v["name"], "libjq");
            let v = stdout_json(&c.ok(&[
                "owner",
                root.join("current/bin/jq").to_str().unwrap(),
                "--json",
            ]));
            assert_eq!(v["name"], "jq");
            let text = String::from_utf8(c.ok(&["files", "libjq"]).stdout).unwrap();
            assert!(text.lines().any(|l| l == lib.to_str().unwrap()), "{text}");
            c.ok(&["verify"]);
        },
    );

    step(
        "an upgrade of libjq, then a rollback: the current generation's library runs",
        || {
            run_ok(dist().arg("--root").arg(&repo).arg("add").arg(&dirs[3]));
            published::lay_out(&repo, &www);
            c.ok(&["sync"]);
            let old = store_path(&c, "libjq");
            c.ok(&["upgrade", "libjq"]);
            let new = store_path(&c, "libjq");
            assert_ne!(old, new);
            assert_eq!(mapped(&root, "libjq.so"), [library(&new)]);
            c.ok(&["rollback"]);
            assert_eq!(store_path(&c, "libjq"), old);
            assert_eq!(mapped(&root, "libjq.so"), [library(&old)]);
            let o = run_ok(&mut clean(&root, &["jq", "--version"]));
            assert_eq!(String::from_utf8_lossy(&o.stdout), "jq-1.6\n");
            c.ok(&["verify"]);
        },
    );
}
