//! The tokio driver over an in-memory duplex: handshake, channel messages both ways, a clean
//! end of stream, and garbage from the socket ending the stream with a typed error.

use std::time::{Duration, Instant};

use bytes::Bytes;
use corestore_replicate::{
    ChannelSpec, Connection, ConnectionError, Driver, DriverError, Event, FrameError, MuxEvent,
    Role, StreamConfig, StreamError,
};
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
