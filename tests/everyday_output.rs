//! Everyday use, second pass (issue 23): what a user is told. The seeding an install leaves
//! behind, a transfer that does not move, output that reads one way (sizes, plurals, columns,
//! colour, `--verbose`, holds, dates, dry runs), and what users look for (the PATH hint,
//! `dist doctor`, proxies, `download_limit`, the catalog's `dist init` line). Against a real HTTP
//! server holding a repository's published files, the real libtorrent seeder, a real proxy.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::Output;

use common::*;
use files::FileServer;

/// A repository of command packages, published and served over HTTP (with each package's
/// `.torrent` at `/torrents/<infohash>.torrent`, as `dist serve` hands it out), and a client
/// root configured for it; the client's seeding daemon is stopped on drop.
struct Env {
    tmp: tempfile::TempDir,
    server: FileServer,
    client: local::ClientRoot,
    /// `dist pack --json` of each package, by name.
    packed: BTreeMap<String, serde_json::Value>,
}

impl Env {
    /// Packages `names` (each with the command `bin/<name>`), published; the client's
    /// `client.yaml` names the server and key, binds 127.0.0.1, and adds `yaml`.
    fn new(names: &[&str], yaml: &str) -> Env {
        let specs: Vec<(&str, &str, usize)> = names.iter().map(|n| (*n, "", 0)).collect();
        Env::with(&specs, yaml)
    }

    /// Like [`Env::new`], each package `(name, more manifest lines, bytes of an incompressible
    /// asset of its own)`.
    fn with(specs: &[(&str, &str, usize)], yaml: &str) -> Env {
        let names: Vec<&str> = specs.iter().map(|(n, _, _)| *n).collect();
        let tmp = tempfile::tempdir().unwrap();
        let (repo, www, pkgs) = (
            tmp.path().join("repo"),
            tmp.path().join("www"),
            tmp.path().join("pkgs"),
        );
        let dirs: Vec<PathBuf> = specs
            .iter()
            .map(|(n, more, noise_bytes)| {
                let d = local::command_package(&pkgs, n, n);
                let m = d.join("manifest.yaml");
                let text = fs::read_to_string(&m).unwrap();
                fs::write(&m, format!("{text}{more}")).unwrap();
                if *noise_bytes > 0 {
                    fs::write(d.join("assets/data.bin"), noise(7, *noise_bytes)).unwrap();
                }
                d
            })
            .collect();
        run_ok(
            dist()
                .arg("--root")
                .arg(&repo)
                .args(["add", "--create"])
                .args(&dirs),
        );
        published::lay_out(&repo, &www);
        fs::create_dir_all(www.join("torrents")).unwrap();
        let mut packed = BTreeMap::new();
        for (n, d) in names.iter().zip(&dirs) {
            let out = tmp.path().join(format!("{n}.tar"));
            let v = stdout_json(&run_ok(
                dist().args(["pack", "--json", "-o"]).arg(&out).arg(d),
            ));
            let ih = v["infohash"].as_str().unwrap();
            fs::copy(
                v["torrent"].as_str().unwrap(),
                www.join(format!("torrents/{ih}.torrent")),
            )
            .unwrap();
            packed.insert(n.to_string(), v);
        }
        let server = FileServer::start(&www);
        let client = local::ClientRoot {
            root: tmp.path().join("client"),
        };
        fs::create_dir_all(&client.root).unwrap();
        fs::write(
            client.root.join("client.yaml"),
            format!(
                "server_url: {}\npublic_key: {}\nbind_address: 127.0.0.1\n{yaml}",
                server.url,
                repo_key(&repo)
            ),
        )
        .unwrap();
        client.ok(&["sync"]);
        Env {
            tmp,
            server,
            client,
            packed,
        }
    }

    fn www(&self) -> PathBuf {
        self.tmp.path().join("www")
    }
}

impl std::ops::Deref for Env {
    type Target = local::ClientRoot;
    fn deref(&self) -> &local::ClientRoot {
        &self.client
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.client.run(&["daemon", "stop"]);
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_first_install_that_seeds_says_so_and_daemon_status_shows_it_issue_23_finding_2() {
    let env = Env::new(&["hello", "world"], "transport: http\nengine: libtorrent\n");
    let first = env.ok(&["install", "hello"]);
    let err = stderr(&first);
    // What seeds, that it keeps running, its limit, and the three ways out, in one notice.
    for want in [
        "note: hello@1.0.0 is now seeded to other clients by a background process",
        "libtorrent seeder",
        "keeps running after dist exits",
        "at most 12500 kB/s (upload_limit)",
        "`dist daemon status`",
        "`dist daemon stop`",
        "`seed: false` in",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // Said once: the next install, seeded by the same process, says nothing of it.
    let second = env.ok(&["install", "world"]);
    assert!(!stderr(&second).contains("seeded"), "{}", stderr(&second));
    // `daemon status` is where to look: the process, its cap, what it seeds, how to stop it.
    wait_until(
        "the seeder lists both",
        std::time::Duration::from_secs(30),
        || {
            let text = stdout(&env.ok(&["daemon", "status"]));
            match text.contains("hello-1.0.0.tar") && text.contains("world-1.0.0.tar") {
                true => Ok(text),
                false => Err(text),
            }
        },
    );
    let text = stdout(&env.ok(&["daemon", "status"]));
    for want in [
        "libtorrent seeder (`dist daemon run`), pid ",
        "seeding 2 objects",
        "upload at most 12500 kB/s (upload_limit)",
        "stop it: dist daemon stop",
        "`seed: false`",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let v = stdout_json(&env.ok(&["daemon", "status", "--json"]));
    assert_eq!(v["upload_limit"], 12500, "{v}");
    assert_eq!(v["engine"], "libtorrent");
    // Stopped, the next install that seeds starts it again, and says so again.
    env.ok(&["daemon", "stop"]);
    let text = stdout(&env.ok(&["daemon", "status"]));
    assert!(text.contains("nothing is seeding for this root"), "{text}");
    env.ok(&["uninstall", "hello"]);
    env.ok(&["gc", "--keep", "1"]);
    let again = env.ok(&["install", "hello"]);
    assert!(
        stderr(&again).contains("is now seeded"),
        "{}",
        stderr(&again)
    );
    // `seed: false`: no notice, nothing seeds.
    env.ok(&["daemon", "stop"]);
    let yaml = env.root.join("client.yaml");
    let text = fs::read_to_string(&yaml).unwrap();
    fs::write(&yaml, format!("{text}seed: false\n")).unwrap();
    env.ok(&["uninstall", "world"]);
    env.ok(&["gc", "--keep", "1"]);
    let leech = env.ok(&["install", "world"]);
    assert!(!stderr(&leech).contains("seeded"), "{}", stderr(&leech));
    assert_eq!(
        stdout_json(&env.ok(&["daemon", "status", "--json"]))["running"],
        false
    );
}

/// A loopback port nothing listens on (bound, then let go).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_transfer_that_does_not_move_says_why_issue_23_finding_7() {
    let env = Env::new(
        &["hello"],
        "transport: torrent\nengine: libtorrent\nfetch_timeout: 22\n",
    );
    // The server hands out a `.torrent` whose tracker is down and whose web seed (the server
    // itself) no longer has the object: nothing can move.
    let tracker = format!("http://127.0.0.1:{}/announce", dead_port());
    let v = &env.packed["hello"];
    let (ih, blake3) = (
        v["infohash"].as_str().unwrap(),
        v["blake3"].as_str().unwrap(),
    );
    let web_seed = format!(
        "{}/objects/{}/{}",
        env.server.url,
        &blake3[..2],
        &blake3[2..]
    );
    let info = dist::format::torrent::Info::parse_torrent(
        &fs::read(v["torrent"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    fs::write(
        env.www().join(format!("torrents/{ih}.torrent")),
        info.render(
            std::slice::from_ref(&tracker),
            std::slice::from_ref(&web_seed),
        ),
    )
    .unwrap();
    fs::remove_file(env.www().join("objects")).unwrap();
    let o = env.run(&["install", "hello"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    // After 15 s without a byte: what dist sees of each source, and what to try.
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: hello@1.0.0: nothing received for 1"))
        .unwrap_or_else(|| panic!("no stall warning in:\n{err}"));
    for want in [
        "0 peers connected",
        &format!("tracker {tracker} unreachable: "),
        "refused",
        &format!("web seed {web_seed} fails: HTTP 404"),
        "no peer is known (no tracker answers) and no web seed serves it",
    ] {
        assert!(warning.contains(want), "missing {want:?} in:\n{warning}");
    }
    // The timeout's error says it again, with the advice.
    let error = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    for want in [
        "timed out after 22 s downloading hello@1.0.0",
        &format!("tracker {tracker} unreachable"),
        "HTTP 404",
        "no web seed serves it",
    ] {
        assert!(error.contains(want), "missing {want:?} in:\n{error}");
    }
}

/// Where `what` starts in each line that has it: equal for text in one column.
fn starts(text: &str, what: &str) -> Vec<usize> {
    text.lines().filter_map(|l| l.find(what)).collect()
}

fn one_column(text: &str, what: &str, rows: usize) {
    let at = starts(text, what);
    assert_eq!(at.len(), rows, "{what:?} in {rows} rows of:\n{text}");
    assert!(
        at.windows(2).all(|w| w[0] == w[1]),
        "{what:?} ragged in:\n{text}"
    );
}

#[test]
fn output_reads_one_way_issue_23_finding_9() {
    let env = Env::with(
        &[
            ("app", "depends: {libx: \"^1\"}\n", 0),
            ("libx", "", 0),
            ("longer-named-tool", "", 0),
        ],
        "transport: http\nseed: false\n",
    );
    let text = |args: &[&str]| stdout(&env.ok(args));
    step("a dry run prints a table and what it all comes to", || {
        let t = text(&["install", "--dry-run", "app"]);
        assert!(
            t.contains("libx@1.0.0") && t.contains("(dependency of app)"),
            "{t}"
        );
        assert!(!t.contains("bytes"), "{t}");
        assert!(t.contains(" B ") || t.contains(" KiB"), "{t}");
        assert!(
            t.contains("2 packages, ") && t.contains(" in all; 2 objects to fetch ("),
            "{t}"
        );
        assert!(t.contains("nothing was changed"), "{t}");
    });
    step("--verbose says how each object came", || {
        let t = text(&["install", "--verbose", "app", "longer-named-tool"]);
        assert!(
            t.contains("app@1.0.0: ") && t.contains(" over http in "),
            "{t}"
        );
        assert!(
            t.contains("from peers") && t.contains("from web seeds"),
            "{t}"
        );
        assert!(!text(&["install", "libx"]).contains("over http"));
    });
    step("list --installed: columns, how each came, holds", || {
        env.ok(&["hold", "longer-named-tool"]);
        let t = text(&["list", "--installed"]);
        one_column(&t, "1.0.0", 3);
        for (name, how) in [
            ("app", "requested"),
            ("libx", "requested"),
            ("longer-named-tool", "requested"),
        ] {
            let line = t.lines().find(|l| l.starts_with(name)).unwrap();
            assert!(line.contains(how), "{line}");
        }
        assert!(
            t.lines()
                .any(|l| l.starts_with("longer-named-tool") && l.contains(" held ")),
            "{t}"
        );
        // Holds are listed two ways.
        let held = text(&["hold"]);
        assert!(held.starts_with("longer-named-tool  1.0.0"), "{held}");
        let t = text(&["list", "--held"]);
        assert_eq!(t.lines().count(), 1, "{t}");
        let v = stdout_json(&env.ok(&["list", "--held", "--json"]));
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["held"], true);
        assert_eq!(v[0]["requested"], true);
        let v = stdout_json(&env.ok(&["hold", "--json"]));
        assert_eq!(v["held"][0]["name"], "longer-named-tool", "{v}");
        env.ok(&["unhold", "longer-named-tool"]);
        assert!(text(&["hold"]).starts_with("nothing is held"));
    });
    step(
        "generations have dates; config show and list have columns",
        || {
            let t = text(&["generations"]);
            assert!(t.lines().all(|l| l.contains(" UTC ")), "{t}");
            let year = t.split(" UTC").next().unwrap();
            assert!(
                year.len() >= 16 && year.as_bytes()[year.len() - 6] == b' ',
                "{t}"
            );
            let t = text(&["config", "show"]);
            let settings: Vec<&str> = t
                .lines()
                .filter(|l| l.ends_with(')') && !l.starts_with("config file"))
                .collect();
            assert!(settings.len() > 10, "{t}");
            let value_at: Vec<usize> = settings
                .iter()
                .map(|l| {
                    let key_end = l.find(' ').unwrap();
                    key_end + l[key_end..].find(|c| c != ' ').unwrap()
                })
                .collect();
            assert!(value_at.windows(2).all(|w| w[0] == w[1]), "{t}");
            one_column(&text(&["list"]), "1.0.0", 3);
        },
    );
    step(
        "uninstall says what became unneeded; dry runs change nothing",
        || {
            env.ok(&["install", "app"]);
            // libx was asked for by name above: make it a dependency again.
            env.ok(&["uninstall", "app", "libx"]);
            env.ok(&["install", "app"]);
            let before = text(&["list", "--installed"]);
            let t = text(&["uninstall", "--dry-run", "app"]);
            assert!(
                t.contains("would remove app@1.0.0") && t.contains("nothing was changed"),
                "{t}"
            );
            assert_eq!(text(&["list", "--installed"]), before);
            let t = text(&["uninstall", "app"]);
            assert!(
            t.contains("no longer needed (installed as dependencies): libx@1.0.0; `dist autoremove` removes it"),
            "{t}"
        );
            let t = text(&["autoremove", "--dry-run"]);
            assert!(t.contains("would remove libx@1.0.0"), "{t}");
            let v = stdout_json(&env.ok(&["autoremove", "--dry-run", "--json"]));
            assert_eq!(
                (v["dry_run"].clone(), v["removed"][0]["name"].clone()),
                (true.into(), "libx".into())
            );
            assert!(text(&["list", "--installed"]).contains("libx"));
        },
    );
    step(
        "gc --dry-run says what a gc would free, in sizes and plurals",
        || {
            let gens = text(&["generations"]);
            let t = text(&["gc", "--dry-run", "--keep", "1"]);
            assert!(
                t.contains("would remove libx@1.0.0 (nothing requested needs it)"),
                "{t}"
            );
            assert!(
                t.contains("would free ") && t.contains("(nothing was changed)"),
                "{t}"
            );
            assert!(!t.contains("bytes"), "{t}");
            assert_eq!(text(&["generations"]), gens);
            let v = stdout_json(&env.ok(&["gc", "--dry-run", "--keep", "1", "--json"]));
            assert_eq!(v["dry_run"], true);
            let would = v["store_paths_removed"].as_array().unwrap().len();
            assert!(would >= 2, "{v}");
            let t = text(&["gc", "--keep", "1"]);
            assert!(
                t.contains(&format!("{would} store paths")) && t.contains("freed "),
                "{t}"
            );
            let t = text(&["gc"]);
            assert!(
                t.contains("removed 0 generations, 0 store paths, 0 objects; freed 0 B"),
                "{t}"
            );
        },
    );
    step(
        "colour: on a terminal, never with NO_COLOR or --color never",
        || {
            let esc = |o: &Output| o.stdout.contains(&0x1b);
            assert!(!esc(&env.ok(&["list", "--installed"])), "piped: no colour");
            assert!(esc(&env.ok(&["--color", "always", "list", "--installed"])));
            let on_tty = |no_color: Option<&str>, flag: &str| {
                let cmd = format!(
                    "{} --root {} {flag} list --installed",
                    dist_bin().display(),
                    env.root.display()
                );
                let mut c = std::process::Command::new(require_tool("script"));
                c.args(["-qec", &cmd, "/dev/null"]);
                match no_color {
                    Some(v) => c.env("NO_COLOR", v),
                    None => c.env_remove("NO_COLOR"),
                };
                run_ok(&mut c)
            };
            assert!(esc(&on_tty(None, "")), "a terminal gets colour");
            assert!(!esc(&on_tty(Some("1"), "")), "NO_COLOR");
            assert!(!esc(&on_tty(None, "--color never")));
            assert!(esc(&on_tty(Some("1"), "--color always")));
        },
    );
}

/// `dist --root CLIENT ARGS` with `PATH` set to `path` and no proxy in the environment.
fn dist_env(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut c = dist();
    c.arg("--root").arg(&env.root).args(args);
    for v in PROXY_VARS {
        c.env_remove(v);
    }
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().unwrap()
}

const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

#[test]
fn install_hints_at_path_and_doctor_checks_the_root_issue_23_finding_11() {
    let env = Env::new(&["hello", "world"], "transport: http\nseed: false\n");
    let system = std::env::var("PATH").unwrap_or_default();
    let bin = env.root.join("current/bin");
    let with_bin = format!("{}:{system}", bin.display());
    // Not on PATH: the install says so, with the line to add.
    let o = dist_env(&env, &["install", "hello"], &[("PATH", &system)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("note: {} is not on your PATH", bin.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "eval \"$(dist --root {} env)\"",
            env.root.display()
        )),
        "{err}"
    );
    // With `--json` too (the hint is on stderr, the JSON on stdout stays whole).
    let o = dist_env(&env, &["uninstall", "hello"], &[("PATH", &with_bin)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = dist_env(&env, &["install", "--json", "hello"], &[("PATH", &system)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout_json(&o)[0]["name"], "hello");
    assert!(
        stderr(&o).contains(&format!("note: {} is not on your PATH", bin.display())),
        "{}",
        stderr(&o)
    );
    // On PATH: nothing to say.
    let o = dist_env(&env, &["install", "world"], &[("PATH", &with_bin)]);
    assert!(
        o.status.success() && !stderr(&o).contains("PATH"),
        "{}",
        stderr(&o)
    );

    // `dist doctor`: every check passes here (the server sends no Date: the clock is not
    // compared), exit 0.
    let o = dist_env(&env, &["doctor", "--json"], &[("PATH", &with_bin)]);
    let v = stdout_json(&o);
    let checks = v["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for want in [
        "config", "server", "key", "index", "daemon", "path", "disk", "clock",
    ] {
        assert!(names.contains(&want), "no {want} check: {v}");
    }
    assert!(checks.iter().all(|c| c["ok"] == true), "{v}");
    assert_eq!(o.status.code(), Some(0), "{v}");
    let text = stdout(&dist_env(&env, &["doctor"], &[("PATH", &with_bin)]));
    assert!(
        text.contains("ok    key ") || text.contains("ok  key "),
        "{text}"
    );
    assert!(text.contains("verifies with key"), "{text}");
    // A server that does not answer, and PATH without the profile: named, exit 1.
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let o = dist_env(
        &env,
        &["--server-url", &dead, "doctor", "--json"],
        &[("PATH", &system)],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = stdout_json(&o);
    let failed = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name && c["ok"] == false)
            .map(|c| c["detail"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{name} did not fail: {v}"))
    };
    assert!(failed("server").contains("unreachable"), "{v}");
    assert!(failed("key").contains(&dead), "{v}");
    assert!(
        failed("path").contains(&format!(
            "eval \"$(dist --root {} env)\"",
            env.root.display()
        )),
        "{v}"
    );
    assert!(
        !failed("key").contains("public_key"),
        "an outage is no key problem: {v}"
    );
    // A key that is not the repository's: the signature is named, with where to look.
    let other_repo = env.tmp.path().join("other-repo");
    repo_init(&other_repo);
    let other = repo_key(&other_repo);
    let v = stdout_json(&dist_env(
        &env,
        &["--public-key", &other, "doctor", "--json"],
        &[("PATH", &with_bin)],
    ));
    let key = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "key")
        .unwrap();
    assert_eq!(key["ok"], false, "{v}");
    assert!(
        key["detail"].as_str().unwrap().contains("dist key show"),
        "{v}"
    );
    let text = stdout(&dist_env(&env, &["--server-url", &dead, "doctor"], &[]));
    assert!(
        text.contains("FAIL  server") && text.contains(" failed"),
        "{text}"
    );
}

/// A real HTTP forward proxy on loopback (no CONNECT): it records each request line, asks the
/// origin the request names with the path alone, and relays the answer. Stopped on drop.
struct Proxy {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start() -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, flag) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => relay(conn, &s),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        Proxy {
            url,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One proxied request: `GET http://HOST:PORT/PATH HTTP/1.1` and its headers in, the origin's
/// answer out.
fn relay(conn: std::net::TcpStream, seen: &std::sync::Mutex<Vec<String>>) {
    use std::io::{BufRead, BufReader, Write};
    let _ = conn.set_nonblocking(false);
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    seen.lock().unwrap().push(format!("{method} {target}"));
    let mut headers = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) <= 2 {
            break;
        }
        let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !["connection", "proxy-connection", "proxy-authorization"].contains(&name.as_str()) {
            headers.push_str(&h);
        }
    }
    let Some(rest) = target.strip_prefix("http://") else {
        let _ = (&conn).write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut origin) = std::net::TcpStream::connect(authority) else {
        let _ = (&conn).write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let head = format!("{method} {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    if origin.write_all(head.as_bytes()).is_ok() {
        let _ = std::io::copy(&mut origin, &mut &conn);
    }
}

#[test]
fn sync_and_fetches_go_through_the_environments_proxy_issue_23_finding_11() {
    let env = Env::new(&["hello", "world"], "transport: http\nseed: false\n");
    let proxy = Proxy::start();
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    ok(dist_env(&env, &["sync"], &[("HTTP_PROXY", &proxy.url)]));
    ok(dist_env(
        &env,
        &["install", "hello"],
        &[("HTTP_PROXY", &proxy.url)],
    ));
    let seen = proxy.seen();
    let origin = &env.server.url;
    assert!(
        seen.contains(&format!("GET {origin}/index.json")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.starts_with(&format!("GET {origin}/objects/"))),
        "{seen:?}"
    );
    // The lowercase name too; NO_PROXY exempts the host.
    ok(dist_env(
        &env,
        &["install", "world"],
        &[("http_proxy", &proxy.url), ("NO_PROXY", "127.0.0.1")],
    ));
    assert_eq!(proxy.seen(), seen, "NO_PROXY must bypass the proxy");
    ok(dist_env(&env, &["uninstall", "world"], &[]));
    ok(dist_env(&env, &["gc", "--keep", "1"], &[]));
    ok(dist_env(
        &env,
        &["install", "world"],
        &[("http_proxy", &proxy.url)],
    ));
    assert!(proxy.seen().len() > seen.len(), "{:?}", proxy.seen());
    // A proxy value that is none is named.
    let o = dist_env(&env, &["sync"], &[("HTTP_PROXY", "ftp://nowhere:1")]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("`HTTP_PROXY`: `ftp://nowhere:1` is not a proxy URL"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn download_limit_holds_http_and_libtorrent_to_it_issue_23_finding_11() {
    const LIMIT_KBPS: u64 = 100;
    let env = Env::with(
        &[("big", "", 400_000), ("big2", "", 400_000)],
        "transport: http\nseed: false\nengine: libtorrent\ndownload_limit: 100\n",
    );
    let v = stdout_json(&env.ok(&["config", "show", "--json"]));
    assert_eq!(v["settings"]["download_limit"]["value"], 100, "{v}");
    // The fastest a limited download can be: its size at the limit.
    let floor_ms = |name: &str| env.packed[name]["size"].as_u64().unwrap() / LIMIT_KBPS;
    let v = stdout_json(&env.ok(&["install", "--json", "big"]));
    let took = v[0]["phases_ms"]["fetch"].as_u64().unwrap();
    assert!(
        took >= floor_ms("big") * 9 / 10,
        "{took} ms < {} ms: {v}",
        floor_ms("big")
    );
    // libtorrent, from the server as a web seed.
    let p = &env.packed["big2"];
    let blake3 = p["blake3"].as_str().unwrap();
    let web_seed = format!(
        "{}/objects/{}/{}",
        env.server.url,
        &blake3[..2],
        &blake3[2..]
    );
    let info = dist::format::torrent::Info::parse_torrent(
        &fs::read(p["torrent"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    fs::write(
        env.www().join(format!(
            "torrents/{}.torrent",
            p["infohash"].as_str().unwrap()
        )),
        info.render(&[], std::slice::from_ref(&web_seed)),
    )
    .unwrap();
    let v = stdout_json(&env.ok(&["install", "--json", "--transport", "torrent", "big2"]));
    assert_eq!(v[0]["engine"], "libtorrent", "{v}");
    let took = v[0]["phases_ms"]["fetch"].as_u64().unwrap();
    assert!(
        took >= floor_ms("big2") / 2,
        "{took} ms < {} ms / 2: {v}",
        floor_ms("big2")
    );
}

/// `dist serve` on loopback, stopped with SIGTERM (by pid) on drop.
struct Serve {
    child: std::process::Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        wait_until(
            "dist serve to exit",
            std::time::Duration::from_secs(30),
            || match self.child.try_wait() {
                Ok(Some(_)) => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }
}

#[test]
fn the_catalog_shows_the_key_and_the_init_line_issue_23_finding_11() {
    for t in ["opentracker", "transmission-daemon"] {
        require_tool(t);
    }
    let chromium = require_tool("chromium");
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--create"])
            .arg(local::command_package(
                &tmp.path().join("pkgs"),
                "hello",
                "hello",
            )),
    );
    let key = repo_key(&repo);
    let (http, tracker) = (
        format!("127.0.0.1:{}", dead_port()),
        format!("127.0.0.1:{}", dead_port()),
    );
    let serve = Serve {
        child: dist()
            .arg("--root")
            .arg(&repo)
            .args([
                "serve",
                "--http",
                &http,
                "--tracker",
                &tracker,
                "--bind",
                "127.0.0.1",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(tmp.path().join("serve.log")).unwrap())
            .spawn()
            .unwrap(),
        base: format!("http://{http}"),
    };
    wait_until(
        "GET /health = 200",
        std::time::Duration::from_secs(60),
        || {
            ureq::get(&format!("{}/health", serve.base))
                .call()
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "{e}: {}",
                        fs::read_to_string(tmp.path().join("serve.log")).unwrap_or_default()
                    )
                })
        },
    );
    let dom = run_ok(
        std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!(
                "--user-data-dir={}",
                tmp.path().join("chromium").display()
            ))
            .arg("--dump-dom")
            .arg(format!("{}/", serve.base)),
    );
    let dom = stdout(&dom);
    assert!(
        dom.contains(&format!("<code id=\"public-key\">{key}</code>")),
        "{dom}"
    );
    assert!(
        dom.contains(&format!(
            "<pre id=\"init-line\"><code>dist init --server-url {} --public-key {key}</code></pre>",
            serve.base
        )),
        "{dom}"
    );
}

#[test]
fn a_magnet_that_names_no_source_says_so_in_transmission_issue_23_finding_7() {
    require_tool("transmission-daemon");
    // The server hands out no `.torrent`: the signed magnet link is all there is, so the
    // transmission engine takes it, and this index names no tracker and no web seed.
    let env = Env::new(&["hello"], "transport: torrent\nfetch_timeout: 20\n");
    fs::remove_dir_all(env.www().join("torrents")).unwrap();
    let o = env.run(&["install", "hello"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("the transmission engine fetches"), "{err}");
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: hello@1.0.0: nothing received for 1"))
        .unwrap_or_else(|| panic!("no stall warning in:\n{err}"));
    for want in [
        "no tracker is known for it",
        "no web seed is known for it",
        "its torrent names no tracker and no web seed",
        "`--transport http`",
    ] {
        assert!(warning.contains(want), "missing {want:?} in:\n{warning}");
    }
    let error = err.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        error.contains("timed out after 20 s downloading hello@1.0.0")
            && error.contains("--transport http"),
        "{error}"
    );
}
