//! Whole-store interop with JavaScript corestore 7.12.5 (`tests/interop/scripts/store-peer.js`):
//! a Rust store and a Node store, each with named cores in two namespaces, replicate over one
//! TCP stream in both directions; each side gets exactly the cores whose keys it was given, and
//! a core the Node side opens later joins the live stream.

use std::time::Duration;

use corestore::{CoreKey, CoreRef, Corestore};
use corestore_interop::ScriptPeer;
use futures::TryStreamExt;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

fn key(hex_key: &Value) -> CoreKey {
    CoreKey::from_bytes(hex::decode(hex_key.as_str().unwrap()).unwrap().try_into().unwrap())
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("finished within 60 s")
}

async fn whole_store(rust_initiator: bool, test: &str) {
    let Some(mut node) = ScriptPeer::spawn(test, "store-peer.js") else { return };
    // Node: gamma/x and delta/y; Rust will be given x only.
    let made = node
        .call(json!({"cmd": "create", "cores": [
            {"namespace": ["gamma"], "name": "x", "blocks": 40},
            {"namespace": ["delta"], "name": "y", "blocks": 40},
        ]}))
        .await;
    let (x, y) = (&made["cores"][0], &made["cores"][1]);
    // Rust: alpha/one, alpha/two, beta/one; Node will be given alpha/one and beta/one.
    let store = Corestore::in_memory().await.unwrap();
    let mut mine = vec![];
    for (ns, name) in [("alpha", "one"), ("alpha", "two"), ("beta", "one")] {
        let core = store.namespace(ns).unwrap().get(CoreRef::name(name)).await.unwrap();
        let blocks: Vec<Vec<u8>> =
            (0..50).map(|i| format!("{ns}/{name}:{i}").into_bytes()).collect();
        core.append_batch(&blocks).await.unwrap();
        mine.push(core);
    }
    let x_core = store.get(key(&x["key"])).await.unwrap();
    node.call(json!({"cmd": "open", "keys": [mine[0].key().to_hex(), mine[2].key().to_hex()]}))
        .await;

    // One TCP stream.
    let socket = if rust_initiator {
        let port = node.call(json!({"cmd": "listen"})).await["port"].as_u64().unwrap();
        TcpStream::connect(("127.0.0.1", port as u16)).await.unwrap()
    } else {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (accepted, reply) =
            tokio::join!(listener.accept(), node.call(json!({"cmd": "connect", "port": port})));
        assert_eq!(reply["ok"], true);
        accepted.unwrap().0
    };
    let _stream = store.replicate(socket, rust_initiator).unwrap();

    // Rust gets x; Node gets alpha/one and beta/one (blocks "alpha/one:i" are what Rust wrote).
    for i in [0u64, 39, 17] {
        let got = within(x_core.get(i)).await.unwrap();
        assert_eq!(got, Some(format!("x:{i}").into_bytes()), "x block {i}");
    }
    for (core, tag) in [(&mine[0], "alpha/one"), (&mine[2], "beta/one")] {
        let fetched = node
            .call(json!({"cmd": "fetch", "key": core.key().to_hex(), "name": tag, "length": 50}))
            .await;
        assert_eq!(fetched["mismatches"], 0, "{tag} reached Node intact");
    }

    // A core Node opens after the stream is up joins it: Rust opens it by key and waits for a
    // block Node appends afterwards.
    let late_key = {
        let made = node
            .call(json!({"cmd": "create", "cores": [{"namespace": ["gamma"], "name": "late", "blocks": 0}]}))
            .await;
        made["cores"][0].clone()
    };
    let late = store.get(key(&late_key["key"])).await.unwrap();
    let waiting = tokio::spawn({
        let late = late.clone();
        async move { late.get(2).await }
    });
    node.call(
        json!({"cmd": "create", "cores": [{"namespace": ["gamma"], "name": "late", "blocks": 3}]}),
    )
    .await;
    assert_eq!(within(waiting).await.unwrap().unwrap(), Some(b"late:2".to_vec()));

    // Exactly the cores each side was given.
    let listed: Vec<corestore::DiscoveryKey> = store.list().try_collect().await.unwrap();
    let mut rust_list: Vec<String> = listed.iter().map(corestore::DiscoveryKey::to_hex).collect();
    rust_list.sort();
    let mut expected: Vec<String> = mine.iter().map(|c| c.discovery_key().to_hex()).collect();
    expected.push(x["discoveryKey"].as_str().unwrap().to_owned());
    expected.push(late_key["discoveryKey"].as_str().unwrap().to_owned());
    expected.sort();
    assert_eq!(rust_list, expected, "Rust holds its cores plus x and late, never y");
    assert!(!rust_list.contains(&y["discoveryKey"].as_str().unwrap().to_owned()));
    let node_list = node.call(json!({"cmd": "list"})).await;
    let mut node_expected = vec![
        x["discoveryKey"].as_str().unwrap().to_owned(),
        y["discoveryKey"].as_str().unwrap().to_owned(),
        late_key["discoveryKey"].as_str().unwrap().to_owned(),
        mine[0].discovery_key().to_hex(),
        mine[2].discovery_key().to_hex(),
    ];
    node_expected.sort();
    assert_eq!(node_list["discoveryKeys"], json!(node_expected), "Node never got alpha/two");
    node.call(json!({"cmd": "exit"})).await;
}

#[tokio::test]
async fn a_rust_store_and_a_node_store_replicate_over_one_stream_rust_initiator() {
    whole_store(true, "a_rust_store_and_a_node_store_replicate_over_one_stream_rust_initiator")
        .await;
}

#[tokio::test]
async fn a_rust_store_and_a_node_store_replicate_over_one_stream_rust_responder() {
    whole_store(false, "a_rust_store_and_a_node_store_replicate_over_one_stream_rust_responder")
        .await;
}
