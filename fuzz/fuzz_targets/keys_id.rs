//! Key-id parsing never panics, and a parsed id formats back to an id that parses the same.
#![no_main]

use corestore_keys::{parse_id, to_hex, to_z32};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(bytes) = parse_id(s) {
            assert_eq!(parse_id(&to_hex(&bytes)), Ok(bytes));
            assert_eq!(parse_id(&to_z32(&bytes)), Ok(bytes));
        }
    }
});
