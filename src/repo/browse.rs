//! What the web catalog of `dist serve` reads from the master index: one page of packages (all,
//! or those a search term matches, by the same rule as [`crate::index::record::Snapshot::search`]'s
//! scan) and every version of one package. Each read goes through SQL with `LIMIT`/`OFFSET` or the
//! primary key, so a page costs the same at 100,000 packages as at ten: the names of the page
//! come from the `(name, version_key)` index, then only their rows are read.

use anyhow::{Context, Result};
use rusqlite::{params, params_from_iter};

use super::{current_distribution, Repo};
use crate::format::ids::PackageName;
use crate::index::record::{self, PackageRecord};
use crate::index::search;

/// One package as a catalog page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its newest version (highest SemVer precedence).
    pub newest: PackageRecord,
    /// How many versions the index holds.
    pub versions: usize,
    /// The bytes of all its versions' objects.
    pub size: u64,
}

/// One page of packages, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub packages: Vec<Listed>,
    /// How many packages (names) there are in all, or match the term.
    pub total: u64,
}

impl Repo {
    /// The packages `offset..offset + limit` by name, of all or of those whose name or
    /// description (any version's) contains `term`, ignoring ASCII case.
    pub fn browse(&self, term: Option<&str>, offset: u64, limit: u64) -> Result<Page> {
        let conn = self.read_index()?;
        let path = self.index_path();
        // SQLite integers are signed.
        let (offset, limit) = (
            i64::try_from(offset).unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX),
        );
        let read = || -> Result<Page> {
            let dist = current_distribution(&conn)?;
            let term = term.filter(|t| !t.is_empty());
            let (names, total): (Vec<String>, u64) = match term {
                None => (
                    conn.prepare_cached(
                        "SELECT DISTINCT name FROM packages ORDER BY name LIMIT ?1 OFFSET ?2",
                    )?
                    .query_map(params![limit, offset], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?,
                    conn.query_row("SELECT count(DISTINCT name) FROM packages", [], |r| {
                        r.get::<_, i64>(0)
                    })? as u64,
                ),
                Some(t) => {
                    let pattern = search::like_pattern(t);
                    let names = conn
                        .prepare_cached(&format!(
                            "SELECT DISTINCT name FROM packages WHERE {} \
                             ORDER BY name LIMIT ?2 OFFSET ?3",
                            search::LIKE_WHERE
                        ))?
                        .query_map(params![pattern, limit, offset], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    let total: i64 = conn.query_row(
                        &format!(
                            "SELECT count(DISTINCT name) FROM packages WHERE {}",
                            search::LIKE_WHERE
                        ),
                        [&pattern],
                        |r| r.get(0),
                    )?;
                    (names, total as u64)
                }
            };
            if names.is_empty() {
                return Ok(Page {
                    packages: Vec::new(),
                    total,
                });
            }
            let placeholders = (1..=names.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let records = record::read_records_where(
                &conn,
                &dist,
                &format!("WHERE name IN ({placeholders})"),
                params_from_iter(names.iter()),
            )?;
            Ok(Page {
                packages: listed(records),
                total,
            })
        };
        read().with_context(|| format!("cannot read a catalog page of {}", path.display()))
    }

    /// Every version of `name`, lowest precedence first (one lookup in the primary key); empty
    /// when the index has no such package.
    pub fn versions_of(&self, name: &PackageName) -> Result<Vec<PackageRecord>> {
        let conn = self.read_index()?;
        let read = || -> Result<Vec<PackageRecord>> {
            let dist = current_distribution(&conn)?;
            record::read_records_where(&conn, &dist, "WHERE name = ?1", [name.as_str()])
        };
        read().with_context(|| {
            format!(
                "cannot read the versions of {name} from {}",
                self.index_path().display()
            )
        })
    }
}

/// Groups records sorted by name and precedence into one [`Listed`] per name.
fn listed(records: Vec<PackageRecord>) -> Vec<Listed> {
    let mut out: Vec<Listed> = Vec::new();
    for r in records {
        match out.last_mut() {
            Some(l) if l.newest.name == r.name => {
                l.versions += 1;
                l.size += r.size;
                // Sorted by precedence: each later record of a name is newer.
                l.newest = r;
            }
            _ => out.push(Listed {
                size: r.size,
                versions: 1,
                newest: r,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn package(dir: &Path, name: &str, version: &str, description: &str) -> PathBuf {
        let d = dir.join(format!("{name}-{version}"));
        std::fs::create_dir_all(d.join("assets")).unwrap();
        std::fs::create_dir_all(d.join("scripts")).unwrap();
        std::fs::write(
            d.join("manifest.yaml"),
            format!("name: {name}\nversion: {version}\ndescription: '{description}'\n"),
        )
        .unwrap();
        std::fs::write(d.join("assets/data.txt"), format!("{name} {version}")).unwrap();
        for script in ["install.sh", "uninstall.sh"] {
            std::fs::write(d.join("scripts").join(script), "#!/bin/sh\n").unwrap();
        }
        d
    }

    fn names(p: &Page) -> Vec<(String, String, usize)> {
        p.packages
            .iter()
            .map(|l| {
                (
                    l.newest.name.to_string(),
                    l.newest.version.to_string(),
                    l.versions,
                )
            })
            .collect()
    }

    #[test]
    fn pages_search_and_versions_go_through_the_index() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let repo = Repo::new(&tmp.path().join("repo"));
        repo.init().unwrap();
        repo.add(&[
            package(&src, "beta", "1.9.0", "second of three"),
            package(&src, "beta", "1.10.0", "second, newer"),
            package(&src, "alpha", "0.1.0", "100% first"),
            package(&src, "gamma", "2.0.0-rc.1", "third"),
        ])
        .unwrap();

        let first = repo.browse(None, 0, 2).unwrap();
        assert_eq!(first.total, 3);
        assert_eq!(
            names(&first),
            [
                ("alpha".into(), "0.1.0".into(), 1),
                // 1.10.0 is newer than 1.9.0 by precedence, though not as text.
                ("beta".into(), "1.10.0".into(), 2),
            ]
        );
        assert_eq!(
            first.packages[1].size,
            first.packages[1].newest.size
                + repo
                    .versions_of(&PackageName::parse("beta").unwrap())
                    .unwrap()[0]
                    .size
        );
        let last = repo.browse(None, 2, 2).unwrap();
        assert_eq!(names(&last), [("gamma".into(), "2.0.0-rc.1".into(), 1)]);
        assert!(repo.browse(None, 10, 2).unwrap().packages.is_empty());

        // Any version's description counts, ignoring ASCII case; `%` is literal.
        let found = repo.browse(Some("OF THREE"), 0, 50).unwrap();
        assert_eq!(found.total, 1);
        assert_eq!(names(&found)[0].1, "1.10.0");
        assert_eq!(
            names(&repo.browse(Some("0%"), 0, 50).unwrap())[0].0,
            "alpha"
        );
        assert_eq!(repo.browse(Some("1%"), 0, 50).unwrap().total, 0);
        assert_eq!(repo.browse(Some(""), 0, 50).unwrap().total, 3);

        let beta = repo
            .versions_of(&PackageName::parse("beta").unwrap())
            .unwrap();
        let versions: Vec<String> = beta.iter().map(|r| r.version.to_string()).collect();
        assert_eq!(versions, ["1.9.0", "1.10.0"]);
        assert!(repo
            .versions_of(&PackageName::parse("delta").unwrap())
            .unwrap()
            .is_empty());
    }
}
