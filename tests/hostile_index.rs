//! A signed index can still be hostile (issue 8): a row whose `infohash` is an absolute path,
//! holds `..` or is not 40 hex digits, or whose `blake3` is short or not hex, is refused by
//! `sync` and `install` with an error naming the package and the field — exit 1, no panic,
//! nothing created outside the client root. A `.torrent` whose length contradicts the index
//! fails the install at once, before any daemon starts.
//!
//! The repository is real (`dist add`), the snapshot is edited with the `sqlite3` CLI and signed
//! again with the repository's own key, and a real HTTP server serves it.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{
    dist, fixture, output_within, repo_init, repo_key, require_tool, run_ok, stdout_json,
};
use files::FileServer;

struct Repo {
    root: PathBuf,
    key: String,
    serial: u64,
    hello: serde_json::Value,
}

/// A repository holding hello 1.0.0, and the `.torrent` of that object.
fn repository(tmp: &Path) -> (Repo, PathBuf) {
    let root = tmp.join("repo");
    repo_init(&root);
    let added = stdout_json(&run_ok(
        dist()
            .arg("--root")
            .arg(&root)
            .args(["add", "--json"])
            .arg(fixture("hello-1.0.0")),
    ));
    let key = repo_key(&root);
    let packed = tmp.join("hello.tar");
    run_ok(
        dist()
            .args(["pack", "-o"])
            .arg(&packed)
            .arg(fixture("hello-1.0.0")),
    );
    let serial = fs::read_to_string(root.join("published/LATEST"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let repo = Repo {
        root,
        key,
        serial,
        hello: added[0].clone(),
    };
    (repo, tmp.join("hello.tar.torrent"))
}

impl Repo {
    /// A served directory holding the published snapshot changed by `sql`, signed with the
    /// repository key (so only the row contents are hostile), and the real `.torrent`.
    fn serve_edited(&self, dir: &Path, sql: &str, torrent: &Path) -> FileServer {
        fs::create_dir_all(dir.join("torrents")).unwrap();
        let index = dir.join("index.db");
        published::snapshot_db(&self.root, &index);
        run_ok(std::process::Command::new("sqlite3").arg(&index).arg(sql));
        published::publish_db(&self.root, dir, &index, self.serial);
        let ih = self.hello["infohash"].as_str().unwrap();
        fs::copy(torrent, dir.join(format!("torrents/{ih}.torrent"))).unwrap();
        FileServer::start(dir)
    }
}

fn client(root: &Path, server: &FileServer, key: &str, args: &[&str]) -> Output {
    client_cmd(root, server, key, args).output().unwrap()
}

/// The command `client` runs, for a caller that bounds its wait (`output_within`).
fn client_cmd(root: &Path, server: &FileServer, key: &str, args: &[&str]) -> Command {
    let mut c = dist();
    c.arg("--root")
        .arg(root)
        .args(["--server-url", &server.url, "--public-key", key])
        .args(args);
    c
}

/// Fails with exit 1 and no panic; returns stderr.
fn refused(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1, stderr:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Every path below `dir`, to compare before and after.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        out.push(e.path());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(tree(&e.path()));
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_fields_of_a_signed_index_are_refused_naming_package_and_field_issue_8() {
    require_tool("sqlite3");
    let tmp = tempfile::tempdir().unwrap();
    let (repo, torrent) = repository(tmp.path());
    let outside = tmp.path().join("outside");
    let cases: Vec<(&str, String)> = vec![
        ("infohash", outside.display().to_string()),
        ("infohash", "../../../outside".to_string()),
        ("infohash", "ab".repeat(19)),
        ("infohash", format!("{}zz", "ab".repeat(19))),
        ("blake3", "af1349b9f5f9a1a6".to_string()),
        ("blake3", format!("{}xy", "0".repeat(62))),
        // Relations (index format 3): a requirement that is not SemVer, a name that is not one,
        // a package depending on itself, a shape that is not the canonical one.
        ("depends", r#"{"libfoo": "^zz"}"#.to_string()),
        ("depends", r#"{"../x": "^1"}"#.to_string()),
        ("depends", r#"{"hello": "*"}"#.to_string()),
        ("conflicts", r#"{"a": 1}"#.to_string()),
        // Executables (index format 4): a path instead of a name, not in order, not a list.
        ("executables", r#"["../../etc/passwd"]"#.to_string()),
        ("executables", r#"["b", "a"]"#.to_string()),
        ("executables", r#"{"a": 1}"#.to_string()),
    ];
    for (i, (field, value)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("served-{i}"));
        let server = repo.serve_edited(
            &dir,
            &format!("UPDATE packages SET {field} = '{value}' WHERE name = 'hello';"),
            &torrent,
        );
        let before = tree(tmp.path());
        // sync refuses the whole index and keeps none of it.
        let root = tmp.path().join(format!("client-{i}"));
        let err = refused(&client(&root, &server, &repo.key, &["sync"]));
        assert!(
            err.contains("`hello@1.0.0`") && err.contains(&format!("field `{field}`")),
            "case {i} ({field} = {value}): {err}"
        );
        assert!(
            !root.join("index/index.db").exists(),
            "case {i}: index kept"
        );
        // install over an index that arrived anyway (planted, as an older dist could have left
        // it) refuses it the same way before fetching anything.
        fs::create_dir_all(root.join("index")).unwrap();
        fs::copy(dir.join("index.db"), root.join("index/index.db")).unwrap();
        // As verified by the configured key (else the key binding refuses it before its rows).
        fs::write(
            root.join("index/state.json"),
            format!(
                r#"{{"serial":1,"created":0,"etag":null,"fetched_at":0,"key":"{}"}}"#,
                repo.key.trim()
            ),
        )
        .unwrap();
        let err = refused(&client(&root, &server, &repo.key, &["install", "hello"]));
        assert!(
            err.contains("`hello@1.0.0`") && err.contains(&format!("field `{field}`")),
            "case {i} ({field} = {value}): {err}"
        );
        assert!(!root.join("downloads").exists() && !root.join("store").exists());
        let created: Vec<PathBuf> = tree(tmp.path())
            .into_iter()
            .filter(|p| !before.contains(p) && !p.starts_with(&root))
            .collect();
        assert!(
            created.is_empty(),
            "case {i} created outside the root: {created:?}"
        );
        assert!(!outside.exists());
    }
}

#[test]
fn a_torrent_whose_length_contradicts_the_index_fails_at_once_issue_8() {
    require_tool("sqlite3");
    let tmp = tempfile::tempdir().unwrap();
    let (repo, torrent) = repository(tmp.path());
    let size = repo.hello["size"].as_u64().unwrap();
    let server = repo.serve_edited(
        &tmp.path().join("served"),
        &format!(
            "UPDATE packages SET size = {} WHERE name = 'hello';",
            size + 512
        ),
        &torrent,
    );
    let root = tmp.path().join("client");
    let out = client(&root, &server, &repo.key, &["sync"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "At once": an attack is not waited out like an outage (the fetch timeout is 600 s).
    let err = refused(&output_within(
        &mut client_cmd(
            &root,
            &server,
            &repo.key,
            &["install", "hello", "--transport", "torrent", "--json"],
        ),
        Duration::from_secs(60),
        "the install to refuse the contradicting torrent at once",
    ));
    assert!(
        err.contains(&format!(
            "the torrent's length {size} differs from the index's size {}",
            size + 512
        )) && err.contains("hello@1.0.0"),
        "{err}"
    );
    // No transmission-daemon was started for it.
    assert!(
        !root.join("daemon/state.json").exists(),
        "a daemon was started"
    );
    assert!(!root.join("current").exists());
}

#[test]
fn a_snapshot_whose_packages_is_an_endless_view_is_refused_before_reading_issue_9() {
    require_tool("sqlite3");
    let tmp = tempfile::tempdir().unwrap();
    let (repo, torrent) = repository(tmp.path());
    let server = repo.serve_edited(
        &tmp.path().join("served"),
        "DROP TABLE packages; CREATE VIEW packages AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT 'hello' AS name, '1.0.0' AS version, '1.0.0' AS version_key, printf('%.*c', 4000, 'x') AS description, '' AS blake3, '' AS infohash, 1 AS size, 0 AS added_at FROM r;",
        &torrent,
    );
    let root = tmp.path().join("client");
    let err = refused(&output_within(
        &mut client_cmd(&root, &server, &repo.key, &["sync"]),
        Duration::from_secs(20),
        "the sync to refuse the endless view before reading it",
    ));
    assert!(err.contains("unexpected view `packages`"), "{err}");
    assert!(!root.join("index/index.db").exists());
}

#[test]
fn control_characters_of_a_signed_index_never_reach_the_terminal_issue_9() {
    require_tool("sqlite3");
    let tmp = tempfile::tempdir().unwrap();
    let (repo, torrent) = repository(tmp.path());
    let server = repo.serve_edited(
        &tmp.path().join("served"),
        "UPDATE packages SET description = 'evil' || char(27) || ']0;owned' || char(7) || char(27) || '[2J' WHERE name = 'hello';",
        &torrent,
    );
    let root = tmp.path().join("client");
    assert!(client(&root, &server, &repo.key, &["sync"])
        .status
        .success());
    for args in [&["search", "hello"][..], &["info", "hello"], &["list"]] {
        let out = client(&root, &server, &repo.key, args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{args:?} printed raw control characters: {text:?}"
        );
        assert!(text.contains("evil\\u{1b}"), "{args:?}: {text:?}");
    }
}
