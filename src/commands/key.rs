//! `dist key show|rotate|revoke [--json]`

use anyhow::Result;
use dist::index::keys::PublicKey;
use dist::index::sign::SigningKey;
use dist::repo::Repo;

use super::{json, Global};

pub fn show(g: &Global, json_out: bool) -> Result<i32> {
    let key = SigningKey::load(&g.root)?;
    let public = PublicKey::parse(&key.public_base64())?;
    if json_out {
        json::print(&json::Key {
            public_key: key.public_base64(),
            key_id: public.id().to_string(),
        })?;
    } else {
        println!("{}", key.public_base64());
    }
    Ok(0)
}

pub fn rotate(g: &Global, json_out: bool) -> Result<i32> {
    let r = Repo::new(&g.root).rotate_key()?;
    if json_out {
        json::print(&json::KeyRotated {
            old_key_id: r.old.id().to_string(),
            new_key_id: r.new.id().to_string(),
            public_key: r.new.base64().to_string(),
            serial: r.serial,
        })?;
    } else {
        println!(
            "rotated the signing key {} -> {}; published serial {} signed by the new key",
            r.old, r.new, r.serial
        );
        println!("new public key: {}", r.new.base64());
        println!(
            "clients that trust the old key switch on their next sync; the old secret key is in {}",
            g.root.join("keys/retired").display()
        );
    }
    Ok(0)
}

pub fn revoke(g: &Global, which: &str, json_out: bool) -> Result<i32> {
    let r = Repo::new(&g.root).revoke_key(which)?;
    if json_out {
        json::print(&json::KeyRevoked {
            key_id: r.key.id().to_string(),
            revoked_by: r.by.id().to_string(),
            serial: r.serial,
        })?;
    } else {
        println!(
            "revoked key {} (signed by {}); published serial {}",
            r.key, r.by, r.serial
        );
    }
    Ok(0)
}
