//! Yank and phase fields of a signed index are hostile input (issue 22): a `phase` outside 0 to
//! 100 or not an integer, a `yanked` reason that is empty, too long or not text, is refused by
//! `sync` with an error naming the package and the field (exit 1, nothing kept); a reason with
//! control characters is shown escaped, never raw. The repository is real (`dist add`), its
//! snapshot edited with the `sqlite3` CLI and signed again with the repository's own key, served
//! by a real HTTP server on loopback.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::{dist, fixture, repo_init, repo_key, require_tool, run_ok, stdout_json};
use files::FileServer;

/// A repository holding hello 1.0.0 at `tmp/repo`; its key.
fn repository(tmp: &Path) -> String {
    let root = tmp.join("repo");
    repo_init(&root);
    run_ok(
        dist()
            .arg("--root")
            .arg(&root)
            .arg("add")
            .arg(fixture("hello-1.0.0")),
    );
    repo_key(&root)
}

/// Serves in `dir` the repository's published snapshot changed by `sql`, signed again.
fn serve_edited(tmp: &Path, dir: &Path, sql: &str) -> FileServer {
    let repo = tmp.join("repo");
    fs::create_dir_all(dir).unwrap();
    let index = dir.join("index.db");
    published::snapshot_db(&repo, &index);
    run_ok(std::process::Command::new("sqlite3").arg(&index).arg(sql));
    let serial = fs::read_to_string(repo.join("published/LATEST"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    published::publish_db(&repo, dir, &index, serial);
    FileServer::start(dir)
}

fn client(root: &Path, server: &FileServer, key: &str, args: &[&str]) -> Output {
    dist()
        .arg("--root")
        .arg(root)
        .args(["--server-url", &server.url, "--public-key", key])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn hostile_yank_and_phase_fields_are_refused_naming_package_and_field_issue_22() {
    require_tool("sqlite3");
    let tmp = tempfile::tempdir().unwrap();
    let key = repository(tmp.path());
    let cases = [
        ("phase", "101", "not a percentage"),
        ("phase", "-1", "not a percentage"),
        ("phase", "'twenty'", "text where an integer is expected"),
        // Refused by the content digest before any row is parsed, naming the column.
        ("phase", "20.5", "column `phase` holds a real number"),
        ("yanked", "''", "empty reason"),
        (
            "yanked",
            "substr(hex(zeroblob(1000)), 1, 1025)",
            "1025 bytes",
        ),
        ("yanked", "x'00ff'", "column `yanked` holds a blob"),
    ];
    for (i, (field, value, why)) in cases.iter().enumerate() {
        let server = serve_edited(
            tmp.path(),
            &tmp.path().join(format!("served-{i}")),
            &format!("UPDATE packages SET {field} = {value} WHERE name = 'hello';"),
        );
        let root = tmp.path().join(format!("client-{i}"));
        let out = client(&root, &server, &key, &["sync"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "case {i}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        let named = err.contains("`hello@1.0.0`") && err.contains(&format!("field `{field}`"));
        assert!(
            (named || why.starts_with("column")) && err.contains(why),
            "case {i} ({field} = {value}): {err}"
        );
        assert!(
            !root.join("index/index.db").exists(),
            "case {i}: index kept"
        );
    }
}

#[test]
fn a_yank_reason_with_control_characters_is_shown_escaped_issue_22() {
    require_tool("sqlite3");
    let tmp = tempfile::tempdir().unwrap();
    let key = repository(tmp.path());
    let server = serve_edited(
        tmp.path(),
        &tmp.path().join("served"),
        "UPDATE packages SET yanked = 'evil' || char(27) || ']0;owned' || char(7) || char(27) || '[2J', phase = 100 WHERE name = 'hello';",
    );
    let root = tmp.path().join("client");
    assert!(client(&root, &server, &key, &["sync"]).status.success());
    let out = client(&root, &server, &key, &["info", "hello"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(
        text.contains("[yanked: evil\\u{1b}]0;owned") && text.contains("[phased 100 %]"),
        "{text:?}"
    );
    let v = stdout_json(&client(&root, &server, &key, &["info", "hello", "--json"]));
    assert_eq!(
        v["versions"][0]["yanked"],
        "evil\u{1b}]0;owned\u{7}\u{1b}[2J"
    );
    assert_eq!(v["versions"][0]["phase"], 100);
    // The only version is yanked: a plain request says so (escaped); an exact one is taken.
    let out = client(&root, &server, &key, &["install", "--dry-run", "hello"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        !err.contains('\u{1b}') && err.contains("hello@1.0.0 is yanked: evil"),
        "{err:?}"
    );
    let v = stdout_json(&client(
        &root,
        &server,
        &key,
        &["install", "--dry-run", "--json", "hello@=1.0.0"],
    ));
    assert_eq!(v[0]["version"], "1.0.0", "{v}");
}
