//! The repository's signing key and index signatures, in the standard minisign format (the
//! `minisign` CLI verifies them). The trusted comment carries the index's serial and creation
//! time, so both are covered by the signature (store-format.md §5).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::store::fsx;

/// Format of the trusted comment: `dist-index format=<F> serial=<N> created=<unix seconds>`
/// and, since issue 25, ` repository=<id>`.
pub const COMMENT_PREFIX: &str = "dist-index";

/// Which repository an index belongs to: a number the publisher draws once (its master
/// index's `meta.repository`) and signs into every index's trusted comment, so that two
/// repositories sharing a key cannot stand in for each other (store-format.md §5.3). Decimal:
/// the trusted comment's values are numbers, which is what lets clients that predate it read
/// on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RepositoryId(pub u64);

impl std::fmt::Display for RepositoryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl RepositoryId {
    /// A new id, from `/dev/urandom` (never 0).
    pub fn random() -> Result<RepositoryId> {
        use std::io::Read;
        let mut b = [0u8; 8];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .context("cannot read /dev/urandom for a repository id")?;
        Ok(RepositoryId(u64::from_le_bytes(b).max(1)))
    }
}

/// What a verified signature vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    pub format: u32,
    pub serial: u64,
    pub created: u64,
    /// The repository it is an index of; `None` in what publishers before issue 25 signed.
    pub repository: Option<RepositoryId>,
}

impl Signed {
    pub fn comment(&self) -> String {
        let mut c = format!(
            "{COMMENT_PREFIX} format={} serial={} created={}",
            self.format, self.serial, self.created
        );
        if let Some(r) = self.repository {
            c.push_str(&format!(" repository={r}"));
        }
        c
    }

    pub fn parse(comment: &str) -> Result<Signed> {
        let mut parts = comment.split(' ');
        if parts.next() != Some(COMMENT_PREFIX) {
            bail!("the trusted comment `{comment}` is not a dist index comment");
        }
        let (mut format, mut serial, mut created, mut repository) = (None, None, None, None);
        for p in parts {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("malformed trusted comment `{comment}`"))?;
            let n: u64 = v
                .parse()
                .with_context(|| format!("malformed `{k}` in trusted comment `{comment}`"))?;
            match k {
                "format" => format = Some(n as u32),
                "serial" => serial = Some(n),
                "created" => created = Some(n),
                "repository" => repository = Some(RepositoryId(n)),
                _ => {}
            }
        }
        match (format, serial, created) {
            (Some(format), Some(serial), Some(created)) => Ok(Signed {
                format,
                serial,
                created,
                repository,
            }),
            _ => bail!("the trusted comment `{comment}` lacks format, serial or created"),
        }
    }
}

/// The repository key pair under `ROOT/keys/`.
pub struct SigningKey {
    sk: minisign::SecretKey,
    pk: minisign::PublicKey,
}

pub fn key_paths(root: &Path) -> (PathBuf, PathBuf) {
    let dir = root.join("keys");
    (dir.join("secret.key"), dir.join("public.key"))
}

/// A publisher command on a root that has no signing key: the root is not a repository (a
/// mistyped `--root`, or one never made). Repositories are made only by `dist repo init` or
/// `dist add --create`, never as a side effect.
#[derive(Debug, thiserror::Error)]
#[error("{} is not a repository (no {}): make one with `dist --root {} repo init` (or `dist add --create`)", root.display(), key.display(), root.display())]
pub struct NotARepository {
    pub root: PathBuf,
    key: PathBuf,
}

impl SigningKey {
    /// Loads the key pair of the repository at `root`; [`NotARepository`] when it has none.
    pub fn load(root: &Path) -> Result<SigningKey> {
        let (sk_path, _) = key_paths(root);
        if !sk_path.exists() {
            return Err(NotARepository {
                root: root.to_path_buf(),
                key: sk_path,
            }
            .into());
        }
        SigningKey::read(&sk_path)
    }

    /// Makes the key pair of a new repository at `root` (unencrypted, secret key mode 0600);
    /// refused when it has one.
    pub fn create(root: &Path) -> Result<SigningKey> {
        let (sk_path, pk_path) = key_paths(root);
        if sk_path.exists() {
            bail!("{} exists already", sk_path.display());
        }
        let dir = sk_path.parent().expect("keys dir");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let key = SigningKey::generate()?;
        key.write_public(&pk_path)?;
        key.write_secret(&sk_path)?;
        Ok(key)
    }

    /// A new key pair, in memory only (see [`SigningKey::write`]).
    pub fn generate() -> Result<SigningKey> {
        let kp = minisign::KeyPair::generate_unencrypted_keypair()
            .map_err(|e| anyhow::anyhow!("cannot generate a signing key: {e}"))?;
        Ok(SigningKey {
            sk: kp.sk,
            pk: kp.pk,
        })
    }

    /// Reads an unencrypted minisign secret key file.
    pub fn read(path: &Path) -> Result<SigningKey> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let sk = minisign::SecretKeyBox::from_string(&text)
            .and_then(|b| b.into_unencrypted_secret_key())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!(
                    "{} is not an unencrypted minisign secret key",
                    path.display()
                )
            })?;
        let pk = minisign::PublicKey::from_secret_key(&sk)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("cannot derive the public key from {}", path.display()))?;
        Ok(SigningKey { sk, pk })
    }

    /// Writes the secret key (mode 0600) to `path`, atomically.
    pub fn write_secret(&self, path: &Path) -> Result<()> {
        let sk_box = self
            .sk
            .to_box(Some("dist repository secret key"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        fsx::write_atomic(path, sk_box.into_string().as_bytes(), 0o600)
    }

    /// Writes the public key file (minisign's two-line form) to `path`, atomically.
    pub fn write_public(&self, path: &Path) -> Result<()> {
        let pk_box = self.pk.to_box().map_err(|e| anyhow::anyhow!("{e}"))?;
        fsx::write_atomic(path, pk_box.into_string().as_bytes(), 0o644)
    }

    /// Signs `data` with `comment` as the trusted comment (a key statement, not an index).
    pub fn sign_comment(&self, data: &[u8], comment: &str) -> Result<String> {
        let sig = minisign::sign(
            Some(&self.pk),
            &self.sk,
            data,
            Some(comment),
            Some("signature from dist repository key"),
        )
        .map_err(|e| anyhow::anyhow!("cannot sign: {e}"))?;
        Ok(sig.into_string())
    }

    /// The public key as the base64 line `minisign -V -P` takes.
    pub fn public_base64(&self) -> String {
        self.pk.to_base64()
    }

    /// Signs `data` with `signed` as trusted comment; returns the `.minisig` text.
    pub fn sign(&self, data: &[u8], signed: &Signed) -> Result<String> {
        self.sign_comment(data, &signed.comment())
            .context("cannot sign the index")
    }
}

/// Why a signature was not accepted. The client branches on the kind: only [`BadSignature`]
/// can be a publish racing the download (index and signature fetched from two different
/// publishes) and is worth retrying; the others are final.
///
/// [`BadSignature`]: VerifyError::BadSignature
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the configured public key is not a minisign key: {0}")]
    BadPublicKey(String),
    #[error("the signature is malformed: {0}")]
    Malformed(String),
    #[error("signature verification failed ({0}): the index is signed by another key than the configured one")]
    WrongKey(String),
    #[error("signature verification failed ({0}): the index is not signed by the configured key or was altered")]
    BadSignature(String),
    /// The signature is good, but what it vouches for is not a dist index comment.
    #[error("{0:#}")]
    Comment(anyhow::Error),
}

/// Checks that `public_key_b64` is a minisign public key, before anything is downloaded.
pub fn check_public_key(public_key_b64: &str) -> Result<(), VerifyError> {
    minisign_verify::PublicKey::from_base64(public_key_b64.trim())
        .map(drop)
        .map_err(|e| VerifyError::BadPublicKey(e.to_string()))
}

/// Verifies `.minisig` text over `data` with a base64 public key and returns the trusted
/// comment's contents.
pub fn verify(public_key_b64: &str, data: &[u8], signature: &str) -> Result<Signed, VerifyError> {
    let comment = verify_comment(public_key_b64, data, signature)?;
    Signed::parse(&comment).map_err(VerifyError::Comment)
}

/// Verifies `.minisig` text over `data` with a base64 public key; returns the trusted comment
/// as it is (the caller checks it says what it expects).
pub fn verify_comment(
    public_key_b64: &str,
    data: &[u8],
    signature: &str,
) -> Result<String, VerifyError> {
    let pk = minisign_verify::PublicKey::from_base64(public_key_b64.trim())
        .map_err(|e| VerifyError::BadPublicKey(e.to_string()))?;
    let sig = minisign_verify::Signature::decode(signature)
        .map_err(|e| VerifyError::Malformed(e.to_string()))?;
    pk.verify(data, &sig, false).map_err(|e| match e {
        minisign_verify::Error::UnexpectedKeyId => VerifyError::WrongKey(e.to_string()),
        minisign_verify::Error::InvalidSignature => VerifyError::BadSignature(e.to_string()),
        other => VerifyError::Malformed(other.to_string()),
    })?;
    Ok(sig.trusted_comment().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let missing = SigningKey::load(dir.path()).err().expect("no key yet");
        assert!(missing.is::<NotARepository>());
        let key = SigningKey::create(dir.path()).unwrap();
        let again = SigningKey::load(dir.path()).unwrap();
        assert_eq!(key.public_base64(), again.public_base64());
        assert!(SigningKey::create(dir.path()).is_err());
        let s = Signed {
            format: 1,
            serial: 7,
            created: 1_700_000_000,
            repository: Some(RepositoryId(42)),
        };
        let sig = key.sign(b"data", &s).unwrap();
        assert_eq!(verify(&key.public_base64(), b"data", &sig).unwrap(), s);
        assert!(verify(&key.public_base64(), b"datb", &sig).is_err());
        let other = tempfile::tempdir().unwrap();
        let foreign = SigningKey::create(other.path()).unwrap();
        assert!(matches!(
            verify(&foreign.public_base64(), b"data", &sig),
            Err(VerifyError::WrongKey(_))
        ));
        assert!(matches!(
            verify(&key.public_base64(), b"datb", &sig),
            Err(VerifyError::BadSignature(_))
        ));
        assert!(matches!(
            verify(&key.public_base64(), b"data", "not a signature"),
            Err(VerifyError::Malformed(_))
        ));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_paths(dir.path()).0)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
