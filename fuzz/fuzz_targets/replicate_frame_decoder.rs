//! The uint24 frame decoder never panics on arbitrary bytes delivered in arbitrary chunks, and
//! never yields a frame above its maximum.
#![no_main]

use bytes::BytesMut;
use corestore_replicate::FrameCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    let mut codec = FrameCodec::with_max_frame_len(4096);
    let mut src = BytesMut::new();
    for piece in rest.chunks(chunk) {
        src.extend_from_slice(piece);
        loop {
            match codec.decode(&mut src) {
                Ok(Some(frame)) => assert!(frame.len() <= 4096),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = codec.decode_eof(&mut src);
});
