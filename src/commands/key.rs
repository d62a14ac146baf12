//! `dist key show`

use anyhow::Result;
use dist::repo::sign::SigningKey;

use super::Global;

pub fn show(g: &Global) -> Result<i32> {
    let key = SigningKey::load_or_create(&g.root)?;
    println!("{}", key.public_base64());
    Ok(0)
}
