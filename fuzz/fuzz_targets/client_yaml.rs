//! client.yaml: parsed (`ClientConfig::parse`) and resolved (`ClientConfig::resolve`: defaults,
//! addresses, URLs, keys, repositories), as every client command does. Properties: no panic; a
//! refused file's error names it.
#![no_main]

use std::path::Path;

use dist::client::config::ClientConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Read as UTF-8 first: other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("root/client.yaml");
    match ClientConfig::parse(path, text) {
        Err(e) => assert!(format!("{e:#}").contains("client.yaml"), "{e:#}"),
        Ok(config) => {
            let _ = config.resolve(path);
        }
    }
});
