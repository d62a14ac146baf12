//! The publisher's side of key rotation and revocation (store-format.md §5.7): `dist key
//! rotate` and `dist key revoke`. Both append a signed statement to `published/keys.json` and
//! publish a new serial (signed by the key current afterwards), so clients notice on their next
//! sync.
//!
//! `keys/` holds `secret.key` and `public.key` (the current pair), `retired/<ID>.key` (every
//! secret key rotated away, for the operator to archive or destroy) and, during a rotation,
//! `pending.key` (the next key, written before any statement names it: a rotation interrupted at
//! any step is finished by running it again, never forked into a second new key).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use rusqlite::TransactionBehavior;

use super::{mirror, Repo};
use crate::clock::now_unix;
use crate::index::keys::{KeyLog, PublicKey, SignedStatement, Statement, KEYS_FORMAT};
use crate::index::sign::{key_paths, SigningKey};
use crate::store::fsx;

/// What `dist key rotate` did.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub old: PublicKey,
    pub new: PublicKey,
    pub serial: u64,
}

/// What `dist repo init` made.
#[derive(Debug, Clone)]
pub struct Created {
    pub public: PublicKey,
    /// The secret key to back up (`keys/secret.key`).
    pub secret_key: PathBuf,
    /// The root had a master index already (a new key for an existing repository).
    pub had_index: bool,
}

/// What `dist key revoke` did.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub key: PublicKey,
    pub by: PublicKey,
    pub serial: u64,
}

impl Repo {
    /// `published/keys.json`, served as `/index/keys.json`.
    pub fn keys_path(&self) -> PathBuf {
        self.published_dir().join("keys.json")
    }

    fn keys_dir(&self) -> PathBuf {
        key_paths(&self.root)
            .0
            .parent()
            .expect("keys dir")
            .to_path_buf()
    }

    /// The published key statements (none yet: an empty log).
    pub fn key_log(&self) -> Result<KeyLog> {
        let p = self.keys_path();
        match std::fs::read(&p) {
            Ok(b) => KeyLog::decode(&b).with_context(|| p.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyLog {
                format: KEYS_FORMAT,
                statements: Vec::new(),
            }),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
        }
    }

    /// The current signing key; [`crate::index::sign::NotARepository`] when the root has none.
    fn current_key(&self) -> Result<SigningKey> {
        SigningKey::load(&self.root)
    }

    /// `dist repo init`: makes the signing key of a new repository at the root, and its master
    /// index (kept when there is one: a repository whose key was moved away gets a new one).
    /// Refused in a mirror's root and where a key exists.
    pub fn init(&self) -> Result<Created> {
        mirror::refuse_publishing(self)?;
        let (sk, _) = key_paths(&self.root);
        if sk.exists() {
            let id = PublicKey::parse(&SigningKey::read(&sk)?.public_base64())?.id();
            bail!(
                "{} is a repository already (signing key {id}, {})",
                self.root.display(),
                sk.display()
            );
        }
        let had_index = self.index_path().exists();
        drop(self.open_index()?);
        let key = SigningKey::create(&self.root)?;
        Ok(Created {
            public: PublicKey::parse(&key.public_base64())?,
            secret_key: sk,
            had_index,
        })
    }

    /// The signing key, checked before anything under the root is created or changed.
    pub(crate) fn require_key(&self) -> Result<SigningKey> {
        mirror::refuse_publishing(self)?;
        SigningKey::load(&self.root)
    }

    /// Makes a new signing key, publishes the rotation statement signed by the old key and the
    /// new one, retires the old secret key and publishes a new serial signed by the new key.
    pub fn rotate_key(&self) -> Result<Rotated> {
        self.require_key()?;
        let mut conn = self.open_index()?;
        // The publish lock: no `add` signs with the old key while the key changes.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old = self.current_key()?;
        let old_pk = PublicKey::parse(&old.public_base64())?;
        let pending = self.keys_dir().join("pending.key");
        if !pending.exists() {
            // Interrupted after the new key became current, before its first serial was
            // committed: finish that rotation rather than start another.
            if let Some((prev, signed)) = self.interrupted_rotation(&tx, &old_pk)? {
                if !signed {
                    self.publish_in(&tx, &old, Vec::new())?;
                }
                tx.commit().context("cannot commit the index")?;
                self.finish_publish(&conn)?;
                return Ok(Rotated {
                    old: prev,
                    new: old_pk,
                    serial: self.latest_serial()?.unwrap_or(0),
                });
            }
        }
        let new = if pending.exists() {
            SigningKey::read(&pending)?
        } else {
            let k = SigningKey::generate()?;
            k.write_secret(&pending)?;
            k
        };
        let new_pk = PublicKey::parse(&new.public_base64())?;
        let mut log = self.key_log()?;
        match rotation_from(&log, &old_pk)? {
            Some(to) if to == new_pk => {}
            Some(to) => bail!(
                "{} already rotates key {old_pk} to {to}, but keys/pending.key holds {new_pk}: restore that key's secret as {} to finish the rotation",
                self.keys_path().display(),
                pending.display()
            ),
            None => {
                let st = Statement::Rotation {
                    old: old_pk.base64().to_string(),
                    new: new_pk.base64().to_string(),
                    created: now_unix(),
                };
                log.statements
                    .push(SignedStatement::sign(&st, &[&old, &new])?);
                fsx::write_atomic(&self.keys_path(), &log.encode()?, 0o644)?;
            }
        }
        let retired = self.keys_dir().join("retired");
        std::fs::create_dir_all(&retired)
            .with_context(|| format!("cannot create {}", retired.display()))?;
        old.write_secret(&retired.join(format!("{}.key", old_pk.id())))?;
        let (sk_path, pk_path) = key_paths(&self.root);
        new.write_public(&pk_path)?;
        fsx::persist_file(&pending, &sk_path)?;
        self.publish_in(&tx, &new, Vec::new())?;
        tx.commit().context("cannot commit the index")?;
        self.finish_publish(&conn)?;
        Ok(Rotated {
            old: old_pk,
            new: new_pk,
            serial: self.latest_serial()?.unwrap_or(0),
        })
    }

    /// A rotation into `current` that was killed after the key switch: the key it replaced,
    /// and whether the newest committed serial is signed by `current` already (killed before
    /// `LATEST` named it) or not (killed before that serial was committed); `None` when the
    /// rotation into `current` (if any) is finished.
    fn interrupted_rotation(
        &self,
        tx: &rusqlite::Connection,
        current: &PublicKey,
    ) -> Result<Option<(PublicKey, bool)>> {
        let log = self.key_log()?;
        let Some(prev) = rotation_into(&log, current)? else {
            return Ok(None);
        };
        let Some(serial) = super::meta_u64(tx, "serial")? else {
            return Ok(Some((prev, false)));
        };
        let read =
            |p: PathBuf| std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()));
        let manifest = read(self.manifest_path(serial))?;
        let sig = String::from_utf8_lossy(&read(self.manifest_sig_path(serial))?).into_owned();
        let signed = crate::index::sign::verify(current.base64(), &manifest, &sig).is_ok();
        let pointed = self.latest_serial()? == Some(serial);
        Ok((!signed || !pointed).then_some((prev, signed)))
    }

    /// Publishes, signed by the current key, that `which` (a base64 public key, or the id of
    /// a key this repository's statements name) must never be accepted again.
    pub fn revoke_key(&self, which: &str) -> Result<Revoked> {
        self.require_key()?;
        let mut conn = self.open_index()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = self.current_key()?;
        let by = PublicKey::parse(&current.public_base64())?;
        let mut log = self.key_log()?;
        let key = find_key(&log, which)?;
        if key == by {
            bail!("{key} is the current signing key: rotate it first (`dist key rotate`), then revoke it");
        }
        let st = Statement::Revocation {
            key: key.base64().to_string(),
            by: by.base64().to_string(),
            created: now_unix(),
        };
        log.statements
            .push(SignedStatement::sign(&st, &[&current])?);
        fsx::write_atomic(&self.keys_path(), &log.encode()?, 0o644)?;
        self.publish_in(&tx, &current, Vec::new())?;
        tx.commit().context("cannot commit the index")?;
        self.finish_publish(&conn)?;
        Ok(Revoked {
            key,
            by,
            serial: self.latest_serial()?.unwrap_or(0),
        })
    }
}

/// The key the log rotates `from` to, if any.
fn rotation_from(log: &KeyLog, from: &PublicKey) -> Result<Option<PublicKey>> {
    for s in &log.statements {
        if let Statement::Rotation { old, new, .. } = serde_json::from_str(&s.statement)? {
            if PublicKey::parse(&old)? == *from {
                return Ok(Some(PublicKey::parse(&new)?));
            }
        }
    }
    Ok(None)
}

/// The key a statement of `log` rotates into `to`, if any.
fn rotation_into(log: &KeyLog, to: &PublicKey) -> Result<Option<PublicKey>> {
    for s in &log.statements {
        if let Statement::Rotation { old, new, .. } = serde_json::from_str(&s.statement)? {
            if PublicKey::parse(&new)? == *to {
                return Ok(Some(PublicKey::parse(&old)?));
            }
        }
    }
    Ok(None)
}

/// `which` as a public key: base64 as it is, or a key id looked up in the statements.
fn find_key(log: &KeyLog, which: &str) -> Result<PublicKey> {
    if let Ok(k) = PublicKey::parse(which) {
        return Ok(k);
    }
    let id: crate::index::keys::KeyId = which.parse().with_context(|| {
        format!("`{which}` is neither a minisign public key (base64) nor a key id")
    })?;
    for s in &log.statements {
        let keys = match serde_json::from_str(&s.statement)? {
            Statement::Rotation { old, new, .. } => [old, new],
            Statement::Revocation { key, by, .. } => [key, by],
        };
        for k in keys {
            let k = PublicKey::parse(&k)?;
            if k.id() == id {
                return Ok(k);
            }
        }
    }
    bail!("no key with id {id} in this repository's key statements: give its public key (base64)")
}
