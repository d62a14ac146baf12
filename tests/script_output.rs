//! Install and uninstall scripts' output (issue 13): every run's stdout and stderr go to
//! `ROOT/logs/<name>-<version>-<install|uninstall>.log`, and, unless `--quiet` or `--json`, to
//! dist's stderr as the script runs, one `name@version | line` per line with control characters
//! escaped; a failing script's error names the log and quotes its last lines. A script that
//! prints megabytes costs dist no more memory than one that prints a line, and one that never
//! stops printing still meets its timeout. The real `dist` binary against a real HTTP server
//! with the repository's published files.

mod common;
#[path = "common/files.rs"]
mod files;
#[path = "common/local.rs"]
mod local;
#[path = "common/published.rs"]
mod published;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

/// One repository of these packages (each with `script` as both its install and uninstall
/// script), served over HTTP, and a synced client of it (HTTP only, leech only).
struct Env {
    root: PathBuf,
    local: local::Local,
}

impl Env {
    fn new(packages: &[(&str, &str)]) -> Env {
        Env::with(packages, false)
    }

    /// Packages whose install script fails: their uninstall script, which the failed install
    /// runs to undo it (`DIST_ACTION=abort-install`, issue 21), stays quiet.
    fn failing(packages: &[(&str, &str)]) -> Env {
        Env::with(packages, true)
    }

    fn with(packages: &[(&str, &str)], quiet_uninstall: bool) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, pkgs) = (tmp.path().join("repo"), tmp.path().join("pkgs"));
        let dirs: Vec<PathBuf> = packages
            .iter()
            .map(|(name, script)| {
                let dir = write_package(
                    &pkgs.join(name),
                    name,
                    "1.0.0",
                    "",
                    ("data.txt", b"data\n"),
                    script,
                );
                if quiet_uninstall {
                    fs::write(dir.join("scripts/uninstall.sh"), "#!/bin/sh\n").unwrap();
                }
                dir
            })
            .collect();
        repo_init(&repo);
        run_ok(dist().arg("--root").arg(&repo).arg("add").args(&dirs));
        let local = local::Local::serve(tmp);
        Env {
            root: local.root.clone(),
            local,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.local.run(args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        self.local.ok(args)
    }

    fn log(&self, name: &str, which: &str) -> String {
        let path = self.log_path(name, which);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn log_path(&self, name: &str, which: &str) -> PathBuf {
        self.root.join(format!("logs/{name}-1.0.0-{which}.log"))
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of `text` that show script output of `package` (`name@version | line`), without
/// the prefix.
fn shown(text: &str, package: &str) -> Vec<String> {
    let prefix = format!("{package} | ");
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// What `$0` is in the script, as the script's output shows it.
const CHATTY: &str = "#!/bin/sh
echo \"out one: $(basename \"$0\")\"
echo 'err one' >&2
printf 'bell\\007here\\n'
echo 'out two'
printf 'no newline at the end'
";

#[test]
fn script_output_is_shown_prefixed_as_it_runs_and_logged_issue_13() {
    let env = Env::new(&[("chatty", CHATTY)]);

    step("install shows the install script's lines on stderr", || {
        let out = env.ok(&["install", "chatty"]);
        let err = stderr(&out);
        assert_eq!(
            shown(&err, "chatty@1.0.0"),
            [
                "out one: install.sh",
                "err one",
                "bell\\u{7}here",
                "out two",
                "no newline at the end"
            ],
            "{err}"
        );
        assert!(
            !err.contains('\u{7}'),
            "a control character reached the terminal"
        );
        // After the phase line that names the script.
        let phase = err.find("install script  chatty@1.0.0").expect(&err);
        assert!(phase < err.find("out one").unwrap(), "{err}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("out one"),
            "script output on stdout"
        );
    });

    step("the log has every line as the script wrote it", || {
        assert_eq!(
            env.log("chatty", "install"),
            "out one: install.sh\nerr one\nbell\u{7}here\nout two\nno newline at the end"
        );
    });

    step(
        "uninstall shows and logs the uninstall script's lines",
        || {
            let err = stderr(&env.ok(&["uninstall", "chatty"]));
            assert_eq!(
                shown(&err, "chatty@1.0.0").first().map(String::as_str),
                Some("out one: uninstall.sh"),
                "{err}"
            );
            assert!(env
                .log("chatty", "uninstall")
                .starts_with("out one: uninstall.sh\nerr one\n"));
        },
    );

    step("a new run replaces the log of the last one", || {
        env.ok(&["install", "chatty"]);
        assert_eq!(env.log("chatty", "install").matches("out one").count(), 1);
    });
}

#[test]
fn quiet_and_json_hide_script_output_and_the_log_is_still_written_issue_13() {
    let env = Env::new(&[("hushed", CHATTY), ("machine", CHATTY)]);
    let out = env.ok(&["--quiet", "install", "hushed"]);
    let err = stderr(&out);
    assert!(shown(&err, "hushed@1.0.0").is_empty(), "{err}");
    assert!(!err.contains("out one"), "{err}");
    assert!(env
        .log("hushed", "install")
        .contains("out one: install.sh\nerr one\n"));

    let out = env.ok(&["install", "--json", "machine"]);
    let err = stderr(&out);
    assert!(!err.contains("out one"), "{err}");
    let v = stdout_json(&out);
    assert!(v.is_array(), "{v}");
    assert!(env
        .log("machine", "install")
        .contains("out one: install.sh"));
}

#[test]
fn a_failing_script_names_its_log_and_quotes_its_last_lines_issue_13() {
    let env = Env::failing(&[(
        "broken",
        "#!/bin/sh\necho 'step one'\necho 'cannot configure' >&2\nexit 3\n",
    )]);
    let out = env.run(&["install", "broken"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let log = env.log_path("broken", "install");
    let expected = format!(
        "error: install script of broken@1.0.0 failed (exit status: 3, log: {}): step one\ncannot configure",
        log.display()
    );
    assert!(err.contains(&expected), "{err}");
    // Shown as it ran, too, before the error.
    assert_eq!(
        shown(&err, "broken@1.0.0"),
        ["step one", "cannot configure"],
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "step one\ncannot configure\n"
    );
    assert!(
        !env.root.join("current").exists(),
        "a generation was switched to"
    );
}

/// Runs `dist ARGS` and returns its output and the highest `VmHWM` (peak resident set, KiB)
/// seen in `/proc/PID/status` while it ran, polled every 10 ms.
fn run_watching_memory(root: &Path, args: &[&str]) -> (Output, u64) {
    let child = dist()
        .arg("--root")
        .arg(root)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !waiter.is_finished() {
        assert!(
            Instant::now() < deadline,
            "dist {args:?} still runs after 120 s"
        );
        let text = fs::read_to_string(&status).unwrap_or_default();
        let hwm = text
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
        peak = peak.max(hwm.unwrap_or(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    (waiter.join().unwrap(), peak)
}

#[test]
fn a_script_printing_megabytes_does_not_cost_memory_issue_13() {
    // 64 MiB in one line (then a pause, while anything that buffered it would still hold it),
    // then many short lines: the line is shown cut, the last lines quoted, the log keeps the
    // tail, and dist's memory does not grow with any of it.
    let env = Env::failing(&[(
        "loud",
        "#!/bin/sh
head -c 67108864 /dev/zero | tr '\\0' x
echo
sleep 1
i=0
while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done
echo done >&2
exit 5
",
    )]);
    let (out, peak) = run_watching_memory(&env.root, &["install", "loud"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let end = &err[err.len().saturating_sub(2000)..];
    let lines = shown(&err, "loud@1.0.0");
    assert_eq!(lines.len(), 3002, "{end}");
    assert_eq!(lines[0], format!("{}…", "x".repeat(4096)));
    assert_eq!(lines[1], "line 0");
    assert_eq!(lines[3001], "done");
    let quoted: String = (2991..3000).map(|i| format!("line {i}\n")).collect();
    assert!(err.contains(&format!("{quoted}done")), "{end}");
    assert!(err.len() < 200_000, "stderr holds {} bytes", err.len());
    // Issue 25: the log keeps the tail, bounded, and says what it cut.
    let log = fs::read(env.log_path("loud", "install")).unwrap();
    assert!(log.len() < 5 << 20, "the log holds {} bytes", log.len());
    assert!(log.starts_with(b"[dist: "), "no cut marker");
    assert!(log.ends_with(b"line 2999\ndone\n"));
    assert!(peak > 0, "no VmHWM read");
    assert!(peak < 40 << 10, "dist reached {peak} KiB resident");
}

#[test]
fn a_script_that_never_stops_printing_still_times_out_issue_13() {
    let env = Env::failing(&[(
        "spam",
        "#!/bin/sh\necho $$ > \"$DIST_ROOT/spam.pid\"\nwhile :; do echo spam; done\n",
    )]);
    let out = output_within(
        dist().arg("--root").arg(&env.root).args([
            "install",
            "spam",
            "--quiet",
            "--script-timeout",
            "2",
        ]),
        Duration::from_secs(30),
        "the install to stop its endlessly printing script after script_timeout (2 s)",
    );
    let pid = fs::read_to_string(env.root.join("spam.pid")).unwrap();
    let pid = pid.trim();
    let alive = Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z");
    if alive {
        // Ours (the script's own pid): stop it before failing.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .status();
    }
    assert!(!alive, "the script's process survived its timeout");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "install script of spam@1.0.0 timed out after 2s (script_timeout); its processes were killed (log: {})",
            env.log_path("spam", "install").display()
        )),
        "{err}"
    );
    let mut start = [0u8; 10];
    std::io::Read::read_exact(
        &mut fs::File::open(env.log_path("spam", "install")).unwrap(),
        &mut start,
    )
    .unwrap();
    // The log starts with the first lines, or (issue 25) says that its head was cut.
    assert!(&start == b"spam\nspam\n" || start.starts_with(b"[dist: "));
    assert!(!env.root.join("current").exists());
}
