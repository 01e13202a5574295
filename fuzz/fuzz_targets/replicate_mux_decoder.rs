//! protomux fed arbitrary frames (each prefixed by a length byte) returns typed errors and
//! never panics, whatever channels are open or paired.
#![no_main]

use bytes::Bytes;
use corestore_replicate::{ChannelSpec, Mux, MuxEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut mux = Mux::new();
    mux.pair("p", None);
    let _ = mux.open_channel(&ChannelSpec::new("p").id(*b"x").message_types(3), b"hs");
    let _ = mux.open_channel(&ChannelSpec::new("q"), b"");
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        if mux.handle_frame(&Bytes::copy_from_slice(frame)).is_err() {
            return;
        }
        while let Some(ev) = mux.poll_event() {
            // Accept every remote open of "p", as corestore's hook would.
            if let MuxEvent::RemoteOpen { protocol, id } = ev {
                let id = id.unwrap_or_default();
                let spec = ChannelSpec::new(protocol.clone()).id(id.to_vec());
                if mux.open_channel(&spec, b"").is_err() {
                    mux.reject_remote(&protocol, Some(&id));
                }
            }
        }
        while mux.poll_transmit().is_some() {}
    }
});
