//! The release status of a published version (index format 5, issue 22): withdrawn (`yanked`,
//! with the publisher's reason; the object stays) and rolled out in phases (`phase`, the
//! percentage of machines that take it). Both are columns of the version's row, changed by
//! `dist yank`, `unyank` and `phase` (and set by `add --phase`); each change is a new signed
//! serial whose delta carries the row. The values are parsed once, here: from the command line
//! (the publisher's stricter rule) or from an index row, which may be hostile.

use std::fmt;

use anyhow::{bail, Context, Result};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::index::version_key;
use super::sign::SigningKey;
use super::{meta_u64, mirror, publish, Repo};
use crate::format::ids::{parse_version, PackageId, PackageName};

/// The longest reason a yank may give, in bytes.
pub const MAX_REASON: usize = 1024;

/// Why a version was withdrawn: 1 to [`MAX_REASON`] bytes of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YankReason(String);

impl YankReason {
    /// A reason given on the command line: not blank, at most [`MAX_REASON`] bytes, no
    /// control character (a reason is one line of text, shown in terminals and pages).
    pub fn parse(s: &str) -> Result<YankReason, String> {
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(format!(
                "a yank reason is one line of text without control characters (it has {})",
                c.escape_default()
            ));
        }
        if s.trim().is_empty() {
            return Err("a yank reason cannot be empty: say why the version is withdrawn".into());
        }
        YankReason::from_index(s)
    }

    /// A reason as an index row holds it: 1 to [`MAX_REASON`] bytes. Control characters a
    /// hostile index may hold are kept here and escaped wherever the text is shown.
    pub fn from_index(s: &str) -> Result<YankReason, String> {
        if s.is_empty() {
            return Err("an empty reason (NULL means not yanked)".into());
        }
        if s.len() > MAX_REASON {
            return Err(format!(
                "a reason of {} bytes (at most {MAX_REASON})",
                s.len()
            ));
        }
        Ok(YankReason(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The share of machines a phased version reaches: 0 to 100 percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Phase(u8);

impl Phase {
    pub fn new(percent: i64) -> Result<Phase, String> {
        match u8::try_from(percent) {
            Ok(p) if p <= 100 => Ok(Phase(p)),
            _ => Err(format!("{percent} is not a percentage from 0 to 100")),
        }
    }

    /// `20` or `20%`.
    pub fn parse(s: &str) -> Result<Phase, String> {
        let digits = s.trim().trim_end_matches('%').trim_end();
        match digits.parse::<i64>() {
            Ok(n) if !digits.starts_with(['+', '-']) => Phase::new(n),
            _ => Err(format!(
                "`{}` is not a percentage from 0 to 100",
                s.escape_default()
            )),
        }
    }

    pub fn percent(self) -> u8 {
        self.0
    }

    /// Whether a machine whose bucket (0 to 99) for the version is `bucket` takes it.
    pub fn admits(self, bucket: u8) -> bool {
        bucket < self.0
    }
}

/// `20 %`, as `upgrade` says "deferred by phased rollout (20 %)".
impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} %", self.0)
    }
}

/// A change of a version's status.
#[derive(Debug, Clone)]
pub enum StatusEdit {
    Yank(YankReason),
    Unyank,
    /// A new percentage; lower than the current one only with `force`.
    Phase {
        to: Phase,
        force: bool,
    },
}

/// A version's status after an edit, and whether the edit published a serial.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub id: PackageId,
    pub yanked: Option<YankReason>,
    pub phase: Option<Phase>,
    /// `false`: the status was that already; nothing was published.
    pub changed: bool,
    /// The serial now published.
    pub serial: Option<u64>,
}

impl Repo {
    /// Changes the status of `name@version` in the master index and, if that changes anything,
    /// publishes a new serial (snapshot, delta carrying the row, signed manifest) in the same
    /// transaction. The object is not touched.
    pub fn set_status(
        &self,
        name: &PackageName,
        version: &semver::Version,
        edit: StatusEdit,
    ) -> Result<StatusChange> {
        mirror::refuse_publishing(self)?;
        let mut conn = self.open_index()?;
        let key = SigningKey::load_or_create(&self.root)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let vkey = version_key(version);
        let row: Option<(String, Option<String>, Option<i64>)> = tx
            .query_row(
                "SELECT version, yanked, phase FROM packages WHERE name = ?1 AND version_key = ?2",
                params![name, vkey],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((text, yanked, phase)) = row else {
            bail!("{}", self.no_such_version(&tx, name, version)?);
        };
        let id = PackageId::new(name.clone(), parse_version(&text)?);
        let what = || format!("{} in {}", id, self.index_path().display());
        let mut yanked = yanked
            .map(|t| YankReason::from_index(&t))
            .transpose()
            .map_err(anyhow::Error::msg)
            .with_context(what)?;
        let mut phase = phase
            .map(Phase::new)
            .transpose()
            .map_err(anyhow::Error::msg)
            .with_context(what)?;
        let before = (yanked.clone(), phase);
        match edit {
            StatusEdit::Yank(reason) => yanked = Some(reason),
            StatusEdit::Unyank => yanked = None,
            StatusEdit::Phase { to, force } => {
                if let Some(now) = phase.filter(|now| to < *now && !force) {
                    bail!("{id} is rolled out to {now}; a rollout only grows: pass --force to lower it to {to} (nothing was published)");
                }
                phase = Some(to);
            }
        }
        let changed = before != (yanked.clone(), phase);
        if changed {
            tx.execute(
                "UPDATE packages SET yanked = ?3, phase = ?4 WHERE name = ?1 AND version_key = ?2",
                params![
                    name,
                    vkey,
                    yanked.as_ref().map(YankReason::as_str),
                    phase.map(|p| p.percent())
                ],
            )?;
            let op = publish::put_op(&tx, name.as_str(), &vkey)?;
            self.publish_in(&tx, &key, vec![op])?;
        }
        tx.commit().context("cannot commit the index")?;
        self.finish_publish(&conn)?;
        Ok(StatusChange {
            id,
            yanked,
            phase,
            changed,
            serial: meta_u64(&conn, "serial")?,
        })
    }

    /// "the index has no hello 3.0.0 (it has 1.0.0, 2.0.0)", or no such package at all.
    fn no_such_version(
        &self,
        conn: &rusqlite::Connection,
        name: &PackageName,
        version: &semver::Version,
    ) -> Result<String> {
        let mut stmt = conn.prepare("SELECT version FROM packages WHERE name = ?1")?;
        let mut have: Vec<semver::Version> = stmt
            .query_map([name.as_str()], |r| r.get::<_, String>(0))?
            .filter_map(|v| v.ok().and_then(|v| semver::Version::parse(&v).ok()))
            .collect();
        have.sort_by(|a, b| a.cmp_precedence(b));
        let have: Vec<String> = have.iter().map(|v| v.to_string()).collect();
        Ok(if have.is_empty() {
            format!("the repository has no package `{name}`")
        } else {
            format!(
                "the repository has no {name} {version} (it has {})",
                have.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_bounded_line_and_phases_percentages() {
        assert_eq!(
            YankReason::parse("CVE-2025-1").unwrap().as_str(),
            "CVE-2025-1"
        );
        for bad in ["", "  ", "a\nb", "esc\x1b[2J", &"x".repeat(MAX_REASON + 1)] {
            assert!(YankReason::parse(bad).is_err(), "{bad:?}");
        }
        // An index may hold control characters (escaped when shown), never too much.
        assert!(YankReason::from_index("a\x1bb").is_ok());
        assert!(YankReason::from_index("").is_err());
        assert!(YankReason::from_index(&"x".repeat(MAX_REASON + 1)).is_err());
        assert_eq!(Phase::parse("20").unwrap().percent(), 20);
        assert_eq!(Phase::parse("5%").unwrap().percent(), 5);
        assert_eq!(Phase::parse("100").unwrap().to_string(), "100 %");
        for bad in ["101", "-1", "+5", "x", "", "2.5", "1e2"] {
            assert!(Phase::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Phase::new(-1).is_err() && Phase::new(256).is_err());
        let p = Phase::new(20).unwrap();
        assert!(p.admits(19) && !p.admits(20));
        assert!(!Phase::new(0).unwrap().admits(0));
        assert!(Phase::new(100).unwrap().admits(99));
    }

    /// A master index of format 4 gains the two columns when it is opened; the next publish is
    /// format 5 and a status change publishes a serial whose delta carries the row.
    #[test]
    fn a_format_4_master_index_is_migrated_and_a_yank_publishes_a_delta_issue_22() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::new(dir.path());
        let conn = rusqlite::Connection::open(repo.index_path()).unwrap();
        let v4 = crate::repo::index::SNAPSHOT_SCHEMA
            .replace("    yanked      TEXT,\n    phase       INTEGER,\n", "");
        assert!(!v4.contains("yanked"));
        conn.execute_batch(&v4).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO packages VALUES ('hello', '1.0.0', '1.0.0', NULL, '{}', '{}', 10, 1, NULL, NULL, '[]');",
            "a".repeat(64),
            "b".repeat(40)
        ))
        .unwrap();
        drop(conn);
        let name = PackageName::parse("hello").unwrap();
        let v1 = semver::Version::new(1, 0, 0);
        let reason = YankReason::parse("broken").unwrap();
        let c = repo
            .set_status(&name, &v1, StatusEdit::Yank(reason.clone()))
            .unwrap();
        assert!(c.changed && c.serial == Some(1) && c.yanked == Some(reason));
        let c = repo
            .set_status(
                &name,
                &v1,
                StatusEdit::Phase {
                    to: Phase::new(30).unwrap(),
                    force: false,
                },
            )
            .unwrap();
        assert_eq!(c.serial, Some(2));
        let m = repo.manifest(2).unwrap().unwrap();
        assert_eq!(m.format, crate::repo::index::INDEX_FORMAT);
        assert_eq!(m.deltas.len(), 1);
        let bytes = std::fs::read(repo.delta_path(2)).unwrap();
        let delta = crate::repo::wire::Delta::decode(&bytes, 1 << 20).unwrap();
        match &delta.ops[..] {
            [crate::repo::wire::Op::Put(row)] => {
                assert_eq!(row[11], "broken");
                assert_eq!(row[12], 30);
            }
            other => panic!("{other:?}"),
        }
        let records = repo.records().unwrap();
        assert_eq!(records[0].phase, Some(Phase::new(30).unwrap()));
        assert!(repo
            .set_status(
                &name,
                &v1,
                StatusEdit::Phase {
                    to: Phase::new(10).unwrap(),
                    force: false
                }
            )
            .is_err());
        assert_eq!(repo.latest_serial().unwrap(), Some(2));
    }
}
