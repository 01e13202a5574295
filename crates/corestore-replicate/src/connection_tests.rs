//! Connection tests over the in-memory [`Pair`] harness (virtual clock, no sockets).

use std::time::Duration;

use bytes::Bytes;
use corestore_keys::KeyPair;
use proptest::prelude::*;

use crate::connection::{Connection, ConnectionError, Event};
use crate::framing::FrameError;
use crate::mux::{ChannelSpec, MuxEvent};
use crate::noise::{Handshake, HandshakeError, Role};
use crate::stream::{StreamConfig, StreamError};
use crate::testing::{Pair, Side};

fn kp(b: u8) -> KeyPair {
    KeyPair::from_seed(&[b; 32])
}

fn vector_pair() -> Pair {
    let now = std::time::Instant::now();
    let i = Handshake::fixed_ephemeral_key_for_testing_only(Role::Initiator, kp(0x11), kp(0x33));
    let r = Handshake::fixed_ephemeral_key_for_testing_only(Role::Responder, kp(0x22), kp(0x44));
    Pair::from_connections(
        Connection::from_handshake(i, &StreamConfig::new(), now),
        Connection::from_handshake(r, &StreamConfig::new(), now),
        now,
    )
}

fn connected(pair: &mut Pair) {
    pair.drive().unwrap();
    for side in [Side::Initiator, Side::Responder] {
        assert!(matches!(pair.events(side)[..], [Event::Connected { .. }]));
    }
}

#[test]
fn handshake_over_the_pair_matches_the_spec_vector() {
    let mut pair = vector_pair();
    let msg1 = pair.initiator.poll_transmit(pair.now).unwrap().unwrap();
    assert_eq!(
        hex::encode(&msg1),
        "20000017cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e18080ce"
    );
    pair.responder.handle_input(&msg1, pair.now).unwrap();
    pair.drive().unwrap();
    let hash = concat!(
        "904bbe89cd78fb98b811db439e8c9b546f524311b5ca9cc38393af54937661f2",
        "5ebc1dbfd3f12d1bb77a8dfbc52027ce3c4111c60e4dfac926822ef8d79e9bcc"
    );
    let ev_i = pair.events(Side::Initiator);
    let ev_r = pair.events(Side::Responder);
    let [Event::Connected { remote_public_key: ri, handshake_hash: hi }] = ev_i[..] else {
        panic!("{ev_i:?}")
    };
    let [Event::Connected { remote_public_key: rr, handshake_hash: hr }] = ev_r[..] else {
        panic!("{ev_r:?}")
    };
    assert_eq!((hex::encode(hi), hex::encode(hr)), (hash.to_owned(), hash.to_owned()));
    assert_eq!(ri, *kp(0x22).public_key().as_bytes());
    assert_eq!(rr, *kp(0x11).public_key().as_bytes());
    assert_eq!(pair.initiator.stream().remote_public_key(), Some(ri));
    assert_eq!(pair.responder.stream().handshake_hash(), Some(hr));
}

#[test]
fn channels_on_two_protocols_exchange_messages_both_ways() {
    let mut pair = Pair::new(StreamConfig::new(), StreamConfig::new());
    // Sent before the handshake finishes: queued, then encrypted.
    let spec_a = ChannelSpec::new("alpha").id(*b"id-1");
    let spec_b = ChannelSpec::new("beta");
    let ia = pair.initiator.mux().open_channel(&spec_a, b"ia").unwrap();
    let ib = pair.initiator.mux().open_channel(&spec_b, b"ib").unwrap();
    let ra = pair.responder.mux().open_channel(&spec_a, b"ra").unwrap();
    let rb = pair.responder.mux().open_channel(&spec_b, b"rb").unwrap();
    pair.drive().unwrap();
    let ev = pair.events(Side::Initiator);
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(
        ev[1],
        Event::Mux(MuxEvent::ChannelOpened { channel: ia, handshake: Bytes::from_static(b"ra") })
    );
    pair.events(Side::Responder);
    pair.initiator.mux().send(ia, 0, b"to alpha").unwrap();
    pair.responder.mux().send(rb, 1, b"to beta").unwrap();
    pair.drive().unwrap();
    assert_eq!(
        pair.events(Side::Responder),
        [Event::Mux(MuxEvent::Message {
            channel: ra,
            message_type: 0,
            payload: Bytes::from_static(b"to alpha")
        })]
    );
    assert_eq!(
        pair.events(Side::Initiator),
        [Event::Mux(MuxEvent::Message {
            channel: ib,
            message_type: 1,
            payload: Bytes::from_static(b"to beta")
        })]
    );
}

#[test]
fn keep_alive_fires_every_interval_and_is_filtered() {
    let ka = StreamConfig::new().keep_alive(Duration::from_secs(5));
    let mut pair = Pair::new(ka.clone(), ka.idle_timeout(Duration::from_secs(7)));
    connected(&mut pair);
    let start = pair.now;
    // Keep-alives keep the responder's 7 s idle timeout from firing for a minute.
    for _ in 0..30 {
        assert!(pair.step().unwrap());
    }
    assert!(pair.now >= start + Duration::from_secs(60));
    assert!(pair.events(Side::Initiator).is_empty());
    assert!(pair.events(Side::Responder).is_empty());
}

#[test]
fn idle_timeout_is_a_typed_error() {
    let mut pair =
        Pair::new(StreamConfig::new(), StreamConfig::new().idle_timeout(Duration::from_secs(3)));
    connected(&mut pair);
    let err = pair.advance(Duration::from_secs(3)).unwrap_err();
    assert_eq!(err.side, Side::Responder);
    assert!(matches!(err.error, ConnectionError::Stream(StreamError::TimedOut { .. })));
}

#[test]
fn clean_end_of_stream() {
    let mut pair = Pair::new(StreamConfig::new(), StreamConfig::new());
    connected(&mut pair);
    pair.initiator.stream_mut().end();
    assert!(pair.initiator.stream().is_write_ended());
    pair.responder.handle_eof(pair.now).unwrap();
    assert_eq!(pair.events(Side::Responder), [Event::Ended]);
    assert!(pair.responder.stream().is_closed());
}

fn responder() -> Connection {
    Connection::new(Role::Responder, StreamConfig::new(), std::time::Instant::now())
}

#[test]
fn garbage_and_bad_handshake_messages_end_the_stream() {
    let now = std::time::Instant::now();
    // A framed msg1 carrying the identity point: the DH refuses it.
    let mut garbage = vec![32, 0, 0, 1];
    garbage.extend([0; 31]);
    let err = responder().handle_input(&garbage, now).unwrap_err();
    assert!(matches!(
        err,
        ConnectionError::Stream(StreamError::Handshake(HandshakeError::InvalidPoint))
    ));
    // Too short.
    let err = responder().handle_input(&[3, 0, 0, 1, 2, 3], now).unwrap_err();
    assert!(matches!(
        err,
        ConnectionError::Stream(StreamError::Handshake(HandshakeError::MessageTooShort { .. }))
    ));
    // Tampered msg2.
    let mut pair = Pair::new(StreamConfig::new(), StreamConfig::new());
    let m1 = pair.initiator.poll_transmit(now).unwrap().unwrap();
    pair.responder.handle_input(&m1, now).unwrap();
    let mut m2 = pair.responder.poll_transmit(now).unwrap().unwrap().to_vec();
    m2[50] ^= 0x80;
    let err = pair.initiator.handle_input(&m2, now).unwrap_err();
    assert!(matches!(
        err,
        ConnectionError::Stream(StreamError::Handshake(HandshakeError::Decrypt))
    ));
    // Anything after a failure is refused.
    assert!(matches!(
        pair.initiator.handle_input(&[0], now),
        Err(ConnectionError::Stream(StreamError::Closed))
    ));
}

#[test]
fn oversized_and_truncated_frames_end_the_stream() {
    let now = std::time::Instant::now();
    let mut small = Connection::new(Role::Responder, StreamConfig::new().max_frame_len(1024), now);
    let err = small.handle_input(&[0x01, 0x04, 0x00], now).unwrap_err();
    assert!(matches!(
        err,
        ConnectionError::Stream(StreamError::Frame(FrameError::FrameTooLarge {
            len: 1025,
            max: 1024
        }))
    ));
    let mut r = responder();
    r.handle_input(&[10, 0, 0, 1, 2], now).unwrap();
    assert!(matches!(
        r.handle_eof(now),
        Err(ConnectionError::Stream(StreamError::Frame(FrameError::Truncated { buffered: 2 })))
    ));
    assert!(matches!(
        responder().handle_eof(now),
        Err(ConnectionError::Stream(StreamError::EndedDuringHandshake))
    ));
}

#[test]
fn tag_mismatch_and_bad_id_header_end_the_stream() {
    let now = std::time::Instant::now();
    let mut pair = Pair::new(StreamConfig::new(), StreamConfig::new());
    connected(&mut pair);
    pair.initiator.mux().open_channel(&ChannelSpec::new("p"), b"").unwrap();
    let mut frame = pair.initiator.poll_transmit(now).unwrap().unwrap().to_vec();
    let last = frame.len() - 1;
    frame[last] ^= 1;
    let err = pair.responder.handle_input(&frame, now).unwrap_err();
    assert!(matches!(err, ConnectionError::Stream(StreamError::Decrypt(_))));

    // An id header with the wrong stream id.
    let mut pair = Pair::new(StreamConfig::new(), StreamConfig::new());
    let m1 = pair.initiator.poll_transmit(now).unwrap().unwrap();
    pair.responder.handle_input(&m1, now).unwrap();
    let m2 = pair.responder.poll_transmit(now).unwrap().unwrap();
    pair.initiator.handle_input(&m2, now).unwrap();
    let out = pair.initiator.poll_transmit(now).unwrap().unwrap().to_vec();
    // out = msg3 (3 + 64) then the id frame (3 + 56): corrupt the stream id.
    let mut bad = out.clone();
    bad[3 + 64 + 3] ^= 1;
    let err = pair.responder.handle_input(&bad, now).unwrap_err();
    assert!(matches!(err, ConnectionError::Stream(StreamError::StreamIdMismatch)));
    // An id header of the wrong size.
    let mut pair2 = Pair::new(StreamConfig::new(), StreamConfig::new());
    let m1 = pair2.initiator.poll_transmit(now).unwrap().unwrap();
    pair2.responder.handle_input(&m1, now).unwrap();
    let m2 = pair2.responder.poll_transmit(now).unwrap().unwrap();
    pair2.initiator.handle_input(&m2, now).unwrap();
    let out = pair2.initiator.poll_transmit(now).unwrap().unwrap().to_vec();
    let mut short = out[..3 + 64].to_vec();
    short.extend([5, 0, 0, 1, 2, 3, 4, 5]);
    let err = pair2.responder.handle_input(&short, now).unwrap_err();
    assert!(matches!(err, ConnectionError::Stream(StreamError::InvalidHeaderLength { len: 5 })));
}

#[test]
fn a_bad_mux_frame_ends_the_connection() {
    let mut pair = Pair::new(StreamConfig::new(), StreamConfig::new());
    connected(&mut pair);
    // A reject for a channel the responder never opened, sent under the mux.
    pair.initiator.stream_mut().send(&[0, 2, 9], pair.now).unwrap();
    let err = pair.drive().unwrap_err();
    assert_eq!(err.side, Side::Responder);
    assert!(matches!(
        err.error,
        ConnectionError::Mux(crate::mux::MuxError::InvalidReject { local_id: 9 })
    ));
}

proptest! {
    #[test]
    fn random_input_never_panics(chunks in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..120), 0..6)) {
        let now = std::time::Instant::now();
        let mut conn = responder();
        for chunk in chunks {
            if conn.handle_input(&chunk, now).is_err() {
                break;
            }
        }
        let _ = conn.handle_eof(now);
        while conn.poll_event().is_some() {}
    }
}
