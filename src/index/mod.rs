//! The signed index protocol (store-format.md §5), which the publisher, `serve`, mirrors and the
//! client all speak: the package record and the snapshot's schema (`record`), reading a snapshot
//! that may be hostile (`snapshot`, `schema`), the signed manifest, deltas and a server's
//! published files on the wire (`wire`), signatures (`sign`), the key's history (`keys`), what a
//! verified manifest may still not do (`conflict`), a version's release status (`status`) and
//! the client's local search index (`search`). Below `client/`, `server/` and the publisher
//! (`repo/`); it never reads a repository's master index.

pub mod conflict;
pub mod keys;
pub mod record;
pub(crate) mod schema;
pub(crate) mod search;
pub mod sign;
pub mod snapshot;
pub mod status;
pub mod wire;
