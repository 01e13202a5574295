//! Live replication against JavaScript hypercore 11.39.5 / corestore 7.12.5 over TCP loopback
//! (`tests/interop/scripts/replicate-peer.js`), Rust as the initiator and as the responder:
//! whole-core downloads both ways, sparse gets, live appends, and a Node peer that does not know
//! the key getting nothing.

use std::sync::Arc;
use std::time::Duration;

use corestore_hypercore::Hypercore;
use corestore_interop::ScriptPeer;
use corestore_keys::{CoreKey, KeyPair};
use corestore_replicate::protocol::ReplicatorConfig;
use corestore_replicate::{
    GetOptions, Replication, ReplicationError, ReplicationOptions, Role, SharedCore,
};
use corestore_storage::{MemoryStorage, Storage};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

/// The block both sides write: see the script's header.
fn block(i: u64) -> Vec<u8> {
    let extra = (i * 7919 % 2048) as usize;
    let mut b = i.to_le_bytes().to_vec();
    b.extend((0..extra).map(|j| ((i as usize * 13 + j) & 255) as u8));
    b
}

async fn rust_writer(blocks: u64) -> SharedCore {
    let storage = Storage::open(Arc::new(MemoryStorage::new())).await.unwrap();
    let mut core = Hypercore::create(&storage, KeyPair::generate(), None).await.unwrap();
    let data: Vec<Vec<u8>> = (0..blocks).map(block).collect();
    for chunk in data.chunks(500) {
        core.append(chunk).await.unwrap();
    }
    SharedCore::new(core, ReplicatorConfig::default())
}

async fn rust_reader(key: &str, config: ReplicatorConfig) -> SharedCore {
    let storage = Storage::open(Arc::new(MemoryStorage::new())).await.unwrap();
    let key = CoreKey::from_bytes(hex::decode(key).unwrap().try_into().unwrap());
    SharedCore::new(Hypercore::open(&storage, key, None).await.unwrap(), config)
}

/// Connects Rust to the Node peer, Rust as `role` (the Node side takes the other role).
async fn connect(node: &mut ScriptPeer, core: &SharedCore, role: Role) -> Replication {
    let socket = match role {
        Role::Initiator => {
            let port = node.call(json!({"cmd": "listen"})).await["port"].as_u64().unwrap();
            TcpStream::connect(("127.0.0.1", port as u16)).await.unwrap()
        }
        Role::Responder => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (accepted, reply) =
                tokio::join!(listener.accept(), node.call(json!({"cmd": "connect", "port": port})));
            assert_eq!(reply["ok"], true);
            accepted.unwrap().0
        }
    };
    let conn = Replication::spawn(socket, role, ReplicationOptions::default());
    conn.attach(core);
    conn
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f).await.expect("finished within 120 s")
}

async fn node_writes_rust_downloads(role: Role, test: &str) {
    let Some(mut node) = ScriptPeer::spawn(test, "replicate-peer.js") else { return };
    let created = node.call(json!({"cmd": "create", "blocks": 10_000})).await;
    let r = rust_reader(created["key"].as_str().unwrap(), ReplicatorConfig::default()).await;
    let _conn = connect(&mut node, &r, role).await;
    let download = r.download(0, Some(10_000)).await;
    within(download.done()).await;
    let core = r.read().await;
    assert_eq!(core.length(), 10_000);
    for i in 0..10_000 {
        assert_eq!(core.get(i).await.unwrap(), Some(block(i)), "block {i}");
    }
    drop(core);
    node.call(json!({"cmd": "exit"})).await;
}

/// A Node peer whose hypercore channels open under the older protocol name `"hypercore"`
/// (aliased to `"hypercore/alpha"`): Rust pairs them through its alias, both ways, as each role.
#[tokio::test]
async fn a_peer_opening_the_older_hypercore_name_replicates_both_ways() {
    let test = "a_peer_opening_the_older_hypercore_name_replicates_both_ways";
    for role in [Role::Initiator, Role::Responder] {
        let Some(mut node) = ScriptPeer::spawn(test, "replicate-peer.js") else { return };
        assert_eq!(node.call(json!({"cmd": "legacyName"})).await["ok"], true);
        let created = node.call(json!({"cmd": "create", "blocks": 300})).await;
        let r = rust_reader(created["key"].as_str().unwrap(), ReplicatorConfig::default()).await;
        let w = rust_writer(200).await;
        let conn = connect(&mut node, &r, role).await;
        within(r.download(0, Some(300)).await.done()).await;
        for i in [0, 150, 299] {
            assert_eq!(r.read().await.get(i).await.unwrap(), Some(block(i)), "block {i}");
        }
        // The other way on the same connection: Node reads a Rust core.
        node.call(json!({"cmd": "open", "key": w.key().to_hex()})).await;
        conn.attach(&w);
        node.call(json!({"cmd": "waitPeer"})).await;
        let done = node.call(json!({"cmd": "download", "start": 0, "end": 200})).await;
        assert_eq!(done["mismatches"], 0);
        let info = node.call(json!({"cmd": "info"})).await;
        assert!(info["legacyChannels"].as_u64().unwrap() >= 2, "{info}");
        node.call(json!({"cmd": "exit"})).await;
    }
}

#[tokio::test]
async fn node_writes_10k_blocks_rust_initiator_downloads_them() {
    node_writes_rust_downloads(
        Role::Initiator,
        "node_writes_10k_blocks_rust_initiator_downloads_them",
    )
    .await;
}

#[tokio::test]
async fn node_writes_10k_blocks_rust_responder_downloads_them() {
    node_writes_rust_downloads(
        Role::Responder,
        "node_writes_10k_blocks_rust_responder_downloads_them",
    )
    .await;
}

async fn rust_writes_node_downloads(role: Role, test: &str) {
    let Some(mut node) = ScriptPeer::spawn(test, "replicate-peer.js") else { return };
    let w = rust_writer(10_000).await;
    node.call(json!({"cmd": "open", "key": w.key().to_hex()})).await;
    let _conn = connect(&mut node, &w, role).await;
    node.call(json!({"cmd": "waitPeer"})).await;
    let update = node.call(json!({"cmd": "update"})).await;
    assert_eq!(update["length"], 10_000);
    let done = node.call(json!({"cmd": "download", "start": 0, "end": 10_000})).await;
    assert_eq!(done["mismatches"], 0, "every block verified by Node and identical");
    let info = node.call(json!({"cmd": "info"})).await;
    assert_eq!(info["contiguousLength"], 10_000);
    node.call(json!({"cmd": "exit"})).await;
}

#[tokio::test]
async fn rust_writes_10k_blocks_node_downloads_them_rust_initiator() {
    rust_writes_node_downloads(
        Role::Initiator,
        "rust_writes_10k_blocks_node_downloads_them_rust_initiator",
    )
    .await;
}

#[tokio::test]
async fn rust_writes_10k_blocks_node_downloads_them_rust_responder() {
    rust_writes_node_downloads(
        Role::Responder,
        "rust_writes_10k_blocks_node_downloads_them_rust_responder",
    )
    .await;
}

#[tokio::test]
async fn sparse_both_ways_only_the_asked_blocks_move() {
    let Some(mut node) =
        ScriptPeer::spawn("sparse_both_ways_only_the_asked_blocks_move", "replicate-peer.js")
    else {
        return;
    };
    // Rust reads a few blocks of a Node core.
    let created = node.call(json!({"cmd": "create", "blocks": 3000})).await;
    let r = rust_reader(created["key"].as_str().unwrap(), ReplicatorConfig::default()).await;
    let _conn = connect(&mut node, &r, Role::Initiator).await;
    let wanted = [2999u64, 0, 1234, 77, 2048];
    for &i in &wanted {
        let got = within(r.get(i, GetOptions::default())).await.unwrap();
        assert_eq!(got, Some(block(i)), "block {i}");
    }
    let core = r.read().await;
    let mut present: Vec<u64> = (0..core.length()).filter(|&i| core.has(i)).collect();
    present.sort_unstable();
    let mut expected = wanted.to_vec();
    expected.sort_unstable();
    assert_eq!(present, expected);
    drop(core);
    node.call(json!({"cmd": "exit"})).await;

    // Node reads a few blocks of a Rust core.
    let Some(mut node) =
        ScriptPeer::spawn("sparse_both_ways_only_the_asked_blocks_move", "replicate-peer.js")
    else {
        return;
    };
    let w = rust_writer(3000).await;
    node.call(json!({"cmd": "open", "key": w.key().to_hex()})).await;
    let _conn = connect(&mut node, &w, Role::Responder).await;
    for &i in &wanted {
        let got = node.call(json!({"cmd": "get", "index": i})).await;
        assert_eq!(got["value"], hex::encode(block(i)), "block {i}");
    }
    let present = node.call(json!({"cmd": "present"})).await;
    assert_eq!(present["present"], json!(expected));
    node.call(json!({"cmd": "exit"})).await;
}

#[tokio::test]
async fn live_appends_flow_while_the_stream_stays_open() {
    let Some(mut node) =
        ScriptPeer::spawn("live_appends_flow_while_the_stream_stays_open", "replicate-peer.js")
    else {
        return;
    };
    // Node writer → Rust eager reader.
    let created = node.call(json!({"cmd": "create", "blocks": 10})).await;
    let eager = ReplicatorConfig { eager: true, ..ReplicatorConfig::default() };
    let r = rust_reader(created["key"].as_str().unwrap(), eager).await;
    let _conn = connect(&mut node, &r, Role::Responder).await;
    for round in 1..=3u64 {
        node.call(json!({"cmd": "append", "blocks": 25})).await;
        let want = 10 + 25 * round;
        within(async {
            let mut events = r.subscribe();
            while r.read().await.contiguous_length() < want {
                let _ = events.recv().await;
            }
        })
        .await;
    }
    assert_eq!(r.get(84, GetOptions::default()).await.unwrap(), Some(block(84)));
    node.call(json!({"cmd": "exit"})).await;

    // Rust writer → Node reader.
    let Some(mut node) =
        ScriptPeer::spawn("live_appends_flow_while_the_stream_stays_open", "replicate-peer.js")
    else {
        return;
    };
    let w = rust_writer(10).await;
    node.call(json!({"cmd": "open", "key": w.key().to_hex()})).await;
    let _conn = connect(&mut node, &w, Role::Initiator).await;
    node.call(json!({"cmd": "waitPeer"})).await;
    assert_eq!(node.call(json!({"cmd": "update"})).await["length"], 10);
    for round in 1..=3u64 {
        let blocks: Vec<Vec<u8>> = (0..25).map(|i| block(10 + 25 * (round - 1) + i)).collect();
        w.append(&blocks).await.unwrap();
        let got = node.call(json!({"cmd": "waitLength", "length": 10 + 25 * round})).await;
        assert_eq!(got["length"], 10 + 25 * round);
    }
    let done = node.call(json!({"cmd": "download", "start": 0, "end": 85})).await;
    assert_eq!(done["mismatches"], 0);
    node.call(json!({"cmd": "exit"})).await;
}

#[tokio::test]
async fn a_node_peer_without_the_key_gets_nothing_from_rust() {
    let Some(mut node) = ScriptPeer::spawn(
        "a_node_peer_without_the_key_gets_nothing_from_rust",
        "replicate-peer.js",
    ) else {
        return;
    };
    let w = rust_writer(100).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dk = w.discovery_key().to_hex();
    let serve = {
        let w = w.clone();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let conn = Replication::spawn(socket, Role::Responder, ReplicationOptions::default());
            conn.attach(&w);
            conn.finished().await
        })
    };
    let seen = node.call(json!({"cmd": "spy", "port": port, "discoveryKey": dk})).await;
    assert_eq!(seen["messages"], json!([]), "not one replication message reached it");
    assert_eq!(seen["destroyed"], true, "the connection was ended");
    let ended = within(serve).await.unwrap();
    assert!(
        matches!(
            ended,
            Err(ReplicationError::Peer(
                corestore_replicate::protocol::PeerError::InvalidCapability
            ))
        ),
        "{ended:?}"
    );
    node.call(json!({"cmd": "exit"})).await;
}

/// Waits until `r` is on fork 1 with all 170 blocks of the Node writer's new fork (200 blocks
/// truncated to 150, then 20 blocks salted with 7), and checks every one of them.
async fn follows_the_salted_fork(r: &SharedCore) {
    let followed = tokio::time::timeout(Duration::from_secs(120), async {
        let mut events = r.subscribe();
        loop {
            let head = r.head();
            if head.fork == 1 && head.length == 170 && head.contiguous_length == 170 {
                break;
            }
            let _ = events.recv().await;
        }
    })
    .await;
    assert!(followed.is_ok(), "the replica did not follow the fork: {:?}", r.head());
    let core = r.read().await;
    for i in 0..170 {
        let mut want = block(i);
        if i >= 150 {
            want.push(7);
        }
        assert_eq!(core.get(i).await.unwrap(), Some(want), "block {i}");
    }
}

/// A Node writer forks while the Rust replica is away (200 blocks, truncated to 150, then 20
/// other blocks): back online, the replica gets a fork proof whose roots differ from its own
/// tree, so it bisects the new tree with hash requests to Node to find the common ancestor
/// (the race the test below hits only now and then, made certain).
#[tokio::test]
async fn a_replica_bisects_a_node_fork_made_while_it_was_away() {
    let test = "a_replica_bisects_a_node_fork_made_while_it_was_away";
    let eager = ReplicatorConfig { eager: true, ..ReplicatorConfig::default() };
    let Some(mut node) = ScriptPeer::spawn(test, "replicate-peer.js") else { return };
    let created = node.call(json!({"cmd": "create", "blocks": 200})).await;
    let r = rust_reader(created["key"].as_str().unwrap(), eager).await;
    let conn = connect(&mut node, &r, Role::Initiator).await;
    let download = r.download(0, Some(200)).await;
    within(download.done()).await;
    drop(download);
    conn.close();
    let _ = conn.finished().await;
    node.call(json!({"cmd": "truncate", "length": 150})).await;
    node.call(json!({"cmd": "append", "blocks": 20, "salt": 7})).await;
    let _conn = connect(&mut node, &r, Role::Initiator).await;
    follows_the_salted_fork(&r).await;
    node.call(json!({"cmd": "exit"})).await;
}

#[tokio::test]
async fn forks_a_replica_follows_the_writer_both_ways() {
    let test = "forks_a_replica_follows_the_writer_both_ways";
    let eager = ReplicatorConfig { eager: true, ..ReplicatorConfig::default() };
    // Node writes, truncates and appends again; the Rust replica follows.
    let Some(mut node) = ScriptPeer::spawn(test, "replicate-peer.js") else { return };
    let created = node.call(json!({"cmd": "create", "blocks": 200})).await;
    let r = rust_reader(created["key"].as_str().unwrap(), eager.clone()).await;
    let _conn = connect(&mut node, &r, Role::Initiator).await;
    let download = r.download(0, Some(200)).await;
    within(download.done()).await;
    drop(download);
    let truncated = node.call(json!({"cmd": "truncate", "length": 150})).await;
    assert_eq!((truncated["length"].as_u64(), truncated["fork"].as_u64()), (Some(150), Some(1)));
    // Different blocks 150..170 on fork 1: block(i) followed by a salt byte.
    node.call(json!({"cmd": "append", "blocks": 20, "salt": 7})).await;
    follows_the_salted_fork(&r).await;
    let core = r.read().await;
    assert!(!core.has(170) && core.length() == 170, "the old fork's tail is gone");
    drop(core);
    node.call(json!({"cmd": "exit"})).await;

    // Rust writes, truncates and appends different blocks; the Node replica follows.
    let Some(mut node) = ScriptPeer::spawn(test, "replicate-peer.js") else { return };
    let w = rust_writer(200).await;
    node.call(json!({"cmd": "open", "key": w.key().to_hex()})).await;
    let _conn = connect(&mut node, &w, Role::Responder).await;
    node.call(json!({"cmd": "waitPeer"})).await;
    node.call(json!({"cmd": "update"})).await;
    assert_eq!(
        node.call(json!({"cmd": "download", "start": 0, "end": 200})).await["mismatches"],
        0
    );
    w.truncate(120).await.unwrap();
    let again: Vec<Vec<u8>> = (120..160).map(|i| [block(i), vec![7]].concat()).collect();
    w.append(&again).await.unwrap();
    let info = within(async {
        loop {
            let info = node.call(json!({"cmd": "update"})).await;
            if info["fork"] == 1 && info["length"] == 160 {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(info["fork"], 1);
    node.call(json!({"cmd": "download", "start": 0, "end": 160})).await;
    let kept = node.call(json!({"cmd": "check", "start": 0, "end": 120})).await;
    assert_eq!(kept["mismatches"], 0, "blocks before the ancestor are kept");
    for i in [120u64, 140, 159] {
        let got = node.call(json!({"cmd": "get", "index": i})).await;
        assert_eq!(got["value"], hex::encode([block(i), vec![7]].concat()), "block {i} of fork 1");
    }
    node.call(json!({"cmd": "exit"})).await;
}
