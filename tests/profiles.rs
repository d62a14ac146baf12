//! Profiles that carry libraries, manuals and completions (issue 26): a generation merges the
//! well-known trees of every installed package (`lib/`, `etc/`, `share/man`, completions, ...),
//! refuses two packages providing one path before any script runs (or, with `--replace`,
//! removes the installed one), gives dynamically linked programs launchers with their
//! generation's libraries, and `dist env`, `files` and `owner` know the trees. Against a real
//! HTTP server with the repository's published files, over HTTP. The same with real software
//! from Debian 12 is `tests/real_software.rs`.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A package `name` 1.0.0 in `dir/name` with these assets (path under `assets/`, content; a
/// path ending in `*` is made executable), more manifest lines, and scripts that append
/// `install NAME` / `uninstall NAME` to `ROOT/script-log`.
fn package(dir: &Path, name: &str, manifest: &str, assets: &[(&str, &[u8])]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let d = dir.join(name);
    fs::create_dir_all(d.join("scripts")).unwrap();
    fs::create_dir_all(d.join("assets")).unwrap();
    fs::write(
        d.join("manifest.yaml"),
        format!("name: {name}\nversion: 1.0.0\n{manifest}"),
    )
    .unwrap();
    for (path, bytes) in assets {
        let (path, exec) = match path.strip_suffix('*') {
            Some(p) => (p, true),
            None => (*path, false),
        };
        let at = d.join("assets").join(path);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        fs::write(&at, bytes).unwrap();
        if exec {
            fs::set_permissions(&at, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    for (script, word) in [("install.sh", "install"), ("uninstall.sh", "uninstall")] {
        fs::write(
            d.join("scripts").join(script),
            format!("#!/bin/sh\necho {word} {name} >> \"$DIST_ROOT/script-log\"\n"),
        )
        .unwrap();
    }
    d
}

fn link(path: &Path) -> String {
    fs::read_link(path)
        .unwrap_or_else(|e| panic!("{} is not a link: {e}", path.display()))
        .display()
        .to_string()
}

fn script_log(root: &Path) -> String {
    fs::read_to_string(root.join("script-log")).unwrap_or_default()
}

fn current_number(root: &Path) -> String {
    link(&root.join("current"))
}

/// The packages of the story: two that share directories of every tree, a program that is a
/// real dynamically linked ELF (the system's `env`), and packages that clash with them.
fn packages(pkgs: &Path) -> Vec<PathBuf> {
    let env = fs::read("/usr/bin/env").unwrap();
    vec![
        package(
            pkgs,
            "man-a",
            "config: [etc/a.conf]\n",
            &[
                ("bin/a*", b"#!/bin/sh\necho a\n"),
                ("share/man/man1/a.1", b".TH A 1\n"),
                ("share/doc/man-a/README", b"a\n"),
                ("share/info/a.info", b"a\n"),
                ("share/bash-completion/completions/a", b"complete -W x a\n"),
                ("share/zsh/site-functions/_a", b"#compdef a\n"),
                ("share/fish/vendor_completions.d/a.fish", b"complete -c a\n"),
                ("share/applications/a.desktop", b"[Desktop Entry]\n"),
                ("share/icons/hicolor/48x48/apps/a.png", b"png a"),
                ("share/a/data", b"not a merged tree\n"),
                ("etc/a.conf", b"shipped=1\n"),
                ("etc/a-defaults", b"defaults\n"),
            ],
        ),
        package(
            pkgs,
            "man-b",
            "",
            &[
                ("bin/b*", b"#!/bin/sh\necho b\n"),
                ("bin/showenv*", &env),
                ("lib/libb.so.1", b"not really a library"),
                ("share/man/man1/b.1", b".TH B 1\n"),
                ("share/man/man5/b.conf.5", b".TH B.CONF 5\n"),
                ("share/doc/man-b/README", b"b\n"),
                ("share/icons/hicolor/48x48/apps/b.png", b"png b"),
            ],
        ),
        package(pkgs, "clash-lib", "", &[("lib/libb.so.1", b"another")]),
        package(
            pkgs,
            "clash-man",
            "",
            &[("share/man/man1/a.1", b".TH A 1\n")],
        ),
        package(pkgs, "a-dup", "", &[("bin/a*", b"#!/bin/sh\necho dup\n")]),
        package(pkgs, "lib", "", &[("data", b"a package named lib\n")]),
        package(
            pkgs,
            "needs-b",
            "depends: {man-b: \"^1\"}\n",
            &[("x", b"x")],
        ),
    ]
}

#[test]
fn generations_merge_every_tree_and_refuse_clashes_before_scripts_issue_26() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = packages(&tmp.path().join("pkgs"));
    repo_init(&tmp.path().join("repo"));
    run_ok(
        dist()
            .arg("--root")
            .arg(tmp.path().join("repo"))
            .arg("add")
            .args(&dirs),
    );
    let c = local::Local::serve(tmp);
    let root = c.root.clone();
    let cur = root.join("current");
    c.ok(&["install", "man-a", "man-b"]);

    step(
        "shared directories are real, the rest one link each",
        || {
            for d in [
                "share/man",
                "share/man/man1",
                "share/icons/hicolor/48x48/apps",
                "lib",
                "etc",
            ] {
                let m = fs::symlink_metadata(cur.join(d)).unwrap();
                assert!(m.is_dir(), "{d} is not a real directory");
            }
            assert_eq!(
                link(&cur.join("share/man/man1/a.1")),
                "../../../man-a/assets/share/man/man1/a.1"
            );
            // Only man-b has man5/ and only man-a share/doc/man-a: one link for the directory.
            assert_eq!(
                link(&cur.join("share/man/man5")),
                "../../man-b/assets/share/man/man5"
            );
            assert_eq!(
                link(&cur.join("share/doc/man-a")),
                "../../man-a/assets/share/doc/man-a"
            );
            for f in [
                "share/info/a.info",
                "share/bash-completion/completions/a",
                "share/zsh/site-functions/_a",
                "share/fish/vendor_completions.d/a.fish",
                "share/applications/a.desktop",
                "share/icons/hicolor/48x48/apps/b.png",
                "share/man/man5/b.conf.5",
                "lib/libb.so.1",
                "etc/a-defaults",
            ] {
                assert!(cur.join(f).is_file(), "{f} is not in the profile");
            }
            assert!(
                !cur.join("share/a").exists(),
                "share/a is not a merged tree"
            );
            assert_eq!(link(&cur.join("bin/a")), "../man-a/assets/bin/a");
        },
    );

    step("a configuration file is the user's copy", || {
        assert_eq!(
            link(&cur.join("etc/a.conf")),
            "../../../etc/man-a/etc/a.conf"
        );
        fs::write(root.join("etc/man-a/etc/a.conf"), "mine=1\n").unwrap();
        assert_eq!(
            fs::read_to_string(cur.join("etc/a.conf")).unwrap(),
            "mine=1\n"
        );
    });

    step(
        "a dynamically linked program gets the current generation's libraries",
        || {
            // A link to its launcher, made once for its store path.
            let launcher = cur.join("bin/showenv");
            let target = link(&launcher);
            assert!(
                target.starts_with("../../../launchers/")
                    && target.ends_with("-man-b-1.0.0/showenv"),
                "{target}"
            );
            let text = fs::read_to_string(&launcher).unwrap();
            assert!(text.starts_with("#!/bin/sh\n"), "{text}");
            let o = run_ok(
                Command::new(&launcher)
                    .env_clear()
                    .env("LD_LIBRARY_PATH", "/mine"),
            );
            let out = String::from_utf8_lossy(&o.stdout);
            let want = format!("LD_LIBRARY_PATH={}:/mine", cur.join("lib").display());
            assert!(out.lines().any(|l| l == want), "{out}");
            // Scripts stay links: their interpreter is not redirected.
            assert_eq!(link(&cur.join("bin/b")), "../man-b/assets/bin/b");
        },
    );

    step("files and owner know the trees; verify passes", || {
        let owner = |p: &str| {
            stdout_json(&c.ok(&["owner", cur.join(p).to_str().unwrap(), "--json"]))["name"].clone()
        };
        assert_eq!(owner("share/man/man5/b.conf.5"), "man-b");
        assert_eq!(owner("share/man/man1/a.1"), "man-a");
        assert_eq!(owner("lib/libb.so.1"), "man-b");
        assert_eq!(
            owner("bin/showenv"),
            "man-b",
            "a launcher belongs to its program's package"
        );
        assert_eq!(
            owner("etc/a.conf"),
            "man-a",
            "the user's copy of a configuration file"
        );
        let (code, err) = c.err(&["owner", cur.join("share/man/man1").to_str().unwrap()]);
        assert_eq!(code, 1);
        assert!(
            err.contains("is a directory that man-a, man-b share"),
            "{err}"
        );
        let v = stdout_json(&c.ok(&["files", "man-b", "--json"]));
        let lib = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| {
                f["path"]
                    .as_str()
                    .unwrap()
                    .ends_with("assets/lib/libb.so.1")
            })
            .unwrap()
            .clone();
        assert_eq!(
            lib["profile"],
            cur.join("lib/libb.so.1").display().to_string()
        );
        let text = String::from_utf8(c.ok(&["files", "man-b"]).stdout).unwrap();
        assert!(
            text.lines()
                .any(|l| l == cur.join("share/man/man5/b.conf.5").display().to_string()),
            "{text}"
        );
        c.ok(&["verify"]);
    });

    step(
        "dist env puts manuals and data of the profile first, in bash, zsh and fish",
        || {
            require_tool("man");
            let posix =
                "eval \"$(\"$DIST\" --root \"$ROOT\" env --shell SHELL)\"; man -w a; echo \"$XDG_DATA_DIRS\"";
            let fish =
                "$DIST --root $ROOT env --shell fish | source; man -w a; echo \"$XDG_DATA_DIRS\"";
            for (shell, script) in [
                ("bash", posix.replace("SHELL", "bash")),
                ("zsh", posix.replace("SHELL", "zsh")),
                ("fish", fish.to_string()),
            ] {
                let o = run_ok(
                    Command::new(require_tool(shell))
                        .args(["-c", &script])
                        .env_clear()
                        .env("PATH", "/usr/bin:/bin")
                        .env("HOME", &root)
                        .env("DIST", dist_bin())
                        .env("ROOT", &root),
                );
                let out = String::from_utf8_lossy(&o.stdout);
                let mut lines = out.lines();
                // man-a's page, found through the profile (man-db prints a linked page resolved).
                let found = PathBuf::from(lines.next().unwrap_or_default());
                assert!(found.starts_with(&root), "{shell}: {out}");
                let page = fs::canonicalize(cur.join("share/man/man1/a.1")).unwrap();
                assert_eq!(fs::canonicalize(&found).unwrap(), page, "{shell}");
                assert_eq!(
                    lines.next(),
                    Some(
                        format!(
                            "{}:/usr/local/share:/usr/share",
                            cur.join("share").display()
                        )
                        .as_str()
                    ),
                    "{shell}: {out}"
                );
            }
        },
    );

    step(
        "a clash in lib/ or share/man is refused before any script runs",
        || {
            let before = (current_number(&root), script_log(&root));
            for (pkg, path, other) in [
                ("clash-lib", "lib/libb.so.1", "man-b"),
                ("clash-man", "share/man/man1/a.1", "man-a"),
            ] {
                let (code, err) = c.err(&["install", pkg]);
                assert_eq!(code, 1);
                let (first, second) = if pkg < other {
                    (pkg, other)
                } else {
                    (other, pkg)
                };
                assert!(
                err.contains(&format!("both {first} and {second} provide {path}: they cannot be installed together; pass --replace to remove {other} in the same step")),
                "{err}"
            );
            }
            assert_eq!((current_number(&root), script_log(&root)), before);
            let (_, err) = c.err(&["install", "lib"]);
            assert!(err.contains("both lib and man-b provide lib"), "{err}");
            c.ok(&["verify"]);
        },
    );

    step(
        "--replace removes the installed package in the same transition",
        || {
            c.ok(&["install", "needs-b"]);
            let (_, err) = c.err(&["install", "--replace", "clash-lib"]);
            assert!(
                err.contains("--replace cannot remove man-b: needs-b depends on it"),
                "{err}"
            );
            c.ok(&["uninstall", "needs-b"]);
            fs::remove_file(root.join("script-log")).unwrap();
            let o = c.ok(&["install", "--replace", "clash-lib"]);
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(
            out.contains("removed man-b@1.0.0 (--replace: both clash-lib and man-b provide lib/libb.so.1)"),
            "{out}"
        );
            assert_eq!(script_log(&root), "uninstall man-b\ninstall clash-lib\n");
            assert_eq!(
                fs::read_to_string(cur.join("lib/libb.so.1")).unwrap(),
                "another"
            );
            assert!(!cur.join("bin/showenv").exists());
            // A bin/ clash is known from the index, before anything is fetched.
            let (_, err) = c.err(&["install", "a-dup"]);
            assert!(err.contains("both man-a and a-dup provide bin/a: they cannot be installed together; pass --replace to remove man-a"), "{err}");
            c.ok(&["install", "--replace", "a-dup"]);
            let o = run_ok(&mut Command::new(cur.join("bin/a")));
            assert_eq!(String::from_utf8_lossy(&o.stdout), "dup\n");
        },
    );

    step(
        "a rollback brings the other trees back in one rename",
        || {
            c.ok(&["rollback"]);
            c.ok(&["rollback"]);
            assert_eq!(
                fs::read_to_string(cur.join("lib/libb.so.1")).unwrap(),
                "not really a library"
            );
            assert!(fs::read_to_string(cur.join("bin/showenv"))
                .unwrap()
                .starts_with("#!/bin/sh"));
            // Launchers are made once per store path (an empty directory: nothing to launch)
            // and collected with it.
            let of_man_b = || {
                fs::read_dir(root.join("launchers"))
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .find(|p| p.to_string_lossy().ends_with("-man-b-1.0.0"))
            };
            assert!(of_man_b().unwrap().join("showenv").is_file());
            c.ok(&["uninstall", "man-b"]);
            c.ok(&["gc", "--keep", "1"]);
            assert_eq!(of_man_b(), None, "collected with man-b's store path");
            c.ok(&["verify"]);
        },
    );
}
