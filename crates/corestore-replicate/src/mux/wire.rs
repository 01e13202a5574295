//! protomux frame encodings (spec `wire.md` §4.1, §4.2, §4.4): channel messages, the control
//! messages `open`, `reject`, `close`, and the `batch` container. Pure functions over bytes.

use bytes::Bytes;
use corestore_keys::compact::{DecodeError, Decoder, Encoder};

/// Control message types on channel 0.
pub(crate) const TYPE_BATCH: u64 = 0;
pub(crate) const TYPE_OPEN: u64 = 1;
pub(crate) const TYPE_REJECT: u64 = 2;
pub(crate) const TYPE_CLOSE: u64 = 3;

/// One protomux message: `uint(channel) || uint(type) || payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The sender's local channel id (0 = control).
    pub(crate) channel: u64,
    /// The message type.
    pub(crate) message_type: u64,
    /// The rest of the frame.
    pub(crate) payload: Bytes,
}

/// Offset of `rest` inside `whole` (rest is a tail of whole).
fn offset(whole: &[u8], rest: &[u8]) -> usize {
    whole.len() - rest.len()
}

/// Decodes `uint(channel) || uint(type) || payload` without copying the payload.
pub(crate) fn decode_frame(frame: &Bytes) -> Result<Frame, DecodeError> {
    let mut d = Decoder::new(frame);
    let channel = d.uint()?;
    let message_type = d.uint()?;
    let payload = frame.slice(offset(frame, d.remaining())..);
    Ok(Frame { channel, message_type, payload })
}

/// Encodes a whole frame.
pub(crate) fn encode_frame(channel: u64, message_type: u64, payload: &[u8]) -> Vec<u8> {
    let mut e = Encoder::with_capacity(payload.len() + 4);
    e.uint(channel).uint(message_type).raw(payload);
    e.into_vec()
}

/// A decoded `open` control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Open {
    /// The opener's local id.
    pub(crate) local_id: u64,
    /// The protocol name.
    pub(crate) protocol: String,
    /// The channel id (`optionalBuffer`: empty is `None`).
    pub(crate) id: Option<Bytes>,
    /// The protocol's handshake bytes (rest of the frame).
    pub(crate) handshake: Bytes,
}

/// Decodes an `open` payload.
pub(crate) fn decode_open(payload: &Bytes) -> Result<Open, DecodeError> {
    let mut d = Decoder::new(payload);
    let local_id = d.uint()?;
    let protocol = d.string()?.to_owned();
    let id = d.optional_buffer()?.map(|id| {
        let end = offset(payload, d.remaining());
        payload.slice(end - id.len()..end)
    });
    let handshake = payload.slice(offset(payload, d.remaining())..);
    Ok(Open { local_id, protocol, id, handshake })
}

/// The bytes of an `open` control message after the channel byte (`uint(1) || …`).
pub(crate) fn encode_open(
    local_id: u64,
    protocol: &str,
    id: Option<&[u8]>,
    handshake: &[u8],
) -> Vec<u8> {
    let mut e = Encoder::with_capacity(handshake.len() + protocol.len() + 48);
    e.uint(TYPE_OPEN).uint(local_id).string(protocol).optional_buffer(id).raw(handshake);
    e.into_vec()
}

/// The bytes of a `reject` or `close` control message after the channel byte.
pub(crate) fn encode_id_message(message_type: u64, id: u64) -> Vec<u8> {
    let mut e = Encoder::with_capacity(10);
    e.uint(message_type).uint(id);
    e.into_vec()
}

/// Reads the single `uint` of a `reject`/`close` payload.
pub(crate) fn decode_id_message(payload: &[u8]) -> Result<u64, DecodeError> {
    Decoder::new(payload).uint()
}

/// Encodes a batch frame: `00 00 uint(first channel) { uint(len) bytes | 00 uint(channel) }*`.
/// Each entry's bytes start at the message type.
pub(crate) fn encode_batch(entries: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let size: usize = entries.iter().map(|(_, b)| b.len() + 10).sum();
    let mut e = Encoder::with_capacity(size + 12);
    e.uint(0).uint(TYPE_BATCH);
    let mut current = None;
    for (channel, bytes) in entries {
        match current {
            None => {
                e.uint(*channel);
            }
            Some(prev) if prev != *channel => {
                e.uint(0).uint(*channel);
            }
            Some(_) => {}
        }
        current = Some(*channel);
        e.buffer(bytes);
    }
    e.into_vec()
}

/// Splits a batch payload into `(channel, frame-without-channel)` entries, as protomux reads
/// it: a zero length switches channel, a length past the end is cut at the end. (The mux reads
/// batches incrementally instead; this whole-batch form is the tests' reference.)
#[cfg(test)]
pub(crate) fn decode_batch(payload: &Bytes) -> Result<Vec<(u64, Bytes)>, DecodeError> {
    let mut d = Decoder::new(payload);
    let mut channel = d.uint()?;
    let mut out = Vec::new();
    while !d.is_empty() {
        let len = d.uint()?;
        if len == 0 {
            channel = d.uint()?;
            continue;
        }
        let start = offset(payload, d.remaining());
        let take = usize::try_from(len).unwrap_or(usize::MAX).min(d.remaining().len());
        d.take(take as u64)?;
        out.push((channel, payload.slice(start..start + take)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn open_vector_spec_4_5() {
        let dk = hex::decode("fb892b1c77fdcb05dcbd234607208b7036e00a13e7f2cc0bbaa463924e57865a")
            .unwrap();
        let cap = hex::decode("be216759bacfca556dcf8fec5c58f5b67b545540640946ebbd9e6d32dccee287")
            .unwrap();
        let mut handshake = vec![1];
        handshake.extend_from_slice(&cap);
        let mut frame = vec![0];
        frame.extend(encode_open(1, "hypercore/alpha", Some(&dk), &handshake));
        assert_eq!(frame.len(), 85);
        assert_eq!(
            hex::encode(&frame),
            concat!(
                "0001",
                "01",
                "0f6879706572636f72652f616c706861",
                "20fb892b1c77fdcb05dcbd234607208b7036e00a13e7f2cc0bbaa463924e57865a",
                "01be216759bacfca556dcf8fec5c58f5b67b545540640946ebbd9e6d32dccee287"
            )
        );
        let f = decode_frame(&Bytes::from(frame)).unwrap();
        assert_eq!((f.channel, f.message_type), (0, TYPE_OPEN));
        let open = decode_open(&f.payload).unwrap();
        assert_eq!(open.local_id, 1);
        assert_eq!(open.protocol, "hypercore/alpha");
        assert_eq!(open.id.as_deref(), Some(&dk[..]));
        assert_eq!(&open.handshake[..], &handshake[..]);
    }

    #[test]
    fn batch_layout_matches_spec_4_4() {
        let entries = vec![
            (0, encode_open(1, "p", None, b"")),
            (1, vec![0, 7]),
            (1, vec![5]),
            (2, vec![1, 9, 9]),
        ];
        let bytes = encode_batch(&entries);
        assert_eq!(
            hex::encode(&bytes),
            concat!("0000", "00", "05", "0101017000", "0001", "020007", "0105", "0002", "03010909")
        );
        let f = decode_frame(&Bytes::from(bytes)).unwrap();
        let decoded = decode_batch(&f.payload).unwrap();
        let again: Vec<(u64, Vec<u8>)> =
            decoded.into_iter().map(|(c, b)| (c, b.to_vec())).collect();
        assert_eq!(again, entries);
    }

    proptest! {
        #[test]
        fn batch_round_trip(entries in proptest::collection::vec(
            (0u64..5, proptest::collection::vec(any::<u8>(), 1..40)), 0..10)) {
            let bytes = Bytes::from(encode_batch(&entries));
            let f = decode_frame(&bytes).unwrap();
            if entries.is_empty() {
                prop_assert!(decode_batch(&f.payload).is_err());
            } else {
                let got: Vec<(u64, Vec<u8>)> = decode_batch(&f.payload).unwrap()
                    .into_iter().map(|(c, b)| (c, b.to_vec())).collect();
                prop_assert_eq!(got, entries);
            }
        }

        #[test]
        fn open_round_trip(local_id in 1u64..1 << 40, protocol in ".{0,20}",
                           id in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)),
                           hs in proptest::collection::vec(any::<u8>(), 0..40)) {
            let bytes = Bytes::from(encode_open(local_id, &protocol, id.as_deref(), &hs));
            let mut d = Decoder::new(&bytes);
            prop_assert_eq!(d.uint().unwrap(), TYPE_OPEN);
            let open = decode_open(&bytes.slice(1..)).unwrap();
            prop_assert_eq!(open.local_id, local_id);
            prop_assert_eq!(open.protocol, protocol);
            prop_assert_eq!(open.id.map(|b| b.to_vec()), id);
            prop_assert_eq!(open.handshake.to_vec(), hs);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let bytes = Bytes::from(bytes);
            let _ = decode_frame(&bytes);
            let _ = decode_open(&bytes);
            let _ = decode_batch(&bytes);
            let _ = decode_id_message(&bytes);
        }
    }
}
