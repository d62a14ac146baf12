//! The strict archive reader: every header of a verified object read and checked as `unpack`
//! does before it writes a byte (`object::check_archive`). Property: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let obj = dist_fuzz::verified(&dist_fuzz::scratch().join("object.tar"), data);
    let _ = dist::object::check_archive(&obj);
});
