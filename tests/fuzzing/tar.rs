//! Target `tar`: the strict archive reader and the unpacker (`object::verify_file` then
//! `object::unpack`) on mutated canonical archives of the valid fixtures.
//!
//! Mutations (in `tar/mutate.rs`) know the ustar layout: header fields rewritten with hostile
//! values (paths with `..`, absolute ones into the sentinel, links out of the package, odd
//! typeflags, sizes and modes) and the checksum fixed after, new symlinks, directories and files,
//! entries removed, duplicated, swapped or taken from another archive, PAX headers with odd
//! records, truncation, plus byte-level noise.
//!
//! Properties: no panic; every iteration within `LIMIT`; on error the destination is empty
//! again; nothing appears, changes kind or disappears anywhere in the sentinel tree around the
//! destination (which lies eight levels below it, deeper than any `..` the mutations write); on
//! success every entry is a file, a directory or a symlink whose target, resolved on disk, stays
//! inside the destination.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dist::format::ids::ObjectId;
use dist::format::pack::{pack_to, Packed};
use dist::format::package::Package;
use dist::object;
use tempfile::TempDir;

use super::{kind_of, listing, mutate_bytes, Rng, Target};
use mutate::{headers, set_checksum, splice, tokens, truncate_or_append, Tokens, BLOCK};

mod mutate;
/// Directories between the sentinel root and the destination.
const DEPTH: usize = 8;
/// An iteration slower than this is a failure: unpacking these archives takes milliseconds.
const LIMIT: Duration = Duration::from_secs(5);

pub struct Tar {
    seeds: Vec<Vec<u8>>,
    _tmp: TempDir,
    root: PathBuf,
    dest: PathBuf,
    input: PathBuf,
    before: Vec<String>,
    tokens: Tokens,
}

/// Every valid fixture packed by the library: the canonical archive and what `pack_to` says
/// about it (its torrent info among others).
pub fn packed_fixtures() -> Vec<(Vec<u8>, Packed)> {
    super::valid_fixtures()
        .iter()
        .map(|d| {
            let pkg = Package::load(d).unwrap();
            let mut out = Vec::new();
            let packed = pack_to(&pkg, &mut out).unwrap();
            (out, packed)
        })
        .collect()
}

impl Tar {
    pub fn new() -> Tar {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sentinel");
        let mut dest = root.clone();
        for i in 0..DEPTH {
            dest.push(format!("level-{i}"));
            fs::create_dir_all(&dest).unwrap();
            fs::write(dest.with_file_name(format!("decoy-{i}")), b"decoy").unwrap();
        }
        dest.push("dest");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(tmp.path().join("obj")).unwrap();
        let input = tmp.path().join("obj/in.tar");
        let before = listing(&root, Some(&dest));
        let abs = root.join("escaped-absolute").display().to_string();
        Tar {
            seeds: packed_fixtures().into_iter().map(|(a, _)| a).collect(),
            _tmp: tmp,
            root,
            dest,
            input,
            before,
            tokens: tokens(&abs),
        }
    }
}

impl Target for Tar {
    const NAME: &'static str = "tar";

    fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let mut data = rng.pick(&self.seeds).clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(12) {
                0 | 1 => self.tokens.header_field(rng, &mut data),
                2 | 3 => self.tokens.new_entry(rng, &mut data),
                4 => self.tokens.retarget(rng, &mut data),
                5 => splice(rng, &mut data, &self.seeds),
                6 | 7 => self.tokens.insert_pax(rng, &mut data),
                8 => truncate_or_append(rng, &mut data),
                _ => {
                    let tokens: Vec<&[u8]> = self.tokens.paths.iter().map(Vec::as_slice).collect();
                    mutate_bytes(rng, &mut data, &tokens);
                }
            }
        }
        if rng.chance(80) {
            for h in headers(&data) {
                set_checksum(&mut data[h..h + BLOCK]);
            }
        }
        data
    }

    fn execute(&mut self, input: &[u8]) -> Result<String, String> {
        let started = Instant::now();
        fs::write(&self.input, input).unwrap();
        let id = ObjectId::from_bytes(*blake3::hash(input).as_bytes());
        let verified = object::verify_file(&self.input, &id)
            .map_err(|e| format!("verify_file refused the bytes it was given: {e}"))?;
        let result = object::unpack(&verified, &self.dest);
        let after = listing(&self.root, Some(&self.dest));
        if after != self.before {
            return Err(format!(
                "the sentinel tree around the destination changed ({result:?}):\n  before {:?}\n  after  {after:?}",
                self.before
            ));
        }
        let kind = match &result {
            Err(e) => {
                let left = listing(&self.dest, None);
                if !left.is_empty() {
                    return Err(format!("unpack failed ({e}) but left {left:?}"));
                }
                let msg = e
                    .to_string()
                    .replace(&self.dest.display().to_string(), "<dest>");
                kind_of(&msg, &self.input.display().to_string())
            }
            Ok(_) => {
                check_tree(&self.dest)?;
                "ok".to_string()
            }
        };
        fs::remove_dir_all(&self.dest).unwrap();
        fs::create_dir(&self.dest).unwrap();
        if started.elapsed() > LIMIT {
            return Err(format!(
                "took {:?} (more than {LIMIT:?}): {kind}",
                started.elapsed()
            ));
        }
        Ok(kind)
    }
}

/// Every entry below `dest` is a file, a directory or a symlink whose target stays inside.
fn check_tree(dest: &Path) -> Result<(), String> {
    for line in listing(dest, None) {
        let (kind, rel) = line.split_once(' ').unwrap();
        match kind {
            "d" | "f" => {}
            "l" => check_link(dest, Path::new(rel))?,
            _ => {
                return Err(format!(
                    "unpack made `{rel}`, neither file, dir nor symlink"
                ))
            }
        }
    }
    Ok(())
}

/// Resolves the symlink `dest/rel` component by component on disk, following the symlinks it
/// meets (at most 40): it must never climb above `dest`, even on the way.
fn check_link(dest: &Path, rel: &Path) -> Result<(), String> {
    let mut stack: Vec<String> = rel
        .parent()
        .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let target = fs::read_link(dest.join(rel)).unwrap();
    let mut budget = 40;
    walk_link(dest, &mut stack, &target.to_string_lossy(), &mut budget).map_err(|why| {
        format!(
            "unpacked symlink {} -> {}: {why}",
            rel.display(),
            target.display()
        )
    })
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
                        return Ok(()); // the kernel gives up with ELOOP: nothing is reached
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
