//! A secret-stream responder fed arbitrary bytes (in arbitrary chunks) ends with a typed error
//! or keeps going; it never panics.
#![no_main]

use std::time::Instant;

use corestore_replicate::{Connection, Role, StreamConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let now = Instant::now();
    let mut conn = Connection::new(Role::Responder, StreamConfig::new(), now);
    for piece in rest.chunks(chunk) {
        if conn.handle_input(piece, now).is_err() {
            return;
        }
        while let Ok(Some(_)) = conn.poll_transmit(now) {}
    }
    let _ = conn.handle_eof(now);
    while conn.poll_event().is_some() {}
});
