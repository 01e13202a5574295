//! The tokio driver over an in-memory duplex: handshake, channel messages both ways, a clean
//! end of stream, and garbage from the socket ending the stream with a typed error.

use std::time::{Duration, Instant};

use bytes::Bytes;
use corestore_replicate::{
    ChannelSpec, Connection, ConnectionError, Driver, DriverError, Event, FrameError, MuxEvent,
    Role, StreamConfig, StreamError,
};
use std::future::Future as _;

use tokio::io::AsyncWriteExt;

async fn next(driver: &mut Driver<tokio::io::DuplexStream>) -> Option<Event> {
    tokio::time::timeout(Duration::from_secs(10), driver.next_event())
        .await
        .expect("event within 10 s")
        .unwrap()
}

#[tokio::test]
async fn duplex_round_trip_and_clean_end() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let mut ini =
        Driver::new(a, Connection::new(Role::Initiator, StreamConfig::new(), Instant::now()));
    let mut res =
        Driver::new(b, Connection::new(Role::Responder, StreamConfig::new(), Instant::now()));
    let spec = ChannelSpec::new("test/proto").id(*b"x");
    let ci = ini.connection().mux().open_channel(&spec, b"hi").unwrap();
    let cr = res.connection().mux().open_channel(&spec, b"hr").unwrap();
    let big = vec![7u8; 200_000];
    ini.connection().mux().send(ci, 2, &big).unwrap();
    let responder = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(ev) = next(&mut res).await {
            if let Event::Mux(MuxEvent::Message { channel, payload, .. }) = &ev {
                assert_eq!(*channel, cr);
                // The direct (unbatched) send path.
                res.connection().send(cr, 0, b"thanks", Instant::now()).unwrap();
                res.connection().end(Instant::now()).unwrap();
                assert_eq!(payload.len(), 200_000);
            }
            got.push(ev);
        }
        got
    });
    let mut seen = Vec::new();
    while let Some(ev) = next(&mut ini).await {
        if matches!(ev, Event::Ended) {
            ini.connection().end(Instant::now()).unwrap();
        }
        seen.push(ev);
    }
    assert!(matches!(seen[0], Event::Connected { .. }));
    assert!(seen.contains(&Event::Mux(MuxEvent::Message {
        channel: ci,
        message_type: 0,
        payload: Bytes::from_static(b"thanks")
    })));
    assert_eq!(seen.last(), Some(&Event::Ended));
    let got = responder.await.unwrap();
    assert!(matches!(got[0], Event::Connected { .. }));
    assert_eq!(got.last(), Some(&Event::Ended));
}

#[tokio::test]
async fn garbage_from_the_socket_is_a_typed_error() {
    let (a, mut b) = tokio::io::duplex(1024);
    let mut res =
        Driver::new(a, Connection::new(Role::Responder, StreamConfig::new(), Instant::now()));
    b.write_all(&[0xff, 0xff, 0xff, 1, 2, 3]).await.unwrap();
    let err =
        tokio::time::timeout(Duration::from_secs(10), res.next_event()).await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            DriverError::Connection(ConnectionError::Stream(StreamError::Frame(
                FrameError::FrameTooLarge { len: 0xff_ffff, max: 65535 }
            )))
        ),
        "{err:?}"
    );
}

/// `next_event` dropped at any await (as a `select!` does) loses nothing: every message of a
/// long run arrives even when most calls are cancelled half-way.
#[tokio::test]
async fn next_event_is_cancel_safe() {
    const N: u32 = 3000;
    let (a, b) = tokio::io::duplex(1 << 20);
    let mut ini =
        Driver::new(a, Connection::new(Role::Initiator, StreamConfig::new(), Instant::now()));
    let mut res =
        Driver::new(b, Connection::new(Role::Responder, StreamConfig::new(), Instant::now()));
    let spec = ChannelSpec::new("test/cancel");
    let ci = ini.connection().mux().open_channel(&spec, b"").unwrap();
    let _cr = res.connection().mux().open_channel(&spec, b"").unwrap();
    for i in 0..N {
        ini.connection().mux().send(ci, 0, &i.to_le_bytes()).unwrap();
    }
    let sender = tokio::spawn(async move {
        while let Ok(Some(ev)) = ini.next_event().await {
            if matches!(ev, Event::Ended) {
                break;
            }
        }
    });
    let mut got = Vec::new();
    let mut cancelled = 0;
    let mut idle = 0;
    while got.len() < N as usize {
        // Lost events would leave this waiting forever: a long idle stretch fails the test.
        assert!(idle < 100_000, "{} of {N} messages arrived, then nothing", got.len());
        // Poll once, then drop the future, whatever state it is in.
        let polled = {
            let mut next = std::pin::pin!(res.next_event());
            std::future::poll_fn(|cx| std::task::Poll::Ready(next.as_mut().poll(cx))).await
        };
        match polled {
            std::task::Poll::Ready(Ok(Some(Event::Mux(MuxEvent::Message { payload, .. })))) => {
                got.push(u32::from_le_bytes(payload[..].try_into().unwrap()));
                idle = 0;
            }
            std::task::Poll::Ready(Ok(Some(_))) => {}
            std::task::Poll::Ready(other) => panic!("stream ended early: {other:?}"),
            std::task::Poll::Pending => {
                cancelled += 1;
                idle += 1;
                tokio::task::yield_now().await;
            }
        }
    }
    assert!(cancelled > 0, "the test cancelled some calls");
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    res.connection().end(Instant::now()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), res.flush()).await;
    sender.abort();
}
