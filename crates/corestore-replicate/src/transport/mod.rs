//! The secret-stream transport (spec `wire.md` §3): the Noise handshake, uint24 framing and
//! libsodium secretstream encryption, sans-IO.

pub(crate) mod framing;
pub(crate) mod noise;
pub(crate) mod poly1305;
pub(crate) mod secretstream;
pub(crate) mod stream;
