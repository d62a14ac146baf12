//! Real software from Debian 12, repackaged as dist packages (issue 26): Debian's `jq` 1.6, which
//! links `libjq.so.1` (package `libjq1`), which links `libonig.so.5` (`libonig5`). The three
//! `.deb` files are taken once with `apt-get download` into a cache directory (Debian's mirror
//! is the only network this touches), unpacked with `dpkg-deb -x`, and `usr/` becomes the
//! package's `assets/`. Shared by `tests/real_software.rs` and `cargo xtask demo`; std only.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages taken.
pub const DEBS: [&str; 3] = ["jq", "libjq1", "libonig5"];

/// The `.deb` of each of [`DEBS`] in `cache/debian-12/`, downloaded there first if missing
/// (into a temporary directory renamed into place, so concurrent callers do not mix files).
pub fn debs(cache: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = cache.join("debian-12");
    if !dir.is_dir() {
        let tmp = cache.join(format!(".tmp-debs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        let out = Command::new("apt-get")
            .arg("download")
            .args(DEBS)
            .current_dir(&tmp)
            .output()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "apt-get download {} failed (run .ci/setup, which runs apt-get update): {}",
                DEBS.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if fs::rename(&tmp, &dir).is_err() && !dir.is_dir() {
            return Err(format!(
                "cannot move {} to {}",
                tmp.display(),
                dir.display()
            ));
        }
        let _ = fs::remove_dir_all(&tmp);
    }
    DEBS.iter()
        .map(|name| {
            let prefix = format!("{name}_");
            fs::read_dir(&dir)
                .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    let f = p.file_name().unwrap().to_string_lossy();
                    f.starts_with(&prefix) && f.ends_with(".deb")
                })
                .ok_or_else(|| format!("no {name}_*.deb in {}", dir.display()))
        })
        .collect()
}

/// The dist package `name` `version` at `dir/name-version`: `deb`'s `usr/` as `assets/`,
/// `manifest` lines added, scripts that do nothing. With `flat_lib`, the libraries of
/// `lib/<triplet>/` go directly into `lib/` (as a packager may choose: both are merged).
/// `extra` files (path under `assets/`, content) are added, to make a version of other bytes.
pub fn repackage(
    deb: &Path,
    dir: &Path,
    (name, version): (&str, &str),
    manifest: &str,
    flat_lib: bool,
    extra: &[(&str, &str)],
) -> Result<PathBuf, String> {
    let d = dir.join(format!("{name}-{version}"));
    let unpacked = dir.join(format!(".deb-{name}-{version}"));
    let _ = fs::remove_dir_all(&unpacked);
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&unpacked)
        .output()
        .map_err(|e| format!("cannot run dpkg-deb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dpkg-deb -x {}: {}",
            deb.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    fs::create_dir_all(d.join("scripts")).map_err(|e| io("scripts", e))?;
    fs::rename(unpacked.join("usr"), d.join("assets")).map_err(|e| io("usr", e))?;
    if flat_lib {
        flatten_lib(&d.join("assets/lib")).map_err(|e| io("lib", e))?;
    }
    for (path, text) in extra {
        let at = d.join("assets").join(path);
        fs::create_dir_all(at.parent().unwrap()).map_err(|e| io(path, e))?;
        fs::write(&at, text).map_err(|e| io(path, e))?;
    }
    let _ = fs::remove_dir_all(&unpacked);
    fs::write(
        d.join("manifest.yaml"),
        format!("name: {name}\nversion: {version}\ndescription: Debian 12's {name}, repackaged\n{manifest}"),
    )
    .map_err(|e| io("manifest.yaml", e))?;
    for s in ["install.sh", "uninstall.sh"] {
        fs::write(d.join("scripts").join(s), "#!/bin/sh\n").map_err(|e| io(s, e))?;
    }
    Ok(d)
}

/// Moves what each `lib/<triplet>/` holds up into `lib/` and removes the triplet directory.
fn flatten_lib(lib: &Path) -> std::io::Result<()> {
    for e in fs::read_dir(lib)? {
        let sub = e?.path();
        if sub.is_dir()
            && sub
                .file_name()
                .unwrap()
                .to_string_lossy()
                .contains("-linux-")
        {
            for f in fs::read_dir(&sub)? {
                let f = f?;
                fs::rename(f.path(), lib.join(f.file_name()))?;
            }
            fs::remove_dir(&sub)?;
        }
    }
    Ok(())
}

/// The packages of the story, in `dir`: `libonig` 6.9.8 (Debian's layout,
/// `lib/<triplet>/libonig.so.5`), `libjq` 1.6.0 (flat: `lib/libjq.so.1`; depends on libonig),
/// `jq` 1.6.0 (`bin/jq`, `share/man/man1/jq.1.gz`; depends on libjq), and `libjq` 1.6.1: the
/// same library with a note of its own, so that it is another object and another store path.
pub fn jq_packages(cache: &Path, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let [jq, libjq1, libonig5]: [PathBuf; 3] = debs(cache)?
        .try_into()
        .map_err(|_| "three .debs".to_string())?;
    Ok(vec![
        repackage(&libonig5, dir, ("libonig", "6.9.8"), "", false, &[])?,
        repackage(
            &libjq1,
            dir,
            ("libjq", "1.6.0"),
            "depends: {libonig: \"^6.9\"}\n",
            true,
            &[],
        )?,
        repackage(
            &jq,
            dir,
            ("jq", "1.6.0"),
            "depends: {libjq: \"^1.6\"}\n",
            false,
            &[],
        )?,
        repackage(
            &libjq1,
            dir,
            ("libjq", "1.6.1"),
            "depends: {libonig: \"^6.9\"}\n",
            true,
            &[("share/doc/libjq1/dist-repackaged", "1.6.1\n")],
        )?,
    ])
}
