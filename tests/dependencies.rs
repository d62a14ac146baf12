//! Dependencies (issue 12): manifests declare `depends` and `conflicts`, the index carries them,
//! and `install` resolves them with PubGrub: a dependency comes with its dependent (and is
//! installed first), a diamond resolves to one version, an impossible request is explained in
//! words and changes nothing, and declared conflicts are refused before anything happens.
//! Against a real HTTP server with the repository's published files, over HTTP.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::*;
use files::FileServer;

fn pkg(dir: &Path, name: &str, version: &str, relations: &str) -> std::path::PathBuf {
    let log = format!("#!/bin/sh\necho {name} >> \"$DIST_ROOT/install-order\"\n");
    write_package(
        &dir.join(format!("{name}-{version}")),
        name,
        version,
        relations,
        ("data.txt", format!("{name} {version}\n").as_bytes()),
        &log,
    )
}

struct Env {
    client: std::path::PathBuf,
    /// What must live as long as the client is used (temporary directory, servers).
    _keep: Box<dyn std::any::Any>,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, pkgs) = (tmp.path().join("repo"), tmp.path().join("pkgs"));
        let dirs = [
            pkg(&pkgs, "libfoo", "1.0.0", ""),
            pkg(&pkgs, "libfoo", "1.2.0", ""),
            pkg(&pkgs, "libfoo", "2.0.0", ""),
            pkg(&pkgs, "app", "1.0.0", "depends: {libfoo: \"^1.2\"}\n"),
            pkg(&pkgs, "tool", "1.0.0", "depends: {libfoo: \"^2\"}\n"),
            pkg(&pkgs, "base", "1.0.0", ""),
            pkg(&pkgs, "base", "1.5.0", ""),
            pkg(&pkgs, "left", "1.0.0", "depends: {base: \"^1\"}\n"),
            pkg(&pkgs, "right", "1.0.0", "depends: {base: \">=1.5, <2\"}\n"),
            pkg(
                &pkgs,
                "top",
                "1.0.0",
                "depends: {left: \"^1\", right: \"^1\"}\n",
            ),
            pkg(&pkgs, "x", "1.0.0", "conflicts: [y]\n"),
            pkg(&pkgs, "y", "1.0.0", ""),
            pkg(&pkgs, "old", "1.0.0", "depends: {libfoo: \"<1.2\"}\n"),
            local::command_package(&pkgs, "tool-a", "tool"),
            local::command_package(&pkgs, "tool-b", "tool"),
        ];
        repo_init(&repo);
        run_ok(dist().arg("--root").arg(&repo).arg("add").args(&dirs));
        // The publisher refuses what cannot be installed, unless told otherwise.
        let bad = pkg(&pkgs, "bad", "1.0.0", "depends: {libfoo: \"^3\"}\n");
        let latest = || fs::read_to_string(repo.join("published/LATEST")).unwrap();
        let before = latest();
        let err = run_err(dist().arg("--root").arg(&repo).arg("add").arg(&bad));
        assert!(
            err.contains(
                "bad@1.0.0 depends on libfoo ^3, and the repository has only 1.0.0, 1.2.0, 2.0.0"
            ),
            "{err}"
        );
        assert_eq!(latest(), before, "a refused add published");
        run_ok(
            dist()
                .arg("--root")
                .arg(&repo)
                .args(["add", "--allow-unresolved"])
                .arg(&bad),
        );
        Env::serve(tmp)
    }

    /// A synced client (HTTP only, leech only) of the repository at `TMP/repo`, whose files a
    /// real HTTP server serves from `TMP/www`.
    fn serve(tmp: tempfile::TempDir) -> Env {
        let local = local::Local::serve(tmp);
        Env {
            client: local.root.clone(),
            _keep: Box::new(local),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        dist()
            .arg("--root")
            .arg(&self.client)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        run_ok(dist().arg("--root").arg(&self.client).args(args))
    }

    fn refused(&self, args: &[&str]) -> String {
        let before = self.installed();
        let o = self.run(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            self.installed(),
            before,
            "{args:?} changed the installed set"
        );
        err
    }

    /// `name@version` of every installed package.
    fn installed(&self) -> Vec<String> {
        let o = self.run(&["list", "--installed", "--json"]);
        if !o.status.success() {
            return Vec::new();
        }
        let v = stdout_json(&o);
        let mut out: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                format!(
                    "{}@{}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                )
            })
            .collect();
        out.sort();
        out
    }

    fn install_order(&self) -> Vec<String> {
        fs::read_to_string(self.client.join("install-order"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn install_pulls_dependencies_first_and_explains_what_cannot_be_issue_12() {
    let env = Env::new();

    step(
        "a dependency comes with its dependent, newest in range, installed first",
        || {
            let v = stdout_json(&env.ok(&["install", "--json", "app"]));
            let got: Vec<(String, String, bool)> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_string(),
                        e["version"].as_str().unwrap().to_string(),
                        e["requested"].as_bool().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                got,
                [
                    ("libfoo".into(), "1.2.0".into(), false),
                    ("app".into(), "1.0.0".into(), true)
                ]
            );
            assert_eq!(v[0]["required_by"], "app");
            assert_eq!(v[0]["reason"], "dependency");
            assert_eq!(v[1]["reason"], "requested");
            assert_eq!(v[1]["repository"], "default");
            assert_eq!(env.installed(), ["app@1.0.0", "libfoo@1.2.0"]);
            assert_eq!(env.install_order(), ["libfoo", "app"]);
        },
    );

    step("a name requested twice is a usage error (exit 2)", || {
        let o = env.run(&["install", "--dry-run", "--json", "app", "app@1"]);
        assert_eq!(o.status.code(), Some(2), "{o:?}");
        let v = stdout_json(&o);
        assert_eq!(v["error"]["kind"], "usage", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`app` is requested twice"),
            "{v}"
        );
    });

    step(
        "a diamond resolves to one version of the shared dependency",
        || {
            let o = env.ok(&["install", "--dry-run", "top"]);
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                text.contains("base@1.5.0") && text.contains("(dependency of left)"),
                "{text}"
            );
            env.ok(&["install", "top"]);
            assert_eq!(
                env.installed(),
                [
                    "app@1.0.0",
                    "base@1.5.0",
                    "left@1.0.0",
                    "libfoo@1.2.0",
                    "right@1.0.0",
                    "top@1.0.0"
                ]
            );
        },
    );

    step(
        "an impossible request is explained in words and changes nothing",
        || {
            let err = env.refused(&["install", "bad"]);
            eprintln!("{err}");
            assert!(
                err.contains("bad") && err.contains("libfoo") && err.contains("depends on"),
                "{err}"
            );
            // What is installed constrains too: app needs libfoo ^1.2, tool needs ^2.
            let err = env.refused(&["install", "tool"]);
            eprintln!("{err}");
            assert!(err.contains("tool") && err.contains("app"), "{err}");
        },
    );

    step(
        "declared conflicts are refused before anything happens",
        || {
            let err = env.refused(&["install", "x", "y"]);
            assert!(err.contains("x@1.0.0 conflicts with y@1.0.0"), "{err}");
            // With one installed: refused, naming --replace; with it, the other leaves.
            env.ok(&["install", "y"]);
            let err = env.refused(&["install", "x"]);
            assert!(err.contains("pass --replace to remove y"), "{err}");
            env.ok(&["install", "--replace", "x"]);
            let now = env.installed();
            assert!(
                now.contains(&"x@1.0.0".to_string()) && !now.contains(&"y@1.0.0".to_string()),
                "{now:?}"
            );
        },
    );

    step(
        "two packages providing the same command are found before anything is fetched",
        || {
            let err = env.refused(&["install", "--dry-run", "tool-a", "tool-b"]);
            assert!(
                err.contains("both tool-a and tool-b provide bin/tool"),
                "{err}"
            );
            env.ok(&["install", "tool-a"]);
            let info = stdout_json(&env.ok(&["info", "--json", "tool-b"]));
            let b3 = info["versions"][0]["blake3"].as_str().unwrap().to_string();
            let err = env.refused(&["install", "tool-b"]);
            assert!(
                err.contains("both tool-a and tool-b provide bin/tool"),
                "{err}"
            );
            assert!(
                !env.client
                    .join("objects")
                    .join(&b3[..2])
                    .join(&b3[2..])
                    .exists(),
                "tool-b was fetched although its plan was refused"
            );
            env.ok(&["uninstall", "tool-a"]);
        },
    );

    step(
        "a downgrade nobody asked for by version needs --allow-downgrade",
        || {
            env.ok(&["uninstall", "app"]);
            let err = env.refused(&["install", "old"]);
            assert!(
                err.contains("this would downgrade libfoo 1.2.0 -> 1.0.0"),
                "{err}"
            );
            let o = env.ok(&["install", "--dry-run", "--allow-downgrade", "old"]);
            assert!(String::from_utf8_lossy(&o.stdout).contains("DOWNGRADES 1.2.0"));
            env.ok(&["install", "--allow-downgrade", "old"]);
            assert!(env.installed().contains(&"libfoo@1.0.0".to_string()));
        },
    );
}

#[test]
fn upgrade_outdated_holds_uninstall_and_autoremove_issue_12() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, pkgs, www) = (
        tmp.path().join("repo"),
        tmp.path().join("pkgs"),
        tmp.path().join("www"),
    );
    let add = |dirs: &[std::path::PathBuf]| {
        run_ok(
            dist()
                .arg("--root")
                .arg(&repo)
                .args(["add", "--create"])
                .args(dirs),
        );
        published::lay_out(&repo, &www);
    };
    add(&[
        pkg(&pkgs, "lib", "1.0.0", ""),
        pkg(&pkgs, "app", "1.0.0", "depends: {lib: \"^1\"}\n"),
        pkg(&pkgs, "other", "1.0.0", ""),
    ]);
    let env = Env::serve(tmp);
    env.ok(&["install", "app", "other"]);
    let flags = |name: &str| -> (bool, bool) {
        let v = stdout_json(&env.ok(&["list", "--installed", "--json"]));
        let p = v
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone();
        (
            p["requested"].as_bool().unwrap(),
            p["held"].as_bool().unwrap(),
        )
    };
    assert_eq!(flags("app"), (true, false));
    assert_eq!(flags("lib"), (false, false));

    step("outdated lists what the index has newer", || {
        add(&[
            pkg(&pkgs, "lib", "1.1.0", ""),
            pkg(&pkgs, "app", "1.1.0", "depends: {lib: \"^1\"}\n"),
        ]);
        env.ok(&["sync"]);
        let v = stdout_json(&env.ok(&["outdated", "--json"]));
        let got: Vec<(String, String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["name"].as_str().unwrap().into(),
                    o["installed"].as_str().unwrap().into(),
                    o["newest"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("app".into(), "1.0.0".into(), "1.1.0".into()),
                ("lib".into(), "1.0.0".into(), "1.1.0".into())
            ]
        );
    });

    step("a held package keeps its version through upgrade", || {
        env.ok(&["hold", "lib"]);
        assert_eq!(flags("lib"), (false, true));
        let v = stdout_json(&env.ok(&["upgrade", "--json"]));
        let names = |kept: bool| -> Vec<&str> {
            v.as_array()
                .unwrap()
                .iter()
                .filter(|e| e.get("kept_back").is_some() == kept)
                .map(|e| e["name"].as_str().unwrap())
                .collect()
        };
        assert_eq!(names(false), ["app"], "{v}");
        // The held package is listed as kept back, with why (issue 21).
        assert_eq!(names(true), ["lib"], "{v}");
        let lib = v
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "lib")
            .unwrap();
        assert_eq!(lib["kept_back"], "held", "{v}");
        assert!(env.installed().contains(&"lib@1.0.0".to_string()));
        // A request the hold forbids is refused, and the explanation names the hold.
        let err = env.refused(&["install", "lib@1.1.0"]);
        assert!(
            err.contains("lib is held at 1.0.0: `dist unhold lib` lets it move"),
            "{err}"
        );
        env.ok(&["unhold", "lib"]);
        env.ok(&["upgrade"]);
        assert_eq!(env.installed(), ["app@1.1.0", "lib@1.1.0", "other@1.0.0"]);
        assert_eq!(
            flags("lib"),
            (false, false),
            "an upgrade keeps lib a dependency"
        );
        let o = env.ok(&["upgrade"]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("up to date"));
    });

    step(
        "uninstall refuses what others need, names them, and changes nothing",
        || {
            let err = env.refused(&["uninstall", "lib"]);
            assert!(err.contains("`lib` is needed by app@1.1.0"), "{err}");
        },
    );

    step(
        "autoremove removes the dependencies nothing needs any more",
        || {
            env.ok(&["uninstall", "app"]);
            assert_eq!(env.installed(), ["lib@1.1.0", "other@1.0.0"]);
            let v = stdout_json(&env.ok(&["autoremove", "--json"]));
            assert_eq!(v["removed"][0]["name"], "lib", "{v}");
            assert!(v["generation"].is_u64(), "{v}");
            assert_eq!(env.installed(), ["other@1.0.0"]);
            let v = stdout_json(&env.ok(&["autoremove", "--json"]));
            assert_eq!(v["removed"].as_array().unwrap().len(), 0, "{v}");
        },
    );

    step(
        "gc removes what nothing requested needs, then the garbage",
        || {
            env.ok(&["install", "app"]);
            env.ok(&["uninstall", "app"]);
            assert_eq!(env.installed(), ["lib@1.1.0", "other@1.0.0"]);
            let v = stdout_json(&env.ok(&["gc", "--keep", "1", "--json"]));
            assert_eq!(v["autoremoved"][0]["name"], "lib", "{v}");
            assert_eq!(env.installed(), ["other@1.0.0"]);
            assert!(
                v["store_paths_removed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p.as_str().unwrap().contains("-lib-1.1.0")),
                "{v}"
            );
        },
    );
}

/// One repository published at `TMP/NAME` from `packages` and served over real HTTP.
fn published_repo(tmp: &Path, name: &str, packages: &[(&str, &str, &str)]) -> (String, FileServer) {
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
    let key = repo_key(&repo);
    published::lay_out(&repo, &www);
    (key, FileServer::start(&www))
}

#[test]
fn two_repositories_by_priority_issue_12() {
    let tmp = tempfile::tempdir().unwrap();
    // `main` has the older tool and the library; `extra` a newer tool and an app that needs
    // main's library.
    let (main_key, main) = published_repo(
        tmp.path(),
        "main",
        &[("tool", "1.0.0", ""), ("lib", "1.0.0", "")],
    );
    let (extra_key, extra) = published_repo(
        tmp.path(),
        "extra",
        &[
            ("tool", "2.0.0", ""),
            ("app", "1.0.0", "depends: {lib: \"^1\"}\n"),
        ],
    );
    let client = tmp.path().join("client");
    fs::create_dir_all(&client).unwrap();
    let (main_url, extra_url) = (main.url.clone(), extra.url.clone());
    let write_config = |extra_key: &str| {
        fs::write(
            client.join("client.yaml"),
            format!(
                "transport: http\nseed: false\nrepositories:\n  - name: extra\n    server_url: {}\n    public_key: {extra_key}\n    priority: 1\n  - name: main\n    server_url: {}\n    public_key: {main_key}\n    priority: 10\n",
                extra_url, main_url
            ),
        )
        .unwrap();
    };
    let env = Env {
        client: client.clone(),
        _keep: Box::new((tmp, main)),
    };

    step(
        "each index is verified with its own key: a wrong one fails that repository only",
        || {
            // `extra` configured with main's key: its signature does not verify.
            write_config(&main_key);
            let o = env.run(&["sync", "--json"]);
            assert_eq!(o.status.code(), Some(1));
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("repository `extra`"), "{err}");
            let v = stdout_json(&o);
            let repos = v["repositories"].as_array().unwrap();
            assert_eq!(repos[0]["name"], "main", "highest priority first: {v}");
            assert_eq!(repos[0]["serial"], 1);
            assert!(
                repos[1]["error"].as_str().unwrap().contains("signature"),
                "{v}"
            );
            assert!(!client.join("repos/extra/index.db").exists());
            assert!(client.join("repos/main/index.db").exists());
            write_config(&extra_key);
            let v = stdout_json(&env.ok(&["sync", "--json"]));
            assert_eq!(v["repositories"].as_array().unwrap().len(), 2, "{v}");
            assert!(v["repositories"][1].get("error").is_none(), "{v}");
        },
    );

    step(
        "a name resolves from the highest-priority repository that has it, only (issue 25)",
        || {
            let v = stdout_json(&env.ok(&["install", "--dry-run", "--json", "tool"]));
            assert_eq!(v[0]["version"], "1.0.0", "{v}");
            assert_eq!(v[0]["repository"], "main");
            // Only `extra` has a version matching ^2: not taken without `extra/tool`.
            let err = env.refused(&["install", "--dry-run", "tool@^2"]);
            assert!(err.contains("tool"), "{err}");
        },
    );

    step("REPO/NAME takes NAME from that repository", || {
        let v = stdout_json(&env.ok(&["install", "--json", "extra/tool"]));
        assert_eq!(v[0]["version"], "2.0.0", "{v}");
        assert_eq!(v[0]["repository"], "extra");
        assert_eq!(env.installed(), ["tool@2.0.0"]);
        let err = env.refused(&["install", "nowhere/tool"]);
        assert!(
            err.contains("no repository `nowhere` (configured: main, extra)"),
            "{err}"
        );
        let err = env.refused(&["install", "main/app"]);
        assert!(
            err.contains("no package `app` in repository `main`"),
            "{err}"
        );
    });

    step("dependencies cross repositories", || {
        let v = stdout_json(&env.ok(&["install", "--json", "app"]));
        let got: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["repository"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("lib".into(), "main".into()),
                ("app".into(), "extra".into())
            ]
        );
        assert_eq!(env.installed(), ["app@1.0.0", "lib@1.0.0", "tool@2.0.0"]);
        // The installed tool 2.0.0 (from extra) stays: no needless churn back to main's 1.0.0.
        let v = stdout_json(&env.ok(&["outdated", "--json"]));
        assert_eq!(v, serde_json::json!([]));
    });

    step("search and list name the repository", || {
        let v = stdout_json(&env.ok(&["search", "--json", "tool"]));
        let mut got: Vec<(String, String)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["version"].as_str().unwrap().to_string(),
                    e["repository"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("1.0.0".into(), "main".into()),
                ("2.0.0".into(), "extra".into())
            ]
        );
    });
    drop(extra);
}
