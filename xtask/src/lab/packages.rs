//! The one package generator of the benches and campaigns: a package directory (`manifest.yaml`,
//! `assets/`, `scripts/`) from a name and a version, with what a bench asks for on top: a
//! description, `depends`, `config` files, asset files of given bytes (executable or not) or of
//! seeded random content of a size, and an install script (no-op scripts otherwise).
//!
//! **Invariant:** random content is a function of its seed and size alone (xorshift64 from a
//! splitmix64-mixed seed, 8 bytes a step, written 1 MiB at a time), so a seeded package is the
//! same bytes on every run, and neighbouring seeds give unrelated bytes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// What a script does when a package does not say: nothing.
const NO_OP: &str = "#!/bin/sh\n";

/// A package to write; see the module doc.
pub(crate) struct Package {
    name: String,
    version: String,
    description: Option<String>,
    /// `depends`: (name, SemVer requirement).
    depends: Vec<(String, String)>,
    /// `config`: paths under `assets/`.
    config: Vec<String>,
    /// Files under `assets/`.
    files: Vec<(String, Content)>,
    install: String,
}

enum Content {
    Bytes { bytes: Vec<u8>, executable: bool },
    Random { size: u64, seed: u64 },
}

impl Package {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            description: None,
            depends: Vec::new(),
            config: Vec::new(),
            files: Vec::new(),
            install: NO_OP.to_string(),
        }
    }

    /// A package whose one asset, `data.txt`, names it: for benches that count packages, not
    /// bytes.
    pub fn tiny(name: impl Into<String>, version: impl Into<String>) -> Package {
        let p = Package::new(name, version);
        let note = format!("{} {}\n", p.name, p.version);
        p.file("data.txt", note)
    }

    /// `name` 1.0.0 whose one asset, `data.bin`, is `size` bytes of random content from `seed`.
    pub fn data(name: impl Into<String>, size: u64, seed: u64) -> Package {
        Package::new(name, "1.0.0").random("data.bin", size, seed)
    }

    pub fn description(mut self, text: impl Into<String>) -> Package {
        self.description = Some(text.into());
        self
    }

    /// One `depends` entry: `name` at `requirement` (SemVer, e.g. `^1` or `=2.0.0`).
    pub fn depends(mut self, name: impl Into<String>, requirement: impl Into<String>) -> Package {
        self.depends.push((name.into(), requirement.into()));
        self
    }

    /// A file `assets/PATH` of `bytes` that the manifest lists in `config`.
    pub fn config(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Package {
        self.config.push(path.to_string());
        self.file(path, bytes)
    }

    /// A file `assets/PATH` of `bytes`.
    pub fn file(self, path: &str, bytes: impl Into<Vec<u8>>) -> Package {
        self.bytes(path, bytes.into(), false)
    }

    /// A file `assets/PATH` of `bytes`, mode 0755.
    pub fn executable(self, path: &str, bytes: impl Into<Vec<u8>>) -> Package {
        self.bytes(path, bytes.into(), true)
    }

    fn bytes(mut self, path: &str, bytes: Vec<u8>, executable: bool) -> Package {
        let content = Content::Bytes { bytes, executable };
        self.files.push((path.to_string(), content));
        self
    }

    /// A file `assets/PATH` of `size` bytes of incompressible content from `seed`.
    pub fn random(mut self, path: &str, size: u64, seed: u64) -> Package {
        self.files
            .push((path.to_string(), Content::Random { size, seed }));
        self
    }

    /// `scripts/install.sh` (the uninstall script stays a no-op).
    pub fn install_script(mut self, text: impl Into<String>) -> Package {
        self.install = text.into();
        self
    }

    /// Writes the package into `parent/NAME-VERSION` and returns that directory.
    pub fn write_in(&self, parent: &Path) -> Result<PathBuf> {
        self.write(&parent.join(format!("{}-{}", self.name, self.version)))
    }

    /// Writes the package into `dir` (made if missing) and returns `dir`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        self.write_files(dir)
            .with_context(|| format!("cannot write package {} in {}", self.name, dir.display()))?;
        Ok(dir.to_path_buf())
    }

    fn write_files(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir.join("assets"))?;
        fs::create_dir_all(dir.join("scripts"))?;
        fs::write(dir.join("manifest.yaml"), self.manifest())?;
        fs::write(dir.join("scripts/install.sh"), &self.install)?;
        fs::write(dir.join("scripts/uninstall.sh"), NO_OP)?;
        for (path, content) in &self.files {
            let at = dir.join("assets").join(path);
            if let Some(parent) = at.parent() {
                fs::create_dir_all(parent)?;
            }
            match content {
                Content::Bytes { bytes, executable } => {
                    fs::write(&at, bytes)?;
                    if *executable {
                        fs::set_permissions(&at, fs::Permissions::from_mode(0o755))?;
                    }
                }
                Content::Random { size, seed } => write_random(&at, *size, *seed)?,
            }
        }
        Ok(())
    }

    fn manifest(&self) -> String {
        let mut m = format!("name: {}\nversion: {}\n", self.name, self.version);
        if let Some(d) = &self.description {
            m.push_str(&format!("description: {d}\n"));
        }
        if !self.depends.is_empty() {
            let deps: Vec<String> = self
                .depends
                .iter()
                .map(|(name, req)| format!("{name}: \"{req}\""))
                .collect();
            m.push_str(&format!("depends: {{{}}}\n", deps.join(", ")));
        }
        if !self.config.is_empty() {
            m.push_str(&format!("config: [{}]\n", self.config.join(", ")));
        }
        m
    }
}

/// `size` bytes of xorshift64 output from `seed` (module doc) into `path`.
fn write_random(path: &Path, size: u64, seed: u64) -> Result<()> {
    // splitmix64's finalizer, so that seeds 1, 2, 3... start far apart; never 0 (xorshift's
    // fixed point).
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mut s = (z ^ (z >> 31)).max(1);
    let mut f = std::io::BufWriter::new(fs::File::create(path)?);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            chunk.copy_from_slice(&s.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&buf[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_content_is_the_seeds_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |dir: &str, seed: u64| {
            let d = Package::new("p", "1.0.0")
                .random("data.bin", 3 << 19, seed)
                .write(&tmp.path().join(dir))
                .unwrap();
            fs::read(d.join("assets/data.bin")).unwrap()
        };
        let (a, b, c) = (write("a", 7), write("b", 7), write("c", 8));
        assert_eq!(a.len(), 3 << 19);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn manifest_lists_what_was_asked() {
        let p = Package::new("app", "1.2.0")
            .description("an app")
            .depends("lib", "^1")
            .depends("log", "=2.0.0")
            .config("app.conf", "x=1\n");
        assert_eq!(
            p.manifest(),
            "name: app\nversion: 1.2.0\ndescription: an app\n\
             depends: {lib: \"^1\", log: \"=2.0.0\"}\nconfig: [app.conf]\n"
        );
    }
}
