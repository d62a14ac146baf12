//! Every filesystem mutation that must be atomic lives here: write a file by temp + fsync + rename,
//! persist a staged directory by rename, replace a symlink by rename, fsync a parent directory.
//! Nothing else in the crate creates store paths, publishes snapshots or switches links.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The one leftover policy: everything this module creates on the way to a final name starts
/// with [`TMP`] (files, staged trees, symlinks being switched) and everything renamed aside for
/// deletion with [`TRASH`]. A killed command leaves only such names, and
/// [`remove_leftovers`] removes them; no other name is ever half-made.
pub const TMP: &str = ".tmp-";
pub const TRASH: &str = ".trash-";

/// Whether a directory entry is a leftover of an interrupted command.
pub fn is_leftover(name: &str) -> bool {
    name.starts_with(TMP) || name.starts_with(TRASH)
}

/// Removes the leftovers directly inside each of `dirs` (missing dirs are skipped); returns what
/// it removed. Call it only under the root's exclusive lock, when nothing else is writing.
pub fn remove_leftovers(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for dir in dirs {
        let Ok(rd) = fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            if is_leftover(&e.file_name().to_string_lossy()) {
                remove_any(&e.path())?;
                removed.push(e.path());
            }
        }
    }
    Ok(removed)
}

/// Removes a file, symlink or whole tree (read-only trees included), without following links.
pub fn remove_any(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        make_writable(path);
        fs::remove_dir_all(path).with_context(|| format!("cannot remove {}", path.display()))
    } else {
        fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))
    }
}

/// Fsync a directory so that a rename or create inside it survives a crash.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).with_context(|| format!("cannot open directory {}", dir.display()))?;
    f.sync_all()
        .with_context(|| format!("cannot fsync directory {}", dir.display()))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether a commit must survive a power loss (repository and store state) or only be atomic
/// (artifacts a user asked for, like `dist pack -o FILE`, which can simply be made again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Durable,
    AtomicOnly,
}

/// A file being written next to its final path; dropped without `commit` it is removed.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing `dest` through a temp file in the same directory.
    pub fn create(dest: &Path) -> Result<AtomicFile> {
        let parent = parent_of(dest);
        let tmp = tempfile::Builder::new()
            .prefix(TMP)
            .tempfile_in(parent)
            .with_context(|| format!("cannot create a temporary file in {}", parent.display()))?;
        Ok(AtomicFile {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Sets the permission bits the final file will have.
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(self.tmp.path(), fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set mode of {}", self.tmp.path().display()))
    }

    /// Fsyncs the data, renames it over the destination and fsyncs the directory.
    pub fn commit(self) -> Result<()> {
        self.commit_with(Durability::Durable)
    }

    /// Renames the file over the destination; with `Durability::Durable` the data and the
    /// directory entry are fsynced too. Either way readers never see a partial file.
    pub fn commit_with(self, durability: Durability) -> Result<()> {
        let dest = self.dest;
        if durability == Durability::AtomicOnly {
            return self
                .tmp
                .persist(&dest)
                .map(drop)
                .map_err(|e| e.error)
                .with_context(|| format!("cannot rename into {}", dest.display()));
        }
        self.tmp
            .as_file()
            .sync_all()
            .with_context(|| format!("cannot fsync {}", dest.display()))?;
        self.tmp
            .persist(&dest)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot rename into {}", dest.display()))?;
        fsync_dir(parent_of(&dest))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Writes `bytes` to `dest` atomically with the given mode.
pub fn write_atomic(dest: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", f.path().display()))?;
    f.set_mode(mode)?;
    f.commit()
}

/// Writes `bytes` to `dest` atomically with the given mode unless `dest` exists: the first
/// of several writers wins, the others leave it as it is. `false`: it existed already.
pub fn write_new(dest: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes)
        .and_then(|()| f.tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", f.path().display()))?;
    f.set_mode(mode)?;
    match f.tmp.persist_noclobber(dest) {
        Ok(_) => fsync_dir(parent_of(dest)).map(|()| true),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error).with_context(|| format!("cannot create {}", dest.display())),
    }
}

/// Flushes everything written on the filesystem that holds `path` (`syncfs(2)`): one call
/// instead of an fsync per file when a batch writes thousands of them.
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let dir = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::syncfs(&dir)
        .map_err(std::io::Error::from)
        .with_context(|| format!("cannot sync the filesystem of {}", path.display()))
}

/// Moves an already written file (same filesystem) to `dest` atomically, fsyncing both.
pub fn persist_file(src: &Path, dest: &Path) -> Result<()> {
    File::open(src)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot fsync {}", src.display()))?;
    fs::rename(src, dest)
        .with_context(|| format!("cannot rename {} to {}", src.display(), dest.display()))?;
    fsync_dir(parent_of(dest))
}

/// A temp directory next to its final path: removed on drop unless `persist` ran.
pub struct StagingDir {
    dir: Option<tempfile::TempDir>,
}

impl StagingDir {
    /// A staging directory `.tmp-<what>-…` in `parent`.
    pub fn new_in(parent: &Path, what: &str) -> Result<StagingDir> {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create directory {}", parent.display()))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TMP}{what}-"))
            .tempdir_in(parent)
            .with_context(|| {
                format!("cannot create a staging directory in {}", parent.display())
            })?;
        Ok(StagingDir { dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("staging dir present").path()
    }

    /// Renames the staged directory to `dest` (which must not exist) and fsyncs the parent.
    pub fn persist(mut self, dest: &Path) -> Result<()> {
        let dir = self.dir.take().expect("staging dir present");
        let src = dir.keep();
        sync_tree(&src)?;
        if let Err(e) = fs::rename(&src, dest) {
            let _ = fs::remove_dir_all(&src);
            return Err(e)
                .with_context(|| format!("cannot rename staged tree to {}", dest.display()));
        }
        fsync_dir(parent_of(dest))
    }
}

impl StagingDir {
    /// Like [`persist`](StagingDir::persist), but a `dest` that exists (a damaged tree being
    /// repaired) is exchanged with the staged tree in one `renameat2(RENAME_EXCHANGE)`: `dest`
    /// names the old tree or the new one, never nothing (a kill between two renames left a
    /// generation pointing at a missing store path). The old tree is then removed from the
    /// staging name, a leftover the next command cleans if this one is killed first.
    pub fn persist_replacing(mut self, dest: &Path) -> Result<()> {
        if fs::symlink_metadata(dest).is_err() {
            return self.persist(dest);
        }
        let dir = self.dir.take().expect("staging dir present");
        let src = dir.keep();
        sync_tree(&src)?;
        let swapped = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &src,
            rustix::fs::CWD,
            dest,
            rustix::fs::RenameFlags::EXCHANGE,
        );
        if let Err(e) = swapped {
            let _ = fs::remove_dir_all(&src);
            return Err(std::io::Error::from(e)).with_context(|| {
                format!("cannot exchange the staged tree with {}", dest.display())
            });
        }
        fsync_dir(parent_of(dest))?;
        make_writable(&src);
        remove_any(&src)
    }
}

/// `PREFIX<name>-<pid>` beside `path`: the name a temporary (`TMP`) or a removal (`TRASH`) of
/// it takes in the same directory, so that the rename is atomic and a leftover is recognised.
fn beside(path: &Path, prefix: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!("{prefix}{name}-{}", std::process::id()))
}

/// Fsyncs every regular file and directory below `root` (not following symlinks).
pub fn sync_tree(root: &Path) -> Result<()> {
    let meta =
        fs::symlink_metadata(root).with_context(|| format!("cannot stat {}", root.display()))?;
    if meta.is_dir() {
        for entry in
            fs::read_dir(root).with_context(|| format!("cannot read {}", root.display()))?
        {
            let entry = entry.with_context(|| format!("cannot read {}", root.display()))?;
            sync_tree(&entry.path())?;
        }
        fsync_dir(root)
    } else if meta.is_file() {
        File::open(root)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot fsync {}", root.display()))
    } else {
        Ok(())
    }
}

/// Points the symlink `link` at `target` with one rename, so readers see the old or the new
/// target and never a missing link.
pub fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    let tmp = beside(link, TMP);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("cannot create symlink {}", tmp.display()))?;
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot switch symlink {}", link.display()));
    }
    fsync_dir(parent_of(link))
}

/// Removes a directory tree that is no longer referenced: renamed aside first, so that a crash
/// midway never leaves a half-deleted tree under its real name.
pub fn remove_tree(path: &Path) -> Result<()> {
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let trash = beside(path, TRASH);
    fs::rename(path, &trash).with_context(|| format!("cannot move {} aside", path.display()))?;
    fsync_dir(parent_of(path))?;
    // A file or symlink where a tree was expected (a leftover, a damaged root) goes the same way.
    remove_any(&trash)
}

/// Gives the owner write permission on every directory below `root`, so that read-only store
/// trees can be deleted.
pub fn make_writable(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::symlink_metadata(root) {
        if meta.is_dir() {
            let mode = meta.permissions().mode() | 0o700;
            let _ = fs::set_permissions(root, fs::Permissions::from_mode(mode));
            if let Ok(rd) = fs::read_dir(root) {
                for e in rd.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_replacing_swaps_a_read_only_tree_and_leaves_no_trash() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("store-path");
        fs::create_dir_all(dest.join("sub")).unwrap();
        fs::write(dest.join("sub/file"), "damaged").unwrap();
        for p in [dest.join("sub"), dest.clone()] {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o555)).unwrap();
        }
        let staging = StagingDir::new_in(dir.path(), "unpack").unwrap();
        fs::create_dir(staging.path().join("sub")).unwrap();
        fs::write(staging.path().join("sub/file"), "fresh").unwrap();
        staging.persist_replacing(&dest).unwrap();
        assert_eq!(fs::read_to_string(dest.join("sub/file")).unwrap(), "fresh");
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["store-path"], "leftovers beside the store path");
    }
}
