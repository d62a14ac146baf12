//! The manifest parser (`manifest.yaml`). Properties: no panic; every error names the file;
//! an accepted manifest's name passes the name rule, its version re-parses to the same SemVer,
//! its description is at most 4096 bytes without control characters.
#![no_main]

use std::path::Path;

use dist::format::ids::PackageName;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `Manifest::load` reads the file as UTF-8 first: other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("pkg/manifest.yaml");
    match dist::format::parse_manifest(path, text) {
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains("manifest.yaml"), "unnamed error: {msg}");
        }
        Ok(m) => {
            PackageName::parse(m.name.as_str()).expect("an accepted name");
            let v = semver::Version::parse(&m.version_str).expect("an accepted version");
            assert_eq!(v, m.version);
            if let Some(d) = &m.description {
                assert!(d.len() <= 4096 && !d.chars().any(char::is_control), "{d:?}");
            }
        }
    }
});
