//! The demo's second part: real software. Debian 12's `jq` and its two libraries, taken with
//! `apt-get download` and repackaged as three dist packages (`tests/common/debian.rs`), are
//! published, installed and run from the profile with a clean environment; the manual is found
//! through `dist env`; then an upgrade of `libjq` and a rollback, each followed by which `libjq`
//! the program loads, in the dynamic loader's own words (`LD_DEBUG=libs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::shell::Demo;
use crate::debian;

impl Demo {
    /// Runs `script` with bash on this machine (not in the namespace: nothing here uses the
    /// network), `$ROOT` the client's root and `dist` the binary on it, echoing both.
    fn shell(&self, script: &str) -> Result<()> {
        println!("\nclient$ {script}");
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "dist() {{ \"$DIST\" --root \"$ROOT\" \"$@\"; }}\n{script}"
            ))
            .env("ROOT", self.client())
            .env("DIST", &self.dist)
            .output()
            .context("cannot run bash")?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        print!("{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            bail!("`{script}` failed ({})", out.status);
        }
        Ok(())
    }
}

/// Where the tests keep the `.deb` files too (`CARGO_TARGET_TMPDIR`): downloaded once.
fn cache() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::util::workspace_root().join("target"))
        .join("tmp")
}

/// The story of `jq` (module docs), against the running server whose log is `log`.
pub fn story(d: &Demo, log: &Path) -> Result<()> {
    println!("\n# real software: Debian 12's jq, libjq1 and libonig5 (apt-get download), usr/ as assets/");
    let dirs = debian::jq_packages(&cache(), &d.tmp).map_err(anyhow::Error::msg)?;
    let path = |p: &PathBuf| p.display().to_string();
    d.dist(
        &d.repo(),
        &["add", &path(&dirs[0]), &path(&dirs[1]), &path(&dirs[2])],
    )?;
    d.wait_healthy(log)?;
    let client = d.client();
    d.dist(&client, &["sync"])?;
    d.dist(&client, &["install", "jq"])?;
    let clean = "env -i PATH=\"$ROOT/current/bin:/usr/bin:/bin\"";
    d.shell(&format!("{clean} jq --version"))?;
    d.shell(&format!(
        "echo '{{\"dist\": [1, 2]}}' | {clean} jq -c '.dist | map(. * 10)'"
    ))?;
    d.shell("head -4 \"$ROOT/current/bin/jq\"")?;
    d.dist(&client, &["env"])?;
    d.shell("eval \"$(dist env)\" && man -w jq")?;
    let lib = client.join("current/lib/libjq.so.1");
    d.dist(&client, &["owner", &lib.display().to_string()])?;
    let loaded = format!(
        "lib=$({clean} LD_DEBUG=libs jq --version 2>&1 | sed -n 's/.*calling init: \\(.*libjq.*\\)/\\1/p'); dist owner \"$lib\""
    );
    d.shell(&loaded)?;
    d.dist(&d.repo(), &["add", &path(&dirs[3])])?;
    d.wait_healthy(log)?;
    d.dist(&client, &["sync"])?;
    d.dist(&client, &["upgrade", "libjq"])?;
    d.shell(&loaded)?;
    d.dist(&client, &["rollback"])?;
    d.shell(&loaded)?;
    d.dist(&client, &["verify"])?;
    Ok(())
}
