//! Red team (issue 25), the index's side: signed but hostile or misconfigured indexes (finding
//! 8) and the spec against the code (finding 10), against the real `dist` binary and
//! repositories served over real HTTP on loopback (`common/local.rs`).

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
use dist::repo::index::{INDEX_FORMAT, ROW_COLUMNS};

fn spec() -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("store-format.md")).unwrap()
}

/// The text of store-format.md from the heading `heading` to the next heading of any level.
fn section(spec: &str, heading: &str) -> String {
    let start = spec
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no `{heading}` in store-format.md"));
    let body = &spec[start + heading.len() + 2..];
    let end = body.find("\n#").unwrap_or(body.len());
    body[..end].to_string()
}

/// The first fenced block of `kind` (```kind … ```) in `text`.
fn fenced(text: &str, kind: &str) -> String {
    let open = format!("```{kind}\n");
    let start = text.find(&open).expect("a fenced block") + open.len();
    let len = text[start..].find("```").expect("its end");
    text[start..start + len].to_string()
}

/// A package `name@version` whose one asset says `text`, in `dir/name-version`.
fn pkg(dir: &Path, name: &str, version: &str, text: &str) -> PathBuf {
    write_package(
        &dir.join(format!("{name}-{version}")),
        name,
        version,
        "",
        ("data.txt", format!("{text}\n").as_bytes()),
        "#!/bin/sh\n",
    )
}

/// A repository at `TMP/repo` with `hello@1.0.0`, served from `TMP/www`, and a synced client.
fn served() -> local::Local {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let hello = pkg(&tmp.path().join("pkgs"), "hello", "1.0.0", "hello");
    run_ok(dist().arg("--root").arg(&repo).arg("add").arg(hello));
    local::Local::serve(tmp)
}

fn latest(repo: &Path) -> u64 {
    fs::read_to_string(repo.join("published/LATEST"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_snapshot_made_with_the_spec_statements_is_read_issue_25_finding_10() {
    let env = served();
    let (repo, www) = (env.tmp.path().join("repo"), env.tmp.path().join("www"));
    let serial = latest(&repo) + 1;
    // The published rows, in a file made with store-format.md §5.1's statements as written.
    let statements = fenced(&section(&spec(), "### 5.1 Snapshot schema"), "sql");
    let published = env.tmp.path().join("published.db");
    published::snapshot_db(&repo, &published);
    let db = env.tmp.path().join("spec.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(&statements).unwrap();
    conn.execute("ATTACH ?1 AS p", [published.to_str().unwrap()])
        .unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO meta SELECT key, value FROM p.meta WHERE key = 'distribution';
         INSERT INTO meta VALUES ('format', '{INDEX_FORMAT}'), ('serial', '{serial}'), ('created', '1');
         INSERT INTO packages SELECT * FROM p.packages;"
    ))
    .unwrap();
    conn.execute_batch("DETACH p").unwrap();
    drop(conn);
    published::publish_db(&repo, &www, &db, serial);

    let out = env.ok(&["sync", "--json"]);
    let report = stdout_json(&out);
    assert_eq!(report["serial"], serial, "{report}");
    assert_eq!(report["mode"], "full", "{report}");
    let listed = String::from_utf8_lossy(&env.ok(&["search", "hello"]).stdout).into_owned();
    assert!(listed.contains("hello"), "{listed}");
    env.ok(&["install", "hello"]);
}

#[test]
fn the_spec_gives_the_formats_the_code_writes_issue_25_finding_10() {
    let spec = spec();
    let n = INDEX_FORMAT;
    assert!(spec.contains(&format!("(index format {n})")), "title");
    let digest = section(&spec, "### 5.2 Content digest");
    assert!(
        digest.contains(&format!("\"dist-index-content {n}\\n\"")),
        "{digest}"
    );
    let manifest = section(&spec, "### 5.3 Manifest and signature");
    assert!(
        manifest.contains(&format!("{{\"format\": {n}, ")),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!("dist-index format={n} serial=<serial>")),
        "{manifest}"
    );
    let delta = section(&spec, "### 5.4 Delta");
    assert!(
        delta.contains(&format!("the {} values of a row", ROW_COLUMNS.len())),
        "{delta}"
    );
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(&format!(
            "exactly the {} values of a row",
            ROW_COLUMNS.len()
        )),
        "README's fuzz table"
    );
    // And what a publisher writes is that: the manifest's format and its trusted comment.
    let env = served();
    let repo = env.tmp.path().join("repo");
    let serial = latest(&repo);
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join(format!("published/{serial}.json"))).unwrap())
            .unwrap();
    assert_eq!(m["format"], n);
    let sig = fs::read_to_string(repo.join(format!("published/{serial}.json.minisig"))).unwrap();
    let comment = sig
        .lines()
        .find_map(|l| l.strip_prefix("trusted comment: "))
        .unwrap();
    assert!(
        comment.starts_with(&format!("dist-index format={n} serial={serial} created=")),
        "{comment}"
    );
}
