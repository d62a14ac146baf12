//! `dist key show [--json]`

use anyhow::Result;
use dist::repo::sign::SigningKey;

use super::{json, Global};

pub fn show(g: &Global, json_out: bool) -> Result<i32> {
    let key = SigningKey::load_or_create(&g.root)?;
    if json_out {
        json::print(&json::Key {
            public_key: key.public_base64(),
        })?;
    } else {
        println!("{}", key.public_base64());
    }
    Ok(0)
}
