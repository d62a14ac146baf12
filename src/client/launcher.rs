//! Launchers: how a program of the profile finds the libraries of the current generation
//! without the user setting anything, and without a byte of the store changing (ARCHITECTURE.md,
//! "Libraries in the profile", says why this and not an RPATH convention or the loader's
//! `--library-path`, and what was measured).
//!
//! In a generation that has a `lib/`, each dynamically linked ELF program of `bin/` (one with
//! a `PT_INTERP` program header) is linked not to itself but to its launcher: a small `/bin/sh`
//! script that puts `ROOT/current/lib/<triplet>/` (each one there is) and `ROOT/current/lib` in
//! front of `LD_LIBRARY_PATH` and `exec`s the program in its store path. `current` is what it
//! names, so a rollback (one rename) switches the libraries with the programs, and a launcher
//! depends only on its store path: it is written once, when the first generation with a `lib/`
//! takes that store path, into `ROOT/launchers/<store path name>/` (staged, fsynced, renamed),
//! and every later switch only links to it. Scripts (`#!`), static programs and anything else
//! stay links: a script's interpreter is not ours to redirect.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::generation::Installed;
use super::Layout;
use crate::format::ids::PackageName;
use crate::store::fsx;

/// `PT_INTERP`: the program header naming the dynamic loader.
const PT_INTERP: u32 = 3;

/// Whether `path` (symlinks followed) is an ELF executable naming a program interpreter: a
/// dynamically linked program, which the loader links against `LD_LIBRARY_PATH` first. Any
/// error reading it means no.
pub fn is_dynamic_elf(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut h = [0u8; 64];
    if f.read_exact(&mut h).is_err() || h[..4] != *b"\x7fELF" {
        return false;
    }
    let (wide, big) = match (h[4], h[5]) {
        (c @ (1 | 2), d @ (1 | 2)) => (c == 2, d == 2),
        _ => return false,
    };
    let u16_at = |o: usize| {
        let b = [h[o], h[o + 1]];
        u64::from(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let (phoff, phentsize, phnum) = if wide {
        let b: [u8; 8] = h[32..40].try_into().expect("8 bytes");
        let off = if big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        };
        (off, u16_at(54), u16_at(56))
    } else {
        let b: [u8; 4] = h[28..32].try_into().expect("4 bytes");
        let off = if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        };
        (u64::from(off), u16_at(42), u16_at(44))
    };
    if !(4..=256).contains(&phentsize) || phnum == 0 || phnum > 4096 {
        return false;
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    if f.read_exact_at(&mut table, phoff).is_err() {
        return false;
    }
    table.chunks_exact(phentsize as usize).any(|ph| {
        let b: [u8; 4] = ph[..4].try_into().expect("4 bytes");
        let kind = if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        };
        kind == PT_INTERP
    })
}

/// `s` as one single-quoted word of `/bin/sh`.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The launcher's text: `program` run with the libraries of `current` (`ROOT/current`) before
/// any `LD_LIBRARY_PATH` the caller had.
pub fn script(program: &Path, current: &Path, owner: &PackageName) -> Result<String> {
    let utf8 = |p: &Path| -> Result<String> {
        match p.to_str() {
            Some(s) if !s.contains(':') => Ok(s.to_string()),
            _ => bail!(
                "{} cannot be on a library path (`:` or not UTF-8): the root must not contain them",
                p.display()
            ),
        }
    };
    let lib = utf8(&current.join("lib"))?;
    let program = utf8(program)?;
    Ok(format!(
        "#!/bin/sh\n\
         # dist launcher of a program of {owner}: the current generation's libraries first (store-format.md §6.3)\n\
         p=\n\
         for d in {lib}/*-linux-*/; do [ -d \"$d\" ] && p=\"$p${{d%/}}:\"; done\n\
         LD_LIBRARY_PATH=\"$p\"{lib}\"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\"\n\
         export LD_LIBRARY_PATH\n\
         exec {program} \"$@\"\n",
        lib = quoted(&lib),
        program = quoted(&program)
    ))
}

impl Layout {
    /// `ROOT/launchers/`: one directory of launchers per store path that has any.
    pub fn launchers_dir(&self) -> PathBuf {
        self.root.join("launchers")
    }

    /// The launchers of `p`'s store path: `ROOT/launchers/<store path name>/`.
    pub fn launchers_of(&self, p: &Installed) -> PathBuf {
        let name = p.store_path.file_name().unwrap_or(p.name.as_ref());
        self.launchers_dir().join(name)
    }

    /// The programs of `p`'s `assets/bin` that have a launcher, made first if its store path
    /// has none yet (its programs read once, the launchers staged, fsynced and renamed into
    /// place together; an empty directory says there is nothing to launch).
    pub fn launchers(&self, p: &Installed) -> Result<BTreeSet<String>> {
        let dir = self.launchers_of(p);
        if !dir.is_dir() {
            self.make_launchers(p, &dir)?;
        }
        let mut names = BTreeSet::new();
        for e in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let name = e?.file_name();
            if let Some(n) = name.to_str().filter(|n| !fsx::is_leftover(n)) {
                names.insert(n.to_string());
            }
        }
        Ok(names)
    }

    fn make_launchers(&self, p: &Installed, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(self.launchers_dir())
            .with_context(|| format!("cannot create {}", self.launchers_dir().display()))?;
        let staging = fsx::StagingDir::new_in(&self.launchers_dir(), "launch")?;
        let bin = p.store_path.join("assets/bin");
        for e in std::fs::read_dir(&bin).into_iter().flatten() {
            let e = e.with_context(|| format!("cannot read {}", bin.display()))?;
            let program = e.path();
            if !is_dynamic_elf(&program) {
                continue;
            }
            let at = staging.path().join(e.file_name());
            let text = script(&program, &self.current_link(), &p.name)?;
            std::fs::write(&at, text).with_context(|| format!("cannot write {}", at.display()))?;
            // Whatever the umask: whoever may run the program may run its launcher.
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", at.display()))?;
        }
        staging.persist(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF header with one program header of type `kind`.
    fn elf(kind: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&kind.to_le_bytes());
        b
    }

    #[test]
    fn only_programs_with_an_interpreter_are_dynamic() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        assert!(is_dynamic_elf(&at("dynamic", &elf(PT_INTERP))));
        // PT_LOAD only: a static program.
        assert!(!is_dynamic_elf(&at("static", &elf(1))));
        assert!(!is_dynamic_elf(&at("script", b"#!/bin/sh\necho hi\n")));
        assert!(!is_dynamic_elf(&at("short", b"\x7fELF\x02\x01")));
        let mut bad = elf(PT_INTERP);
        bad[32..40].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(!is_dynamic_elf(&at("table-beyond-the-end", &bad)));
        assert!(!is_dynamic_elf(&dir.path().join("missing")));
        // The system's own shell is a dynamic program.
        assert!(is_dynamic_elf(Path::new("/bin/sh")));
    }

    #[test]
    fn the_script_quotes_and_keeps_the_callers_path_after_ours() {
        let owner = PackageName::parse("jq").unwrap();
        let s = script(
            Path::new("/r/store/x-jq/assets/bin/it's"),
            Path::new("/r/current"),
            &owner,
        )
        .unwrap();
        assert!(s.starts_with("#!/bin/sh\n"), "{s}");
        assert!(
            s.contains("for d in '/r/current/lib'/*-linux-*/; do"),
            "{s}"
        );
        assert!(
            s.contains(
                "LD_LIBRARY_PATH=\"$p\"'/r/current/lib'\"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"\n"
            ),
            "{s}"
        );
        assert!(
            s.contains("exec '/r/store/x-jq/assets/bin/it'\\''s' \"$@\"\n"),
            "{s}"
        );
        let err = script(Path::new("/p"), Path::new("/a:b/current"), &owner);
        assert!(format!("{:#}", err.unwrap_err())
            .contains("/a:b/current/lib cannot be on a library path"));
    }

    #[test]
    fn the_script_puts_each_triplet_directory_then_lib_first() {
        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("current");
        for d in [
            "lib/x86_64-linux-gnu",
            "lib/aarch64-linux-gnu",
            "lib/pkgconfig",
        ] {
            std::fs::create_dir_all(current.join(d)).unwrap();
        }
        let owner = PackageName::parse("env").unwrap();
        let launcher = dir.path().join("launcher");
        std::fs::write(
            &launcher,
            script(Path::new("/usr/bin/env"), &current, &owner).unwrap(),
        )
        .unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg(&launcher)
            .env_clear()
            .env("LD_LIBRARY_PATH", "/mine")
            .output()
            .unwrap();
        let out = String::from_utf8(out.stdout).unwrap();
        let lib = current.join("lib");
        let want = format!(
            "LD_LIBRARY_PATH={0}/aarch64-linux-gnu:{0}/x86_64-linux-gnu:{0}:/mine",
            lib.display()
        );
        assert!(out.lines().any(|l| l == want), "{out}");
    }
}
