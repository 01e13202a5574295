//! Live interop with JavaScript `@hyperswarm/secret-stream` 6.9.2 + `protomux` 3.12.1 over
//! loopback TCP, with Rust as the Noise initiator and as the responder. The Node peer
//! (`tests/interop/scripts/secret-stream-peer.js`) plays a fixed script and reports what it saw.

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use corestore_interop::Node;
use corestore_keys::KeyPair;
use corestore_replicate::{ChannelSpec, Connection, Driver, Event, MuxEvent, Role, StreamConfig};
use serde_json::Value;
use tokio::net::TcpListener;

const NODE_SEED: [u8; 32] = [0x5a; 32];
const RUST_SEED: [u8; 32] = [0x3c; 32];

/// What the Rust side observed.
// A checklist of independent facts reads best as plain bools.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Default)]
struct Seen {
    handshake_hash: Option<[u8; 64]>,
    remote_public_key: Option<[u8; 32]>,
    alpha: Vec<String>,
    beta: Vec<String>,
    unknown_rejected: bool,
    delta_rejected: bool,
    beta_closed_by_remote: bool,
    alpha_closed: bool,
    ended: bool,
}

impl Seen {
    fn alpha_complete(&self) -> bool {
        let mut got = self.alpha.clone();
        got.sort();
        got == ["b1", "b2", "b3", "echo:hello-alpha", "echo:r1", "echo:r2", "echo:r3"]
    }
}

async fn rust_side(stream: tokio::net::TcpStream, role: Role) -> Seen {
    let conn = Connection::new(
        role,
        StreamConfig::new().key_pair(KeyPair::from_seed(&RUST_SEED)),
        std::time::Instant::now(),
    );
    let mut driver = Driver::new(stream, conn);
    let mux = driver.connection().mux();
    mux.pair("interop/delta", None);
    let alpha = mux
        .open_channel(&ChannelSpec::new("interop/alpha").id(*b"a").message_types(2), b"rust-alpha")
        .unwrap();
    let beta = mux.open_channel(&ChannelSpec::new("interop/beta"), b"rust-beta").unwrap();
    let unknown = mux.open_channel(&ChannelSpec::new("interop/unknown"), b"").unwrap();
    let mut seen = Seen::default();
    let mut closing = false;
    while let Some(event) = driver.next_event().await.unwrap() {
        let mux = driver.connection().mux();
        match event {
            Event::Connected { remote_public_key, handshake_hash } => {
                seen.remote_public_key = Some(remote_public_key);
                seen.handshake_hash = Some(handshake_hash);
            }
            Event::Mux(MuxEvent::ChannelOpened { channel, handshake }) if channel == alpha => {
                assert_eq!(handshake, Bytes::from_static(b"node-alpha"));
                mux.send(alpha, 0, b"hello-alpha").unwrap();
                mux.send(alpha, 0, b"batch-please").unwrap();
                mux.cork();
                for m in [&b"r1"[..], b"r2", b"r3"] {
                    mux.send(alpha, 0, m).unwrap();
                }
                mux.uncork();
            }
            Event::Mux(MuxEvent::ChannelOpened { channel, handshake }) if channel == beta => {
                assert_eq!(handshake, Bytes::from_static(b"node-beta"));
                // The direct send path (header and payload encrypted in place).
                driver
                    .connection()
                    .send(beta, 0, b"hello-beta", std::time::Instant::now())
                    .unwrap();
            }
            Event::Mux(MuxEvent::ChannelRejected { channel }) => {
                assert_eq!(channel, unknown);
                seen.unknown_rejected = true;
            }
            Event::Mux(MuxEvent::RemoteOpen { protocol, id }) => {
                assert_eq!((protocol.as_str(), id), ("interop/delta", None));
                mux.reject_remote("interop/delta", None);
                seen.delta_rejected = true;
            }
            Event::Mux(MuxEvent::Message { channel, message_type: 1, payload }) => {
                let text = String::from_utf8(payload.to_vec()).unwrap();
                if channel == alpha {
                    seen.alpha.push(text);
                } else if channel == beta {
                    if text == "echo:hello-beta" {
                        mux.send(beta, 0, b"close-yourself").unwrap();
                    }
                    seen.beta.push(text);
                }
            }
            Event::Mux(MuxEvent::ChannelClosed { channel, remote }) => {
                if channel == beta && remote {
                    seen.beta_closed_by_remote = true;
                } else if channel == alpha && !remote {
                    seen.alpha_closed = true;
                }
            }
            Event::Ended => seen.ended = true,
            other => panic!("unexpected event {other:?}"),
        }
        let done = seen.alpha_complete()
            && seen.beta_closed_by_remote
            && seen.unknown_rejected
            && seen.delta_rejected;
        if done && !closing {
            closing = true;
            driver.connection().mux().close_channel(alpha).unwrap();
            driver.connection().end(std::time::Instant::now()).unwrap();
        }
    }
    seen
}

fn node_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn has(lines: &[Value], expected: &Value) -> bool {
    lines.iter().any(|l| expected.as_object().unwrap().iter().all(|(k, v)| l.get(k) == Some(v)))
}

async fn interop(test: &str, rust_role: Role) {
    let Some(node) = Node::get(test) else { return };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let node_role = match rust_role {
        Role::Initiator => "responder",
        Role::Responder => "initiator",
    };
    let child = node
        .command("secret-stream-peer.js")
        .args([port.as_str(), node_role, &hex::encode(NODE_SEED)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .expect("node connects within 20 s")
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(30), rust_side(tcp, rust_role))
        .await
        .expect("scenario finishes within 30 s");
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("node exits")
    .unwrap()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node failed: {stderr}");
    let lines = node_lines(&output.stdout);

    // Handshake: same hash, each side knows the other's static key.
    let rust_pk = hex::encode(KeyPair::from_seed(&RUST_SEED).public_key().as_bytes());
    let node_pk = hex::encode(KeyPair::from_seed(&NODE_SEED).public_key().as_bytes());
    let hash = hex::encode(seen.handshake_hash.expect("connected"));
    assert!(
        has(
            &lines,
            &serde_json::json!({"event": "handshake", "hash": hash,
            "publicKey": node_pk, "remotePublicKey": rust_pk})
        ),
        "{lines:#?}"
    );
    assert_eq!(hex::encode(seen.remote_public_key.unwrap()), node_pk);

    // Rust saw everything: echoes, the Node batch, the reject, the remote-open hook, closes.
    assert!(seen.alpha_complete(), "{seen:?}");
    assert_eq!(seen.beta, ["echo:hello-beta"]);
    assert!(seen.unknown_rejected && seen.delta_rejected && seen.beta_closed_by_remote);
    assert!(seen.alpha_closed && seen.ended, "{seen:?}");

    // Node saw Rust's messages (including the Rust batch), its handshakes and closes.
    for (protocol, payload) in [
        ("interop/alpha", "hello-alpha"),
        ("interop/alpha", "batch-please"),
        ("interop/alpha", "r1"),
        ("interop/alpha", "r2"),
        ("interop/alpha", "r3"),
        ("interop/beta", "hello-beta"),
        ("interop/beta", "close-yourself"),
    ] {
        let want = serde_json::json!({"event": "message", "protocol": protocol, "type": 0, "payload": payload});
        assert!(has(&lines, &want), "node missed {want}: {lines:#?}");
    }
    for want in [
        serde_json::json!({"event": "open", "protocol": "interop/alpha", "handshake": "rust-alpha"}),
        serde_json::json!({"event": "remote-open", "protocol": "interop/beta"}),
        serde_json::json!({"event": "open", "protocol": "interop/beta", "handshake": "rust-beta"}),
        serde_json::json!({"event": "close", "protocol": "interop/delta", "remote": true, "opened": false}),
        serde_json::json!({"event": "close", "protocol": "interop/beta", "remote": false}),
        serde_json::json!({"event": "close", "protocol": "interop/alpha", "remote": true}),
        serde_json::json!({"event": "closed"}),
    ] {
        assert!(has(&lines, &want), "node missed {want}: {lines:#?}");
    }
    assert!(!lines.iter().any(|l| l["event"] == "error" || l["event"] == "timeout"), "{lines:#?}");
}

#[tokio::test]
async fn node_interop_rust_initiator() {
    interop("node_interop_rust_initiator", Role::Initiator).await;
}

#[tokio::test]
async fn node_interop_rust_responder() {
    interop("node_interop_rust_responder", Role::Responder).await;
}
