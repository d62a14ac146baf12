//! `dist repo init`: the one way a repository and its signing key are made (`dist add --create`
//! calls it first). A new key is announced with its public key and where to back it up.

use anyhow::Result;
use dist::repo::{Created, Repo};

use super::{json, Global};

/// `dist repo init [--json]`.
pub fn init(g: &Global, json_out: bool) -> Result<i32> {
    let c = Repo::new(&g.root).init()?;
    if json_out {
        json::print(&json::RepoCreated {
            root: g.root.display().to_string(),
            public_key: c.public.base64(),
            key_id: c.public.id().to_string(),
            secret_key: c.secret_key.display().to_string(),
            had_index: c.had_index,
        })?;
    } else {
        announce(g, &c, |l| println!("{l}"));
    }
    Ok(0)
}

/// Makes the repository for `dist add --create` when the root has none, saying so on stderr
/// (standard output stays `add`'s).
pub fn create_if_missing(g: &Global) -> Result<()> {
    if dist::index::sign::key_paths(&g.root).0.exists() {
        return Ok(());
    }
    // A mirror's root is refused here, as `add` refuses it.
    let c = Repo::new(&g.root).init()?;
    announce(g, &c, |l| eprintln!("{l}"));
    Ok(())
}

fn announce(g: &Global, c: &Created, out: impl Fn(&str)) {
    let root = g.root.display();
    if c.had_index {
        out(&format!(
            "made a new signing key for the repository at {root}"
        ));
    } else {
        out(&format!("made a new repository at {root}"));
    }
    out(&format!(
        "public key: {} (key id {})",
        c.public.base64(),
        c.public.id()
    ));
    out(&format!(
        "back up {}: it signs every index this repository publishes, and clients trust no other key",
        c.secret_key.display()
    ));
    out(&format!(
        "clients: dist init --server-url URL --public-key {}",
        c.public.base64()
    ));
}

/// A publisher command on a root that is not a repository fails before the root's lock is
/// taken, so a mistyped `--root` leaves nothing behind (a mirror's root is left to the
/// command, which says it is a mirror).
pub fn require(g: &Global, c: &crate::cli::Command) -> Result<()> {
    use crate::cli::Command::*;
    let publisher = match c {
        Add(a) => !a.create,
        Key(_) | Yank(_) | Unyank(_) | Phase(_) => true,
        _ => false,
    };
    if publisher && !g.root.join("mirror.json").exists() {
        dist::index::sign::SigningKey::load(&g.root)?;
    }
    Ok(())
}
