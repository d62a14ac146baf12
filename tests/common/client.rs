//! A client root inside a test's network namespace, configured for the `dist serve` at the
//! namespace's fixed addresses: run `dist` there, expect success or failure, read its index
//! copy. Its daemon is stopped on drop. Test files add what only they need in `impl` blocks of
//! their own.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::common::{dist_bin, stdout_json};
use crate::netns::Netns;
use crate::server::HTTP;

pub struct Client<'a> {
    pub ns: &'a Netns,
    pub root: PathBuf,
}

impl<'a> Client<'a> {
    /// A root whose `client.yaml` names the server, its key and the address `bind` (the
    /// client's daemon binds it; each daemon of a test needs its own).
    pub fn new(ns: &'a Netns, root: PathBuf, key: &str, bind: &str) -> Client<'a> {
        fs::create_dir_all(&root).unwrap();
        fs::write(
            root.join("client.yaml"),
            format!("server_url: http://{HTTP}\npublic_key: {key}\nbind_address: {bind}\nfetch_timeout: 120\n"),
        )
        .unwrap();
        Client { ns, root }
    }

    /// `dist --root ROOT ARGS…` in the namespace, to spawn (stdin closed).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = self.ns.command(dist_bin());
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        let o = self.cmd(args);
        assert!(
            o.status.success(),
            "dist {args:?} failed ({})\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        stdout_json(&self.ok(args))
    }

    pub fn err(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(
            !o.status.success(),
            "dist {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// The files of the local index copy, to show a refused sync changed nothing.
    pub fn index_files(&self) -> Vec<Vec<u8>> {
        [
            "index/index.db",
            "index/index.json",
            "index/index.json.minisig",
            "index/state.json",
        ]
        .iter()
        .map(|p| fs::read(self.root.join(p)).unwrap_or_default())
        .collect()
    }
}

impl Drop for Client<'_> {
    fn drop(&mut self) {
        let _ = self.cmd(&["daemon", "stop"]);
    }
}
