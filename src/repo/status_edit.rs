//! The publisher's change of a version's release status (`dist yank`, `unyank`, `phase`; see
//! `status` for the values): the row changes in the master index and, when that changes
//! anything, a new signed serial is published whose delta carries the row.

use anyhow::{bail, Context, Result};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{meta_u64, publish, Repo};
use crate::format::ids::{parse_version, PackageId, PackageName};
use crate::index::record::version_key;
use crate::index::status::{Phase, YankReason};

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
        let key = self.require_key()?;
        let mut conn = self.open_index()?;
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

    /// A master index of format 4 gains the two columns when it is opened; the next publish is
    /// format 5 and a status change publishes a serial whose delta carries the row.
    #[test]
    fn a_format_4_master_index_is_migrated_and_a_yank_publishes_a_delta_issue_22() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::new(dir.path());
        let conn = rusqlite::Connection::open(repo.index_path()).unwrap();
        let v4 = crate::index::record::SNAPSHOT_SCHEMA
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
        crate::index::sign::SigningKey::create(dir.path()).unwrap();
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
        assert_eq!(m.format, crate::index::record::INDEX_FORMAT);
        assert_eq!(m.deltas.len(), 1);
        let bytes = std::fs::read(repo.delta_path(2)).unwrap();
        let delta = crate::index::wire::Delta::decode(&bytes, 1 << 20).unwrap();
        match &delta.ops[..] {
            [crate::index::wire::Op::Put(row)] => {
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
