//! Target `manifest`: the manifest parser, driven through `package::Package::load` on a copy of
//! a valid package whose `manifest.yaml` is replaced by mutated text (the parser itself is
//! `pub(crate)`).
//!
//! Properties: no panic (nor a stack overflow, which would abort the whole test binary); every
//! error names `manifest.yaml`; an accepted manifest has a name that passes the name rule, a
//! version that re-parses to the same SemVer, and a description of at most 4096 bytes without
//! control characters.

use std::fs;
use std::path::{Path, PathBuf};

use dist::format::ids::PackageName;
use dist::format::package::Package;
use tempfile::TempDir;

use super::{kind_of, mutate_bytes, Rng, Target};

const TOKENS: &[&[u8]] = &[
    b"name",
    b"version",
    b"description",
    b": ",
    b"\n",
    b"  ",
    b"- ",
    b"[",
    b"]",
    b"{",
    b"}",
    b"&a ",
    b"*a",
    b"!!str ",
    b"!!int ",
    b"!!binary ",
    b"!!map ",
    b"---\n",
    b"...\n",
    b"? ",
    b"|\n  ",
    b">-\n  ",
    b"\"",
    b"'",
    b"\\u0000",
    b"\\x1b",
    b"\\e",
    b"~",
    b"null",
    b"true",
    b"1.0.0-alpha+001",
    b"0.0.0",
    b"18446744073709551616.0.0",
    b"1.0.0-",
    b"1.0",
    b"#",
    b"%YAML 1.2\n",
    b"<<: ",
    b"\t",
    b"\xef\xbb\xbf",
    b"\xff",
    b"bin",
    b"a@b",
    b"a/b",
    b".a",
    b"license: MIT\n",
    b"name: x\n",
    b"version: 1.0.0\n",
    b"description: d\n",
    b"\r\n",
    b"\xe2\x80\xae",
    b"0x10",
    b"1e3",
    b"!<tag:yaml.org,2002:str> ",
];

pub struct Manifest {
    seeds: Vec<Vec<u8>>,
    _tmp: TempDir,
    pkg: PathBuf,
    manifest: PathBuf,
}

impl Manifest {
    pub fn new() -> Manifest {
        let valid = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/valid");
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("pkg");
        copy_tree(&valid.join("hello-1.0.0"), &pkg);
        let mut seeds: Vec<Vec<u8>> = fs::read_dir(&valid)
            .unwrap()
            .map(|e| fs::read(e.unwrap().path().join("manifest.yaml")).unwrap())
            .collect();
        seeds.sort();
        for extra in [
            "name: hello\nversion: 1.0.0\ndescription: \"Says hello, in \\\"quotes\\\"\"\n",
            "name: 'a.b-c_d+e'\nversion: '2.0.0-rc.1+build.5'\ndescription: >-\n  folded\n  text\n",
            "{name: x, version: 0.1.0, description: ~}\n",
            "---\nname: &n y\nversion: 1.2.3\ndescription: *n\n...\n",
        ] {
            seeds.push(extra.as_bytes().to_vec());
        }
        Manifest {
            seeds,
            manifest: pkg.join("manifest.yaml"),
            pkg,
            _tmp: tmp,
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

impl Target for Manifest {
    const NAME: &'static str = "manifest";

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut data = rng.pick(&self.seeds).clone();
        for _ in 0..1 + rng.below(4) {
            if rng.chance(25) {
                shuffle_lines(rng, &mut data);
            } else {
                mutate_bytes(rng, &mut data, TOKENS);
            }
        }
        // Mostly valid UTF-8: invalid bytes all end in the same read error.
        if rng.chance(90) {
            data = String::from_utf8_lossy(&data).into_owned().into_bytes();
        }
        data
    }

    fn execute(&mut self, input: &[u8]) -> Result<String, String> {
        fs::write(&self.manifest, input).unwrap();
        match Package::load(&self.pkg) {
            Err(e) => {
                let msg = e.to_string();
                if !msg.contains("manifest.yaml") {
                    return Err(format!("the error does not name manifest.yaml: {msg}"));
                }
                Ok(kind_of(&msg, &self.manifest.display().to_string()))
            }
            Ok(p) => {
                let m = &p.manifest;
                PackageName::parse(m.name.as_str())
                    .map_err(|e| format!("accepted the name {:?}: {e}", m.name.as_str()))?;
                match semver::Version::parse(&m.version_str) {
                    Ok(v) if v == m.version => {}
                    other => {
                        return Err(format!(
                            "accepted {:?} as {}: {other:?}",
                            m.version_str, m.version
                        ))
                    }
                }
                if let Some(d) = &m.description {
                    if d.len() > 4096 || d.chars().any(char::is_control) {
                        return Err(format!("accepted the description {d:?}"));
                    }
                }
                Ok("ok".into())
            }
        }
    }
}

/// Duplicates, drops or swaps whole lines.
fn shuffle_lines(rng: &mut Rng, data: &mut Vec<u8>) {
    let mut lines: Vec<Vec<u8>> = data
        .split_inclusive(|&c| c == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    if lines.is_empty() {
        return;
    }
    let i = rng.below(lines.len());
    let j = rng.below(lines.len());
    match rng.below(3) {
        0 => {
            let l = lines[i].clone();
            lines.insert(j, l);
        }
        1 => {
            lines.remove(i);
        }
        _ => lines.swap(i, j),
    }
    *data = lines.concat();
}
