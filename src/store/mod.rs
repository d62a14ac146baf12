//! Local state on disk: a package archive written atomically (`archive`), every atomic filesystem mutation and the leftover policy (`fsx`), the
//! per-root lock, the object store shared by the repository and the client, and the tree records
//! of unpacked store paths (`tree`).

pub mod archive;
pub mod fsx;
pub mod lock;
pub(crate) mod objects;
pub mod tree;
