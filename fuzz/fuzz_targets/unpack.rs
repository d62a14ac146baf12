//! The unpacker: a verified object unpacked into an empty directory eight levels below a
//! sentinel tree. Properties: no panic; nothing changes in the sentinel tree; a refused archive
//! leaves the destination empty; an unpacked one holds only files, directories and symlinks
//! that resolve inside it.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

struct Place {
    root: PathBuf,
    dest: PathBuf,
    input: PathBuf,
    before: Vec<String>,
}

fn place() -> &'static Place {
    static PLACE: OnceLock<Place> = OnceLock::new();
    PLACE.get_or_init(|| {
        let root = dist_fuzz::scratch().join("sentinel");
        let mut dest = root.clone();
        for i in 0..8 {
            dest.push(format!("level-{i}"));
            fs::create_dir_all(&dest).unwrap();
            fs::write(dest.with_file_name(format!("decoy-{i}")), b"decoy").unwrap();
        }
        dest.push("dest");
        fs::create_dir(&dest).unwrap();
        let before = dist_fuzz::listing(&root, Some(&dest));
        Place {
            input: dist_fuzz::scratch().join("object.tar"),
            root,
            dest,
            before,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let p = place();
    let obj = dist_fuzz::verified(&p.input, data);
    let result = dist::object::unpack(&obj, &p.dest);
    let after = dist_fuzz::listing(&p.root, Some(&p.dest));
    assert_eq!(after, p.before, "the sentinel tree changed ({result:?})");
    match &result {
        Err(e) => {
            let left = dist_fuzz::listing(&p.dest, None);
            assert!(left.is_empty(), "unpack failed ({e}) but left {left:?}");
        }
        Ok(_) => {
            if let Err(why) = dist_fuzz::check_tree(&p.dest) {
                panic!("unpacked: {why}");
            }
            fs::remove_dir_all(&p.dest).unwrap();
            fs::create_dir(&p.dest).unwrap();
        }
    }
});
