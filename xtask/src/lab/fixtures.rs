//! Fixtures of the resolver benches: a repository laid out as static files the way `dist serve`
//! answers, so a client syncs from any HTTP server (the loopback `FileServer` of the tests).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Lays out in `www` what `dist serve` answers for the repository at `repo` (as
/// `tests/common/published.rs` does): `index.json` and its signature, `index/`, `objects/`.
pub fn lay_out(repo: &Path, www: &Path) -> Result<()> {
    let serial: u64 = fs::read_to_string(repo.join("published/LATEST"))?
        .trim()
        .parse()?;
    fs::create_dir_all(www.join("index"))?;
    for e in fs::read_dir(repo.join("published"))? {
        let e = e?;
        fs::copy(e.path(), www.join("index").join(e.file_name()))?;
    }
    for suffix in ["", ".minisig"] {
        fs::copy(
            repo.join(format!("published/{serial}.json{suffix}")),
            www.join(format!("index.json{suffix}")),
        )?;
    }
    std::os::unix::fs::symlink(repo.join("objects"), www.join("objects"))?;
    Ok(())
}

/// A client root synced from a repository served as static files on loopback; the server
/// stops when this is dropped.
pub struct ServedClient {
    pub root: PathBuf,
    _server: crate::files::FileServer,
}

/// Publishes the packages listed in `list` (one directory per line) into a new repository
/// under `tmp` (`add` with `add_flags` before `--from`), serves it on loopback and syncs a new
/// client root from it (HTTP transport, no seeding).
pub fn served_client(
    dist: &Path,
    tmp: &Path,
    list: &Path,
    add_flags: &[&str],
) -> Result<ServedClient> {
    let (repo, www, root) = (tmp.join("repo"), tmp.join("www"), tmp.join("client"));
    let run = |root: &Path, args: &[&str]| -> Result<String> {
        let out = Command::new(dist)
            .arg("--root")
            .arg(root)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("dist {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?)
    };
    crate::util::repo_init(dist, &repo)?;
    let list = list.to_str().context("UTF-8 path")?;
    run(
        &repo,
        &[&["--quiet", "add"], add_flags, &["--from", list]].concat(),
    )?;
    let key = run(&repo, &["key", "show"])?;
    lay_out(&repo, &www)?;
    let server = crate::files::FileServer::start(&www);
    fs::create_dir_all(&root)?;
    fs::write(
        root.join("client.yaml"),
        format!(
            "server_url: {}\npublic_key: {}\ntransport: http\nseed: false\n",
            server.url,
            key.trim()
        ),
    )?;
    run(&root, &["--quiet", "sync"])?;
    Ok(ServedClient {
        root,
        _server: server,
    })
}
