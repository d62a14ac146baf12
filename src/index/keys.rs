//! The repository's key over the years (store-format.md §5.7): a rotation statement, signed by
//! the old key and the new one, moves trust from one to the other; a revocation, signed by a
//! key the client trusts, says a key must never be accepted again. The statements are published
//! together in `index/keys.json`; each one is verified on its own, so the file itself needs no
//! signature and a server (or mirror) can only withhold statements, never forge them.
//!
//! A client walks the statements from the key it trusts ([`follow`]): revocations signed by a
//! key on its path apply, and a rotation from its current key moves it on. Two different
//! rotations from one key are a fork (someone else holds that key) and are refused, as is a
//! rotation to a revoked key or back to a key already on the path.

use std::collections::BTreeSet;
use std::fmt;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::sign::{self, SigningKey};
use super::wire::{self, Remote, SignedManifest};

/// The trusted comment of every statement signature. An index signature's comment starts with
/// `dist-index`, so neither can stand in for the other.
pub const STATEMENT_COMMENT: &str = "dist-key-statement format=1";

/// `keys.json`'s format.
pub const KEYS_FORMAT: u32 = 1;

/// The largest `keys.json` a client reads, and how many statements it may hold.
pub const MAX_KEYS_FILE: u64 = 1 << 20;
const MAX_STATEMENTS: usize = 1000;

/// A refusal about keys: a fork, a cycle or a revoked key in the statements, or a local index
/// the trusted key did not verify. `--json` reports it as kind `signature`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err($crate::index::keys::KeyError(format!($($arg)*)).into())
    };
}
pub(crate) use refuse;

/// A minisign key id: the 8 bytes of the key number, shown as minisign shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(u64);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

impl std::str::FromStr for KeyId {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<KeyId> {
        if s.len() != 16 {
            bail!("`{s}` is not a key id (16 hexadecimal digits)");
        }
        u64::from_str_radix(s, 16)
            .map(KeyId)
            .map_err(|_| anyhow::anyhow!("`{s}` is not a key id (16 hexadecimal digits)"))
    }
}

/// A minisign public key, parsed once: its base64 form (as `dist key show` prints it and
/// client.yaml holds it) and its id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublicKey {
    base64: String,
    id: KeyId,
}

impl PublicKey {
    pub fn parse(base64: &str) -> Result<PublicKey> {
        let base64 = base64.trim();
        let pk = minisign::PublicKey::from_base64(base64)
            .map_err(|e| anyhow::anyhow!("`{base64}` is not a minisign public key: {e}"))?;
        let num: [u8; 8] = pk
            .keynum()
            .try_into()
            .context("a minisign key number is 8 bytes")?;
        Ok(PublicKey {
            base64: base64.to_string(),
            id: KeyId(u64::from_le_bytes(num)),
        })
    }

    pub fn base64(&self) -> &str {
        &self.base64
    }

    pub fn id(&self) -> KeyId {
        self.id
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id)
    }
}

/// What a statement says (the JSON text its signatures cover).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Statement {
    /// Trust moves from `old` to `new`; signed by both.
    Rotation {
        old: String,
        new: String,
        created: u64,
    },
    /// `key` must never be accepted again; signed by `by`.
    Revocation {
        key: String,
        by: String,
        created: u64,
    },
}

/// A statement as published: its exact text and minisign signatures over it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedStatement {
    pub statement: String,
    pub signatures: Vec<String>,
}

/// `index/keys.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLog {
    pub format: u32,
    pub statements: Vec<SignedStatement>,
}

/// A statement whose keys parsed (its signatures are checked when it is used).
#[derive(Debug, Clone)]
enum Parsed {
    Rotation { old: PublicKey, new: PublicKey },
    Revocation { key: PublicKey, by: PublicKey },
}

impl SignedStatement {
    /// Signs `statement` with every key of `signers`.
    pub fn sign(statement: &Statement, signers: &[&SigningKey]) -> Result<SignedStatement> {
        let text = serde_json::to_string(statement)?;
        let signatures = signers
            .iter()
            .map(|k| k.sign_comment(text.as_bytes(), STATEMENT_COMMENT))
            .collect::<Result<_>>()?;
        Ok(SignedStatement {
            statement: text,
            signatures,
        })
    }

    /// Whether one of the signatures is `key`'s over the text, as a statement.
    fn signed_by(&self, key: &PublicKey) -> bool {
        self.signatures.iter().any(|s| {
            sign::verify_comment(key.base64(), self.statement.as_bytes(), s)
                .is_ok_and(|c| c == STATEMENT_COMMENT)
        })
    }

    fn parse(&self) -> Result<Parsed> {
        let s: Statement = serde_json::from_str(&self.statement)?;
        Ok(match s {
            Statement::Rotation { old, new, .. } => Parsed::Rotation {
                old: PublicKey::parse(&old)?,
                new: PublicKey::parse(&new)?,
            },
            Statement::Revocation { key, by, .. } => Parsed::Revocation {
                key: PublicKey::parse(&key)?,
                by: PublicKey::parse(&by)?,
            },
        })
    }
}

impl KeyLog {
    /// Reads `keys.json`: its format, and every statement parses (a hostile file is refused
    /// whole, naming the statement).
    pub fn decode(bytes: &[u8]) -> Result<KeyLog> {
        let log: KeyLog = serde_json::from_slice(bytes).context("keys.json is malformed")?;
        if log.format != KEYS_FORMAT {
            bail!(
                "keys.json has format {}; this dist reads format {KEYS_FORMAT}: upgrade dist",
                log.format
            );
        }
        if log.statements.len() > MAX_STATEMENTS {
            bail!(
                "keys.json holds {} statements, more than the {MAX_STATEMENTS} a client reads",
                log.statements.len()
            );
        }
        for (i, s) in log.statements.iter().enumerate() {
            s.parse()
                .with_context(|| format!("keys.json: statement {i} is malformed"))?;
        }
        Ok(log)
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut b = serde_json::to_vec_pretty(self)?;
        b.push(b'\n');
        Ok(b)
    }

    fn parsed(&self) -> Vec<(Parsed, &SignedStatement)> {
        self.statements
            .iter()
            .filter_map(|s| Some((s.parse().ok()?, s)))
            .collect()
    }
}

/// Where [`follow`] ended.
#[derive(Debug, Clone)]
pub struct Followed {
    /// The key trusted now (the starting key when nothing moved it).
    pub key: PublicKey,
    /// Each rotation taken, in order: (old, new).
    pub rotations: Vec<(PublicKey, PublicKey)>,
    /// Every key revoked: those known before and those learned here.
    pub revoked: BTreeSet<PublicKey>,
}

/// Walks `log` from the trusted key `start`, with the keys already known to be revoked.
pub fn follow(start: &PublicKey, revoked: &BTreeSet<PublicKey>, log: &KeyLog) -> Result<Followed> {
    let parsed = log.parsed();
    let mut out = Followed {
        key: start.clone(),
        rotations: Vec::new(),
        revoked: revoked.clone(),
    };
    let mut path = vec![start.clone()];
    loop {
        for (p, s) in &parsed {
            if let Parsed::Revocation { key, by } = p {
                if path.contains(by) && s.signed_by(by) {
                    out.revoked.insert(key.clone());
                }
            }
        }
        if out.revoked.contains(&out.key) {
            refuse!("the repository key {} has been revoked", out.key);
        }
        let next: BTreeSet<&PublicKey> = parsed
            .iter()
            .filter_map(|(p, s)| match p {
                Parsed::Rotation { old, new }
                    if *old == out.key && s.signed_by(old) && s.signed_by(new) =>
                {
                    Some(new)
                }
                _ => None,
            })
            .collect();
        let new = match next.len() {
            0 => return Ok(out),
            1 => (*next.first().expect("one")).clone(),
            _ => refuse!(
                "keys.json rotates key {} to {} different keys ({}): someone else holds that key; configure the repository's current key by hand",
                out.key,
                next.len(),
                next.iter().map(|k| k.id().to_string()).collect::<Vec<_>>().join(", ")
            ),
        };
        if path.contains(&new) {
            refuse!(
                "keys.json rotates key {} back to {new}, a key it left before",
                out.key
            );
        }
        if out.revoked.contains(&new) {
            refuse!(
                "keys.json rotates key {} to {new}, which has been revoked",
                out.key
            );
        }
        out.rotations.push((out.key.clone(), new.clone()));
        path.push(new.clone());
        out.key = new;
    }
}

/// `index/keys.json` from a server: parsed, and its bytes as they came (a mirror republishes
/// them); `None` when the server publishes none.
pub fn fetch_log(remote: &mut Remote) -> Result<Option<(KeyLog, Vec<u8>)>> {
    let Some(body) = remote.get_optional("index/keys.json", MAX_KEYS_FILE)? else {
        return Ok(None);
    };
    let log =
        KeyLog::decode(&body).with_context(|| format!("{}/index/keys.json", remote.server))?;
    Ok(Some((log, body)))
}

/// The newest signed manifest, verified with the trusted `key`, or with the key the server's
/// `keys.json` rotates it to when it is signed by another key (then the walk is returned too).
/// `None`: not modified since `etag`.
pub fn fetch_manifest(
    remote: &mut Remote,
    key: &PublicKey,
    revoked: &BTreeSet<PublicKey>,
    etag: Option<&str>,
    limit: u64,
) -> Result<(Option<SignedManifest>, Option<Followed>)> {
    let e = match wire::fetch_manifest(remote, key.base64(), etag, limit) {
        Ok(f) => return Ok((f, None)),
        Err(e) => e,
    };
    if !matches!(
        e.downcast_ref::<sign::VerifyError>(),
        Some(sign::VerifyError::WrongKey(_))
    ) {
        return Err(e);
    }
    // Signed by another key: a rotation the repository published, or an attack.
    let log = fetch_log(remote)?.map(|(l, _)| l).unwrap_or_default();
    let followed = follow(key, revoked, &log)?;
    if followed.rotations.is_empty() {
        return Err(e);
    }
    let f = wire::fetch_manifest(remote, followed.key.base64(), None, limit)?;
    Ok((f, Some(followed)))
}

#[cfg(test)]
mod tests;
