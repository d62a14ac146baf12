//! A sync's deltas (store-format.md §5.4): the chain from the local serial to the manifest's,
//! fetched (each within `max_index_size`, whatever the manifest claims), applied to the local
//! index in one transaction and committed only if the result has the signed content digest
//! and every row parses.

use anyhow::{bail, Context, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::config::Settings;
use super::index_copy::{IndexDir, IndexState};
use crate::index::record::{self, ROW_COLUMNS};
use crate::index::search;
use crate::index::wire::{Delta, DeltaRef, Manifest, Op, Remote};

/// Applies `chain` to the local index in one transaction and commits only if the result has
/// the signed content digest; any refused delta rolls everything back.
pub(super) fn apply_deltas(
    idx: &IndexDir,
    cfg: &Settings,
    wire: &mut Remote,
    local: &IndexState,
    chain: &[DeltaRef],
    m: &Manifest,
) -> Result<()> {
    let mut conn = Connection::open(idx.db())
        .with_context(|| format!("cannot open {}", idx.db().display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Some(mut content) = local.content else {
        bail!("the local index records no content digest: no delta can continue it");
    };
    for d in chain {
        let path = format!("index/{}.delta.zst", d.to);
        // What the manifest claims bounds the download: never more than `max_index_size`.
        if d.size > cfg.max_index_size {
            bail!(
                "{path} is {} bytes by the signed manifest, more than the {}-byte limit (`max_index_size`)",
                d.size,
                cfg.max_index_size
            );
        }
        let body = wire.get_checked(&path, d.size, &d.blake3)?;
        let delta = Delta::decode(&body, cfg.max_index_size).with_context(|| path.clone())?;
        let h = &delta.header;
        if (h.from, h.to) != (d.from, d.to) || h.from_content != content {
            bail!(
                "{path} is the delta from serial {} to {} of content {}, not from {} to {} of content {content}",
                h.from,
                h.to,
                h.from_content,
                d.from,
                d.to
            );
        }
        apply_ops(&tx, &delta.ops).with_context(|| path.clone())?;
        content = h.to_content;
    }
    for (k, v) in [
        ("serial", m.serial.to_string()),
        ("created", m.created.to_string()),
    ] {
        tx.execute("UPDATE meta SET value = ?2 WHERE key = ?1", [k, &v])?;
    }
    let dist: String = tx.query_row(
        "SELECT value FROM meta WHERE key = 'distribution'",
        [],
        |r| r.get(0),
    )?;
    m.check_content(&record::content_digest(&tx, &dist)?)?;
    // A signed index can still be hostile: every row parses, or the deltas are not kept.
    record::read_records(&tx, &record::Distribution::decode(&dist)?)?;
    if !search::present(&tx)? {
        search::build(&tx)?;
    }
    tx.commit().context("cannot commit the local index")
}

/// Applies a delta's changes, keeping the local search table (when there is one) in step.
fn apply_ops(tx: &Connection, ops: &[Op]) -> Result<()> {
    let cols = ROW_COLUMNS.join(", ");
    let mut put = tx.prepare(&format!(
        "INSERT INTO packages ({cols}) VALUES ({})",
        record::row_placeholders()
    ))?;
    let mut find = tx.prepare("SELECT rowid FROM packages WHERE name = ?1 AND version_key = ?2")?;
    let searchable = search::present(tx)?;
    let mut remove = |name: &str, vkey: &str| -> Result<()> {
        let Some(rowid) = find
            .query_row([name, vkey], |r| r.get::<_, i64>(0))
            .optional()?
        else {
            return Ok(());
        };
        if searchable {
            search::forget(tx, rowid)?;
        }
        tx.execute("DELETE FROM packages WHERE rowid = ?1", [rowid])?;
        Ok(())
    };
    for op in ops {
        match op {
            Op::Put(vals) => {
                let sql = vals
                    .iter()
                    .zip(ROW_COLUMNS)
                    .map(|(v, c)| json_to_sql(v, c))
                    .collect::<Result<Vec<_>>>()?;
                // The key is `name` and `version_key` (the first and third values).
                if let (Value::Text(name), Value::Text(vkey)) = (&sql[0], &sql[2]) {
                    remove(name, vkey)?;
                }
                put.execute(rusqlite::params_from_iter(sql.iter()))?;
                if searchable {
                    search::learn(tx, tx.last_insert_rowid())?;
                }
            }
            Op::Del(name, vkey) => remove(name, vkey)?,
            Op::Distribution(text) => {
                record::Distribution::decode(text)?;
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'distribution'",
                    [text],
                )?;
            }
        }
    }
    Ok(())
}

/// A delta row value: text, an integer or null, as the canonical content has them.
fn json_to_sql(v: &serde_json::Value, column: &str) -> Result<Value> {
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::String(s) => Value::Text(s.clone()),
        serde_json::Value::Number(n) if n.is_i64() => Value::Integer(n.as_i64().unwrap_or(0)),
        other => bail!("a delta row's `{column}` is {other}, not text, an integer or null"),
    })
}
