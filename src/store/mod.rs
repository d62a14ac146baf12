//! Local state on disk: every atomic filesystem mutation and the leftover policy (`fsx`), the
//! per-root lock, and the object store shared by the repository and the client.

pub mod fsx;
pub mod lock;
pub mod objects;
