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
            .args(["add", "--allow-unresolved"])
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
