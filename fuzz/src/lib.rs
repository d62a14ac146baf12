//! What the coverage-guided targets share: a scratch directory per process, an input written
//! to a file and verified as an object, and the checks of an unpacked tree (nothing outside
//! the destination changed; every symlink resolves inside it).
//!
//! The targets call the library's public parsing entry points; their seeds come from the
//! stable harness of `tests/fuzz.rs` (`cargo xtask fuzz` writes them into the corpus).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dist::format::ids::ObjectId;
use dist::object::{self, VerifiedObject};

/// A directory that lives as long as the fuzzing process (libFuzzer runs one input at a time
/// in one thread, so the targets reuse fixed paths inside it).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("dist-fuzz-")
            .tempdir()
            .expect("a scratch directory")
    })
    .path()
}

/// `data` written to `path` and verified as the object it is (its own BLAKE3 digest).
pub fn verified(path: &Path, data: &[u8]) -> VerifiedObject {
    fs::write(path, data).expect("write the input");
    let id = ObjectId::from_bytes(*blake3::hash(data).as_bytes());
    object::verify_file(path, &id).expect("verify_file refused the bytes it was given")
}

/// `root` listed recursively without following links, as sorted "kind path" lines; `skip` is
/// listed but not entered.
pub fn listing(root: &Path, skip: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("list a directory") {
            let p = e.expect("a directory entry").path();
            let ft = fs::symlink_metadata(&p).expect("lstat").file_type();
            let kind = match () {
                _ if ft.is_dir() => "d",
                _ if ft.is_symlink() => "l",
                _ if ft.is_file() => "f",
                _ => "?",
            };
            let rel = p.strip_prefix(root).expect("below root").display();
            out.push(format!("{kind} {rel}"));
            if ft.is_dir() && Some(p.as_path()) != skip {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every entry below `dest` is a file, a directory or a symlink whose target, resolved on
/// disk component by component, never climbs above `dest`; the first violation otherwise.
pub fn check_tree(dest: &Path) -> Result<(), String> {
    for line in listing(dest, None) {
        let (kind, rel) = line.split_once(' ').expect("kind and path");
        match kind {
            "d" | "f" => {}
            "l" => {
                let target = fs::read_link(dest.join(rel)).expect("readlink");
                let mut stack: Vec<String> = Path::new(rel)
                    .parent()
                    .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
                    .unwrap_or_default();
                walk_link(dest, &mut stack, &target.to_string_lossy(), &mut 40)
                    .map_err(|why| format!("symlink {rel} -> {}: {why}", target.display()))?;
            }
            _ => return Err(format!("`{rel}` is neither file, directory nor symlink")),
        }
    }
    Ok(())
}

fn walk_link(
    dest: &Path,
    stack: &mut Vec<String>,
    target: &str,
    budget: &mut u32,
) -> Result<(), String> {
    if target.starts_with('/') {
        return Err("absolute target".into());
    }
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                stack.pop().ok_or("climbs above the destination")?;
            }
            name => {
                stack.push(name.to_string());
                let here: PathBuf = stack.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
                if let Ok(inner) = fs::read_link(&here) {
                    if *budget == 0 {
                        return Ok(()); // ELOOP for the kernel too: nothing is reached
                    }
                    *budget -= 1;
                    stack.pop();
                    walk_link(dest, stack, &inner.to_string_lossy(), budget)?;
                }
            }
        }
    }
    Ok(())
}
