//! Clearing blocks against live JavaScript hypercore 11.39.5 over TCP loopback
//! (`tests/interop/scripts/replicate-peer.js`): a Node writer that clears sends `range drop` and
//! Rust stops asking it for those blocks; a Rust writer that clears does the same, and the Node
//! peer's view of it (`_remoteHasBlock`) drops them.
//!
//! Ordering instead of waiting: after a clear, the side that cleared appends one block, and the
//! other waits for that length; the `range` went out before the `sync` on the same channel.

use std::sync::Arc;
use std::time::Duration;

use corestore_hypercore::Hypercore;
use corestore_interop::ScriptPeer;
use corestore_keys::{CoreKey, KeyPair};
use corestore_replicate::protocol::{ReplicatorConfig, ReplicatorEvent};
use corestore_replicate::{
    GetError, GetOptions, Replication, ReplicationOptions, Role, SharedCore,
};
use corestore_storage::{MemoryStorage, Storage};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

/// The block both sides write: see the script's header.
fn block(i: u64) -> Vec<u8> {
    let extra = (i * 7919 % 2048) as usize;
    let mut b = i.to_le_bytes().to_vec();
    b.extend((0..extra).map(|j| ((i as usize * 13 + j) & 255) as u8));
    b
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f).await.expect("finished within 120 s")
}

/// Waits until the core's length reaches `length`.
async fn wait_length(core: &SharedCore, length: u64) {
    within(async {
        let mut events = core.subscribe();
        while core.head().length < length {
            let _ = events.recv().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_node_writer_that_clears_sends_range_drop_and_rust_stops_asking_it() {
    let test = "a_node_writer_that_clears_sends_range_drop_and_rust_stops_asking_it";
    let Some(mut node) = ScriptPeer::spawn(test, "replicate-peer.js") else { return };
    let created = node.call(json!({"cmd": "create", "blocks": 100})).await;
    let storage = Storage::open(Arc::new(MemoryStorage::new())).await.unwrap();
    let key = hex::decode(created["key"].as_str().unwrap()).unwrap();
    let key = CoreKey::from_bytes(key.try_into().unwrap());
    let core = Hypercore::open(&storage, key, None).await.unwrap();
    let r = SharedCore::new(core, ReplicatorConfig::default());
    let port = node.call(json!({"cmd": "listen"})).await["port"].as_u64().unwrap();
    let socket = TcpStream::connect(("127.0.0.1", port as u16)).await.unwrap();
    let conn = Replication::spawn(socket, Role::Initiator, ReplicationOptions::default());
    conn.attach(&r);
    assert_eq!(within(r.get(50, GetOptions::default())).await.unwrap(), Some(block(50)));

    let cleared = node.call(json!({"cmd": "clear", "start": 20, "end": 40})).await;
    assert_eq!(cleared["contiguousLength"], 20);
    node.call(json!({"cmd": "append", "blocks": 1})).await;
    wait_length(&r, 101).await;

    let short = GetOptions { wait: true, timeout: Some(Duration::from_secs(1)) };
    assert!(matches!(r.get(25, short).await, Err(GetError::Timeout { index: 25, .. })));
    assert_eq!(within(r.get(45, GetOptions::default())).await.unwrap(), Some(block(45)));
    let requested = node.call(json!({"cmd": "requested"})).await;
    let blocks: Vec<u64> =
        requested["blocks"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
    assert!(blocks.contains(&50) && blocks.contains(&45), "{blocks:?}");
    assert!(!blocks.contains(&25), "Rust never asked for a block the writer dropped: {blocks:?}");
    node.call(json!({"cmd": "exit"})).await;
}

#[tokio::test]
async fn a_rust_writer_that_clears_updates_the_node_peers_view_of_it() {
    let test = "a_rust_writer_that_clears_updates_the_node_peers_view_of_it";
    let Some(mut node) = ScriptPeer::spawn(test, "replicate-peer.js") else { return };
    let storage = Storage::open(Arc::new(MemoryStorage::new())).await.unwrap();
    let mut core = Hypercore::create(&storage, KeyPair::generate(), None).await.unwrap();
    core.append(&(0..100).map(block).collect::<Vec<_>>()).await.unwrap();
    let w = SharedCore::new(core, ReplicatorConfig::default());
    node.call(json!({"cmd": "open", "key": w.key().to_hex()})).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, reply) =
        tokio::join!(listener.accept(), node.call(json!({"cmd": "connect", "port": port})));
    assert_eq!(reply["ok"], true);
    let conn =
        Replication::spawn(accepted.unwrap().0, Role::Responder, ReplicationOptions::default());
    conn.attach(&w);
    node.call(json!({"cmd": "waitPeer"})).await;
    assert_eq!(node.call(json!({"cmd": "update"})).await["length"], 100);
    let done = node.call(json!({"cmd": "download", "start": 0, "end": 100})).await;
    assert_eq!(done["mismatches"], 0);
    assert_eq!(node.call(json!({"cmd": "remoteHas", "index": 25})).await["has"], json!([true]));

    let report = w.clear(20, 40).await.unwrap();
    assert_eq!(report.blocks, 20);
    w.append(&[block(100)]).await.unwrap();
    node.call(json!({"cmd": "waitLength", "length": 101})).await;
    for (index, has) in [(19, true), (20, false), (25, false), (39, false), (40, true)] {
        let view = node.call(json!({"cmd": "remoteHas", "index": index})).await;
        assert_eq!(view["has"], json!([has]), "the Node peer's view of block {index}");
    }

    // Node drops its copy too: now nobody has block 25, and Node does not ask Rust for it.
    let mut events = w.subscribe();
    node.call(json!({"cmd": "clear", "start": 20, "end": 40})).await;
    let got = node.call(json!({"cmd": "get", "index": 25, "timeout": 1000})).await;
    assert_eq!(got["timedOut"], true);
    let got = node.call(json!({"cmd": "get", "index": 50})).await;
    assert_eq!(got["value"], hex::encode(block(50)), "block 50 is local to Node");
    let got = node.call(json!({"cmd": "get", "index": 100})).await;
    assert_eq!(got["value"], hex::encode(block(100)));
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, ReplicatorEvent::Uploaded { index: 20..40, .. }),
            "a cleared block was served: {event:?}"
        );
    }
    node.call(json!({"cmd": "exit"})).await;
}
