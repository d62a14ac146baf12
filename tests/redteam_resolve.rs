//! Red team, third pass (issue 25), findings 2, 6 and the rest of 9: the installed dependency
//! graph, a bounded resolver, `owner` of a path that climbs out of the store, and a timed-out
//! script's `setsid` child. Against the real `dist` binary and a repository published over
//! real HTTP on loopback (`common/local.rs`).

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// A package `name@version` with `relations` in its manifest, in `dir/name-version`.
fn pkg(dir: &Path, name: &str, version: &str, relations: &str) -> PathBuf {
    write_package(
        &dir.join(format!("{name}-{version}")),
        name,
        version,
        relations,
        ("data.txt", format!("{name} {version}\n").as_bytes()),
        "#!/bin/sh\n",
    )
}

/// A repository at `TMP/repo` with `dirs` added, served, and a synced client.
fn local_with(dirs: impl Fn(&Path) -> Vec<PathBuf>) -> local::Local {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let dirs = dirs(&tmp.path().join("pkgs"));
    run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--create", "--allow-unresolved"])
            .args(&dirs),
    );
    local::Local::serve(tmp)
}

fn installed(env: &local::Local) -> Vec<String> {
    let v = stdout_json(&env.ok(&["list", "--installed", "--json"]));
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}@{}", p["name"], p["version"]).replace('"', ""))
        .collect()
}

#[test]
fn the_installed_graph_is_what_was_recorded_not_the_synced_index_issue_25_finding_2() {
    let env = local_with(|d| {
        vec![
            pkg(d, "lib", "1.0.0", ""),
            pkg(d, "app", "1.0.0", "depends: {lib: \"^1\"}\n"),
        ]
    });
    env.ok(&["install", "app"]);
    // The same server as a named repository: its index is `ROOT/repos/main`, not synced yet.
    let yaml = fs::read_to_string(env.root.join("client.yaml")).unwrap();
    let url = yaml
        .lines()
        .find_map(|l| l.strip_prefix("server_url: "))
        .unwrap()
        .to_string();
    let key = yaml
        .lines()
        .find_map(|l| l.strip_prefix("public_key: "))
        .unwrap()
        .to_string();
    let named = format!(
        "transport: http\nseed: false\nrepositories:\n  - name: main\n    server_url: {url}\n    public_key: {key}\n"
    );
    fs::write(env.root.join("client.yaml"), &named).unwrap();
    let (code, err) = env.err(&["uninstall", "lib"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("needed by app@1.0.0"), "{err}");
    env.ok(&["autoremove"]);
    env.ok(&["gc"]);
    assert_eq!(installed(&env), ["app@1.0.0", "lib@1.0.0"]);
    // Nothing synced at all (the index removed): the same answers.
    fs::remove_dir_all(env.root.join("index")).unwrap();
    let (code, err) = env.err(&["uninstall", "lib"]);
    assert_eq!(code, 1, "{err}");
    env.ok(&["gc"]);
    assert_eq!(installed(&env), ["app@1.0.0", "lib@1.0.0"]);

    // A generation written before dependencies were recorded: app's come from the index that
    // has its installed bytes, and without one nobody can tell, so nothing it may need goes.
    forget_recorded_depends(&env.root);
    let (code, err) = env.err(&["uninstall", "lib"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot tell whether app@1.0.0 needs `lib`") && err.contains("dist sync"),
        "{err}"
    );
    env.ok(&["autoremove"]);
    env.ok(&["gc"]);
    assert_eq!(installed(&env), ["app@1.0.0", "lib@1.0.0"]);
    env.ok(&["sync"]);
    let (code, err) = env.err(&["uninstall", "lib"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("needed by app@1.0.0"), "{err}");
    env.ok(&["gc"]);
    assert_eq!(installed(&env), ["app@1.0.0", "lib@1.0.0"]);
    env.ok(&["uninstall", "app"]);
    env.ok(&["autoremove"]);
    assert!(installed(&env).is_empty());
}

/// Rewrites the current generation's record as a dist older than issue 21 wrote it: no
/// `depends` on any package.
fn forget_recorded_depends(root: &Path) {
    let path = fs::canonicalize(root.join("current"))
        .unwrap()
        .join("generation.json");
    let mut g: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    for p in g["packages"].as_object_mut().unwrap().values_mut() {
        p.as_object_mut().unwrap().remove("depends");
    }
    fs::remove_file(&path).unwrap();
    fs::write(&path, serde_json::to_vec_pretty(&g).unwrap()).unwrap();
}

/// The red team's unsatisfiable index (145 rows): `all` needs `p0`…`p8`, each sits in one of 8
/// slots (`pK` version `S.0.0` depends on `hS =K+1.0.0`), and a slot `hS` holds one of them
/// (versions 1.0.0…9.0.0). Nine packages, eight slots: no set of versions, and exponential for
/// PubGrub to prove.
fn pigeons(d: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let all: Vec<String> = (0..9).map(|k| format!("p{k}: \"*\"")).collect();
    let all = format!("depends: {{{}}}\n", all.join(", "));
    dirs.push(pkg(d, "all", "1.0.0", &all));
    for k in 0..9 {
        for s in 1..=8 {
            let dep = format!("depends: {{h{s}: \"={}.0.0\"}}\n", k + 1);
            dirs.push(pkg(d, &format!("p{k}"), &format!("{s}.0.0"), &dep));
        }
    }
    for s in 1..=8 {
        for k in 1..=9 {
            dirs.push(pkg(d, &format!("h{s}"), &format!("{k}.0.0"), ""));
        }
    }
    dirs
}

fn set_resolve_timeout(env: &local::Local, secs: u64) {
    let path = env.root.join("client.yaml");
    let mut yaml = fs::read_to_string(&path).unwrap();
    yaml.push_str(&format!("resolve_timeout: {secs}\n"));
    fs::write(&path, yaml).unwrap();
}

/// The `kind` and `message` of a `--json` command's error on its standard output.
fn json_error(out: &std::process::Output) -> (String, String) {
    let v = stdout_json(out);
    let e = &v["error"];
    (
        e["kind"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_resolution_that_runs_away_gives_up_naming_the_packages_issue_25_finding_6() {
    let env = local_with(pigeons);
    set_resolve_timeout(&env, 1);
    let out = env.run(&["install", "--json", "all"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (kind, message) = json_error(&out);
    assert_eq!(kind, "resolve", "{message}");
    assert!(message.contains("gave up resolving"), "{message}");
    assert!(message.contains("resolve_timeout"), "{message}");
    // The packages most in conflict are named: slots and the packages that compete for them.
    let named = message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == 2 && (w.starts_with('p') || w.starts_with('h')))
        .count();
    assert!(named >= 3, "{message}");
    assert!(out.stderr.len() < 4096, "{}", out.stderr.len());
    assert!(!env.root.join("current").exists());
}

#[test]
fn many_versions_tried_leave_a_short_explanation_issue_25_finding_6() {
    // `app` K.0.0 needs `lib =K.0.0`, and every `lib` a package no index has: every version of
    // app is tried. With SemVer intervals each step kept every version tried before it (3 GiB
    // and an explanation of millions of versions for 4,000).
    let env = local_with(|d| {
        let mut dirs = Vec::new();
        for k in 1..=300 {
            let v = format!("{k}.0.0");
            dirs.push(pkg(d, "app", &v, &format!("depends: {{lib: \"={v}\"}}\n")));
            dirs.push(pkg(d, "lib", &v, "depends: {gone: \"^1\"}\n"));
        }
        dirs
    });
    let out = env.run(&["install", "--json", "app"]);
    let (kind, message) = json_error(&out);
    assert_eq!(kind, "resolution", "{message}");
    assert!(message.contains("(no index has gone)"), "{message}");
    // Cut to its head and tail, each line short.
    let lines: Vec<&str> = message.lines().collect();
    assert!(lines.len() <= 45, "{} lines", lines.len());
    assert!(message.contains("more lines) …"), "{message}");
    assert!(lines.iter().all(|l| l.len() < 400), "{message}");
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("no set of versions satisfies it."),
        "{message}"
    );
}

#[test]
fn sigterm_while_resolving_ends_dist_and_frees_the_root_issue_25_finding_6() {
    let env = local_with(pigeons);
    set_resolve_timeout(&env, 600);
    let mut child = dist()
        .arg("--root")
        .arg(&env.root)
        .args(["install", "--json", "all"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Resolving: a second of CPU spent (opening the index and planning take far less).
    wait_until("dist to be resolving", Duration::from_secs(120), || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        if ticks >= 100 {
            Ok(())
        } else {
            Err(format!("{ticks} ticks of CPU"))
        }
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    wait_until(
        "dist to exit after SIGTERM",
        Duration::from_secs(30),
        || {
            child
                .try_wait()
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "still running".to_string())
        },
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let (kind, message) = json_error(&out);
    assert_eq!(kind, "interrupted", "{message}");
    // The root's lock is free: an exclusive command gets it at once.
    let o = env.run(&["--lock-timeout", "0", "hold", "all"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not installed") && !err.contains("lock"),
        "{err}"
    );
}

#[test]
fn owner_of_a_path_that_climbs_out_of_the_store_is_nobody_issue_25_finding_9() {
    let env = local_with(|d| vec![pkg(d, "ca", "1.0.0", "")]);
    env.ok(&["install", "ca"]);
    let store = fs::read_dir(env.root.join("store"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .ends_with("-ca-1.0.0")
        })
        .unwrap();
    let inside = store.join("assets/data.txt");
    let o = env.ok(&["owner", inside.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ca@1.0.0: "));
    let climbing = format!("{}/../../../../../../../../etc/passwd", store.display());
    let (code, err) = env.err(&["owner", &climbing]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no installed package owns /etc/passwd"),
        "{err}"
    );
    // A path that does not exist is taken lexically: out of the store, nobody's.
    let gone = format!("{}/../elsewhere/nothing", store.display());
    let (code, err) = env.err(&["owner", &gone]);
    assert_eq!(code, 1, "{err}");
    // And one that comes back into the store path is its package's.
    let back = format!("{}/assets/../assets/data.txt", store.display());
    env.ok(&["owner", &back]);
}

#[test]
fn a_timed_out_script_takes_its_setsid_children_with_it_issue_25_finding_9() {
    // The install script starts a child in a session of its own, another through a parent that
    // exits at once (re-parented), writes their pids, then outlives its timeout.
    let script = "#!/bin/sh\n\
        setsid sleep 1000 &\n\
        echo $! > \"$DIST_STATE_DIR/setsid.pid\"\n\
        sh -c 'setsid sleep 1000 & echo $! > \"$DIST_STATE_DIR/orphan.pid\"'\n\
        sleep 1000\n";
    let env = local_with(|d| {
        let dir = d.join("svc-1.0.0");
        let p = write_package(
            &dir,
            "svc",
            "1.0.0",
            "",
            ("data.txt", b"svc\n"),
            "#!/bin/sh\n",
        );
        fs::write(p.join("scripts/install.sh"), script).unwrap();
        vec![p]
    });
    let (code, err) = env.err(&["install", "--script-timeout", "2", "svc"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("timed out"), "{err}");
    for file in ["setsid.pid", "orphan.pid"] {
        let path = env.root.join("var/svc").join(file);
        let pid: u32 = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .unwrap();
        wait_until(
            &format!("the script's child {pid} ({file}) to be gone"),
            Duration::from_secs(10),
            || match fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => Ok(()),
                Ok(stat) => Err(stat),
            },
        );
    }
}
