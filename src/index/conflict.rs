//! What a verified manifest may still not do (issue 25, finding 8): contradict the copy a
//! client or mirror verified before. The trusted key signed it, yet it is another index for the
//! serial held (a rebuilt or forked repository, or a stolen key), or an index of another
//! repository that shares the key (`repository=` of the trusted comment, store-format.md §5.3).

use super::sign::RepositoryId;
use super::wire::SignedManifest;
use crate::format::ids::Digest;

/// A verified manifest that contradicts the copy verified before, although the trusted key
/// signed it (issue 25, finding 8): typed, so that a `--json` caller sees kind `index`.
#[derive(Debug, thiserror::Error)]
pub enum Conflict {
    /// Another index for the serial of the copy held.
    #[error("{server} offers another index for serial {serial} of {repo} (content {offered}) than the one verified before (content {held}): the repository's key signed two different indexes for one serial (a rebuilt or forked repository, or a stolen key); refusing it")]
    Forked {
        server: String,
        repo: String,
        serial: u64,
        offered: Digest,
        held: Digest,
    },
    /// An index of another repository than the one recorded at the first sync (two
    /// repositories sharing a key).
    #[error("{server} offers an index of {offered}, not of repository {expected}, which {repo} recorded at its first sync: repositories that share a key cannot stand in for each other; refusing it (if {repo} is now meant to follow that repository, remove `repository` from {record})")]
    OtherRepository {
        server: String,
        repo: String,
        offered: String,
        expected: RepositoryId,
        record: String,
    },
}

impl SignedManifest {
    /// Refuses this manifest (from `server`) when it contradicts what `repo` (how errors name
    /// it) holds: `held`, the serial and content digest of the copy verified before, when it
    /// continues that copy's history; `recorded`, the repository of its first sync, kept in
    /// `record` (a path, named in the error).
    pub fn check_continues(
        &self,
        server: &str,
        repo: &str,
        held: Option<(u64, Digest)>,
        recorded: Option<RepositoryId>,
        record: &std::path::Path,
    ) -> Result<(), Conflict> {
        let m = &self.manifest;
        if let Some((serial, content)) = held {
            if serial == m.serial && content != m.content {
                return Err(Conflict::Forked {
                    server: server.to_string(),
                    repo: repo.to_string(),
                    serial,
                    offered: m.content,
                    held: content,
                });
            }
        }
        match recorded {
            Some(expected) if self.repository != Some(expected) => Err(Conflict::OtherRepository {
                server: server.to_string(),
                repo: repo.to_string(),
                offered: self.repository.map_or_else(
                    || "no repository (its signature names none)".to_string(),
                    |r| format!("repository {r}"),
                ),
                expected,
                record: record.display().to_string(),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::wire::{FileRef, Manifest};

    fn offered(serial: u64, content: char, repository: Option<u64>) -> SignedManifest {
        SignedManifest {
            manifest: Manifest {
                format: 5,
                serial,
                created: 1,
                content: Digest::parse(&content.to_string().repeat(64)).unwrap(),
                packages: 1,
                snapshot: FileRef {
                    blake3: Digest::from_bytes([0; 32]),
                    size: 1,
                    raw_size: 1,
                },
                deltas: Vec::new(),
            },
            body: Vec::new(),
            sig: String::new(),
            etag: None,
            repository: repository.map(RepositoryId),
        }
    }

    #[test]
    fn a_manifest_continues_the_copy_held_or_is_refused_issue_25_finding_8() {
        let held = Digest::parse(&"a".repeat(64)).unwrap();
        let record = std::path::Path::new("trust.json");
        let check = |m: &SignedManifest, held: Option<(u64, Digest)>, recorded: Option<u64>| {
            m.check_continues(
                "S",
                "repository `r`",
                held,
                recorded.map(RepositoryId),
                record,
            )
        };
        // The same index again, a newer one, a first sync: fine.
        assert!(check(&offered(3, 'a', Some(7)), Some((3, held)), Some(7)).is_ok());
        assert!(check(&offered(4, 'b', Some(7)), Some((3, held)), Some(7)).is_ok());
        assert!(check(&offered(4, 'b', None), None, None).is_ok());
        // Another index for serial 3.
        let e = check(&offered(3, 'b', Some(7)), Some((3, held)), Some(7)).unwrap_err();
        assert!(matches!(e, Conflict::Forked { serial: 3, .. }), "{e}");
        // Another repository's, or one that names none, once one was recorded.
        let e = check(&offered(4, 'b', Some(8)), Some((3, held)), Some(7)).unwrap_err();
        assert!(
            e.to_string().contains("repository 8, not of repository 7"),
            "{e}"
        );
        let e = check(&offered(4, 'b', None), Some((3, held)), Some(7)).unwrap_err();
        assert!(e.to_string().contains("names none"), "{e}");
    }
}
