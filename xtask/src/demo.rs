//! `cargo xtask demo`: the main job, as a user would see it.

use std::process::Command;

use anyhow::{bail, Result};

use crate::util;

pub fn run(_args: &[&str]) -> Result<()> {
    let dist = util::release_dist()?;
    let tmp = std::env::temp_dir().join(format!("dist-demo-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let fixture = util::workspace_root().join("fixtures/valid/hello-1.0.0");
    println!(
        "$ dist pack fixtures/valid/hello-1.0.0 -o {}/hello-1.0.0.tar",
        tmp.display()
    );
    let status = Command::new(&dist)
        .arg("pack")
        .arg(&fixture)
        .arg("-o")
        .arg(tmp.join("hello-1.0.0.tar"))
        .status()?;
    std::fs::remove_dir_all(&tmp)?;
    if !status.success() {
        bail!("dist pack failed");
    }
    Ok(())
}
