#![allow(dead_code)]
//! A repository published under a temporary directory and served over real HTTP on loopback
//! (`FileServer`), with a synced client root of it (HTTP only, leech only): what the tests of the
//! client's verbs share when no swarm is involved. A test that includes it also includes
//! `common/files.rs` as `files` and `common/published.rs` as `published`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use super::{dist, repo_key, run_ok, write_package};
use crate::files::FileServer;
use crate::published;

pub struct Local {
    pub tmp: tempfile::TempDir,
    /// The client (its root is `TMP/client`).
    pub client: ClientRoot,
    pub server: FileServer,
}

impl std::ops::Deref for Local {
    type Target = ClientRoot;
    fn deref(&self) -> &ClientRoot {
        &self.client
    }
}

/// A client root, and `dist --root ROOT …` run against it.
pub struct ClientRoot {
    pub root: PathBuf,
}

impl Local {
    /// Publishes the repository at `TMP/repo` (already added to) into `TMP/www`, serves it, and
    /// writes and syncs a client at `TMP/client`.
    pub fn serve(tmp: tempfile::TempDir) -> Local {
        let (repo, www) = (tmp.path().join("repo"), tmp.path().join("www"));
        let key = repo_key(&repo);
        published::lay_out(&repo, &www);
        let server = FileServer::start(&www);
        let root = tmp.path().join("client");
        fs::create_dir_all(&root).unwrap();
        fs::write(
            root.join("client.yaml"),
            format!(
                "server_url: {}\npublic_key: {key}\ntransport: http\nseed: false\n",
                server.url
            ),
        )
        .unwrap();
        let local = Local {
            tmp,
            client: ClientRoot { root },
            server,
        };
        local.ok(&["sync"]);
        local
    }
}

impl ClientRoot {
    /// `dist --root CLIENT ARGS`, whatever its outcome.
    pub fn run(&self, args: &[&str]) -> Output {
        dist()
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .output()
            .unwrap()
    }

    /// The same, expected to succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        run_ok(dist().arg("--root").arg(&self.root).args(args))
    }

    /// The same, expected to fail: its exit code and stderr.
    pub fn err(&self, args: &[&str]) -> (i32, String) {
        let o = self.run(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

/// A package `name` 1.0.0 in `dir/name` whose one asset is the command `bin/COMMAND`.
pub fn command_package(dir: &Path, name: &str, command: &str) -> PathBuf {
    let d = dir.join(name);
    fs::create_dir_all(d.join("assets/bin")).unwrap();
    fs::write(
        d.join(format!("assets/bin/{command}")),
        format!("#!/bin/sh\necho {name}\n"),
    )
    .unwrap();
    write_package(
        &d,
        name,
        "1.0.0",
        "description: a tool\n",
        ("readme", b"a tool\n"),
        "#!/bin/sh\n",
    )
}
