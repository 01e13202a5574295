//! Manifest decoding never panics, and whatever decodes re-encodes to a manifest that decodes
//! to the same value.
#![no_main]

use corestore_keys::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(Manifest::decode(&m.encode()).as_ref(), Ok(&m));
    }
});
