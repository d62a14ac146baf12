//! Local state on disk: every atomic filesystem mutation and the leftover policy (`fsx`), the
//! per-root lock, the object store shared by the repository and the client, and the tree records
//! of unpacked store paths (`tree`).

pub mod fsx;
pub mod lock;
pub(crate) mod objects;
pub mod tree;
