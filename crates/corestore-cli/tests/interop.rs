//! `corestore serve` and `corestore fetch` against a live Node corestore 7 peer
//! (tests/interop/scripts/replicate-peer.js), both directions, over loopback TCP.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use common::{fields, js_block, json_in, ok_in, Server};
use corestore_interop::Node;
use serde_json::{json, Value};

/// The Node peer, driven by one JSON command per line.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(node: &Node) -> Self {
        let mut child = node
            .command("replicate-peer.js")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self { child, stdin, stdout }
    }

    fn send(&mut self, command: &Value) -> Value {
        writeln!(self.stdin, "{command}").expect("write to node");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from node");
        let answer: Value = serde_json::from_str(&line).expect("node answers JSON");
        assert!(answer.get("error").is_none(), "node {command}: {answer}");
        answer
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({ "cmd": "exit" }));
        let _ = self.child.wait();
    }
}

const BLOCKS: u64 = 1500;

#[test]
fn fetch_downloads_from_a_node_server() {
    let Some(node) = Node::get("fetch_downloads_from_a_node_server") else { return };
    let mut peer = Peer::start(&node);
    let created = peer.send(&json!({ "cmd": "create", "blocks": BLOCKS }));
    let key = created["key"].as_str().unwrap().to_owned();
    let port = peer.send(&json!({ "cmd": "listen" }))["port"].as_u64().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();

    let whole = tmp.path().join("whole");
    let fetched = json_in(&whole, &["fetch", &key, "--connect", &addr], b"");
    assert_eq!(fields(&fetched), ["key", "length", "byteLength", "ms"]);
    assert_eq!(fetched["key"].as_str(), Some(key.as_str()));
    assert_eq!(fetched["length"], BLOCKS);
    let want: Vec<u8> = (0..BLOCKS).flat_map(js_block).collect();
    assert_eq!(fetched["byteLength"], want.len());
    assert!(ok_in(&whole, &["cat", &key], b"") == want, "every block as Node wrote it");

    let sparse = tmp.path().join("sparse");
    let args = ["fetch", &key, "--connect", &addr, "--start", "700", "--end", "750"];
    assert_eq!(json_in(&sparse, &args, b"")["length"], BLOCKS);
    let want: Vec<u8> = (700..750).flat_map(js_block).collect();
    assert!(ok_in(&sparse, &["cat", &key, "--start", "700", "--end", "750"], b"") == want);
    assert_eq!(json_in(&sparse, &["info", &key], b"")["contiguousLength"], 0);

    // Node does not hold this core: said so after the bounded wait.
    let mut short = common::cmd();
    short.env("CORESTORE_FETCH_TIMEOUT_MS", "1500");
    let unknown = "cd".repeat(32);
    let out = common::run_cmd(short, &sparse, &["fetch", &unknown, "--connect", &addr], b"");
    common::assert_one_line_error(&out, "does not have core");
}

#[test]
fn a_node_peer_downloads_from_corestore_serve() {
    let Some(node) = Node::get("a_node_peer_downloads_from_corestore_serve") else { return };
    let tmp = tempfile::tempdir().unwrap();
    // The store is written through the library (the blocks hold newlines, so `append` would
    // split them), then closed; `serve` loads the core from storage when Node asks for it.
    let key = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = corestore::Corestore::open(tmp.path()).await.unwrap();
            let core = store.get(corestore::CoreRef::name("served")).await.unwrap();
            let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(js_block).collect();
            for batch in blocks.chunks(500) {
                core.append_batch(batch).await.unwrap();
            }
            let key = core.key().to_hex();
            store.close().await.unwrap();
            key
        })
    };
    let server = Server::start(tmp.path());
    let port = server.addr.rsplit(':').next().unwrap().parse::<u64>().unwrap();

    let mut peer = Peer::start(&node);
    peer.send(&json!({ "cmd": "open", "key": key }));
    peer.send(&json!({ "cmd": "connect", "port": port }));
    peer.send(&json!({ "cmd": "update" }));
    let got = peer.send(&json!({ "cmd": "download", "start": 0, "end": BLOCKS }));
    assert_eq!(got["mismatches"], 0, "Node verified and stored every block");
    assert_eq!(peer.send(&json!({ "cmd": "info" }))["length"], BLOCKS);
}
