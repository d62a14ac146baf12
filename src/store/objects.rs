//! The object store, one type for the repository and the client: `objects/ab/cdef…`, each file
//! an archive named by its BLAKE3 digest (store-format.md §4). Objects enter only complete and
//! only by rename (a packed file the packer hashed while writing it, or a [`VerifiedObject`]
//! linked in without hashing it again); nothing here decides whether bytes are trusted.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::format::ids::ObjectId;
use crate::object::VerifiedObject;
use crate::store::fsx;

#[derive(Debug, Clone)]
pub struct ObjectStore {
    dir: PathBuf,
}

impl ObjectStore {
    /// The store rooted at `dir` (usually `ROOT/objects`); nothing is created until needed.
    pub fn new(dir: PathBuf) -> ObjectStore {
        ObjectStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, id: &ObjectId) -> PathBuf {
        self.dir.join(id.rel_path())
    }

    pub fn contains(&self, id: &ObjectId) -> bool {
        self.path(id).is_file()
    }

    /// A staging directory inside the store (same filesystem, so what is written there enters
    /// by rename); removed on drop, and a leftover for `fsx::remove_leftovers` if killed.
    pub fn staging(&self) -> Result<fsx::StagingDir> {
        fsx::StagingDir::new_in(&self.dir, "staging")
    }

    /// Moves `tmp` (complete, on the same filesystem) in as object `id`. The caller computed
    /// `id` from the very bytes it wrote. An object already present is kept as it is.
    pub fn insert_file(&self, tmp: &Path, id: &ObjectId) -> Result<PathBuf> {
        let dest = self.path(id);
        if dest.exists() {
            return Ok(dest);
        }
        self.make_fanout(&dest)?;
        fsx::persist_file(tmp, &dest)?;
        Ok(dest)
    }

    /// Like [`ObjectStore::insert_file`], but only renames: for a batch whose caller makes the
    /// whole filesystem durable once ([`fsx::sync_filesystem`]) before it relies on the objects.
    pub fn insert_file_unsynced(&self, tmp: &Path, id: &ObjectId) -> Result<PathBuf> {
        let dest = self.path(id);
        if dest.exists() {
            return Ok(dest);
        }
        self.make_fanout(&dest)?;
        std::fs::rename(tmp, &dest)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))?;
        Ok(dest)
    }

    /// Links a verified object in under its digest without reading it again: a hard link of its
    /// path, accepted only if it is the very inode that was hashed (the path could have been
    /// replaced since), else a copy from the open, verified file.
    pub fn insert_verified(&self, obj: &VerifiedObject) -> Result<PathBuf> {
        let dest = self.path(obj.id());
        if dest.exists() {
            return Ok(dest);
        }
        let parent = self.make_fanout(&dest)?;
        let tmp = parent.join(format!(
            "{}{}-{}",
            fsx::TMP,
            obj.id().prefix(16),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        let hashed = obj
            .file()
            .metadata()
            .with_context(|| format!("cannot stat {}", obj.path().display()))?;
        let linked = std::fs::hard_link(obj.path(), &tmp).is_ok()
            && std::fs::symlink_metadata(&tmp)
                .is_ok_and(|m| m.dev() == hashed.dev() && m.ino() == hashed.ino());
        if !linked {
            let _ = std::fs::remove_file(&tmp);
            let mut src = obj.file();
            let mut out = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            std::io::Seek::rewind(&mut src)?;
            std::io::copy(&mut src, &mut out)
                .with_context(|| format!("cannot store {}", dest.display()))?;
        }
        fsx::persist_file(&tmp, &dest)?;
        Ok(dest)
    }

    fn make_fanout(&self, dest: &Path) -> Result<PathBuf> {
        let parent = dest.parent().expect("an object path has a fan-out parent");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        Ok(parent.to_path_buf())
    }

    /// Every object present, with its path; names that are not digests (leftovers, strays) are
    /// not objects and are skipped.
    pub fn list(&self) -> Vec<(ObjectId, PathBuf)> {
        let mut out = Vec::new();
        for sub in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let prefix = sub.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 || !sub.path().is_dir() {
                continue;
            }
            for e in std::fs::read_dir(sub.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let digest = format!("{prefix}{}", e.file_name().to_string_lossy());
                if let Ok(id) = ObjectId::parse(&digest) {
                    out.push((id, e.path()));
                }
            }
        }
        out
    }

    /// The directories that can hold leftovers of an interrupted store: the store itself (its
    /// staging directories) and every fan-out directory (temporaries of a link or copy).
    pub fn leftover_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.dir.clone()];
        for sub in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if sub.file_name().len() == 2 && sub.path().is_dir() {
                dirs.push(sub.path());
            }
        }
        dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verified_object_enters_by_link_and_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::new(dir.path().join("objects"));
        let src = dir.path().join("download.tar");
        std::fs::write(&src, b"archive bytes").unwrap();
        let id = ObjectId::from_bytes(*blake3::hash(b"archive bytes").as_bytes());
        let obj = crate::object::verify_file(&src, &id).unwrap();
        let dest = store.insert_verified(&obj).unwrap();
        assert_eq!(dest, store.path(&id));
        let (a, b) = (
            std::fs::metadata(&src).unwrap(),
            std::fs::metadata(&dest).unwrap(),
        );
        assert_eq!(
            (a.dev(), a.ino()),
            (b.dev(), b.ino()),
            "hard link, not a copy"
        );
        std::fs::write(store.dir().join("ab").join(".tmp-x"), b"").ok();
        assert_eq!(store.list(), vec![(id, dest)]);
    }

    #[test]
    fn a_replaced_path_is_not_linked_the_verified_bytes_are_copied() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::new(dir.path().join("objects"));
        let src = dir.path().join("download.tar");
        std::fs::write(&src, b"good").unwrap();
        let id = ObjectId::from_bytes(*blake3::hash(b"good").as_bytes());
        let obj = crate::object::verify_file(&src, &id).unwrap();
        // Swap the path for other bytes after verification.
        std::fs::remove_file(&src).unwrap();
        std::fs::write(&src, b"evil").unwrap();
        let dest = store.insert_verified(&obj).unwrap();
        assert_eq!(std::fs::read(dest).unwrap(), b"good");
    }
}
