//! The published snapshot reader, as `sync` reads a snapshot: `Snapshot::open` (header,
//! journal mode, schema, meta), then the content digest and every row. Properties: no panic, no
//! hang (libFuzzer's `-timeout`), and a read-only open leaves nothing beside the file.
#![no_main]

use std::fs;

use dist::index::record::{Snapshot, INDEX_FORMAT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = dist_fuzz::scratch().join("snapshot");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    let path = dir.join("index.db");
    fs::write(&path, data).unwrap();
    if let Ok(s) = Snapshot::open(&path) {
        if s.format == INDEX_FORMAT {
            let _ = s.content_digest();
        }
        let _ = s.all();
    }
    let left = dist_fuzz::listing(&dir, None);
    assert_eq!(
        left,
        ["f index.db"],
        "the open left files beside the snapshot"
    );
});
