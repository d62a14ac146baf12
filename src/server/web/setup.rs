//! The catalog's "use this repository" box (issue 23, finding 11): the repository's public key
//! and the `dist init` line that configures a client for this server, to copy.

use std::path::Path;

use maud::{html, Markup};

use crate::index::sign::{key_paths, SigningKey};

/// The key clients verify this server's index with: a mirror's upstream key as configured, else
/// the repository's own current key (`dist key show`); `None` before the repository has one.
pub fn public_key(root: &Path, upstream_key: Option<&str>) -> Option<String> {
    if let Some(k) = upstream_key {
        return Some(k.to_string());
    }
    let (secret, _) = key_paths(root);
    SigningKey::read(&secret).ok().map(|k| k.public_base64())
}

/// The box (a `maud` template: the URL and the key are escaped), empty without a key.
pub fn html(server_url: &str, public_key: Option<&str>) -> Markup {
    let Some(key) = public_key else {
        return html! {};
    };
    html! {
        section id="setup" class="setup" {
            h2 { "Use this repository" }
            p {
                "Its public key (what signs the index; " code { "dist key show" }
                " on the repository prints it): " code id="public-key" { (key) }
            }
            p { "Configure a client for it, then sync and install:" }
            pre id="init-line" {
                code { "dist init --server-url " (server_url) " --public-key " (key) }
            }
            pre class="muted" { code { "dist sync\ndist install NAME" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_escapes_what_it_shows_and_is_absent_without_a_key() {
        let b = html("http://r:1/\"><script>x</script>", Some("RW<b>key")).into_string();
        assert!(!b.contains("<script>") && !b.contains("<b>"), "{b}");
        assert!(b.contains("dist init --server-url http://r:1/"), "{b}");
        assert!(b.contains("RW&lt;b&gt;key"), "{b}");
        assert_eq!(html("http://r:1", None).into_string(), "");
    }
}
