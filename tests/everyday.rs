//! Everyday use (issue 13): first run (`init`, `config show`), the verbs people reach for
//! (`files`, `owner`, `repair`, `install --reinstall`, `uninstall NAME...`/`remove`,
//! did-you-mean), one JSON contract (errors as JSON objects, packages as objects), completions.
//! Against a real HTTP server with a repository's published files, over HTTP.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::path::PathBuf;

use common::*;
use files::FileServer;

#[test]
fn first_run_verbs_and_one_json_contract_issue_13() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, www, pkgs) = (
        tmp.path().join("repo"),
        tmp.path().join("www"),
        tmp.path().join("pkgs"),
    );
    let tools = ["hello", "help", "world"].map(|n| local::command_package(&pkgs, n, n));
    // A package whose install script leaves a mark that its uninstall script takes away.
    let marker = local::command_package(&pkgs, "marker", "marker");
    fs::write(
        marker.join("scripts/install.sh"),
        "#!/bin/sh\ntouch \"$DIST_ROOT/marked\"\n",
    )
    .unwrap();
    fs::write(
        marker.join("scripts/uninstall.sh"),
        "#!/bin/sh\nrm -f \"$DIST_ROOT/marked\"\n",
    )
    .unwrap();
    repo_init(&repo);
    run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .arg("add")
            .args(tools)
            .arg(&marker),
    );
    let key = repo_key(&repo);
    published::lay_out(&repo, &www);
    let server = FileServer::start(&www);
    let c = local::ClientRoot {
        root: tmp.path().join("client"),
    };
    let yaml = c.root.join("client.yaml");

    step(
        "init checks the URL and the key before writing anything",
        || {
            let host = server.url.trim_start_matches("http://").to_string();
            let (code, err) = c.err(&["init", "--server-url", &host, "--public-key", &key]);
            assert_eq!(code, 1);
            assert!(
                err.contains(&format!("has no scheme: write `http://{host}`")),
                "{err}"
            );
            let (_, err) = c.err(&[
                "init",
                "--server-url",
                &server.url,
                "--public-key",
                "garbage",
            ]);
            assert!(err.contains("not a minisign key"), "{err}");
            let o = c.run(&["init", "--server-url", "x", "--public-key", &key, "--json"]);
            assert_eq!(stdout_json(&o)["error"]["kind"], "config");
            assert!(!yaml.exists());
            let v = stdout_json(&c.ok(&[
                "init",
                "--server-url",
                &server.url,
                "--public-key",
                &key,
                "--json",
            ]));
            assert_eq!(v["path"], yaml.display().to_string());
            assert!(fs::read_to_string(&yaml).unwrap().contains(&key));
            let (_, err) = c.err(&["init", "--server-url", &server.url, "--public-key", &key]);
            assert!(err.contains("pass --force"), "{err}");
        },
    );

    step("config show says where each setting comes from", || {
        let v = stdout_json(&c.ok(&["--transport", "http", "config", "show", "--json"]));
        let s = &v["settings"];
        assert_eq!(s["server_url"]["value"], server.url.as_str());
        assert_eq!(s["server_url"]["source"], "file");
        assert_eq!(s["transport"]["value"], "http");
        assert_eq!(s["transport"]["source"], "flag");
        assert_eq!(s["fetch_timeout"]["source"], "default");
        assert_eq!(v["config_file"], yaml.display().to_string());
        // Errors name the real file, not ROOT/client.yaml.
        fs::write(&yaml, "transport: http\n").unwrap();
        let (_, err) = c.err(&["sync"]);
        assert!(err.contains(&yaml.display().to_string()), "{err}");
        c.ok(&[
            "init",
            "--force",
            "--server-url",
            &server.url,
            "--public-key",
            &key,
        ]);
        // `init --force` kept `transport: http` (issue 23, finding 3).
        assert!(fs::read_to_string(&yaml)
            .unwrap()
            .contains("transport: http\n"));
        c.ok(&["config", "set", "seed", "false"]);
        c.ok(&["sync"]);
    });

    step(
        "an unknown name gets a did-you-mean, and --json errors are JSON",
        || {
            let (code, err) = c.err(&["install", "helo"]);
            assert_eq!(code, 1);
            assert!(err.contains("did you mean `hello` or `help`?"), "{err}");
            let (_, err) = c.err(&["install", "Hello"]);
            assert!(err.contains("did you mean `hello`?"), "{err}");
            let o = c.run(&["install", "--json", "helo"]);
            assert_eq!(o.status.code(), Some(1));
            let v = stdout_json(&o);
            assert_eq!(v["error"]["kind"], "not_found", "{v}");
            assert!(v["error"]["message"].as_str().unwrap().contains("helo"));
            let o = c.run(&["install", "--json"]);
            assert_eq!(o.status.code(), Some(2), "a usage error exits 2");
            assert_eq!(stdout_json(&o)["error"]["kind"], "usage");
        },
    );

    step(
        "install --dry-run --json and install --json share their keys",
        || {
            let plan = stdout_json(&c.ok(&["install", "--dry-run", "--json", "hello"]));
            let done = stdout_json(&c.ok(&["install", "--json", "hello"]));
            let keys = |v: &serde_json::Value| -> Vec<String> {
                v[0].as_object().unwrap().keys().cloned().collect()
            };
            let (plan_keys, done_keys) = (keys(&plan), keys(&done));
            for k in [
                "name",
                "version",
                "blake3",
                "size",
                "reason",
                "repository",
                "requested",
                "required_by",
                "replaces",
                "source",
                "transport",
                "transport_reason",
            ] {
                assert!(
                    plan_keys.contains(&k.to_string()),
                    "dry run lacks {k}: {plan}"
                );
                assert!(
                    done_keys.contains(&k.to_string()),
                    "install lacks {k}: {done}"
                );
            }
            assert_eq!(plan[0]["blake3"], done[0]["blake3"]);
            let v = stdout_json(&c.ok(&["hold", "hello", "--json"]));
            assert_eq!((&v["held"], &v["changed"]), (&true.into(), &true.into()));
            let v = stdout_json(&c.ok(&["unhold", "hello", "--json"]));
            assert_eq!((&v["held"], &v["changed"]), (&false.into(), &true.into()));
        },
    );

    c.ok(&["install", "hello", "world", "help"]);
    let store_path = {
        let v = stdout_json(&c.ok(&["list", "--installed", "--json"]));
        let p = v
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "hello")
            .unwrap()
            .clone();
        assert!(p["size"].as_u64().unwrap() > 0, "{p}");
        PathBuf::from(p["store_path"].as_str().unwrap())
    };

    step(
        "files lists a package's paths; owner finds the package of a path",
        || {
            let v = stdout_json(&c.ok(&["files", "hello", "--json"]));
            assert_eq!(v["name"], "hello");
            assert!(v["blake3"].as_str().unwrap().len() == 64 && v["size"].as_u64().unwrap() > 0);
            let exe = store_path.join("assets/bin/hello");
            assert!(
                v["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["path"] == exe.display().to_string() && f["kind"] == "file"),
                "{v}"
            );
            let text = String::from_utf8(c.ok(&["files", "hello"]).stdout).unwrap();
            assert!(
                text.lines().any(|l| l == exe.display().to_string()),
                "{text}"
            );
            // The profile link is followed to the store path.
            let link = c.root.join("current/bin/hello");
            let v = stdout_json(&c.ok(&["owner", link.to_str().unwrap(), "--json"]));
            assert_eq!(
                (&v["name"], &v["version"]),
                (&"hello".into(), &"1.0.0".into())
            );
            let (code, err) = c.err(&["owner", "/etc/passwd"]);
            assert_eq!(code, 1);
            assert!(
                err.contains("no installed package owns /etc/passwd"),
                "{err}"
            );
            let (_, err) = c.err(&["files", "helo"]);
            assert!(err.contains("did you mean `hello`"), "{err}");
        },
    );

    step("repair puts back what verify finds changed", || {
        let exe = store_path.join("assets/bin/hello");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(&exe, "#!/bin/sh\necho tampered\n").unwrap();
        assert_eq!(c.run(&["verify"]).status.code(), Some(1));
        let v = stdout_json(&c.ok(&["repair", "--json"]));
        let names: Vec<&str> = v["repaired"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["hello"], "{v}");
        c.ok(&["verify"]);
        assert_eq!(fs::read_to_string(&exe).unwrap(), "#!/bin/sh\necho hello\n");
        let v = stdout_json(&c.ok(&["repair", "--json"]));
        assert_eq!(v["repaired"], serde_json::json!([]));
        // install --reinstall unpacks again even when nothing is wrong.
        let v = stdout_json(&c.ok(&["install", "--reinstall", "--json", "hello"]));
        assert_eq!(v[0]["source"], "cached", "{v}");
        c.ok(&["verify"]);
        // Its install script runs again, its uninstall script does not (it does not leave).
        c.ok(&["install", "marker"]);
        let mark = c.root.join("marked");
        fs::remove_file(&mark).unwrap();
        c.ok(&["install", "--reinstall", "marker"]);
        assert!(mark.exists(), "the reinstall's scripts left no mark");
        c.ok(&["uninstall", "marker"]);
        assert!(!mark.exists(), "uninstall kept the mark");
    });

    step(
        "uninstall takes several names; remove is the same verb",
        || {
            let v = stdout_json(&c.ok(&["uninstall", "--json", "hello", "world"]));
            assert_eq!(v["removed"].as_array().unwrap().len(), 2, "{v}");
            assert!(v["removed"][0]["blake3"].is_string(), "{v}");
            let (_, err) = c.err(&["remove", "hello"]);
            assert!(err.contains("`hello` is not installed"), "{err}");
            c.ok(&["remove", "help"]);
        },
    );

    step("generations list packages as objects", || {
        let v = stdout_json(&c.ok(&["generations", "--json"]));
        let with = v
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["packages"].as_array().unwrap().len() == 3)
            .expect("the generation with the three tools");
        let p = &with["packages"][0];
        assert!(p["name"].is_string() && p["version"].is_string() && p["blake3"].is_string());
    });

    step("completions for bash, zsh and fish", || {
        for shell in ["bash", "zsh", "fish"] {
            let text = String::from_utf8(c.ok(&["completions", shell]).stdout).unwrap();
            // The script asks `dist` itself (issue 23, finding 10).
            assert!(
                text.contains("DIST_COMPLETE=") && text.contains("dist"),
                "{shell}"
            );
        }
        let (code, _) = c.err(&["completions", "cmd"]);
        assert_eq!(code, 2);
    });
    drop(server);
}
