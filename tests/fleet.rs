//! Running a fleet (issue 22, items 3 to 5) against a real `dist serve` (opentracker,
//! transmission-daemon, HTTP) in a network namespace this test makes: a yanked version is a new
//! signed serial that clients take as a delta, skipped by resolution but kept by a machine that
//! has it, and shown with its reason by `info`, `outdated`, `verify` and the web catalog; a
//! phased version reaches about p % of 200 simulated machines, says so in `upgrade` and
//! `outdated`, and `--no-phasing` or an exact request ignores it; `export` on one root and
//! `apply` on another give the same generation, and `apply` installs, upgrades, downgrades and
//! removes in one generation, or refuses a set that does not match the signed index, changing
//! nothing.

mod common;
#[path = "common/netns.rs"]
mod netns;
#[path = "common/client.rs"]
mod nsclient;
#[path = "common/server.rs"]
mod server;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use netns::Netns;
use nsclient::Client;
use serde_json::Value;
use server::{http_get, wait_served, Server, HTTP, SERVER_IP};

const REASON: &str = "loses <data> on upgrade & more: use 1.1.0";

fn pkg(dir: &Path, name: &str, version: &str, relations: &str) -> PathBuf {
    write_package(
        &dir.join(format!("{name}-{version}")),
        name,
        version,
        relations,
        ("data.txt", format!("{name} {version}\n").as_bytes()),
        "#!/bin/sh\nexit 0\n",
    )
}

struct Repo {
    root: PathBuf,
    pkgs: PathBuf,
}

impl Repo {
    fn dist(&self, args: &[&str]) -> std::process::Output {
        run_ok(dist().arg("--root").arg(&self.root).args(args))
    }

    fn latest(&self) -> u64 {
        fs::read_to_string(self.root.join("published/LATEST"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

/// What only this test asks of a client.
impl Client<'_> {
    /// Syncs, and returns `sync --json`.
    fn sync(&self) -> Value {
        self.json(&["sync", "--json"])
    }

    /// The version `install --dry-run --json NAME[@REQ]` would install.
    fn would_install(&self, request: &str) -> String {
        let v = self.json(&["install", "--dry-run", "--json", request]);
        let name = request.split('@').next().unwrap();
        let entry = v
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_default();
        entry["version"].as_str().unwrap_or_default().to_string()
    }

    /// `name version` of every installed package.
    fn installed(&self) -> Vec<String> {
        let v = self.json(&["list", "--installed", "--json"]);
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// The current generation's package list, store paths relative to the root.
    fn generation_packages(&self) -> Value {
        let text = fs::read_to_string(self.root.join("current/generation.json")).unwrap();
        let root = self.root.display().to_string();
        let mut v: Value = serde_json::from_str(&text.replace(&root, "ROOT")).unwrap();
        v["packages"].take()
    }

    fn generation(&self) -> u64 {
        let v: Value =
            serde_json::from_slice(&fs::read(self.root.join("current/generation.json")).unwrap())
                .unwrap();
        v["number"].as_u64().unwrap()
    }
}

/// A client of the namespace's server over HTTP that seeds nothing (no daemon starts).
fn client<'a>(ns: &'a Netns, root: PathBuf, key: &str) -> Client<'a> {
    let c = Client::new(ns, root, key, SERVER_IP);
    let yaml = c.root.join("client.yaml");
    let text = fs::read_to_string(&yaml).unwrap();
    fs::write(&yaml, format!("{text}transport: http\nseed: false\n")).unwrap();
    c
}

fn version_entry<'v>(info: &'v Value, version: &str) -> &'v Value {
    info["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap_or_else(|| panic!("no {version} in {info}"))
}

#[test]
fn yank_phase_export_and_apply_against_a_real_serve_issue_22() {
    for t in ["opentracker", "transmission-daemon", "curl"] {
        require_tool(t);
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo {
        root: tmp.path().join("repo"),
        pkgs: tmp.path().join("pkgs"),
    };
    repo_init(&repo.root);
    let dirs: Vec<PathBuf> = vec![
        pkg(&repo.pkgs, "hello", "1.0.0", ""),
        pkg(&repo.pkgs, "hello", "1.1.0", ""),
        pkg(&repo.pkgs, "hello", "2.0.0", ""),
        pkg(&repo.pkgs, "libfoo", "1.0.0", ""),
        pkg(&repo.pkgs, "libfoo", "1.1.0", ""),
        pkg(&repo.pkgs, "app", "1.0.0", "depends: {libfoo: \"^1\"}\n"),
        pkg(&repo.pkgs, "extra", "1.0.0", ""),
    ];
    let mut add = vec!["add".to_string()];
    add.extend(dirs.iter().map(|d| d.display().to_string()));
    repo.dist(&add.iter().map(String::as_str).collect::<Vec<_>>());
    let key = repo_key(&repo.root);
    let ns = Netns::new(&[SERVER_IP]).expect("network namespace");
    let server = Server::start(&ns, &repo.root, tmp.path().join("serve.log"));
    let a = client(&ns, tmp.path().join("a"), &key);
    let b = client(&ns, tmp.path().join("b"), &key);
    a.sync();
    b.sync();
    b.ok(&["install", "hello"]);
    assert_eq!(b.installed(), ["hello 2.0.0"]);

    step("a yank is a new signed serial, synced as a delta", || {
        let before = repo.latest();
        let v = stdout_json(&repo.dist(&["yank", "hello@2.0.0", "--reason", REASON, "--json"]));
        assert_eq!(v["yanked"], REASON, "{v}");
        assert_eq!(v["changed"], true);
        assert_eq!(v["serial"], before + 1);
        wait_served(&ns, before + 1);
        let r = a.sync();
        assert_eq!(r["mode"], "delta", "{r}");
        let info = a.json(&["info", "hello", "--json"]);
        assert_eq!(version_entry(&info, "2.0.0")["yanked"], REASON);
        assert!(version_entry(&info, "1.1.0")["yanked"].is_null());
        assert!(version_entry(&info, "2.0.0")["phase"].is_null());
        let text = String::from_utf8_lossy(&a.ok(&["info", "hello"]).stdout).into_owned();
        assert!(
            text.contains("  2.0.0  ") && text.contains(&format!("[yanked: {REASON}]")),
            "{text}"
        );
        // The same again changes nothing and publishes nothing.
        let v = stdout_json(&repo.dist(&["yank", "hello@2.0.0", "--reason", REASON, "--json"]));
        assert_eq!(v["changed"], false);
        assert_eq!(repo.latest(), before + 1);
    });

    step(
        "resolution skips a yanked version unless it is asked for exactly",
        || {
            assert_eq!(a.would_install("hello"), "1.1.0");
            assert_eq!(a.would_install("hello@=2.0.0"), "2.0.0");
            assert_eq!(a.would_install("hello@2.0.0"), "2.0.0");
            let err = a.err(&["install", "hello@^2"]);
            assert!(
                err.contains("hello@2.0.0 is yanked") && err.contains("`hello@=2.0.0`"),
                "{err}"
            );
            a.ok(&["install", "hello"]);
            assert_eq!(a.installed(), ["hello 1.1.0"]);
            // Nothing newer that is not yanked: nothing to upgrade, nothing outdated.
            let up = a.json(&["upgrade", "--json"]);
            assert_eq!(up, serde_json::json!([]), "{up}");
            assert_eq!(a.json(&["outdated", "--json"]), serde_json::json!([]));
        },
    );

    step(
        "a machine that has the yanked version keeps it and is told why",
        || {
            b.sync();
            let gen = b.generation();
            b.ok(&["upgrade"]);
            b.ok(&["install", "hello"]);
            assert_eq!(b.installed(), ["hello 2.0.0"]);
            assert_eq!(b.generation(), gen);
            let out = b.json(&["outdated", "--json"]);
            assert_eq!(out[0]["name"], "hello", "{out}");
            assert_eq!(out[0]["yanked"], REASON);
            assert_eq!(out[0]["installed"], "2.0.0");
            let text = String::from_utf8_lossy(&b.ok(&["outdated"]).stdout).into_owned();
            assert!(
                text.contains(&format!("hello  2.0.0 (yanked: {REASON})")),
                "{text}"
            );
            let v = b.json(&["verify", "--json"]);
            assert_eq!(v[0]["yanked"], REASON, "{v}");
            assert_eq!(v[0]["ok"], true);
            let text = String::from_utf8_lossy(&b.ok(&["verify"]).stdout).into_owned();
            assert!(
                text.contains(&format!("ok       hello@2.0.0 (yanked: {REASON})")),
                "{text}"
            );
        },
    );

    let deferred_id = step("a phased version reaches about p % of 200 machines", || {
        let dir = pkg(&repo.pkgs, "hello", "3.0.0", "");
        let v = stdout_json(&repo.dist(&["add", "--phase", "20", "--json", dir.to_str().unwrap()]));
        let serial = v[0]["serial"].as_u64().unwrap();
        wait_served(&ns, serial);
        let c = client(&ns, tmp.path().join("c"), &key);
        c.sync();
        let info = c.json(&["info", "hello", "--json"]);
        assert_eq!(version_entry(&info, "3.0.0")["phase"], 20);
        let mut took = 0;
        let mut deferred = None;
        for i in 0..200 {
            let id = format!("simulated-machine-{i}");
            fs::write(c.root.join("machine-id"), format!("{id}\n")).unwrap();
            match c.would_install("hello").as_str() {
                "3.0.0" => took += 1,
                "1.1.0" => deferred = Some(id),
                other => panic!("machine {i} would install hello {other}"),
            }
        }
        assert!(
            (30..=50).contains(&took),
            "{took} of 200 machines took a 20 % rollout"
        );
        deferred.expect("a deferred machine")
    });

    step(
        "upgrade and outdated say a rollout defers it; --no-phasing and an exact request take it",
        || {
            fs::write(a.root.join("machine-id"), format!("{deferred_id}\n")).unwrap();
            a.sync();
            let up = a.json(&["upgrade", "--dry-run", "--json"]);
            assert_eq!(
                up[0]["kept_back"], "deferred by phased rollout (20 %)",
                "{up}"
            );
            let text =
                String::from_utf8_lossy(&a.ok(&["upgrade", "--dry-run"]).stdout).into_owned();
            assert!(
                text.contains("hello 1.1.0 (latest 3.0.0): deferred by phased rollout (20 %)"),
                "{text}"
            );
            let out = a.json(&["outdated", "--json"]);
            assert_eq!(
                out[0]["kept_back"], "deferred by phased rollout (20 %)",
                "{out}"
            );
            assert_eq!(out[0]["newest"], "3.0.0");
            for args in [
                &["upgrade", "--dry-run", "--json", "--no-phasing"][..],
                &["--no-phasing", "upgrade", "--dry-run", "--json"][..],
            ] {
                let up = a.json(args);
                assert_eq!(up[0]["version"], "3.0.0", "{args:?}: {up}");
                assert_eq!(up[0]["action"], "upgrade");
            }
            assert_eq!(a.would_install("hello@=3.0.0"), "3.0.0");
            let err = a.err(&["install", "hello@^3"]);
            assert!(
                err.contains("deferred by phased rollout (20 %)") && err.contains("--no-phasing"),
                "{err}"
            );
        },
    );

    step(
        "the web catalog shows the yank with its reason and the rollout",
        || {
            let (code, body) = http_get(&ns, &format!("http://{HTTP}/packages/hello"), None);
            let page = String::from_utf8_lossy(&body);
            assert_eq!(code, 200);
            assert!(
                page.contains("loses &lt;data&gt; on upgrade &amp; more: use 1.1.0"),
                "{page}"
            );
            assert!(!page.contains(REASON));
            assert!(
                page.contains("<span class=\"phase\">20 %</span> of machines"),
                "{page}"
            );
            let (_, body) = http_get(&ns, &format!("http://{HTTP}/"), None);
            assert!(String::from_utf8_lossy(&body).contains("badge phase"));
        },
    );

    step(
        "a rollout only grows unless forced; at 100 % every machine takes it",
        || {
            let serial = repo.latest();
            let out = dist()
                .arg("--root")
                .arg(&repo.root)
                .args(["phase", "hello@3.0.0", "10"])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("only grows") && err.contains("--force"),
                "{err}"
            );
            assert_eq!(repo.latest(), serial);
            repo.dist(&["phase", "hello@3.0.0", "100"]);
            wait_served(&ns, serial + 1);
            a.sync();
            a.ok(&["upgrade"]);
            assert_eq!(a.installed(), ["hello 3.0.0"]);
            a.ok(&["install", "app", "extra"]);
            a.ok(&["uninstall", "extra"]);
        },
    );

    step(
        "export on one root, apply on another: the same generation",
        || {
            let set = tmp.path().join("a.set");
            a.ok(&["export", "-o", set.to_str().unwrap()]);
            let text = fs::read_to_string(&set).unwrap();
            assert!(text.starts_with("dist-set 1\n"), "{text}");
            assert!(text.contains("\napp 1.0.0 default "), "{text}");
            assert!(
                text.contains("\nlibfoo 1.1.0 default ") && text.contains(" dependency\n"),
                "{text}"
            );
            assert_eq!(String::from_utf8_lossy(&a.ok(&["export"]).stdout), text);
            let d = client(&ns, tmp.path().join("d"), &key);
            d.sync();
            let plan = d.json(&["apply", "--dry-run", "--json", set.to_str().unwrap()]);
            let actions: Vec<&str> = plan
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["action"].as_str().unwrap())
                .collect();
            assert_eq!(actions, ["install"; 3], "{plan}");
            assert!(!d.root.join("current").exists());
            let done = d.json(&["apply", "--json", set.to_str().unwrap()]);
            assert_eq!(done.as_array().unwrap().len(), 3, "{done}");
            assert!(
                done[0]["store_path"].is_string() && done[0]["phases_ms"].is_object(),
                "{done}"
            );
            assert_eq!(d.generation_packages(), a.generation_packages());
            let again = d.ok(&["export"]);
            assert_eq!(String::from_utf8_lossy(&again.stdout), text);
            let v = d.json(&["export", "--json"]);
            assert_eq!(v["format"], 1);
            assert_eq!(v["packages"].as_array().unwrap().len(), 3, "{v}");
            // The same set again: nothing changes.
            let gen = d.generation();
            let out = String::from_utf8_lossy(&d.ok(&["apply", set.to_str().unwrap()]).stdout)
                .into_owned();
            assert!(out.contains("nothing changed"), "{out}");
            assert_eq!(d.generation(), gen);
        },
    );

    step(
        "apply upgrades, downgrades, installs and removes in one generation",
        || {
            // b has hello 2.0.0 (yanked); the set names hello 1.0.0, libfoo 1.0.0 requested, extra.
            b.sync();
            let info = b.json(&["info", "hello", "--json"]);
            let blake3 = |info: &Value, v: &str| {
                version_entry(info, v)["blake3"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            let libfoo = b.json(&["info", "libfoo", "--json"]);
            let extra = b.json(&["info", "extra", "--json"]);
            let set = tmp.path().join("b.set");
            fs::write(
            &set,
            format!(
                "dist-set 1\n# what b runs\nhello 1.0.0 default {} requested\nlibfoo 1.0.0 default {} requested\nextra 1.0.0 default {} dependency\n",
                blake3(&info, "1.0.0"),
                blake3(&libfoo, "1.0.0"),
                blake3(&extra, "1.0.0")
            ),
        )
        .unwrap();
            let gen = b.generation();
            let v = b.json(&["apply", "--json", set.to_str().unwrap()]);
            let hello = v
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "hello")
                .unwrap();
            assert_eq!(hello["action"], "downgrade", "{v}");
            assert_eq!(hello["old_version"], "2.0.0");
            assert_eq!(b.generation(), gen + 1);
            assert_eq!(
                b.installed(),
                ["extra 1.0.0", "hello 1.0.0", "libfoo 1.0.0"]
            );
            let listed = b.json(&["list", "--installed", "--json"]);
            let requested: Vec<bool> = listed
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["requested"].as_bool().unwrap())
                .collect();
            assert_eq!(requested, [false, true, true]);
            // a's set: upgrades hello, libfoo, installs app, removes extra.
            let v = b.json(&[
                "apply",
                "--json",
                tmp.path().join("a.set").to_str().unwrap(),
            ]);
            let action = |name: &str| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == name)
                    .unwrap()["action"]
                    .clone()
            };
            assert_eq!(action("hello"), "upgrade", "{v}");
            assert_eq!(action("libfoo"), "upgrade");
            assert_eq!(action("app"), "install");
            assert_eq!(action("extra"), "remove");
            assert_eq!(b.generation(), gen + 2);
            assert_eq!(b.generation_packages(), a.generation_packages());
        },
    );

    step(
        "a set that does not match the signed index is refused, nothing changed",
        || {
            let good = fs::read_to_string(tmp.path().join("a.set")).unwrap();
            let gen = b.generation();
            let other_blake3 = "0".repeat(64);
            let line = good.lines().find(|l| l.starts_with("hello ")).unwrap();
            let b3 = line.split(' ').nth(3).unwrap();
            let cases = [
                (good.replace(b3, &other_blake3), "the set says blake3"),
                (good.replace(line, "./hello-3.0.0.tar"), "1 fields"),
                (
                    good.replace(line, &line.replace("hello ", "../../etc/passwd ")),
                    "name",
                ),
                (
                    good.replace("libfoo 1.1.0", "libfoo 9.9.9"),
                    "not in the index",
                ),
                (
                    good.lines()
                        .filter(|l| !l.starts_with("libfoo "))
                        .map(|l| format!("{l}\n"))
                        .collect(),
                    "depends on libfoo",
                ),
                (
                    good.replace(" default ", " nowhere "),
                    "no repository `nowhere`",
                ),
            ];
            for (i, (text, want)) in cases.iter().enumerate() {
                let path = tmp.path().join(format!("bad-{i}.set"));
                fs::write(&path, text).unwrap();
                let err = b.err(&["apply", path.to_str().unwrap()]);
                assert!(err.contains(want), "case {i}: {err}");
                assert_eq!(b.generation(), gen, "case {i}");
            }
            let o = b.cmd(&[
                "apply",
                "--json",
                tmp.path().join("bad-0.set").to_str().unwrap(),
            ]);
            assert_eq!(o.status.code(), Some(1));
            assert!(stdout_json(&o)["error"]["message"]
                .as_str()
                .unwrap()
                .contains("blake3"));
        },
    );
    drop(server);
}
