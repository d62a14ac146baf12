//! Helpers shared by the integration tests: the real `dist` binary, temp roots, bounded waits.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The `dist` binary cargo built for these tests.
pub fn dist_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dist"))
}

/// A `dist` command with no inherited `DIST_ROOT`.
pub fn dist() -> Command {
    let mut c = Command::new(dist_bin());
    c.env_remove("DIST_ROOT");
    c
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join("valid").join(name)
}

/// Runs the command and returns its output, panicking with both streams if it failed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs the command expecting failure; returns its stderr.
pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} succeeded but should have failed\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Polls `probe` until it returns `Ok`, failing after `timeout` with the last state it reported.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) => {
                if start.elapsed() > timeout {
                    panic!("timed out after {timeout:?} waiting for {what}; last state: {last}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `cmd` to its end, as `Command::output` does, but waits at most `bound` for the exit:
/// past it the process is killed and the test fails saying `what` it was expected to do and
/// what the command had printed (a bounded wait on the exit, not a timing of the command).
pub fn output_within(cmd: &mut Command, bound: Duration, what: &str) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: pid {} still ran after {bound:?} and was killed; it had printed: {}",
                child.id(),
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status: exited,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Whether an external tool is on PATH; tests that need it fail loudly without it, since
/// `.ci/run` installs it.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` is not installed; run .ci/run (or apt-get install it)")
}

/// Copies a directory tree (files, dirs, symlinks) with default permissions.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Compares two trees: same paths, kinds, contents, link targets and owner exec bits.
pub fn assert_same_tree(a: &Path, b: &Path) {
    fn list(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let desc = if m.is_dir() {
                list(root, &p, out);
                "dir".to_string()
            } else if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else {
                format!(
                    "file x={} {}",
                    std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o100 != 0,
                    blake3::hash(&std::fs::read(&p).unwrap())
                )
            };
            out.insert(rel, desc);
        }
    }
    let (mut ta, mut tb) = (
        std::collections::BTreeMap::new(),
        std::collections::BTreeMap::new(),
    );
    list(a, a, &mut ta);
    list(b, b, &mut tb);
    assert_eq!(ta, tb, "trees {} and {} differ", a.display(), b.display());
}

/// Runs one named step of a long end-to-end test and says which step failed: a panic inside
/// is re-raised as `step `NAME` failed: MESSAGE`.
pub fn step<T>(name: &str, f: impl FnOnce() -> T) -> T {
    eprintln!("step: {name}");
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("step `{name}` failed: {msg}");
        }
    }
}

/// Writes the package directory `dir`: `manifest.yaml` with `name`, `version` and the
/// `more_manifest` lines, one asset file (`assets/<path>`), and the same `script` as
/// `scripts/install.sh` and `scripts/uninstall.sh`. Returns `dir`.
pub fn write_package(
    dir: &Path,
    name: &str,
    version: &str,
    more_manifest: &str,
    asset: (&str, &[u8]),
    script: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("manifest.yaml"),
        format!("name: {name}\nversion: {version}\n{more_manifest}"),
    )
    .unwrap();
    std::fs::write(dir.join("assets").join(asset.0), asset.1).unwrap();
    for s in ["install.sh", "uninstall.sh"] {
        std::fs::write(dir.join("scripts").join(s), script).unwrap();
    }
    dir.to_path_buf()
}

/// A package `name` 1.0.0 of one incompressible `bytes`-byte asset of its own (the content is
/// seeded by the name) and scripts that succeed, in `dir/name`.
pub fn noise_package(dir: &Path, name: &str, bytes: usize) -> PathBuf {
    let seed = name.bytes().fold(0x9E37_79B9u64, |h, b| h * 31 + b as u64) | 1;
    write_package(
        &dir.join(name),
        name,
        "1.0.0",
        "",
        ("data.bin", &noise(seed, bytes)),
        "#!/bin/sh\nexit 0\n",
    )
}

/// The public key of the repository at `repo` (`dist key show`), as clients configure it.
pub fn repo_key(repo: &Path) -> String {
    String::from_utf8(run_ok(dist().arg("--root").arg(repo).args(["key", "show"])).stdout)
        .unwrap()
        .trim()
        .to_string()
}

/// `len` pseudo-random (xorshift), incompressible bytes from `seed`.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.max(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// `dist --root REPO repo init`: makes the repository a test publishes into (`dist add` no
/// longer makes one).
pub fn repo_init(repo: &Path) {
    run_ok(dist().arg("--root").arg(repo).args(["repo", "init"]));
}
