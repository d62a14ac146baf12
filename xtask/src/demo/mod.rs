//! `cargo xtask demo`: the main job end to end, as a user would see it. A repository serves the
//! fixtures (opentracker + transmission-daemon + HTTP) and a client syncs, installs over
//! BitTorrent, upgrades, rolls back, uninstalls and collects garbage, all inside a private
//! network namespace with one address per daemon (transmission ignores peers on 127.x). Then
//! real software: Debian 12's `jq` with its libraries as dist packages (`real.rs`).

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::netns::{self, Netns, HTTP, SERVER_IP, TRACKER};
use crate::util;

mod real;
mod shell;

use shell::{Demo, CLIENT_IP};

pub fn run(_args: &[&str]) -> Result<()> {
    for tool in [
        "opentracker",
        "transmission-daemon",
        "curl",
        "ip",
        "apt-get",
        "dpkg-deb",
        "man",
    ] {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()?
            .code()
            != Some(0)
        {
            bail!("`{tool}` is missing: run .ci/setup first");
        }
    }
    let dist = util::release_dist()?;
    let tmp = std::env::temp_dir().join(format!("dist-demo-{}", std::process::id()));
    fs::create_dir_all(&tmp)?;
    let ns = Netns::new(&[SERVER_IP, CLIENT_IP]).context("cannot make a network namespace")?;
    println!(
        "# network namespace {} with {SERVER_IP} (server) and {CLIENT_IP} (client); state in {}",
        ns.name(),
        tmp.display()
    );
    let demo = Demo {
        dist,
        ns,
        tmp: tmp.clone(),
    };
    let result = story(&demo);
    // Everything started inside the namespace goes with it (Netns drop kills what is left).
    drop(demo);
    let _ = fs::remove_dir_all(&tmp);
    result
}

fn story(d: &Demo) -> Result<()> {
    let fixtures = util::workspace_root().join("fixtures/valid");
    let fx = |n: &str| fixtures.join(n).display().to_string();
    d.dist(&d.repo(), &["repo", "init"])?;
    d.dist(
        &d.repo(),
        &[
            "add",
            &fx("hello-1.0.0"),
            &fx("nested-0.3.0+build.7"),
            &fx("The-Package-Name-1.2.3"),
        ],
    )?;
    let key = d.dist(&d.repo(), &["key", "show"])?;

    println!("\npublisher$ dist serve --http {HTTP} --tracker {TRACKER} --bind {SERVER_IP} &");
    let log = d.tmp.join("serve.log");
    let serve: Child = netns::serve_command(&d.ns, &d.dist, &d.repo())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log)?)
        .spawn()
        .context("cannot start dist serve")?;
    let outcome = (|| -> Result<()> {
        d.wait_healthy(&log)?;
        print!("{}", fs::read_to_string(&log)?);

        let url = format!("http://{HTTP}");
        d.dist(
            &d.client(),
            &[
                "init",
                "--server-url",
                &url,
                "--public-key",
                key.trim(),
                "--bind",
                CLIENT_IP,
            ],
        )?;
        d.dist(&d.client(), &["config", "show"])?;
        d.dist(&d.client(), &["sync"])?;
        d.dist(&d.client(), &["search", "hello"])?;
        d.dist(&d.client(), &["install", "hello", "--transport", "torrent"])?;
        d.hello()?;
        let link = d.client().join("current/bin/hello");
        d.dist(&d.client(), &["owner", &link.display().to_string()])?;

        d.dist(&d.repo(), &["add", &fx("hello-1.1.0")])?;
        d.wait_healthy(&log)?;
        d.dist(&d.client(), &["sync"])?;
        d.dist(&d.client(), &["outdated"])?;
        d.dist(&d.client(), &["upgrade"])?;
        d.hello()?;
        d.dist(&d.client(), &["install", "nested"])?;
        d.dist(&d.client(), &["files", "nested"])?;
        d.dist(&d.client(), &["generations"])?;
        d.dist(&d.client(), &["rollback"])?;
        d.hello()?;
        d.dist(&d.client(), &["uninstall", "hello"])?;
        d.dist(&d.client(), &["list", "--installed"])?;
        d.dist(&d.client(), &["gc", "--keep", "1"])?;
        d.dist(&d.client(), &["verify"])?;
        real::story(d, &log)?;
        d.dist(&d.client(), &["daemon", "stop"])?;
        Ok(())
    })();
    stop(serve, &log, outcome)?;
    let left = d.ns.pids();
    if !left.is_empty() {
        bail!("processes left in the namespace: {left:?}");
    }
    println!(
        "\n# done: every process stopped, namespace {} removed",
        d.ns.name()
    );
    Ok(())
}

/// Stops the server with SIGTERM and prints the last line of its log; the story's error first,
/// else the server's.
fn stop(mut serve: Child, log: &Path, outcome: Result<()>) -> Result<()> {
    println!("\npublisher$ kill -TERM <dist serve>");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(serve.id().to_string())
        .status();
    let status = serve.wait()?;
    let log_text = fs::read_to_string(log).unwrap_or_default();
    if let Some(last) = log_text.lines().last() {
        println!("{last}");
    }
    outcome?;
    if !status.success() {
        bail!("dist serve exited with {status}:\n{log_text}");
    }
    Ok(())
}
