//! A machine's installed set as a file (issue 22): what `dist export` writes and `dist apply`
//! takes (README "A machine's set as a file", store-format.md §6.2). A header line naming the
//! format, then one package a line, sorted by name, five fields separated by spaces:
//!
//! ```text
//! dist-set 1
//! # name version repository blake3 requested|dependency
//! hello 1.0.0 default af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262 requested
//! ```
//!
//! `#` lines and blank lines are ignored. The file names packages, never paths: every field is
//! parsed as the identifier it is, and a line that is anything else is refused, naming the file,
//! the line and the field.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::config::RepoName;
use super::sources::Sources;
use super::Layout;
use crate::format::ids::{parse_version, ObjectId, PackageName};

/// The header line of format 1.
pub const HEADER: &str = "dist-set 1";

/// The largest file `apply` reads.
const MAX_BYTES: u64 = 64 << 20;

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetEntry {
    pub name: PackageName,
    pub version: semver::Version,
    /// The repository whose signed index has its object.
    pub repository: RepoName,
    pub blake3: ObjectId,
    /// Asked for by name (`false`: installed as a dependency).
    pub requested: bool,
}

/// A whole installed set, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstalledSet {
    pub entries: BTreeMap<PackageName, SetEntry>,
}

impl InstalledSet {
    /// The file's text: the header, the column comment, one line per package by name.
    pub fn render(&self) -> String {
        let mut out = format!("{HEADER}\n# name version repository blake3 requested|dependency\n");
        for e in self.entries.values() {
            out.push_str(&format!(
                "{} {} {} {} {}\n",
                e.name,
                e.version,
                e.repository,
                e.blake3,
                if e.requested {
                    "requested"
                } else {
                    "dependency"
                }
            ));
        }
        out
    }

    /// Reads the file at `path` (at most 64 MiB).
    pub fn read(path: &Path) -> Result<InstalledSet> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_BYTES + 1).read_to_string(&mut text))
            .with_context(|| format!("cannot read the installed set {}", path.display()))?;
        if text.len() as u64 > MAX_BYTES {
            bail!("{} is larger than {MAX_BYTES} bytes", path.display());
        }
        InstalledSet::parse(&text).with_context(|| path.display().to_string())
    }

    /// Parses a file's text; errors name the line and the field.
    pub fn parse(text: &str) -> Result<InstalledSet> {
        let mut set = InstalledSet::default();
        let mut header = false;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = || format!("line {}", i + 1);
            if !header {
                if line != HEADER {
                    bail!(
                        "{}: `{}` is not `{HEADER}` (a file `dist export` wrote starts with it)",
                        at(),
                        shown(line)
                    );
                }
                header = true;
                continue;
            }
            let e = parse_line(line).with_context(at)?;
            if let Some(prev) = set.entries.insert(e.name.clone(), e) {
                bail!("{}: {} is named twice", at(), prev.name);
            }
        }
        if !header {
            bail!("no `{HEADER}` line: not a file `dist export` wrote");
        }
        Ok(set)
    }
}

/// `name version repository blake3 requested|dependency`.
fn parse_line(line: &str) -> Result<SetEntry> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let [name, version, repository, blake3, why] = fields[..] else {
        bail!(
            "`{}` has {} fields, not 5 (name version repository blake3 requested|dependency)",
            shown(line),
            fields.len()
        );
    };
    let name = PackageName::parse(name).map_err(|e| anyhow::anyhow!("name: {e}"))?;
    let version = parse_version(version).map_err(|e| anyhow::anyhow!("version: {e}"))?;
    let repository = RepoName::parse(repository).context("repository")?;
    let blake3 = ObjectId::parse(blake3).map_err(|e| anyhow::anyhow!("blake3: {e}"))?;
    let requested = match why {
        "requested" => true,
        "dependency" => false,
        other => bail!("`{}` is neither `requested` nor `dependency`", shown(other)),
    };
    Ok(SetEntry {
        name,
        version,
        repository,
        blake3,
        requested,
    })
}

/// A value quoted in an error: control characters escaped, at most 80 characters.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_default).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// The current generation as a set: each package with the highest-priority synced repository
/// whose index has its object. A package no synced index has cannot be exported (`apply` could
/// not check it): an error naming it.
pub fn export(layout: &Layout, sources: Option<&Sources>) -> Result<InstalledSet> {
    let current = layout.current()?.map(|g| g.packages).unwrap_or_default();
    let mut set = InstalledSet::default();
    for p in current.values() {
        let Some(sources) = sources else {
            bail!("no package index yet: run `dist sync` first (to name the repository of each package)");
        };
        let mut found = None;
        for s in sources.iter() {
            if s.snap
                .versions(&p.name)?
                .iter()
                .any(|r| r.blake3 == p.blake3)
            {
                found = Some(s.origin.repo.name.clone());
                break;
            }
        }
        let repository = found.with_context(|| {
            format!(
                "{} (blake3 {}) is in no synced index ({}): its set cannot be exported for `apply`",
                p.id(),
                p.blake3,
                sources.describe()
            )
        })?;
        set.entries.insert(
            p.name.clone(),
            SetEntry {
                name: p.name.clone(),
                version: p.version.clone(),
                repository,
                blake3: p.blake3,
                requested: p.requested,
            },
        );
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B3: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    #[test]
    fn a_set_round_trips_and_names_only_packages_issue_22() {
        let text = format!(
            "{HEADER}\n# comment\n\nlibfoo 1.2.0+build default {B3} dependency\n  hello 2.0.0-rc.1 extra {B3} requested\n"
        );
        let set = InstalledSet::parse(&text).unwrap();
        assert_eq!(set.entries.len(), 2);
        let hello = &set.entries[&PackageName::parse("hello").unwrap()];
        assert!(hello.requested && hello.repository.as_str() == "extra");
        assert_eq!(InstalledSet::parse(&set.render()).unwrap(), set);
        assert_eq!(
            set.render(),
            format!("{HEADER}\n# name version repository blake3 requested|dependency\nhello 2.0.0-rc.1 extra {B3} requested\nlibfoo 1.2.0+build default {B3} dependency\n")
        );
        let bad = [
            ("", "no `dist-set 1` line"),
            ("dist-set 2\n", "is not `dist-set 1`"),
            ("hello 1.0.0", "is not `dist-set 1`"),
            (
                "dist-set 1\n../../etc/passwd 1.0.0 default X requested",
                "name",
            ),
            ("dist-set 1\n./hello-1.0.0.tar", "1 fields"),
            ("dist-set 1\nhello 1.0 default X requested", "version"),
            ("dist-set 1\nhello 1.0.0 ../repo X requested", "repository"),
            (
                "dist-set 1\nhello 1.0.0 default /tmp/x.tar requested",
                "blake3",
            ),
            ("dist-set 1\nhello 1.0.0 default B3 wanted", "neither"),
            (
                "dist-set 1\nhello 1.0.0 default B3 requested extra",
                "6 fields",
            ),
            (
                "dist-set 1\nhello 1.0.0 default B3 requested\nhello 1.1.0 default B3 dependency",
                "twice",
            ),
        ];
        for (text, want) in bad {
            let text = text.replace('X', "0").replace("B3", B3);
            let e = format!("{:#}", InstalledSet::parse(&text).unwrap_err());
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = format!(
            "{:#}",
            InstalledSet::parse("dist-set 1\nhello\x1b[2J 1.0.0").unwrap_err()
        );
        assert!(e.contains("line 2") && !e.contains('\x1b'), "{e}");
    }
}
