//! Cross-implementation tests against JavaScript hypercore 11.39.5 (through
//! `tests/interop/scripts/hypercore-oracle.js`): a core written by Node is rebuilt and verified by
//! Rust, Rust writes the same bytes, Node's proofs apply to a Rust sparse replica, and Rust's
//! proofs verify in Node.

mod common;

use common::{block_request, memory, missing_nodes, upgrade_request};
use corestore_hypercore::{
    Data, Hypercore, MultiSignature, Node, NodeRequest, Request, SignedTree, Tree, Verifier,
};
use corestore_interop::Node as NodeJs;
use corestore_keys::{CoreKey, KeyPair, Manifest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

fn request_json(r: &Request) -> Value {
    let part = |p: Option<NodeRequest>| p.map(|p| json!({ "index": p.index, "nodes": p.nodes }));
    json!({
        "id": r.id,
        "fork": r.fork,
        "block": part(r.block),
        "hash": part(r.hash),
        "seek": r.seek.map(|s| json!({ "bytes": s.bytes, "padding": s.padding })),
        "upgrade": r.upgrade.map(|u| json!({ "start": u.start, "length": u.length })),
        "manifest": r.manifest,
        "priority": r.priority,
    })
}

fn node_json(n: &Node) -> Value {
    json!({ "index": n.index, "size": n.size, "hash": hex::encode(n.hash) })
}

/// A Rust writer with the blocks appended in the given batches, and the same core written by
/// Node, answering `requests`.
struct Pair {
    rust: Hypercore,
    blocks: Vec<Vec<u8>>,
    batches: Vec<u64>,
    seed: [u8; 32],
}

async fn pair(rng: &mut StdRng, count: usize) -> Pair {
    let seed: [u8; 32] = rng.gen();
    let blocks: Vec<Vec<u8>> =
        (0..count).map(|_| (0..rng.gen_range(0..90)).map(|_| rng.gen()).collect()).collect();
    let mut batches = Vec::new();
    let mut left = count as u64;
    while left > 0 {
        let n = rng.gen_range(1..=left.min(17));
        batches.push(n);
        left -= n;
    }
    let mut rust =
        Hypercore::create(&memory().await, KeyPair::from_seed(&seed), None).await.unwrap();
    let mut at = 0;
    for &n in &batches {
        rust.append(&blocks[at..at + n as usize]).await.unwrap();
        at += n as usize;
    }
    Pair { rust, blocks, batches, seed }
}

fn write(node: &NodeJs, p: &Pair, requests: &[Request]) -> Value {
    node.run_json(
        "hypercore-oracle.js",
        &["write"],
        &json!({
            "seed": hex::encode(p.seed),
            "blocks": p.blocks.iter().map(hex::encode).collect::<Vec<_>>(),
            "batches": p.batches,
            "requests": requests.iter().map(request_json).collect::<Vec<_>>(),
        }),
    )
}

/// The request sequence a downloading peer would send, with the proofs Rust answers it with,
/// applied to a Rust replica as it goes (so `nodes` counts are the real missing counts).
async fn download(source: &Hypercore, rng: &mut StdRng) -> (Vec<Request>, Vec<Data>) {
    let mut r = Hypercore::open(&memory().await, *source.key(), None).await.unwrap();
    let length = source.length();
    let mut requests = Vec::new();
    let mut first = upgrade_request(&r, 1, rng.gen_range(1..=length), true);
    first.block =
        Some(NodeRequest { index: rng.gen_range(0..first.upgrade.unwrap().length), nodes: 0 });
    requests.push(first);
    let mut proofs = Vec::new();
    for id in 1..25u64 {
        let req = if id == 1 {
            requests[0].clone()
        } else if id % 8 == 0 {
            let index = rng.gen_range(0..length);
            Request {
                id,
                hash: Some(NodeRequest { index: 2 * index, nodes: missing_nodes(&r, index).await }),
                ..Request::default()
            }
        } else {
            let mut req = block_request(&r, id, rng.gen_range(0..length)).await;
            req.priority = id % 3;
            req
        };
        let data = source.create_proof(&req).await.unwrap();
        r.receive(data.clone()).await.unwrap();
        if id > 1 {
            requests.push(req);
        }
        proofs.push(data);
    }
    (requests, proofs)
}

#[tokio::test]
async fn node_written_core_verifies_and_matches_rust() {
    let Some(node) = NodeJs::get("node_written_core_verifies_and_matches_rust") else { return };
    let mut rng = StdRng::seed_from_u64(rand::random());
    for count in [1usize, 3, 40, 130] {
        let p = pair(&mut rng, count).await;
        let (requests, rust_proofs) = download(&p.rust, &mut rng).await;
        let js = write(&node, &p, &requests);

        // Rust rebuilds the JavaScript tree from the blocks and verifies its signature.
        let key: CoreKey = js["key"].as_str().unwrap().parse().unwrap();
        let manifest =
            Manifest::decode(&hex::decode(js["manifest"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(manifest.hash(), key);
        assert_eq!(key.discovery_key().to_hex(), js["discoveryKey"]);
        let mut tree = Tree::default();
        let mut nodes = Vec::new();
        for b in &p.blocks {
            tree.append(b, &mut nodes);
        }
        assert_eq!(hex::encode(tree.hash()), js["treeHash"]);
        assert_eq!(json!(tree.length), js["length"]);
        assert_eq!(json!(tree.byte_length), js["byteLength"]);
        assert_eq!(json!(tree.roots.iter().map(node_json).collect::<Vec<_>>()), js["roots"]);
        let signature = hex::decode(js["signature"].as_str().unwrap()).unwrap();
        assert_eq!(signature.len(), 68);
        assert_eq!(MultiSignature::decode(&signature).unwrap().proofs.len(), 1);
        let verifier = Verifier::new(key, &manifest);
        let signed = SignedTree { tree_hash: tree.hash(), length: tree.length, fork: 0 };
        assert!(verifier.verify(&signed, &signature));
        assert!(!verifier.verify(&SignedTree { fork: 1, ..signed }, &signature));

        // Rust wrote the same core: key, manifest, signature and every tree node.
        assert_eq!(*p.rust.key(), key);
        assert_eq!(p.rust.manifest(), Some(&manifest));
        assert_eq!(p.rust.signature(), &signature[..]);
        for n in js["nodes"].as_array().unwrap() {
            let index = n["index"].as_u64().unwrap();
            let ours = p.rust.tree_node(index).await.unwrap().unwrap();
            assert_eq!(node_json(&ours), *n);
        }

        // JavaScript's proofs are byte-identical to Rust's and apply to a Rust sparse replica.
        let js_proofs = js["proofs"].as_array().unwrap();
        let mut r = Hypercore::open(&memory().await, key, None).await.unwrap();
        for ((req, ours), theirs) in requests.iter().zip(&rust_proofs).zip(js_proofs) {
            let theirs = theirs.as_str().unwrap_or_else(|| panic!("no data for {req:?}: {theirs}"));
            assert_eq!(hex::encode(ours.encode()), theirs, "proof for {req:?}");
            let data = Data::decode(&hex::decode(theirs).unwrap()).unwrap();
            let applied = r.receive(data).await.unwrap();
            if let Some(b) = req.block {
                assert_eq!(applied.block, Some(b.index));
                assert_eq!(
                    r.get(b.index).await.unwrap().as_ref(),
                    Some(&p.blocks[b.index as usize])
                );
            }
        }
        assert_eq!((r.length(), r.tree_hash()), (p.rust.length(), p.rust.tree_hash()));
    }
}

#[tokio::test]
async fn rust_proofs_verify_in_node() {
    let Some(node) = NodeJs::get("rust_proofs_verify_in_node") else { return };
    let mut rng = StdRng::seed_from_u64(rand::random());
    for count in [2usize, 77] {
        let p = pair(&mut rng, count).await;
        let (requests, proofs) = download(&p.rust, &mut rng).await;
        let input: Vec<Value> = requests
            .iter()
            .zip(&proofs)
            .map(|(r, d)| json!({ "request": request_json(r), "data": hex::encode(d.encode()) }))
            .collect();
        let out = node.run_json(
            "hypercore-oracle.js",
            &["verify"],
            &json!({ "key": p.rust.key().to_hex(), "manifest": null, "proofs": input }),
        );
        for ((r, d), result) in requests.iter().zip(&proofs).zip(out["results"].as_array().unwrap())
        {
            assert_eq!(result["ok"], true, "{r:?}: {result}");
            assert_eq!(result["length"], p.rust.length());
            let value = d.block.as_ref().map(|b| hex::encode(&b.value));
            assert_eq!(result["value"], json!(value));
        }
        // A tampered Rust proof is refused by Node too.
        let mut bad = proofs[1].clone();
        if let Some(b) = bad.block.as_mut() {
            b.value.push(1);
        }
        let mut input = vec![
            json!({ "request": request_json(&requests[0]), "data": hex::encode(proofs[0].encode()) }),
        ];
        input.push(
            json!({ "request": request_json(&requests[1]), "data": hex::encode(bad.encode()) }),
        );
        let out = node.run_json(
            "hypercore-oracle.js",
            &["verify"],
            &json!({ "key": p.rust.key().to_hex(), "manifest": null, "proofs": input }),
        );
        assert_eq!(out["results"][0]["ok"], true);
        assert_eq!(out["results"][1]["ok"], false, "{out}");
    }
}

/// Seek proofs (the two shapes hypercore's replicator sends: seek + upgrade, and hash + seek)
/// are byte-identical to JavaScript's and verify on a Rust replica.
#[tokio::test]
async fn seek_proofs_match_javascript() {
    let Some(node) = NodeJs::get("seek_proofs_match_javascript") else { return };
    let mut rng = StdRng::seed_from_u64(rand::random());
    let p = pair(&mut rng, 45).await;
    let total = p.rust.byte_length();
    let mut requests = Vec::new();
    for id in 1..=12u64 {
        let bytes = rng.gen_range(0..=total);
        let seek = Some(corestore_hypercore::SeekRequest { bytes, padding: 0 });
        let req = if id % 2 == 1 {
            Request {
                id,
                seek,
                upgrade: Some(corestore_hypercore::UpgradeRequest {
                    start: 0,
                    length: p.rust.length(),
                }),
                ..Request::default()
            }
        } else {
            // hash + seek inside one full root, as `_requestSeek` asks once it has the length.
            let root = p.rust.roots()[0];
            let (start, end) = (
                corestore_hypercore::flat::left_span(root.index) / 2,
                corestore_hypercore::flat::right_span(root.index) / 2 + 1,
            );
            let index = rng.gen_range(start..end);
            let nodes = u64::from(corestore_hypercore::flat::depth(start + end - 1));
            Request {
                id,
                seek: Some(corestore_hypercore::SeekRequest {
                    bytes: rng.gen_range(0..root.size),
                    padding: 0,
                }),
                hash: Some(NodeRequest { index: 2 * index, nodes }),
                ..Request::default()
            }
        };
        requests.push(req);
    }
    let js = write(&node, &p, &requests);
    let mut trusted =
        Hypercore::open(&memory().await, *p.rust.key(), p.rust.manifest().cloned()).await.unwrap();
    let full = Request {
        id: 1,
        upgrade: Some(corestore_hypercore::UpgradeRequest { start: 0, length: p.rust.length() }),
        ..Request::default()
    };
    trusted.receive(p.rust.create_proof(&full).await.unwrap()).await.unwrap();
    let mut seeks = [0, 0];
    for (req, theirs) in requests.iter().zip(js["proofs"].as_array().unwrap()) {
        let ours = p.rust.create_proof(req).await;
        match theirs.as_str() {
            Some(theirs) => {
                let ours = ours.unwrap_or_else(|e| panic!("{req:?}: {e}"));
                assert_eq!(hex::encode(ours.encode()), theirs, "seek proof for {req:?}");
                if ours.seek.is_some() {
                    seeks[usize::from(req.hash.is_some())] += 1;
                }
                if req.upgrade.is_none() {
                    trusted.verify(ours).await.unwrap_or_else(|e| panic!("{req:?}: {e}"));
                } else {
                    let r = Hypercore::open(&memory().await, *p.rust.key(), None).await.unwrap();
                    let mut ours = ours;
                    ours.manifest = p.rust.manifest().cloned();
                    r.verify(ours).await.unwrap_or_else(|e| panic!("{req:?}: {e}"));
                }
            }
            None => {
                assert!(ours.is_err(), "JavaScript refused {req:?} ({theirs}) but Rust answered");
            }
        }
    }
}

/// The fork path against JavaScript: Node truncates (fork 1) and appends again; its fork proof and
/// its answers to the bisection's `hash` requests are byte-identical to Rust's, and drive a Rust
/// replica to the same common ancestor and head.
#[tokio::test]
async fn node_fork_proofs_drive_a_rust_reorg() {
    let Some(node) = NodeJs::get("node_fork_proofs_drive_a_rust_reorg") else { return };
    let mut rng = StdRng::seed_from_u64(rand::random());
    for (count, keep, more) in [(40usize, 23u64, 10usize), (17, 0, 3), (30, 16, 1)] {
        let p = pair(&mut rng, count).await;
        // A Rust replica holding the whole old fork.
        let mut r = Hypercore::open(&memory().await, *p.rust.key(), None).await.unwrap();
        let up = upgrade_request(&r, 1, p.rust.length(), true);
        r.receive(p.rust.create_proof(&up).await.unwrap()).await.unwrap();
        for i in 0..p.rust.length() {
            r.receive(p.rust.create_proof(&block_request(&r, 1, i).await).await.unwrap())
                .await
                .unwrap();
        }
        // The same rewrite in Rust gives the requests the replica sends, and Rust's answers.
        let mut rewritten = pair_again(&p).await;
        rewritten.truncate(keep).await.unwrap();
        let new_blocks: Vec<Vec<u8>> =
            (0..more).map(|_| (0..rng.gen_range(0..50)).map(|_| rng.gen()).collect()).collect();
        rewritten.append(&new_blocks).await.unwrap();
        let mut requests = vec![Request {
            id: 1,
            fork: 1,
            upgrade: Some(corestore_hypercore::UpgradeRequest {
                start: 0,
                length: rewritten.length(),
            }),
            ..Request::default()
        }];
        let mut ours = vec![rewritten.create_proof(&requests[0]).await.unwrap()];
        let mut reorg = r.verify_fork_proof(ours[0].clone()).await.unwrap();
        while let Some(mut req) = reorg.next_request() {
            req.id = requests.len() as u64 + 1;
            let data = rewritten.create_proof(&req).await.unwrap();
            reorg.handle(&r, data.clone()).await.unwrap();
            requests.push(req);
            ours.push(data);
        }
        assert_eq!(reorg.ancestors(), keep);

        let js = node.run_json(
            "hypercore-oracle.js",
            &["write"],
            &json!({
                "seed": hex::encode(p.seed),
                "blocks": p.blocks.iter().map(hex::encode).collect::<Vec<_>>(),
                "batches": p.batches,
                "truncate": { "length": keep, "blocks": new_blocks.iter().map(hex::encode).collect::<Vec<_>>() },
                "requests": requests.iter().map(request_json).collect::<Vec<_>>(),
            }),
        );
        assert_eq!(js["fork"], 1);
        assert_eq!(js["treeHash"], hex::encode(rewritten.tree_hash()));
        let theirs: Vec<Data> = js["proofs"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&ours)
            .map(|(t, o)| {
                let t = t.as_str().unwrap_or_else(|| panic!("no data: {t}"));
                assert_eq!(t, hex::encode(o.encode()), "Node's fork-path proof differs");
                Data::decode(&hex::decode(t).unwrap()).unwrap()
            })
            .collect();
        assert_eq!(theirs.len(), requests.len());

        // Node's proofs alone take the Rust replica to the new fork.
        let mut reorg = r.verify_fork_proof(theirs[0].clone()).await.unwrap();
        for data in &theirs[1..] {
            reorg.handle(&r, data.clone()).await.unwrap();
        }
        assert!(reorg.is_finished());
        let applied = r.apply_reorg(reorg).await.unwrap();
        assert_eq!(
            (applied.ancestors, applied.fork, applied.length),
            (keep, 1, rewritten.length())
        );
        assert_eq!(hex::encode(r.tree_hash()), js["treeHash"]);
        for i in 0..keep {
            assert_eq!(r.get(i).await.unwrap().as_ref(), Some(&p.blocks[i as usize]));
        }
        assert_eq!(r.get(keep).await.unwrap(), None);
    }
}

/// The Rust writer of `p` once more (same seed, blocks and batches: the same signed tree).
async fn pair_again(p: &Pair) -> Hypercore {
    let mut rust =
        Hypercore::create(&memory().await, KeyPair::from_seed(&p.seed), None).await.unwrap();
    let mut at = 0;
    for &n in &p.batches {
        rust.append(&p.blocks[at..at + n as usize]).await.unwrap();
        at += n as usize;
    }
    rust
}
