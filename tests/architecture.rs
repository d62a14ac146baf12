//! ARCHITECTURE.md's code map names every file of `src/` (issue 24: the tree says the truth).
//! A file `F.rs` in folder `X/` (or below it) must appear as `` `F.rs` `` (a `mod.rs` as its
//! folder, `` `sub/` ``) in the section `### `X/``; files of `commands/` and `cli/` in "Entry
//! points". A file added without a line in the map fails here, naming it.

use std::fs;
use std::path::{Path, PathBuf};

/// The sections of ARCHITECTURE.md by heading line.
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with("## ") || line.starts_with("### ") {
            out.push((line.to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_code_map_names_every_file_of_src_issue_24() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let sections = sections(&text);
    let section = |top: &str| -> &str {
        let heading = match top {
            "commands" | "cli" => "## Entry points".to_string(),
            _ => format!("### `{top}/`"),
        };
        sections
            .iter()
            .find(|(h, _)| h.starts_with(&heading))
            .map(|(_, body)| body.as_str())
            .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section `{heading}` for src/{top}/"))
    };
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut missing = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root.join("src")).unwrap();
        let parts: Vec<_> = rel.iter().map(|p| p.to_str().unwrap()).collect();
        let name = match parts.as_slice() {
            [top] => {
                if !text.contains(&format!("`src/{top}`")) {
                    missing.push(rel.display().to_string());
                }
                continue;
            }
            // A folder's own `mod.rs` is its section.
            [top, "mod.rs"] => {
                section(top);
                continue;
            }
            [.., dir, "mod.rs"] => format!("{dir}/"),
            [.., file] => file.to_string(),
            [] => unreachable!(),
        };
        let body = section(parts[0]);
        if !body.contains(&format!("`{name}")) && !body.contains(&format!("/{name}`")) {
            missing.push(rel.display().to_string());
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name: {missing:?}"
    );
}

/// `transfer/` stands below the client and the mirror (issue 24): it names nothing of `client/`,
/// `server/`, `repo/`, `commands/` or `index/`, so their policy reaches it only through its
/// `Watch` and `Halt` traits.
#[test]
fn transfer_imports_nothing_of_its_callers_issue_24() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/transfer"), &mut files);
    assert!(!files.is_empty(), "src/transfer/ has no file");
    let mut found = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        for above in ["client", "server", "repo", "commands", "index"] {
            if text.contains(&format!("crate::{above}")) || text.contains("super::super") {
                found.push(format!("{}: {above}", f.display()));
            }
        }
    }
    assert!(found.is_empty(), "transfer/ imports from above: {found:?}");
}
