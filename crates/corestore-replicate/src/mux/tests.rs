use super::*;
use proptest::prelude::*;

/// Moves frames both ways until neither side has anything to send.
fn pump(a: &mut Mux, b: &mut Mux) -> Result<(), MuxError> {
    loop {
        let mut moved = false;
        while let Some(f) = a.poll_transmit() {
            b.handle_frame(&f)?;
            moved = true;
        }
        while let Some(f) = b.poll_transmit() {
            a.handle_frame(&f)?;
            moved = true;
        }
        if !moved {
            return Ok(());
        }
    }
}

fn events(m: &mut Mux) -> Vec<MuxEvent> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

fn opened(channel: ChannelId, hs: &[u8]) -> MuxEvent {
    MuxEvent::ChannelOpened { channel, handshake: Bytes::copy_from_slice(hs) }
}

fn msg(channel: ChannelId, t: u64, p: &[u8]) -> MuxEvent {
    MuxEvent::Message { channel, message_type: t, payload: Bytes::copy_from_slice(p) }
}

#[test]
fn both_sides_open_concurrently_and_exchange_messages() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    let spec = ChannelSpec::new("hypercore/alpha").id([7; 32]);
    let ca = a.open_channel(&spec, b"hs-a").unwrap();
    let cb = b.open_channel(&spec, b"hs-b").unwrap();
    assert_eq!(a.open_channel(&spec, b"again"), Err(OpenError::AlreadyOpen));
    pump(&mut a, &mut b).unwrap();
    assert_eq!(events(&mut a), [opened(ca, b"hs-b")]);
    assert_eq!(events(&mut b), [opened(cb, b"hs-a")]);
    a.send(ca, 3, b"ping").unwrap();
    b.send(cb, 4, b"pong").unwrap();
    pump(&mut a, &mut b).unwrap();
    assert_eq!(events(&mut b), [msg(cb, 3, b"ping")]);
    assert_eq!(events(&mut a), [msg(ca, 4, b"pong")]);
}

#[test]
fn opening_before_the_remote_pairs_when_it_accepts() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    b.pair("proto", None);
    let spec = ChannelSpec::new("proto").id(*b"abc");
    let ca = a.open_channel(&spec, b"A").unwrap();
    a.send(ca, 0, b"early").unwrap();
    pump(&mut a, &mut b).unwrap();
    assert_eq!(
        events(&mut b),
        [MuxEvent::RemoteOpen { protocol: "proto".into(), id: Some(Bytes::from_static(b"abc")) }]
    );
    assert!(events(&mut a).is_empty());
    // The early message was buffered; accepting delivers it after the open event.
    let cb = b.open_channel(&spec, b"B").unwrap();
    assert_eq!(events(&mut b), [opened(cb, b"A"), msg(cb, 0, b"early")]);
    pump(&mut a, &mut b).unwrap();
    assert_eq!(events(&mut a), [opened(ca, b"B")]);
}

#[test]
fn unpaired_remote_open_is_rejected() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    let ca = a.open_channel(&ChannelSpec::new("nobody-here"), b"").unwrap();
    pump(&mut a, &mut b).unwrap();
    assert!(events(&mut b).is_empty());
    assert_eq!(events(&mut a), [MuxEvent::ChannelRejected { channel: ca }]);
    assert_eq!(a.send(ca, 0, b"x"), Err(ChannelError::Closed { channel: ca }));
    assert!(a.is_idle());
    // The same channel can be opened again afterwards, and the local id is reused.
    b.pair("nobody-here", None);
    let again = a.open_channel(&ChannelSpec::new("nobody-here"), b"").unwrap();
    pump(&mut a, &mut b).unwrap();
    assert!(matches!(events(&mut b)[..], [MuxEvent::RemoteOpen { .. }]));
    b.reject_remote("nobody-here", None);
    pump(&mut a, &mut b).unwrap();
    assert_eq!(events(&mut a), [MuxEvent::ChannelRejected { channel: again }]);
}

#[test]
fn two_protocols_and_message_type_filter() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    let p1 = ChannelSpec::new("one").message_types(2);
    let p2 = ChannelSpec::new("two").id(*b"x");
    let a1 = a.open_channel(&p1, b"").unwrap();
    let a2 = a.open_channel(&p2, b"").unwrap();
    let b2 = b.open_channel(&p2, b"").unwrap();
    let b1 = b.open_channel(&p1, b"").unwrap();
    pump(&mut a, &mut b).unwrap();
    events(&mut a);
    events(&mut b);
    b.send(b1, 1, b"ok").unwrap();
    b.send(b1, 2, b"unknown type").unwrap();
    b.send(b2, 9, b"on two").unwrap();
    pump(&mut a, &mut b).unwrap();
    assert_eq!(events(&mut a), [msg(a1, 1, b"ok"), msg(a2, 9, b"on two")]);
}

#[test]
fn cork_batches_into_one_frame() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    let (s1, s2) = (ChannelSpec::new("one"), ChannelSpec::new("two"));
    b.open_channel(&s1, b"").unwrap();
    b.open_channel(&s2, b"").unwrap();
    a.cork();
    let a1 = a.open_channel(&s1, b"h1").unwrap();
    let a2 = a.open_channel(&s2, b"h2").unwrap();
    a.send(a1, 0, b"m1").unwrap();
    a.send(a1, 1, b"m2").unwrap();
    a.send(a2, 0, b"m3").unwrap();
    assert!(a.poll_transmit().is_none());
    a.uncork();
    let frame = a.poll_transmit().unwrap();
    assert!(a.poll_transmit().is_none());
    assert_eq!(&frame[..2], &[0, 0]);
    let got = {
        let mut b2 = Mux::new();
        b2.open_channel(&s1, b"").unwrap();
        b2.open_channel(&s2, b"").unwrap();
        b2.handle_frame(&frame).unwrap();
        events(&mut b2)
    };
    assert!(matches!(got[0], MuxEvent::ChannelOpened { .. }));
    assert_eq!(got.len(), 5, "{got:?}");
    b.handle_frame(&frame).unwrap();
    let evs = events(&mut b);
    let payloads: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            MuxEvent::Message { payload, .. } => Some(payload.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(payloads, [b"m1".to_vec(), b"m2".to_vec(), b"m3".to_vec()]);
}

#[test]
fn close_reaches_the_remote_and_frees_ids() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    let spec = ChannelSpec::new("p");
    let ca = a.open_channel(&spec, b"").unwrap();
    let cb = b.open_channel(&spec, b"").unwrap();
    pump(&mut a, &mut b).unwrap();
    events(&mut a);
    events(&mut b);
    a.close_channel(ca).unwrap();
    pump(&mut a, &mut b).unwrap();
    assert_eq!(events(&mut a), [MuxEvent::ChannelClosed { channel: ca, remote: false }]);
    assert_eq!(events(&mut b), [MuxEvent::ChannelClosed { channel: cb, remote: true }]);
    assert!(a.is_idle() && b.is_idle());
    assert!(!a.is_opened("p", None));
    // Reopen on the freed ids.
    let ca = a.open_channel(&spec, b"2").unwrap();
    let cb = b.open_channel(&spec, b"2").unwrap();
    pump(&mut a, &mut b).unwrap();
    assert_eq!(events(&mut a), [opened(ca, b"2")]);
    assert_eq!(events(&mut b), [opened(cb, b"2")]);
}

#[test]
fn protocol_violations_are_typed_errors() {
    let mut m = Mux::new();
    // open with remote id 2 before 1.
    let mut frame = vec![0];
    frame.extend(encode_open(2, "p", None, b""));
    assert_eq!(m.handle_frame(&Bytes::from(frame)), Err(MuxError::InvalidOpen { remote_id: 2 }));
    let reject = Bytes::from_static(&[0, 2, 5]);
    assert_eq!(Mux::new().handle_frame(&reject), Err(MuxError::InvalidReject { local_id: 5 }));
    assert!(matches!(
        Mux::new().handle_frame(&Bytes::from_static(&[0xfd, 1])),
        Err(MuxError::Decode(_))
    ));
    // Nested batches beyond the limit.
    let mut inner = vec![0u8, 0, 0];
    for _ in 0..6 {
        let mut outer = vec![0u8, 0, 0, inner.len() as u8 - 1];
        outer.extend_from_slice(&inner[1..]);
        inner = outer;
    }
    assert_eq!(Mux::new().handle_frame(&Bytes::from(inner)), Err(MuxError::BatchTooDeep));
    // Messages for unknown channels and empty frames are ignored.
    assert_eq!(Mux::new().handle_frame(&Bytes::from_static(&[9, 0, 1])), Ok(()));
    assert_eq!(Mux::new().handle_frame(&Bytes::new()), Ok(()));
}

#[test]
fn aliases_pair_either_name_as_protomux_does() {
    let dk = [9u8; 32];
    let alpha = ChannelSpec::new("hypercore/alpha").alias("hypercore").id(dk);
    // hypercore 11 opens "hypercore/alpha" (alias "hypercore"); a peer opening "hypercore"
    // (alias "hypercore/alpha"): each side's open pairs with the other's channel.
    let (mut a, mut b) = (Mux::new(), Mux::new());
    let old = ChannelSpec::new("hypercore").alias("hypercore/alpha").id(dk);
    let ca = a.open_channel(&alpha, b"new").unwrap();
    let cb = b.open_channel(&old, b"old").unwrap();
    pump(&mut a, &mut b).unwrap();
    assert_eq!(events(&mut a), [opened(ca, b"old")]);
    assert_eq!(events(&mut b), [opened(cb, b"new")]);
    assert!(a.is_opened("hypercore", Some(&dk)));
    assert!(b.is_opened("hypercore/alpha", Some(&dk)));
    // A remote "hypercore" open waiting for the application pairs with an aliased local open.
    let (mut a, mut b) = (Mux::new(), Mux::new());
    a.pair("hypercore", None);
    let cb = b.open_channel(&old, b"old").unwrap();
    pump(&mut a, &mut b).unwrap();
    assert!(matches!(events(&mut a)[..], [MuxEvent::RemoteOpen { .. }]));
    let ca = a.open_channel(&alpha, b"new").unwrap();
    pump(&mut a, &mut b).unwrap();
    assert_eq!(events(&mut a), [opened(ca, b"old")]);
    assert_eq!(events(&mut b), [opened(cb, b"new")]);
    // Closing forgets the alias with the channel.
    a.close_channel(ca).unwrap();
    pump(&mut a, &mut b).unwrap();
    assert!(!a.is_opened("hypercore", Some(&dk)) && a.is_idle());
}

#[test]
fn remote_ids_are_reclaimed_and_may_be_reused() {
    let (mut a, mut b) = (Mux::new(), Mux::new());
    for _ in 0..3 {
        let c = a.open_channel(&ChannelSpec::new("nobody"), b"").unwrap();
        pump(&mut a, &mut b).unwrap();
        assert_eq!(events(&mut a), [MuxEvent::ChannelRejected { channel: c }]);
        assert_eq!(b.usage().remote_ids, 0);
    }
    // An id at most one past the highest seen is valid; two past is not.
    let mut frame = vec![0];
    frame.extend(encode_open(2, "p", None, b""));
    assert_eq!(b.handle_frame(&Bytes::from(frame)), Ok(()));
    let mut frame = vec![0];
    frame.extend(encode_open(4, "p", None, b""));
    assert_eq!(b.handle_frame(&Bytes::from(frame)), Err(MuxError::InvalidOpen { remote_id: 4 }));
}

/// A batch of `count` opens with id 0, as one frame (each is answered by a reject).
fn id0_open_batch(count: usize) -> Bytes {
    let entries = vec![(0, encode_open(0, "x", None, b"")); count];
    Bytes::from(encode_batch(&entries))
}

/// The replies in `frame` (each entry of a batch counts).
fn replies(frame: &Bytes) -> usize {
    let f = wire::decode_frame(frame).unwrap();
    if (f.channel, f.message_type) == (0, wire::TYPE_BATCH) {
        wire::decode_batch(&f.payload).unwrap().len()
    } else {
        1
    }
}

/// Issue 13 §2: the replies to a batch leave as one batch, as protomux corks them: a peer that
/// sends a thousand opens in one frame gets one frame back, not a thousand.
#[test]
fn replies_to_a_batch_leave_as_one_batch() {
    let mut m = Mux::new();
    m.handle_frame(&id0_open_batch(1000)).unwrap();
    let frames: Vec<Bytes> = std::iter::from_fn(|| m.poll_transmit()).collect();
    assert_eq!(frames.len(), 1);
    assert_eq!(replies(&frames[0]), 1000);
}

/// Issue 13 §2: replies nobody takes stop the mux at a bound. A batch of 300k opens with id 0
/// (each answered by a reject, about 900 KB of replies) parks once [`MAX_QUEUED_OUTPUT`] bytes
/// of replies wait, however often it is resumed, and goes on once they are taken.
#[test]
fn replies_nobody_takes_stop_the_mux_at_a_bound() {
    let count = 300_000;
    let mut m = Mux::new();
    m.handle_frame(&id0_open_batch(count)).unwrap();
    for _ in 0..100 {
        m.resume().unwrap();
    }
    let usage = m.usage();
    assert!(usage.output_bytes <= MAX_QUEUED_OUTPUT + 16, "{usage:?}");
    assert!(m.has_parked_input() && !m.wants_input(), "{usage:?}");
    let mut answered = 0;
    loop {
        while let Some(frame) = m.poll_transmit() {
            answered += replies(&frame);
        }
        if !m.has_parked_input() {
            break;
        }
        m.resume().unwrap();
    }
    assert_eq!(answered, count);
}

proptest! {
    #[test]
    fn random_frames_never_panic(frames in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..48), 0..8)) {
        let mut m = Mux::new();
        m.pair("p", None);
        let _ = m.open_channel(&ChannelSpec::new("p"), b"");
        for f in frames {
            if m.handle_frame(&Bytes::from(f)).is_err() {
                break;
            }
        }
        while m.poll_event().is_some() {}
    }
}
