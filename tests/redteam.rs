//! Red team, third pass (issue 25): each finding's regression test, against the real `dist`
//! binary and a repository published over real HTTP on loopback (`common/local.rs`).

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

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
    repo_init(&repo);
    run_ok(dist().arg("--root").arg(&repo).arg("add").args(&dirs));
    local::Local::serve(tmp)
}

/// `dist ARGS` with a standard output whose reader is already gone.
fn with_closed_stdout(args: &[&OsStrLike]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    dist()
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

type OsStrLike = std::ffi::OsStr;

#[test]
fn a_closed_stdout_ends_quietly_issue_25_finding_9() {
    let env = local_with(|d| {
        (0..40)
            .map(|i| pkg(d, &format!("p{i:02}"), "1.0.0", ""))
            .collect()
    });
    let root = env.root.as_os_str();
    let verbs: [&[&str]; 5] = [
        &["list"],
        &["list", "--json"],
        &["search", "p"],
        &["search", "p", "--json"],
        &["completions", "bash"],
    ];
    for verb in verbs {
        let mut args: Vec<&OsStrLike> = vec!["--root".as_ref(), root];
        args.extend(verb.iter().map(OsStrLike::new));
        let o = with_closed_stdout(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            matches!(o.status.code(), Some(0) | Some(141)),
            "{verb:?}: {:?} {err}",
            o.status
        );
        assert!(!err.contains("panicked"), "{verb:?}: {err}");
    }
    // A mutation whose caller stopped reading still happens, and says nothing.
    let repo = env.tmp.path().join("repo");
    let extra = pkg(&env.tmp.path().join("pkgs"), "late", "1.0.0", "");
    let o = with_closed_stdout(&[
        "--root".as_ref(),
        repo.as_os_str(),
        "add".as_ref(),
        "--json".as_ref(),
        extra.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let again = run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--json"])
            .arg(&extra),
    );
    assert_eq!(stdout_json(&again)[0]["status"], "unchanged");
}

#[test]
fn uninstall_with_dependents_releases_the_hold_issue_25_finding_9() {
    let env = local_with(|d| {
        vec![
            pkg(d, "lib", "1.0.0", ""),
            pkg(d, "app", "1.0.0", "depends: {lib: \"^1\"}\n"),
        ]
    });
    env.ok(&["install", "app"]);
    env.ok(&["hold", "app"]);
    env.ok(&["hold", "lib"]);
    env.ok(&["uninstall", "lib", "--with-dependents"]);
    let holds = fs::read_to_string(env.root.join("holds.json")).unwrap_or_default();
    assert!(!holds.contains("app") && !holds.contains("lib"), "{holds}");
}

#[test]
fn add_from_packs_a_repeated_directory_once_issue_25_finding_9() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    repo_init(&repo);
    let a = pkg(&tmp.path().join("pkgs"), "a", "1.0.0", "");
    let list = tmp.path().join("list");
    let same = format!("{0}\n{0}/\n{0}/../a-1.0.0\n{0}\n", a.display());
    fs::write(&list, same).unwrap();
    let o = run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--json", "--from"])
            .arg(&list),
    );
    let v = stdout_json(&o);
    let added = v.as_array().unwrap();
    assert_eq!(added.len(), 1, "{v}");
    assert_eq!(added[0]["status"], "added");
}

/// A package `name@version` whose one asset says `text`.
fn pkg_saying(dir: &Path, name: &str, version: &str, text: &str) -> PathBuf {
    write_package(
        &dir.join(format!("{name}-{version}-{}", text.len())),
        name,
        version,
        "",
        ("data.txt", text.as_bytes()),
        "#!/bin/sh\necho \"$DIST_PACKAGE $DIST_ACTION\" >> \"$DIST_ROOT/scripts-ran\"\n",
    )
}

/// The installed packages as `name@version blake3`.
fn installed(env: &local::Local) -> Vec<String> {
    let v = stdout_json(&env.ok(&["list", "--installed", "--json"]));
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}@{} {}", p["name"], p["version"], p["blake3"]).replace('"', ""))
        .collect()
}

#[test]
fn the_same_version_with_other_bytes_is_refused_and_reported_issue_25_finding_3() {
    let env = local_with(|d| vec![pkg_saying(d, "s1", "1.0.0", "first")]);
    env.ok(&["install", "s1"]);
    let before = installed(&env);
    // A later signed serial gives s1@1.0.0 other bytes and adds s2.
    let tmp = env.tmp.path();
    let (repo, other) = (tmp.join("repo"), tmp.join("other"));
    let pkgs = tmp.join("pkgs2");
    // Two adds: the other repository's serial (2) is the next one of the served repository.
    repo_init(&other);
    for dir in [
        pkg_saying(&pkgs, "s1", "1.0.0", "second!"),
        pkg_saying(&pkgs, "s2", "1.0.0", "s2"),
    ] {
        run_ok(dist().arg("--root").arg(&other).arg("add").arg(dir));
    }
    copy_tree(&other.join("objects"), &repo.join("objects"));
    let db = tmp.join("next.db");
    published::snapshot_db(&other, &db);
    published::publish_db(&repo, &tmp.join("www"), &db, 2);
    env.ok(&["sync"]);
    let (code, err) = env.err(&["install", "s2"]);
    assert_eq!(code, 1, "{err}");
    let new_blake3 = {
        let v = stdout_json(&env.ok(&["info", "s1", "--json"]));
        v.to_string()
    };
    assert!(
        err.contains("s1@1.0.0 is installed with blake3 ")
            && err.contains("the index now has other bytes for the same version")
            && err.contains("`dist install --reinstall s1`"),
        "{err}"
    );
    assert_eq!(
        installed(&env),
        before,
        "the refused install changed the set"
    );
    // `outdated` says it.
    let v = stdout_json(&env.ok(&["outdated", "--json"]));
    let entry = &v.as_array().unwrap()[0];
    assert_eq!(entry["name"], "s1");
    let changed = entry["changed_blake3"].as_str().unwrap().to_string();
    assert!(new_blake3.contains(&changed), "{v} / {new_blake3}");
    assert!(!before[0].contains(&changed));
    let text = String::from_utf8_lossy(&env.ok(&["outdated"]).stdout).into_owned();
    assert!(text.contains("other bytes for this version"), "{text}");
    // Accepting it is one explicit command; then the unrelated install goes through.
    env.ok(&["install", "--reinstall", "s1"]);
    assert!(installed(&env)[0].contains(&changed));
    env.ok(&["install", "s2"]);
}

/// Every file below `dir`.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(files_below(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_server_that_sends_bad_object_bytes_is_named_and_the_next_one_used_issue_25_finding_4() {
    let env = local_with(|d| vec![pkg_saying(d, "s1", "1.0.0", "the real bytes")]);
    let tmp = env.tmp.path();
    // A first server with the current signed index, but other bytes for the object.
    let (www, bad) = (tmp.join("www"), tmp.join("bad"));
    for f in ["index.json", "index.json.minisig"] {
        fs::create_dir_all(&bad).unwrap();
        fs::copy(www.join(f), bad.join(f)).unwrap();
    }
    copy_tree(&www.join("index"), &bad.join("index"));
    copy_tree(&tmp.join("repo/objects"), &bad.join("objects"));
    let objects = files_below(&bad.join("objects"));
    assert_eq!(objects.len(), 1, "{objects:?}");
    let len = fs::metadata(&objects[0]).unwrap().len() as usize;
    fs::remove_file(&objects[0]).unwrap();
    fs::write(&objects[0], vec![b'!'; len]).unwrap();
    let bad_server = files::FileServer::start(&bad);
    let key = repo_key(&tmp.join("repo"));
    let config = |servers: &str| {
        fs::write(
            env.root.join("client.yaml"),
            format!("{servers}public_key: {key}\ntransport: http\nseed: false\n"),
        )
        .unwrap();
    };
    // Alone, the bad server fails the install, named.
    config(&format!("server_url: {}\n", bad_server.url));
    let (code, err) = env.err(&["install", "s1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{} sent bad data for s1@1.0.0", bad_server.url)),
        "{err}"
    );
    assert!(!env.root.join("current").exists());
    // First of two: named, and the next server serves the install.
    config(&format!(
        "server_url: {}\nserver_urls: [\"{}\"]\n",
        bad_server.url, env.server.url
    ));
    let out = env.ok(&["install", "s1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{} sent bad data for s1@1.0.0", bad_server.url))
            && err.contains("trying the next server"),
        "{err}"
    );
    assert_eq!(installed(&env).len(), 1);
}

/// A repository `name` published at `TMP/name` from `packages` (name, version, relations),
/// served over real HTTP; its key and server.
fn repository(
    tmp: &Path,
    name: &str,
    packages: &[(&str, &str, &str)],
) -> (String, files::FileServer) {
    let (repo, www, pkgs) = (
        tmp.join(name),
        tmp.join(format!("{name}-www")),
        tmp.join(format!("{name}-pkgs")),
    );
    let dirs: Vec<_> = packages
        .iter()
        .map(|(n, v, rel)| pkg(&pkgs, n, v, rel))
        .collect();
    repo_init(&repo);
    run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--allow-unresolved"])
            .args(&dirs),
    );
    published::lay_out(&repo, &www);
    (repo_key(&repo), files::FileServer::start(&www))
}

#[test]
fn a_name_the_higher_repository_has_never_comes_from_a_lower_one_issue_25_finding_1() {
    let tmp = tempfile::tempdir().unwrap();
    let (main_key, main) = repository(
        tmp.path(),
        "main",
        &[
            ("libx", "1.0.0", ""),
            ("app", "1.0.0", "depends: {libx: \"^2\"}\n"),
            ("libz", "1.0.0", ""),
            ("uses-z", "1.0.0", "depends: {libz: \"^1\"}\n"),
        ],
    );
    let (other_key, other) = repository(
        tmp.path(),
        "other",
        &[("libx", "2.0.0", ""), ("libz", "1.5.0", "")],
    );
    let client = local::ClientRoot {
        root: tmp.path().join("client"),
    };
    fs::create_dir_all(&client.root).unwrap();
    let config = |pins: &str| {
        fs::write(
            client.root.join("client.yaml"),
            format!(
                "transport: http\nseed: false\nrepositories:\n  - name: main\n    server_url: {}\n    public_key: {main_key}\n    priority: 10\n  - name: other\n    server_url: {}\n    public_key: {other_key}\n    priority: 1\n{pins}",
                main.url, other.url
            ),
        )
        .unwrap();
    };
    config("");
    client.ok(&["sync"]);
    // app needs libx ^2, which only the lower repository has: refused, naming both.
    let (code, err) = client.err(&["install", "app"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("libx comes only from repository `main`")
            && err.contains("`other` also has libx")
            && err.contains("`other/libx`"),
        "{err}"
    );
    assert!(!client.root.join("current").exists());
    assert!(!client.root.join("scripts-ran").exists());
    // Asked for explicitly, it comes from there, and then app resolves against it.
    let v = stdout_json(&client.ok(&["install", "--json", "other/libx", "app"]));
    let got: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}@{} {}", e["name"], e["version"], e["repository"]).replace('"', ""))
        .collect();
    assert!(got.contains(&"libx@2.0.0 other".to_string()), "{got:?}");
    assert!(got.contains(&"app@1.0.0 main".to_string()), "{got:?}");
    // Another install keeps the installed libx where it came from.
    client.ok(&["install", "libz"]);
    // A dependency: libz from main (higher), whatever the lower one's newer version.
    let v = stdout_json(&client.ok(&["install", "--dry-run", "--json", "uses-z"]));
    assert!(!v.to_string().contains("\"other\""), "{v}");
    // `packages:` gives a name to one repository, whatever the priorities.
    config("    packages: [libz]\n");
    let v = stdout_json(&client.ok(&["upgrade", "--dry-run", "--json", "libz"]));
    assert!(
        v.to_string().contains("1.5.0") && v.to_string().contains("\"other\""),
        "{v}"
    );
}
