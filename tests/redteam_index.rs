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
use dist::index::record::{INDEX_FORMAT, ROW_COLUMNS};

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
    run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--create"])
            .arg(hello),
    );
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

/// A loopback HTTP server of the files below `www`, except `endless`, whose body never ends
/// (until the client hangs up, or 64 MiB): it counts the bytes it sent of it.
struct Endless {
    url: String,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Endless {
    fn start(www: &Path, endless: &str) -> Endless {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (www, endless, count) = (www.to_path_buf(), endless.to_string(), sent.clone());
        // Detached: it ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split(' ').nth(1).unwrap_or("/").to_string();
                if path == endless {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                    let zeros = [0u8; 64 << 10];
                    for _ in 0..1024 {
                        if stream.write_all(&zeros).is_err() {
                            break;
                        }
                        count.fetch_add(zeros.len() as u64, Ordering::Relaxed);
                    }
                    continue;
                }
                let answer = match fs::read(www.join(path.trim_start_matches('/'))) {
                    Ok(body) => {
                        let mut a = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        a.extend(body);
                        a
                    }
                    Err(_) => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&answer);
            }
        });
        Endless { url, sent }
    }
}

/// Signs `m` as the repository at `repo` publishes (its key and its repository id) and puts it
/// in `www` as the newest manifest.
fn sign_manifest(repo: &Path, www: &Path, m: &dist::index::wire::Manifest) {
    use dist::index::sign::{Signed, SigningKey};
    let bytes = serde_json::to_vec(m).unwrap();
    let sig = SigningKey::load(repo)
        .unwrap()
        .sign(
            &bytes,
            &Signed {
                format: m.format,
                serial: m.serial,
                created: m.created,
                repository: dist::repo::Repo::new(repo).repository_id().unwrap(),
            },
        )
        .unwrap();
    fs::write(www.join("index.json"), bytes).unwrap();
    fs::write(www.join("index.json.minisig"), sig).unwrap();
}

/// The client's index files, to tell that a refused sync left them as they were.
fn local_copy(client: &Path) -> Vec<(String, Vec<u8>)> {
    ["index.db", "index.json", "index.json.minisig", "state.json"]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                fs::read(client.join("index").join(f)).unwrap(),
            )
        })
        .collect()
}

/// `dist sync --json` expected to fail: the error object.
fn sync_refused(env: &local::ClientRoot) -> serde_json::Value {
    let out = env.run(&["sync", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout_json(&out)["error"].clone()
}

#[test]
fn a_delta_is_never_fetched_beyond_max_index_size_issue_25_finding_8() {
    let env = served();
    let (repo, www) = (env.tmp.path().join("repo"), env.tmp.path().join("www"));
    let mut m =
        dist::index::wire::Manifest::parse(&fs::read(www.join("index.json")).unwrap()).unwrap();
    // The next serial, signed, claiming a delta of 1 TiB and a snapshot larger still: deltas
    // are "smaller than the snapshot", and the delta's body never ends.
    let from = m.serial;
    m.serial += 1;
    m.snapshot.size = 1 << 41;
    m.snapshot.raw_size = 1 << 41;
    m.deltas = vec![dist::index::wire::DeltaRef {
        from,
        to: m.serial,
        blake3: dist::format::ids::Digest::from_bytes([0; 32]),
        size: 1 << 40,
    }];
    sign_manifest(&repo, &www, &m);
    let server = Endless::start(&www, &format!("/index/{}.delta.zst", m.serial));
    let yaml = env.root.join("client.yaml");
    let cfg = fs::read_to_string(&yaml).unwrap();
    let cfg = cfg.replace(&env.server.url, &server.url);
    fs::write(&yaml, format!("{cfg}max_index_size: 1048576\n")).unwrap();
    let before = local_copy(&env.root);

    let err = sync_refused(&env);
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("max_index_size"), "{msg}");
    assert_eq!(
        server.sent.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the delta was downloaded"
    );
    assert_eq!(local_copy(&env.root), before);
}

#[test]
fn another_index_for_the_serial_held_is_refused_issue_25_finding_8() {
    let env = served();
    let (repo, www) = (env.tmp.path().join("repo"), env.tmp.path().join("www"));
    let serial = latest(&repo);
    // The same serial again, signed, with other content (a description changed).
    let db = env.tmp.path().join("other.db");
    published::snapshot_db(&repo, &db);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("UPDATE packages SET description = 'another index'")
        .unwrap();
    drop(conn);
    published::publish_db(&repo, &www, &db, serial);
    let before = local_copy(&env.root);

    let err = sync_refused(&env);
    let msg = err["message"].as_str().unwrap();
    assert_eq!(err["kind"], "index", "{msg}");
    assert!(
        msg.contains(&format!(
            "another index for serial {serial} of repository `default`"
        )),
        "{msg}"
    );
    assert_eq!(local_copy(&env.root), before);
}

#[test]
fn an_index_of_another_repository_sharing_the_key_is_refused_issue_25_finding_8() {
    let env = served();
    let tmp = env.tmp.path();
    let (repo, www) = (tmp.join("repo"), tmp.join("www"));
    // Another repository with the same key (its keys/ copied), further along.
    let other = tmp.join("other");
    copy_tree(&repo.join("keys"), &other.join("keys"));
    for (i, name) in ["tool", "lib"].iter().enumerate() {
        let p = pkg(&tmp.join("pkgs"), name, "1.0.0", &format!("other {i}"));
        run_ok(
            dist()
                .arg("--root")
                .arg(&other)
                .args(["add", "--create"])
                .arg(p),
        );
    }
    assert_eq!(repo_key(&other), repo_key(&repo));
    assert!(latest(&other) > latest(&repo));
    let ours = dist::repo::Repo::new(&repo)
        .repository_id()
        .unwrap()
        .unwrap();
    let theirs = dist::repo::Repo::new(&other)
        .repository_id()
        .unwrap()
        .unwrap();
    assert_ne!(ours, theirs);
    published::lay_out(&other, &www);
    let before = local_copy(&env.root);

    let err = sync_refused(&env);
    let msg = err["message"].as_str().unwrap();
    assert_eq!(err["kind"], "index", "{msg}");
    assert!(
        msg.contains(&format!(
            "an index of repository {theirs}, not of repository {ours}"
        )),
        "{msg}"
    );
    assert!(msg.contains("repository `default`"), "{msg}");
    assert_eq!(local_copy(&env.root), before);
}

#[test]
fn a_stale_first_server_does_not_hold_a_client_back_issue_25_finding_8() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let p = pkg(&tmp.path().join("pkgs"), "hello", "1.0.0", "hello");
    run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--create"])
            .arg(p),
    );
    // A mirror that stopped at serial 1, listed first; the origin at serial 2.
    let (stale_www, fresh_www) = (tmp.path().join("stale"), tmp.path().join("fresh"));
    published::lay_out(&repo, &stale_www);
    let p = pkg(&tmp.path().join("pkgs"), "hello", "1.1.0", "hello again");
    run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--create"])
            .arg(p),
    );
    published::lay_out(&repo, &fresh_www);
    let (stale, fresh) = (
        files::FileServer::start(&stale_www),
        files::FileServer::start(&fresh_www),
    );
    let client = local::ClientRoot {
        root: tmp.path().join("client"),
    };
    fs::create_dir_all(&client.root).unwrap();
    fs::write(
        client.root.join("client.yaml"),
        format!(
            "server_url: {}\nserver_urls: [\"{}\"]\npublic_key: {}\ntransport: http\nseed: false\n",
            stale.url,
            fresh.url,
            repo_key(&repo)
        ),
    )
    .unwrap();

    // A fresh client takes the newest serial, and is told which server is behind.
    let out = client.ok(&["sync", "--json"]);
    let report = stdout_json(&out);
    assert_eq!(report["serial"], 2, "{report}");
    assert_eq!(report["server"], fresh.url.as_str(), "{report}");
    assert_eq!(
        report["behind"],
        serde_json::json!([{"server": stale.url, "serial": 1}]),
        "{report}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("warning: {} is behind", stale.url)),
        "{stderr}"
    );
    // Synced, it stays at its serial and still names the stale server.
    let out = client.ok(&["sync", "--json"]);
    let report = stdout_json(&out);
    assert_eq!(
        (report["serial"].as_u64(), report["changed"].as_bool()),
        (Some(2), Some(false)),
        "{report}"
    );
    assert_eq!(
        report["behind"][0]["server"],
        stale.url.as_str(),
        "{report}"
    );
    client.ok(&["install", "hello"]);
    let listed = String::from_utf8_lossy(&client.ok(&["list"]).stdout).into_owned();
    assert!(listed.contains("1.1.0"), "{listed}");
}
