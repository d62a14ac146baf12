//! `dist add` and `dist key show`: all-or-nothing batches, immutable versions, signed snapshots
//! that the `minisign` CLI verifies, SemVer ordering. No daemons needed.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn add(root: &Path, dirs: &[&Path]) -> std::process::Output {
    let mut c = dist();
    c.arg("--root")
        .arg(root)
        .args(["add", "--create", "--json"]);
    for d in dirs {
        c.arg(d);
    }
    c.output().unwrap()
}

fn snapshot_rows(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT name, version, blake3, infohash FROM packages ORDER BY name, version")
        .unwrap();
    stmt.query_map([], |r| {
        Ok(format!(
            "{}@{} {} {}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn latest(root: &Path) -> u64 {
    fs::read_to_string(root.join("published/LATEST"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Every file below `root` with its content digest, to show a failed command changed nothing.
fn tree_state(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, String)>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                walk(root, &p, out);
            } else if !rel.ends_with("-shm")
                && !rel.ends_with("-wal")
                && !["index.sqlite", "lock", "lock.holder"].contains(&rel.as_str())
            {
                out.push((rel, blake3::hash(&fs::read(&p).unwrap()).to_string()));
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn add_publishes_a_signed_snapshot_that_minisign_verifies() {
    require_tool("minisign");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let o = add(&root, &[&fixture("hello-1.0.0"), &fixture("hello-1.1.0")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = stdout_json(&o);
    assert_eq!(v[0]["status"], "added");
    assert_eq!(v[1]["status"], "added");
    let serial = latest(&root);
    assert_eq!(serial, 1);
    let key = run_ok(dist().arg("--root").arg(&root).args(["key", "show"]));
    let key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    // The signed file is the manifest; it names the compressed snapshot by BLAKE3 and size.
    let manifest_path = root.join(format!("published/{serial}.json"));
    let sig_path = root.join(format!("published/{serial}.json.minisig"));
    let out = run_ok(
        Command::new("minisign")
            .arg("-V")
            .arg("-P")
            .arg(&key)
            .arg("-m")
            .arg(&manifest_path)
            .arg("-x")
            .arg(&sig_path),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Trusted comment: dist-index format=5 serial=1 created="),
        "{text}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
    let zst = fs::read(root.join(format!("published/{serial}.db.zst"))).unwrap();
    assert_eq!(manifest["snapshot"]["size"], zst.len() as u64);
    assert_eq!(
        manifest["snapshot"]["blake3"],
        blake3::hash(&zst).to_hex().as_str()
    );
    assert_eq!(manifest["packages"], 2);
    assert_eq!(manifest["deltas"].as_array().unwrap().len(), 0);
    let snap = tmp.path().join("snapshot.db");
    fs::write(&snap, dist::index::wire::decompress(&zst, 1 << 30).unwrap()).unwrap();
    // The secret key is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(root.join("keys/secret.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Objects are named by their BLAKE3.
    let rows = snapshot_rows(&snap);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let b3 = r.split(' ').nth(1).unwrap();
        let obj = root.join("objects").join(&b3[..2]).join(&b3[2..]);
        assert_eq!(blake3::hash(&fs::read(&obj).unwrap()).to_string(), b3);
    }
    // A tampered manifest fails minisign.
    let mut bytes = fs::read(&manifest_path).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    let bad = tmp.path().join("bad.json");
    fs::write(&bad, bytes).unwrap();
    let st = Command::new("minisign")
        .arg("-V")
        .arg("-P")
        .arg(&key)
        .arg("-m")
        .arg(&bad)
        .arg("-x")
        .arg(&sig_path)
        .output()
        .unwrap();
    assert!(!st.status.success());
}

#[test]
fn identical_re_add_is_a_no_op_and_changed_content_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    assert!(add(&root, &[&fixture("hello-1.0.0")]).status.success());
    let before = tree_state(&root);
    let o = add(&root, &[&fixture("hello-1.0.0")]);
    assert!(o.status.success());
    assert_eq!(stdout_json(&o)[0]["status"], "unchanged");
    assert_eq!(latest(&root), 1, "an identical re-add must not publish");
    assert_eq!(tree_state(&root), before);

    // Same version (build metadata differs, which does not make another version), other bytes.
    let changed = tmp.path().join("hello-changed");
    copy_tree(&fixture("hello-1.0.0"), &changed);
    fs::write(
        changed.join("manifest.yaml"),
        "name: hello\nversion: 1.0.0+rebuilt\n",
    )
    .unwrap();
    let o = add(&root, &[&changed]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("hello@1.0.0 is already in the index with different content"),
        "{err}"
    );
    assert_eq!(
        tree_state(&root),
        before,
        "a refused add changed the repository"
    );
}

#[test]
fn one_bad_package_in_a_batch_adds_none() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    assert!(add(&root, &[&fixture("hello-1.0.0")]).status.success());
    let before = tree_state(&root);
    let bad = fixtures().join("invalid/bad-version");
    let o = add(
        &root,
        &[
            &fixture("hello-1.1.0"),
            &bad,
            &fixture("nested-0.3.0+build.7"),
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("invalid/bad-version/manifest.yaml: field `version`"),
        "{err}"
    );
    assert_eq!(tree_state(&root), before);
    // A hostile package made here (FIFO) also stops the whole batch.
    let fifo = tmp.path().join("fifo");
    copy_tree(&fixture("hello-1.1.0"), &fifo);
    run_ok(Command::new("mkfifo").arg(fifo.join("assets/pipe")));
    let o = add(&root, &[&fixture("nested-0.3.0+build.7"), &fifo]);
    assert!(!o.status.success());
    assert_eq!(tree_state(&root), before);
}

#[test]
fn add_create_with_a_bad_package_creates_no_repository_issue_23() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("new-repo");
    let bad = fixtures().join("invalid/bad-version");
    let o = add(&root, &[&fixture("hello-1.0.0"), &bad]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("invalid/bad-version/manifest.yaml: field `version`"),
        "{err}"
    );
    assert!(
        !err.contains("made a new repository"),
        "announced a repository it should not have made: {err}"
    );
    // No repository, not even an empty one with a signing key: at most the root's lock, which
    // every command takes before it runs.
    let mut left: Vec<String> = fs::read_dir(&root)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    left.retain(|n| n != "lock" && n != "lock.holder");
    assert!(left.is_empty(), "a failed `add --create` left {left:?}");
}

#[test]
fn versions_sort_by_semver_precedence_and_serials_increase() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let mk = |v: &str| {
        let d = tmp.path().join(format!("p-{v}"));
        copy_tree(&fixture("hello-1.0.0"), &d);
        fs::write(
            d.join("manifest.yaml"),
            format!("name: semver-order\nversion: {v}\n"),
        )
        .unwrap();
        d
    };
    let versions = ["1.10.0", "1.2.0", "1.2.0-rc.1", "1.9.0", "1.2.0-alpha"];
    let mut last = 0;
    for v in versions {
        let d = mk(v);
        assert!(add(&root, &[&d]).status.success());
        let s = latest(&root);
        assert!(s > last, "serial must increase");
        last = s;
    }
    let repo = dist::repo::Repo::new(&root);
    let published = repo.published().unwrap().unwrap();
    let order: Vec<String> = published
        .snapshot
        .versions("semver-order")
        .unwrap()
        .iter()
        .map(|r| r.version.to_string())
        .collect();
    assert_eq!(
        order,
        ["1.2.0-alpha", "1.2.0-rc.1", "1.2.0", "1.9.0", "1.10.0"]
    );
}

#[test]
fn unwritable_root_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, "x").unwrap();
    let o = add(&file.join("root"), &[&fixture("hello-1.0.0")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not-a-dir/root"), "{err}");
}

#[test]
fn a_killed_add_leaves_leftovers_the_next_add_removes_issue_8() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    repo_init(&root);
    run_ok(
        dist()
            .arg("--root")
            .arg(&root)
            .arg("add")
            .arg(fixture("hello-1.0.0")),
    );
    // What `kill -9` during an add leaves: a staging dir of packed archives, a half-written
    // snapshot, a temporary in an object fan-out dir.
    let leftovers = [
        root.join("objects/.tmp-staging-x1"),
        root.join("published/.tmp-snapshot-x2"),
        root.join("objects/ab/.tmp-abcdef-1"),
    ];
    fs::create_dir_all(&leftovers[0]).unwrap();
    fs::write(leftovers[0].join("0.tar"), b"partial").unwrap();
    fs::write(&leftovers[1], b"partial").unwrap();
    fs::create_dir_all(leftovers[2].parent().unwrap()).unwrap();
    fs::write(&leftovers[2], b"partial").unwrap();
    run_ok(
        dist()
            .arg("--root")
            .arg(&root)
            .arg("add")
            .arg(fixture("hello-1.1.0")),
    );
    for l in &leftovers {
        assert!(!l.exists(), "{} is still there", l.display());
    }
}

#[test]
fn add_from_a_list_file_or_stdin_all_or_nothing_issue_10() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    repo_init(&root);
    let list = tmp.path().join("list");
    // A bad entry anywhere in the list: nothing is added.
    fs::write(
        &list,
        format!(
            "{}\n\n{}\n",
            fixture("hello-1.0.0").display(),
            tmp.path().join("missing").display()
        ),
    )
    .unwrap();
    let err = run_err(
        dist()
            .arg("--root")
            .arg(&root)
            .args(["add", "--from"])
            .arg(&list),
    );
    assert!(err.contains("missing"), "{err}");
    assert!(!root.join("published/LATEST").exists());
    fs::write(&list, format!("{}\n", fixture("hello-1.0.0").display())).unwrap();
    run_ok(
        dist()
            .arg("--root")
            .arg(&root)
            .args(["add", "--from"])
            .arg(&list),
    );
    let mut c = dist();
    c.arg("--root")
        .arg(&root)
        .args(["add", "--json", "--from", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    writeln!(
        child.stdin.take().unwrap(),
        "{}",
        fixture("hello-1.1.0").display()
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v = stdout_json(&out);
    assert_eq!(v[0]["version"], "1.1.0");
    assert_eq!(v[0]["serial"], 2);
}
