//! Everyday use, second pass (issue 23): client.yaml edited in place (`config set|unset`,
//! `init --force`), repositories made only on purpose (`repo init`), what the CLI shows of a
//! package (`info`, `why`, `files` before install), one error contract walked verb by verb,
//! apt's habits steered to dist's verbs, completions from the root and full man pages.
//! Against a real HTTP server with a repository's published files.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;

/// A package `name` 1.0.0 with the manifest lines `more`, and the command `bin/NAME` when
/// `command`.
fn pkg(dir: &Path, name: &str, more: &str, command: bool) -> PathBuf {
    let d = write_package(
        &dir.join(name),
        name,
        "1.0.0",
        more,
        ("readme", b"a package\n"),
        "#!/bin/sh\n",
    );
    if command {
        let bin = d.join("assets/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join(name), format!("#!/bin/sh\necho {name}\n")).unwrap();
        fs::set_permissions(bin.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    d
}

/// The repository of these tests, served, and a synced client: `app` needs `libx` and `tool`,
/// `tool` needs `libx` (and conflicts with `old-tool`), `libx` needs `libc`; `extra` and
/// `slow` (its install script waits) stand alone.
fn env() -> local::Local {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, pkgs) = (tmp.path().join("repo"), tmp.path().join("pkgs"));
    let slow = pkg(&pkgs, "slow", "", false);
    fs::write(
        slow.join("scripts/install.sh"),
        "#!/bin/sh\ntouch \"$DIST_ROOT/started\"\nsleep 60\n",
    )
    .unwrap();
    let dirs = [
        pkg(&pkgs, "libc", "", false),
        pkg(&pkgs, "libx", "depends: {libc: \"^1\"}\n", false),
        pkg(
            &pkgs,
            "tool",
            "description: the tool\ndepends: {libx: \"^1\"}\nconflicts: [old-tool]\n",
            true,
        ),
        pkg(
            &pkgs,
            "app",
            "depends: {libx: \"^1\", tool: \"^1\"}\n",
            false,
        ),
        pkg(&pkgs, "extra", "", true),
        pkg(&pkgs, "broken", "depends: {missing: \"^1\"}\n", false),
        slow,
    ];
    repo_init(&repo);
    run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--allow-unresolved"])
            .args(dirs),
    );
    local::Local::serve(tmp)
}

/// Exit code and `--json` error kind of a failed command.
fn failure(o: &Output) -> (i32, String) {
    assert!(
        !o.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let v = stdout_json(o);
    let kind = v["error"]["kind"].as_str().unwrap_or_default().to_string();
    (o.status.code().unwrap_or(-1), kind)
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn config_set_unset_and_init_force_keep_the_other_keys_issue_23_finding_3() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    repo_init(&a);
    repo_init(&b);
    let c = local::ClientRoot {
        root: tmp.path().join("client"),
    };
    fs::create_dir_all(&c.root).unwrap();
    let yaml = c.root.join("client.yaml");
    fs::write(
        &yaml,
        format!(
            "# the metered laptop\nserver_url: http://10.0.0.1:7380\npublic_key: {}\nseed: false   # metered: no upload\nupload_limit: 100\nbind_address: 10.0.0.2\n",
            repo_key(&a)
        ),
    )
    .unwrap();
    step("init --force sets its keys and keeps the others", || {
        c.ok(&[
            "init",
            "--force",
            "--server-url",
            "http://10.0.0.9:7380",
            "--public-key",
            &repo_key(&b),
        ]);
        let t = fs::read_to_string(&yaml).unwrap();
        assert!(
            t.starts_with("# the metered laptop\nserver_url: http://10.0.0.9:7380\n"),
            "{t}"
        );
        assert!(
            t.contains(&format!("public_key: {}\n", repo_key(&b))),
            "{t}"
        );
        for kept in [
            "seed: false   # metered: no upload\n",
            "upload_limit: 100\n",
            "bind_address: 10.0.0.2\n",
        ] {
            assert!(t.contains(kept), "{kept:?} is gone:\n{t}");
        }
        let v = stdout_json(&c.ok(&["config", "show", "--json"]));
        assert_eq!(v["settings"]["seed"]["value"], false, "{v}");
        assert_eq!(v["settings"]["seed"]["source"], "file", "{v}");
    });
    step(
        "config set and unset change one key, checked, in place",
        || {
            let v = stdout_json(&c.ok(&["config", "set", "upload_limit", "500", "--json"]));
            assert_eq!(
                (
                    v["key"].as_str(),
                    v["value"].as_u64(),
                    v["changed"].as_bool()
                ),
                (Some("upload_limit"), Some(500), Some(true)),
                "{v}"
            );
            c.ok(&["config", "set", "seed", "true"]);
            c.ok(&["config", "unset", "bind_address"]);
            c.ok(&["config", "set", "server_urls", "[http://10.0.0.8:7380]"]);
            let t = fs::read_to_string(&yaml).unwrap();
            assert!(
                t.contains("seed: true  # metered: no upload\nupload_limit: 500\n"),
                "{t}"
            );
            assert!(!t.contains("bind_address"), "{t}");
            let v = stdout_json(&c.ok(&["config", "show", "--json"]));
            assert_eq!(
                v["settings"]["server_urls"]["value"][0], "http://10.0.0.8:7380",
                "{v}"
            );
            assert_eq!(v["settings"]["bind_address"]["source"], "unset", "{v}");
            let v = stdout_json(&c.ok(&["config", "unset", "rpc_url", "--json"]));
            assert_eq!(v["changed"], false, "{v}");
        },
    );
    step("a value client.yaml would refuse changes nothing", || {
        let before = fs::read(&yaml).unwrap();
        for (key, value) in [
            ("upload_limit", "fast"),
            ("server_url", "10.0.0.1:7380"),
            ("transport", "bt"),
            ("bind_address", "host"),
        ] {
            let (code, kind) = failure(&c.run(&["config", "set", key, value, "--json"]));
            assert_eq!((code, kind.as_str()), (1, "config"), "{key} {value}");
        }
        let (code, kind) = failure(&c.run(&["config", "set", "seeed", "true", "--json"]));
        assert_eq!((code, kind.as_str()), (2, "usage"));
        assert_eq!(fs::read(&yaml).unwrap(), before);
    });
}

#[test]
fn repositories_are_made_on_purpose_only_issue_23_finding_4() {
    let tmp = tempfile::tempdir().unwrap();
    let typo = tmp.path().join("srv/dist2");
    let hello = fixture("hello-1.0.0");
    let hello = hello.to_str().unwrap();
    step(
        "no publisher command makes a repository of a mistyped root",
        || {
            let verbs: [&[&str]; 7] = [
                &["add", hello],
                &["key", "show"],
                &["key", "rotate"],
                &["yank", "hello@1.0.0", "--reason", "x"],
                &["unyank", "hello@1.0.0"],
                &["phase", "hello@1.0.0", "50"],
                &["serve", "--http", "127.0.0.1:1", "--tracker", "127.0.0.1:1"],
            ];
            for verb in verbs {
                let o = dist().arg("--root").arg(&typo).args(verb).output().unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                assert_eq!(o.status.code(), Some(1), "{verb:?}: {err}");
                assert!(
                    err.contains(&format!("{} is not a repository", typo.display()))
                        && err.contains("repo init"),
                    "{verb:?}: {err}"
                );
                assert!(!typo.exists(), "{verb:?} created {}", typo.display());
            }
        },
    );
    step("repo init makes one and says which key to back up", || {
        let o = run_ok(dist().arg("--root").arg(&typo).args(["repo", "init"]));
        let out = text(&o);
        let key = repo_key(&typo);
        assert!(out.contains(&format!("public key: {key}")), "{out}");
        assert!(
            out.contains(&format!(
                "back up {}",
                typo.join("keys/secret.key").display()
            )),
            "{out}"
        );
        let o = dist()
            .arg("--root")
            .arg(&typo)
            .args(["repo", "init", "--json"])
            .output()
            .unwrap();
        assert_eq!(failure(&o).0, 1);
        assert_eq!(repo_key(&typo), key, "a second init replaced the key");
        run_ok(dist().arg("--root").arg(&typo).args(["add", hello]));
    });
    step("add --create makes one, announced on stderr", || {
        let other = tmp.path().join("other");
        let o = run_ok(
            dist()
                .arg("--root")
                .arg(&other)
                .args(["add", "--create", "--json", hello]),
        );
        assert_eq!(stdout_json(&o)[0]["status"], "added");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("public key: {}", repo_key(&other))) && err.contains("back up"),
            "{err}"
        );
        let v = stdout_json(&run_ok(
            dist()
                .arg("--root")
                .arg(tmp.path().join("third"))
                .args(["repo", "init", "--json"]),
        ));
        assert_eq!(
            v["public_key"].as_str(),
            Some(repo_key(&tmp.path().join("third")).as_str()),
            "{v}"
        );
        assert_eq!(v["had_index"], false, "{v}");
    });
}

#[test]
fn info_why_and_files_show_what_the_catalog_shows_issue_23_finding_5() {
    let env = env();
    env.ok(&["install", "app"]);
    step(
        "info: dependencies, conflicts, commands, size and date of every version",
        || {
            let v = stdout_json(&env.ok(&["info", "tool", "--json"]));
            let t = &v["versions"][0];
            assert_eq!(t["depends"]["libx"], "^1", "{v}");
            assert_eq!(t["conflicts"][0], "old-tool", "{v}");
            assert_eq!(t["commands"][0], "tool", "{v}");
            assert!(
                t["size"].as_u64().unwrap() > 0 && t["added_at"].as_i64().unwrap() > 0,
                "{v}"
            );
            let out = text(&env.ok(&["info", "tool"]));
            for want in [
                "depends: libx ^1",
                "conflicts: old-tool",
                "commands: tool",
                " KiB",
                "added 20",
                "(installed)",
            ] {
                assert!(out.contains(want), "{want:?} missing:\n{out}");
            }
        },
    );
    step("why: the chains from what was asked for", || {
        let v = stdout_json(&env.ok(&["why", "libc", "--json"]));
        assert_eq!(v["requested"], false, "{v}");
        assert_eq!(
            v["paths"],
            serde_json::json!([["app", "libx", "libc"], ["app", "tool", "libx", "libc"]]),
            "{v}"
        );
        let out = text(&env.ok(&["why", "libc"]));
        assert!(
            out.contains("app -> libx -> libc\napp -> tool -> libx -> libc"),
            "{out}"
        );
        let v = stdout_json(&env.ok(&["why", "app", "--json"]));
        assert_eq!(
            (v["requested"].as_bool(), v["paths"].clone()),
            (Some(true), serde_json::json!([["app"]])),
            "{v}"
        );
        assert_eq!(
            failure(&env.run(&["why", "extra", "--json"])),
            (1, "not_found".into())
        );
        let v = stdout_json(&env.ok(&["list", "--installed", "--json"]));
        let libc = v
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "libc")
            .unwrap();
        assert_eq!(
            (libc["requested"].as_bool(), libc["held"].as_bool()),
            (Some(false), Some(false)),
            "{v}"
        );
    });
    step(
        "files before install: the index's commands, then the cached object's paths",
        || {
            let v = stdout_json(&env.ok(&["files", "extra", "--json"]));
            assert_eq!(
                (v["installed"].as_bool(), v["source"].as_str()),
                (Some(false), Some("index")),
                "{v}"
            );
            assert_eq!(v["files"][0]["path"], "assets/bin/extra", "{v}");
            let o = env.ok(&["files", "extra"]);
            assert!(String::from_utf8_lossy(&o.stderr).contains("extra@1.0.0 is not installed"));
            env.ok(&["install", "extra"]);
            env.ok(&["uninstall", "extra"]);
            let v = stdout_json(&env.ok(&["files", "extra", "--json"]));
            assert_eq!(v["source"], "object", "{v}");
            let paths: Vec<&str> = v["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["path"].as_str().unwrap())
                .collect();
            for p in [
                "manifest.yaml",
                "assets/readme",
                "assets/bin/extra",
                "scripts/install.sh",
            ] {
                assert!(paths.contains(&p), "{p} missing: {paths:?}");
            }
            assert_eq!(
                failure(&env.run(&["files", "nosuch", "--json"])),
                (1, "not_found".into())
            );
        },
    );
}

/// The verbs `dist --help` lists (and `help`'s own line left out), with their subcommands.
fn verbs() -> Vec<Vec<String>> {
    let listed = |args: &[&str]| -> Vec<String> {
        let out = text(&run_ok(dist().args(args).arg("--help")));
        let commands = out.split("Commands:\n").nth(1).unwrap_or_default();
        commands
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().next())
            .filter(|v| *v != "help")
            .map(String::from)
            .collect()
    };
    let mut out = Vec::new();
    for v in listed(&[]) {
        let subs = listed(&[v.as_str()]);
        out.push(vec![v.clone()]);
        out.extend(subs.into_iter().map(|s| vec![v.clone(), s]));
    }
    out
}

#[test]
fn every_documented_error_kind_where_documented_issue_23_finding_6() {
    let env = env();
    let root = env.root.to_str().unwrap();
    let usage = |args: &[&str]| {
        let o = dist()
            .arg("--root")
            .arg(root)
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(
            failure(&o),
            (2, "usage".into()),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    step(
        "usage: every verb, an unknown flag and its missing arguments",
        || {
            let verbs = verbs();
            assert!(verbs.len() > 40, "{verbs:?}");
            for v in &verbs {
                let args: Vec<&str> = v.iter().map(String::as_str).collect();
                usage(&[&args[..], &["--no-such-flag"]].concat());
                let help = text(&run_ok(dist().args(&args).arg("--help")));
                let usage_line = help
                    .lines()
                    .find(|l| l.starts_with("Usage:"))
                    .unwrap_or_default()
                    .to_string();
                if usage_line.contains('<') {
                    usage(&args);
                }
            }
            usage(&["init"]);
            usage(&["sync", "--transport", "bt"]);
            usage(&["install", "app", "--engine", "bittorrent"]);
            usage(&["update"]);
        },
    );
    step("not_found, resolution, config", || {
        assert_eq!(
            failure(&env.run(&["install", "nosuch", "--json"])),
            (1, "not_found".into())
        );
        assert_eq!(
            failure(&env.run(&["info", "nosuch", "--json"])),
            (1, "not_found".into())
        );
        assert_eq!(
            failure(&env.run(&["owner", "/no/such/file", "--json"])),
            (1, "not_found".into())
        );
        assert_eq!(
            failure(&env.run(&["install", "broken", "--json"])),
            (1, "resolution".into())
        );
        assert_eq!(
            failure(&env.run(&["sync", "--server-url", "localhost:1", "--json"])),
            (1, "config".into())
        );
    });
    step("locked: another dist holds the root", || {
        let held = dist::store::lock::acquire(
            &env.root,
            dist::store::lock::Mode::Exclusive,
            "test",
            Duration::from_secs(5),
            &|_| {},
        )
        .unwrap();
        assert_eq!(
            failure(&env.run(&["--lock-timeout", "0.2", "install", "extra", "--json"])),
            (1, "locked".into())
        );
        drop(held);
    });
    step("interrupted: SIGINT during an install script", || {
        let child = dist()
            .arg("--root")
            .arg(root)
            .args(["install", "slow", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = env.root.join("started");
        wait_until("the install script", Duration::from_secs(60), || {
            if started.exists() {
                Ok(())
            } else {
                Err("not started".into())
            }
        });
        run_ok(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]));
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            failure(&o),
            (1, "interrupted".into()),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    });
    step("verification: a server that sends other bytes", || {
        let obj = fs::read_dir(env.tmp.path().join("repo/objects")).unwrap();
        let objects: Vec<PathBuf> = obj
            .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        let v = stdout_json(&env.ok(&["info", "extra", "--json"]));
        let b3 = v["versions"][0]["blake3"].as_str().unwrap().to_string();
        let path = objects
            .iter()
            .find(|p| p.to_str().unwrap().replace('/', "").ends_with(&b3))
            .unwrap();
        let good = fs::read(path).unwrap();
        let mut bad = good.clone();
        bad[600] ^= 1;
        fs::write(path, &bad).unwrap();
        // A fresh client: nothing cached.
        let c = local::ClientRoot {
            root: env.tmp.path().join("fresh"),
        };
        fs::create_dir_all(&c.root).unwrap();
        fs::copy(env.root.join("client.yaml"), c.root.join("client.yaml")).unwrap();
        c.ok(&["sync"]);
        let kind = failure(&c.run(&["install", "extra", "--json"]));
        fs::write(path, &good).unwrap();
        assert_eq!(kind, (1, "verification".into()));
    });
    step("signature: an index signed by another key", || {
        let other = env.tmp.path().join("other");
        repo_init(&other);
        let c = local::ClientRoot {
            root: env.tmp.path().join("foreign"),
        };
        c.ok(&[
            "init",
            "--server-url",
            &env.server.url,
            "--public-key",
            &repo_key(&other),
        ]);
        assert_eq!(
            failure(&c.run(&["sync", "--json"])),
            (1, "signature".into())
        );
    });
    step("index: a signed index with a malformed row", || {
        let (repo, www) = (env.tmp.path().join("repo"), env.tmp.path().join("www"));
        let db = env.tmp.path().join("hostile.db");
        published::snapshot_db(&repo, &db);
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "UPDATE packages SET blake3 = '../../etc' WHERE name = 'extra'",
            [],
        )
        .unwrap();
        drop(conn);
        let serial: u64 = fs::read_to_string(repo.join("published/LATEST"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The same serial, to a client that has none.
        published::publish_db(&repo, &www, &db, serial);
        let c = local::ClientRoot {
            root: env.tmp.path().join("hostile"),
        };
        fs::create_dir_all(&c.root).unwrap();
        fs::copy(env.root.join("client.yaml"), c.root.join("client.yaml")).unwrap();
        let o = c.run(&["sync", "--json"]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(failure(&o), (1, "index".into()), "{err}");
    });
}

#[test]
fn apt_habits_are_steered_to_dist_verbs_issue_23_finding_8() {
    let env = env();
    env.ok(&["install", "tool"]);
    step("update, reinstall, purge name what dist calls them", || {
        for (verb, want) in [
            ("update", "`dist sync`"),
            ("reinstall", "--reinstall"),
            ("purge", "--purge"),
            ("rdepends", "dist why"),
        ] {
            let o = env.run(&[verb, "x"]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{verb}: {err}");
            assert!(err.contains(want), "{verb}: {err}");
        }
    });
    step("show is info, list --upgradable is outdated", || {
        assert_eq!(
            text(&env.ok(&["show", "tool"])),
            text(&env.ok(&["info", "tool"]))
        );
        assert_eq!(
            stdout_json(&env.ok(&["list", "--upgradable", "--json"])),
            stdout_json(&env.ok(&["outdated", "--json"]))
        );
    });
    step(
        "owner of a bare command name is the profile's, of a missing file none",
        || {
            // A file of the same name in the current directory does not get in the way.
            let here = env.tmp.path().join("here");
            fs::create_dir_all(&here).unwrap();
            fs::write(here.join("tool"), "not it").unwrap();
            let o = run_ok(
                dist()
                    .current_dir(&here)
                    .arg("--root")
                    .arg(&env.root)
                    .args(["owner", "tool", "--json"]),
            );
            let v = stdout_json(&o);
            assert_eq!(v["name"], "tool", "{v}");
            let o = dist()
                .current_dir(&here)
                .arg("--root")
                .arg(&env.root)
                .args(["owner", "nosuch", "--json"])
                .output()
                .unwrap();
            assert_eq!(failure(&o), (1, "not_found".into()));
            let missing = env.root.join("current/bin/nosuch");
            let o = env.run(&["owner", missing.to_str().unwrap(), "--json"]);
            assert_eq!(failure(&o), (1, "not_found".into()));
            assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
        },
    );
}

/// What `DIST_COMPLETE=fish dist -- dist --root ROOT WORDS…` offers: one value per line.
fn completions(root: &Path, words: &[&str]) -> Vec<String> {
    let o = run_ok(
        dist()
            .env("DIST_COMPLETE", "fish")
            .arg("--")
            .arg("dist")
            .arg("--root")
            .arg(root)
            .args(words),
    );
    text(&o)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn completions_come_from_the_root_and_man_pages_have_every_section_issue_23_finding_10() {
    let env = env();
    env.ok(&["install", "tool"]);
    env.ok(&["install", "extra"]);
    step("package names, versions, generations and values", || {
        assert_eq!(completions(&env.root, &["install", "li"]), ["libc", "libx"]);
        assert_eq!(
            completions(&env.root, &["install", "tool@"]),
            ["tool@1.0.0"]
        );
        // An empty word is offered the flags too.
        let names: Vec<String> = completions(&env.root, &["uninstall", ""])
            .into_iter()
            .filter(|c| !c.starts_with('-'))
            .collect();
        assert_eq!(names, ["extra", "libc", "libx", "tool"]);
        assert_eq!(
            completions(&env.root, &["--transport", ""]),
            ["auto", "torrent", "http"]
        );
        let gens = completions(&env.root, &["rollback", "--to", ""]);
        assert_eq!(gens, ["2", "1"], "{gens:?}");
        assert!(completions(&env.root, &["config", "set", "se"]).contains(&"seed".to_string()));
    });
    step("bash: the script dist completions prints asks dist", || {
        let dir = dist_bin().parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let script = format!(
            "source <(dist completions bash); COMP_WORDS=(dist --root '{}' install ex); COMP_CWORD=4; _clap_complete_dist dist ex install; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            env.root.display()
        );
        let o = run_ok(
            std::process::Command::new("bash")
                .arg("-c")
                .arg(&script)
                .env("PATH", path)
                .env_remove("DIST_ROOT"),
        );
        assert_eq!(
            text(&o).split_whitespace().collect::<Vec<_>>(),
            ["extra"],
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    });
    step(
        "man pages: synopsis with values, examples, exit status, environment, files",
        || {
            let dir = env.tmp.path().join("man");
            run_ok(dist().arg("manpages").arg(&dir));
            let page = fs::read_to_string(dir.join("dist-install.1")).unwrap();
            for want in [
                ".SH SYNOPSIS",
                "\\fB\\-\\-from\\-bundle\\fR \\fIFILE\\fR",
                ".SH EXAMPLES",
                "dist install \\-\\-dry\\-run app",
                ".SH \"EXIT STATUS\"",
                ".SH ENVIRONMENT",
                "DIST_ROOT",
                ".SH FILES",
                "client.yaml(5)",
            ] {
                assert!(
                    page.contains(want),
                    "{want:?} missing from dist-install.1:\n{page}"
                );
            }
            let client = fs::read_to_string(dir.join("client.yaml.5")).unwrap();
            for key in [
                "server_url",
                "public_key",
                "seed",
                "upload_limit",
                "repositories",
                "http_timeout",
            ] {
                assert!(
                    client.contains(&format!("\\fB{key}\\fR")),
                    "{key} missing from client.yaml.5"
                );
            }
            let manifest = fs::read_to_string(dir.join("manifest.yaml.5")).unwrap();
            for key in ["name", "version", "depends", "conflicts", "config"] {
                assert!(
                    manifest.contains(&format!("\\fB{key}\\fR")),
                    "{key} missing from manifest.yaml.5"
                );
            }
        },
    );
}
