//! Upgrades that keep what a package set up (issue 21): every switch goes through one
//! transition, the old version's `uninstall.sh` runs before the new version's `install.sh`,
//! both told `DIST_ACTION` and the versions on each side; a package's state
//! (`ROOT/var/NAME`) and configuration files (`ROOT/etc/NAME`) survive upgrades, downgrades,
//! rollbacks, reinstalls and repairs and go only with `uninstall --purge`; a failure midway is
//! undone by the scripts (`abort-install`, `abort-upgrade`); `upgrade` and `outdated` say what is
//! kept back and why. Against a real HTTP server with the repository's published files.

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
use local::Local;

/// Every script run, one line each: `NAME VERSION SCRIPT ACTION old=OLD new=NEW`. The install
/// script also keeps a history in its state directory and a "naive" file of its own (made when
/// missing, deleted by every uninstall run: the natural pair that upgrades used to destroy).
const LOGGING: &str = r#"echo "$DIST_PACKAGE $DIST_VERSION $WHICH $DIST_ACTION old=$DIST_OLD_VERSION new=$DIST_NEW_VERSION" >> "$DIST_ROOT/actions.log"
"#;

fn install_script(fail: bool) -> String {
    format!(
        "#!/bin/sh\nset -e\nWHICH=install\n{LOGGING}\
         test -d \"$DIST_STATE_DIR\"\n\
         echo \"$DIST_VERSION\" >> \"$DIST_STATE_DIR/history\"\n\
         [ -f \"$DIST_ROOT/$DIST_PACKAGE.naive\" ] || echo made > \"$DIST_ROOT/$DIST_PACKAGE.naive\"\n\
         {}",
        if fail { "exit 3\n" } else { "" }
    )
}

fn uninstall_script() -> String {
    format!("#!/bin/sh\nWHICH=uninstall\n{LOGGING}rm -f \"$DIST_ROOT/$DIST_PACKAGE.naive\"\n")
}

/// `name@version` in `pkgs/name-version`, with `svc.conf` as a configuration file when `conf`
/// is given, `relations` added to the manifest, and an install script that fails when `fail`.
fn package(
    pkgs: &Path,
    name: &str,
    version: &str,
    conf: Option<&str>,
    relations: &str,
    fail: bool,
) -> PathBuf {
    let dir = pkgs.join(format!("{name}-{version}"));
    let more = match conf {
        Some(_) => format!("config: [svc.conf]\n{relations}"),
        None => relations.to_string(),
    };
    write_package(
        &dir,
        name,
        version,
        &more,
        ("readme", version.as_bytes()),
        "",
    );
    if let Some(text) = conf {
        fs::write(dir.join("assets/svc.conf"), text).unwrap();
    }
    fs::write(dir.join("scripts/install.sh"), install_script(fail)).unwrap();
    fs::write(dir.join("scripts/uninstall.sh"), uninstall_script()).unwrap();
    dir
}

/// Adds package directories to `TMP/repo` and lays the new serial out in `TMP/www`.
fn publish(tmp: &Path, dirs: &[PathBuf]) {
    let repo = tmp.join("repo");
    run_ok(
        dist()
            .arg("--root")
            .arg(&repo)
            .args(["add", "--create"])
            .args(dirs),
    );
    if repo.join("published/LATEST").exists() && tmp.join("www").exists() {
        published::lay_out(&repo, &tmp.join("www"));
    }
}

/// The lines of `actions.log` written since the last call, and the log emptied.
fn actions(root: &Path) -> Vec<String> {
    let log = root.join("actions.log");
    let text = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    text.lines().map(str::to_string).collect()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn svc_keeps_its_state_and_configuration_through_every_transition_issue_21() {
    let tmp = tempfile::tempdir().unwrap();
    let pkgs = tmp.path().join("pkgs");
    publish(
        tmp.path(),
        &[package(&pkgs, "svc", "1.0.0", Some("port=1\n"), "", false)],
    );
    let env = Local::serve(tmp);
    let root = env.root.clone();
    let conf = root.join("etc/svc/svc.conf");
    let naive = root.join("svc.naive");

    env.ok(&["install", "svc"]);
    assert_eq!(read(&conf), "port=1\n");
    assert_eq!(actions(&root), ["svc 1.0.0 install install old= new=1.0.0"]);
    fs::write(&conf, "port=2 # mine\n").unwrap();

    publish(
        env.tmp.path(),
        &[package(
            &pkgs,
            "svc",
            "1.1.0",
            Some("port=1\nnew=1\n"),
            "",
            false,
        )],
    );
    env.ok(&["sync"]);
    let out = env.ok(&["upgrade"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("svc 1.0.0 -> 1.1.0"), "{text}");
    assert!(text.contains("upgraded 1 package"), "{text}");
    assert!(
        text.contains("kept your changed") && text.contains("svc.conf.dist-new"),
        "{text}"
    );
    assert_eq!(
        actions(&root),
        [
            "svc 1.0.0 uninstall upgrade old=1.0.0 new=1.1.0",
            "svc 1.1.0 install upgrade old=1.0.0 new=1.1.0",
        ],
        "the old uninstall script runs first, then the new install script"
    );
    assert_eq!(read(&conf), "port=2 # mine\n", "the user's change is kept");
    assert_eq!(
        read(&root.join("etc/svc/svc.conf.dist-new")),
        "port=1\nnew=1\n"
    );
    assert!(naive.exists(), "what install.sh made survives the upgrade");
    let verify = stdout_json(&env.ok(&["verify", "--json"]));
    let svc = verify
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["version"] == "1.1.0")
        .unwrap()
        .clone();
    assert_eq!(svc["ok"], true, "{svc}");
    assert_eq!(
        svc["config_changed"],
        serde_json::json!(["svc.conf"]),
        "{svc}"
    );
    assert_eq!(svc["differences"], serde_json::json!([]), "{svc}");

    // Downgrade (asked for by version), then rollback both ways: told which way they go.
    let json = stdout_json(&env.ok(&["install", "svc@1.0.0", "--json"]));
    assert_eq!(json[0]["action"], "downgrade", "{json}");
    assert_eq!(json[0]["old_version"], "1.1.0", "{json}");
    assert_eq!(
        actions(&root),
        [
            "svc 1.1.0 uninstall downgrade old=1.1.0 new=1.0.0",
            "svc 1.0.0 install downgrade old=1.1.0 new=1.0.0",
        ]
    );
    env.ok(&["rollback"]);
    assert_eq!(
        actions(&root),
        [
            "svc 1.0.0 uninstall upgrade old=1.0.0 new=1.1.0",
            "svc 1.1.0 install upgrade old=1.0.0 new=1.1.0",
        ]
    );
    env.ok(&["rollback"]);
    assert_eq!(actions(&root).len(), 2);
    for (what, args) in [
        ("rolled back", &["rollback", "--to", "2"][..]),
        ("reinstalled", &["install", "--reinstall", "svc"][..]),
    ] {
        env.ok(args);
        assert_eq!(read(&conf), "port=2 # mine\n", "{what}");
        assert!(naive.exists(), "{what}");
    }
    assert_eq!(
        actions(&root).last().unwrap(),
        "svc 1.1.0 install reinstall old=1.1.0 new=1.1.0"
    );
    // Repair: a damaged store file is put back, only the install script runs again.
    let current = root.join("current/svc/assets/readme");
    let store_file = fs::canonicalize(&current).unwrap();
    fs::write(&store_file, "damaged").unwrap();
    env.ok(&["repair"]);
    assert_eq!(
        actions(&root),
        ["svc 1.1.0 install reinstall old=1.1.0 new=1.1.0"]
    );
    assert_eq!(read(&conf), "port=2 # mine\n");
    let history = read(&root.join("var/svc/history"));
    assert_eq!(history.lines().count(), 8, "{history}");

    // A plain uninstall keeps state and configuration; a purge removes them.
    env.ok(&["uninstall", "svc"]);
    assert_eq!(
        actions(&root),
        ["svc 1.1.0 uninstall remove old=1.1.0 new="]
    );
    assert!(!naive.exists(), "uninstall.sh ran for a removal");
    assert_eq!(read(&conf), "port=2 # mine\n");
    assert!(root.join("var/svc/history").exists());
    env.ok(&["install", "svc"]);
    assert_eq!(
        read(&conf),
        "port=2 # mine\n",
        "a reinstall after uninstall keeps the user's file"
    );
    env.ok(&["uninstall", "--purge", "svc"]);
    assert_eq!(
        actions(&root).last().unwrap(),
        "svc 1.1.0 uninstall purge old=1.1.0 new="
    );
    assert!(!root.join("etc/svc").exists());
    assert!(!root.join("var/svc").exists());
}

#[test]
fn a_failure_midway_is_undone_by_the_scripts_issue_21() {
    let tmp = tempfile::tempdir().unwrap();
    let pkgs = tmp.path().join("pkgs");
    publish(
        tmp.path(),
        &[
            package(&pkgs, "a", "1.0.0", None, "", false),
            package(&pkgs, "b", "1.0.0", None, "depends: {a: \"^1\"}\n", false),
            package(&pkgs, "c", "1.0.0", None, "depends: {b: \"^1\"}\n", true),
            package(&pkgs, "svc", "1.0.0", Some("port=1\n"), "", false),
        ],
    );
    let env = Local::serve(tmp);
    let root = env.root.clone();
    env.ok(&["install", "svc"]);
    actions(&root);
    let before = fs::read_link(root.join("current")).unwrap();
    let (code, err) = env.err(&["install", "c"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("install script of c@1.0.0"), "{err}");
    assert_eq!(
        actions(&root),
        [
            "a 1.0.0 install install old= new=1.0.0",
            "b 1.0.0 install install old= new=1.0.0",
            "c 1.0.0 install install old= new=1.0.0",
            "c 1.0.0 uninstall abort-install old= new=1.0.0",
            "b 1.0.0 uninstall abort-install old= new=1.0.0",
            "a 1.0.0 uninstall abort-install old= new=1.0.0",
        ]
    );
    assert_eq!(fs::read_link(root.join("current")).unwrap(), before);
    let store: Vec<String> = fs::read_dir(root.join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".record.json"))
        .collect();
    assert_eq!(
        store.len(),
        1,
        "the failed install's store paths are gone: {store:?}"
    );

    // A failing upgrade: the new version's uninstall script and the old version's install
    // script restore the old state; the configuration file is as it was.
    fs::write(root.join("etc/svc/svc.conf"), "port=1\n").unwrap();
    publish(
        env.tmp.path(),
        &[package(&pkgs, "svc", "2.0.0", Some("port=9\n"), "", true)],
    );
    env.ok(&["sync"]);
    env.err(&["upgrade"]);
    assert_eq!(
        actions(&root),
        [
            "svc 1.0.0 uninstall upgrade old=1.0.0 new=2.0.0",
            "svc 2.0.0 install upgrade old=1.0.0 new=2.0.0",
            "svc 2.0.0 uninstall abort-upgrade old=1.0.0 new=2.0.0",
            "svc 1.0.0 install abort-upgrade old=1.0.0 new=2.0.0",
        ]
    );
    assert_eq!(read(&root.join("etc/svc/svc.conf")), "port=1\n");
    assert!(root.join("svc.naive").exists());
    let list = stdout_json(&env.ok(&["list", "--installed", "--json"]));
    assert_eq!(list[0]["version"], "1.0.0", "{list}");
}

#[test]
fn upgrade_and_outdated_say_what_is_kept_back_issue_21() {
    let tmp = tempfile::tempdir().unwrap();
    let pkgs = tmp.path().join("pkgs");
    publish(
        tmp.path(),
        &[
            package(&pkgs, "libcolor", "1.2.0", None, "", false),
            package(
                &pkgs,
                "rainbow",
                "1.4.0",
                None,
                "depends: {libcolor: \"^1.2\"}\n",
                false,
            ),
        ],
    );
    let env = Local::serve(tmp);
    env.ok(&["install", "rainbow"]);
    publish(
        env.tmp.path(),
        &[package(&pkgs, "libcolor", "2.0.0", None, "", false)],
    );
    env.ok(&["sync"]);
    let reason = "kept back: rainbow 1.4.0 requires libcolor ^1.2";
    let outdated = stdout_json(&env.ok(&["outdated", "--json"]));
    assert_eq!(outdated[0]["name"], "libcolor", "{outdated}");
    assert_eq!(outdated[0]["latest"], "2.0.0", "{outdated}");
    assert_eq!(outdated[0]["kept_back"], reason, "{outdated}");
    let upgrade = stdout_json(&env.ok(&["upgrade", "--json"]));
    assert_eq!(
        upgrade,
        serde_json::json!([{"name": "libcolor", "installed": "1.2.0", "latest": "2.0.0", "kept_back": reason}])
    );
    let text = String::from_utf8_lossy(&env.ok(&["upgrade"]).stdout).into_owned();
    assert!(
        text.contains(reason) && text.contains("1 package kept back"),
        "{text}"
    );
    env.ok(&["hold", "rainbow"]);
    let outdated = stdout_json(&env.ok(&["outdated", "--json"]));
    assert_eq!(outdated[0]["kept_back"], reason, "{outdated}");
}
