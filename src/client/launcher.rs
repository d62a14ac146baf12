//! Launchers: how a program of the profile finds the libraries of its own generation without
//! the user setting anything, and without a byte of the store changing (ARCHITECTURE.md,
//! "Libraries in the profile", says why this and not an RPATH convention or the loader's
//! `--library-path`).
//!
//! In a generation that has a `lib/`, each dynamically linked ELF program of `bin/` (one with
//! a `PT_INTERP` program header) is not a link but a small `/bin/sh` script that prepends the
//! generation's library directories to `LD_LIBRARY_PATH` and `exec`s the program in its store
//! path. The generation's path is written into it, so a rollback (one rename of `current`)
//! switches the libraries with the programs. Scripts (`#!`), static programs and anything else
//! stay links: a script's interpreter is not ours to redirect.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::format::ids::PackageName;

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

/// The launcher's text: `program` run with `libs` before any `LD_LIBRARY_PATH` the caller had.
pub fn script(program: &Path, libs: &[PathBuf], owner: &PackageName) -> Result<String> {
    let mut list = Vec::new();
    for d in libs {
        let Some(s) = d.to_str().filter(|s| !s.contains(':')) else {
            bail!(
                "{} cannot be on a library path (`:` or not UTF-8): the root must not contain them",
                d.display()
            );
        };
        list.push(s);
    }
    let program = program
        .to_str()
        .with_context(|| format!("{} is not UTF-8", program.display()))?;
    Ok(format!(
        "#!/bin/sh\n\
         # dist launcher of a program of {owner}: its generation's libraries first (store-format.md §6)\n\
         LD_LIBRARY_PATH={}\"${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\"\n\
         export LD_LIBRARY_PATH\n\
         exec {} \"$@\"\n",
        quoted(&list.join(":")),
        quoted(program)
    ))
}

/// Writes the launcher of `program` at `at` (inside a generation being staged), mode 0755.
pub fn write(at: &Path, program: &Path, libs: &[PathBuf], owner: &PackageName) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let text = script(program, libs, owner)?;
    std::fs::write(at, text).with_context(|| format!("cannot write {}", at.display()))?;
    std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", at.display()))
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
            &[PathBuf::from("/r/generations/2/lib")],
            &owner,
        )
        .unwrap();
        assert!(s.starts_with("#!/bin/sh\n"), "{s}");
        assert!(
            s.contains(
                "LD_LIBRARY_PATH='/r/generations/2/lib'\"${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"\n"
            ),
            "{s}"
        );
        assert!(
            s.contains("exec '/r/store/x-jq/assets/bin/it'\\''s' \"$@\"\n"),
            "{s}"
        );
        let err = script(Path::new("/p"), &[PathBuf::from("/a:b/lib")], &owner);
        assert!(format!("{:#}", err.unwrap_err()).contains("/a:b/lib cannot be on a library path"));
    }
}
