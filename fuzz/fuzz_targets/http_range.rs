//! What `dist serve` parses of a request: the web seed's `Range` header
//! (`ledger::webseed_range`, then the ledger's bookkeeping of the blocks it names) and the
//! identifiers of request paths (`InfoHash::parse` of `/torrents/<hex>.torrent`,
//! `ObjectId::parse` of `/objects/ab/cd…`). The first 4 bytes give the object's size (an
//! index's, so below 4 GiB here), the rest the text. Properties: no panic; a parsed range ends
//! inside the object; a parsed identifier prints back as the text, lowercased.
#![no_main]

use std::time::{Duration, Instant};

use dist::format::ids::{InfoHash, ObjectId};
use dist::server::ledger::{webseed_range, Ledger};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((size, text)) = data.split_first_chunk::<4>() else {
        return;
    };
    let size = u64::from(u32::from_le_bytes(*size));
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if let Some((first, last)) = webseed_range(text, size) {
        assert!(
            last < size,
            "{text:?} of {size} bytes gave {first}..={last}"
        );
        let now = Instant::now();
        let mut ledger = Ledger::new(Duration::from_secs(120), now);
        let id = ObjectId::from_bytes([7; 32]);
        assert!(
            ledger.admit(id, first, last, now),
            "a first request is fresh"
        );
        ledger.admit(id, first, last, now + Duration::from_secs(1));
    }
    if let Ok(h) = InfoHash::parse(text) {
        assert_eq!(h.to_hex(), text.to_ascii_lowercase());
    }
    if let Ok(id) = ObjectId::parse(text) {
        assert_eq!(id.to_hex(), text.to_ascii_lowercase());
    }
});
