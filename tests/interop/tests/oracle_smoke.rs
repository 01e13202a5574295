//! Smoke test of the JavaScript hypercore oracle (`scripts/hypercore-oracle.js`): its `write`
//! output must match the shared spec vectors (`wire.md` §1.8, §5.7, §5.8) byte for byte, and its
//! `verify` command must accept the proofs it made and reject tampered copies.

use corestore_interop::Node;
use serde_json::{json, Value};

const SEED: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const KEY: &str = "d8c3a0597903b28d751c6e0b7107775e388ec5a3cf669bdd1e7ec41b8b8f6e72";
const DISCOVERY_KEY: &str = "fb892b1c77fdcb05dcbd234607208b7036e00a13e7f2cc0bbaa463924e57865a";
const MANIFEST: &str =
    "0100000101004144eea531e483d54e0c14f4ca68e0644f355343ff6fcb0f005200e12cd747cb\
                        8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
const TREE_HASH: &str = "8b512f5301c09f0e0e21a0c71c98fce14ddcc51125f4dfd8303fa22c75858aff";
const SIGNATURE: &str = "0100\
                         ef90c38a7498eba2369e467f926fe785e962d8c781703766863ac4703d8a403c\
                         4eea5634e581eabd45ec85239a9259af64bd825bd943376d4f8e2daa8aa4bb08\
                         0000";
const LEAF_HELLO: &str = "f2391083cfaa8043205fed76cdff843902146ca92aebcd7a196814ec45d8c8f8";
const LEAF_WORLD: &str = "993ec5ef8bbc7f1d174f00e650b8d51599124a9bf93885f33cec5b9060b75c1c";
const PARENT_1: &str = "56826d33f98cbe1757d804b3ad818a97b61d7ae83d505ba5ca4fb619646355f9";
const LEAF_BANG: &str = "b36033c7b2681d1472886ca6716b628f44b608bd6486174487e02615533dfaad";

/// "hello", "world", "!" as hex.
const BLOCKS: [&str; 3] = ["68656c6c6f", "776f726c64", "21"];

fn tree_node(index: u64, size: u64, hash: &str) -> Value {
    json!({ "index": index, "size": size, "hash": hash })
}

fn request(
    id: u64,
    block: Option<(u64, u64)>,
    upgrade: Option<(u64, u64)>,
    manifest: bool,
) -> Value {
    json!({
        "id": id,
        "fork": 0,
        "block": block.map(|(index, nodes)| json!({ "index": index, "nodes": nodes })),
        "hash": null,
        "seek": null,
        "upgrade": upgrade.map(|(start, length)| json!({ "start": start, "length": length })),
        "manifest": manifest,
        "priority": 0,
    })
}

/// Flips the lowest bit of byte `at` of a hex string (negative `at` counts from the end).
fn flip(data: &str, at: isize) -> String {
    let len = data.len() / 2;
    let at = usize::try_from(if at < 0 { len.cast_signed() + at } else { at }).unwrap();
    let byte = u8::from_str_radix(&data[2 * at..2 * at + 2], 16).unwrap() ^ 1;
    format!("{}{byte:02x}{}", &data[..2 * at], &data[2 * at + 2..])
}

fn proof(request: &Value, data: &str) -> Value {
    json!({ "request": request, "data": data })
}

fn verify(node: &Node, manifest: Option<&str>, proofs: &[Value]) -> Vec<Value> {
    let out = node.run_json(
        "hypercore-oracle.js",
        &["verify"],
        &json!({ "key": KEY, "manifest": manifest, "proofs": proofs }),
    );
    let results = out["results"].as_array().expect("results array").clone();
    assert_eq!(results.len(), proofs.len(), "{out}");
    results
}

fn assert_ok(result: &Value, length: u64, value: Option<&str>) {
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["length"], length, "{result}");
    assert_eq!(result["value"], value.map_or(Value::Null, |v| json!(v)), "{result}");
}

fn assert_rejected(result: &Value, needle: &str) {
    assert_eq!(result["ok"], false, "{result}");
    let error = result["error"].as_str().expect("error message");
    assert!(error.contains(needle), "{error:?} should mention {needle:?}");
}

#[test]
fn oracle_matches_the_spec_vectors_and_verifies_its_own_proofs() {
    let Some(node) = Node::get("oracle_matches_the_spec_vectors_and_verifies_its_own_proofs")
    else {
        return;
    };

    let upgrade = request(1, None, Some((0, 3)), true);
    let block_2 = json!({ "id": 1, "fork": 0, "block": { "index": 2, "nodes": 0 }, "priority": 1 });
    let block_0 = request(2, Some((0, 1)), None, false);
    let merged = request(1, Some((2, 0)), Some((0, 3)), true);
    let missing = request(3, Some((7, 0)), None, false);
    let invalid = request(4, None, Some((0, 7)), false);
    let out = node.run_json(
        "hypercore-oracle.js",
        &["write"],
        &json!({
            "seed": SEED,
            "blocks": BLOCKS,
            "requests": [upgrade, block_2, block_0, merged, missing, invalid],
        }),
    );

    // §1.8: key, manifest, tree, signature.
    assert_eq!(out["key"], KEY);
    assert_eq!(out["discoveryKey"], DISCOVERY_KEY);
    assert_eq!(out["manifest"], MANIFEST);
    assert_eq!(out["length"], 3);
    assert_eq!(out["byteLength"], 11);
    assert_eq!(out["fork"], 0);
    assert_eq!(out["treeHash"], TREE_HASH);
    assert_eq!(out["signature"], SIGNATURE);
    assert_eq!(out["roots"], json!([tree_node(1, 10, PARENT_1), tree_node(4, 1, LEAF_BANG)]));
    assert_eq!(
        out["nodes"],
        json!([
            tree_node(0, 5, LEAF_HELLO),
            tree_node(1, 10, PARENT_1),
            tree_node(2, 5, LEAF_WORLD),
            tree_node(4, 1, LEAF_BANG)
        ])
    );

    // §5.7 / §5.8: the requests as they go on the wire.
    assert_eq!(
        out["requests"],
        json!([
            "1801000003",
            "210100020001",
            "0102000001",
            "19010002000003",
            "0103000700",
            "0804000007"
        ])
    );

    // §5.7: data{upgrade{0,3, nodes [1, 4], additional [], sig}, manifest} and data{block 2 "!"}.
    let proofs = out["proofs"].as_array().expect("proofs array");
    let upgrade_reply =
        format!("1801 00 0003 02 010a{PARENT_1} 0401{LEAF_BANG} 00 44{SIGNATURE} {MANIFEST}")
            .replace(' ', "");
    assert_eq!(proofs[0], upgrade_reply.as_str());
    assert_eq!(proofs[1], "01010002012100");
    // block 0 with its sibling (leaf 2) up to the root 1 the reader already has.
    assert_eq!(proofs[2], format!("0102000005{}010205{LEAF_WORLD}", BLOCKS[0]).as_str());
    // block 2 merged into the upgrade: root 4 comes from the block, only root 1 in upgrade.nodes.
    let merged_reply =
        format!("1901 00 02 0121 00 0003 01 010a{PARENT_1} 00 44{SIGNATURE} {MANIFEST}")
            .replace(' ', "");
    assert_eq!(proofs[3], merged_reply.as_str());
    // a block the writer does not have: noData(NOT_AVAILABLE); a bad upgrade: noData(INVALID_REQUEST).
    assert_eq!(proofs[4]["noData"], 1, "{}", proofs[4]);
    assert_eq!(proofs[5]["noData"], 2, "{}", proofs[5]);
    assert!(proofs[5]["error"].as_str().unwrap().contains("Invalid upgrade"));

    // A reader that knows only the key applies the proofs in order; tampered copies are rejected.
    let sig_at = upgrade_reply.find(&SIGNATURE[4..]).unwrap() / 2 + 10;
    let results = verify(
        &node,
        None,
        &[
            proof(&block_2, "01010002012100"), // nothing trusted yet
            proof(&upgrade, &flip(&upgrade_reply, sig_at.cast_signed())), // signature byte
            proof(&upgrade, &flip(&upgrade_reply, 8)), // hash of node 1
            proof(&upgrade, &flip(&upgrade_reply, -1)), // manifest (key mismatch)
            proof(&upgrade, &upgrade_reply),
            proof(&block_2, &flip("01010002012100", 5)), // the block value
            proof(&block_2, "01010002012100"),
            proof(&block_0, &flip(proofs[2].as_str().unwrap(), -3)), // sibling hash
            proof(&block_0, proofs[2].as_str().unwrap()),
            proof(&block_0, "01010002012100"), // answers another request id
        ],
    );
    assert_rejected(&results[0], "tree node 4");
    assert_rejected(&results[1], "signature");
    assert_rejected(&results[2], "signature");
    assert_rejected(&results[3], "manifest");
    assert_ok(&results[4], 3, None);
    assert_rejected(&results[5], "checksum");
    assert_ok(&results[6], 3, Some("21"));
    assert_rejected(&results[7], "checksum");
    assert_ok(&results[8], 3, Some(BLOCKS[0]));
    assert_rejected(&results[9], "request");

    // With the manifest given up front, the merged block + upgrade proof alone is enough.
    let results = verify(&node, Some(MANIFEST), &[proof(&merged, proofs[3].as_str().unwrap())]);
    assert_ok(&results[0], 3, Some("21"));
}

#[test]
fn oracle_proofs_on_a_larger_tree_round_trip() {
    let Some(node) = Node::get("oracle_proofs_on_a_larger_tree_round_trip") else {
        return;
    };
    // §5.7b: ten blocks "b0".."b9" appended as 8 + 2; roots [7, 17].
    let blocks: Vec<String> = (0..10).map(|i| format!("62{:02x}", 0x30 + i)).collect();
    let hash_12 = json!({ "id": 4, "fork": 0, "hash": { "index": 12, "nodes": 1 } });
    let requests = [
        request(1, None, Some((0, 8)), true), // upgrade-only, additional node 17
        request(2, Some((5, 3)), None, false), // block below any upgrade
        request(3, Some((5, 3)), Some((8, 2)), false), // block below the upgrade start
        request(4, Some((9, 1)), Some((8, 2)), false), // block at/after the upgrade start
        hash_12,
        request(6, Some((6, 1)), None, false),
    ];
    let out = node.run_json(
        "hypercore-oracle.js",
        &["write"],
        &json!({ "seed": SEED, "blocks": blocks, "batches": [8, 2], "requests": requests }),
    );
    assert_eq!(out["length"], 10);
    assert_eq!(out["byteLength"], 20);
    let roots: Vec<&Value> = out["roots"].as_array().unwrap().iter().map(|r| &r["index"]).collect();
    assert_eq!(roots, [7, 17]);
    // 8 leaves + 7 parents under root 7, 2 leaves + parent 17.
    assert_eq!(out["nodes"].as_array().unwrap().len(), 18);

    let proofs = out["proofs"].as_array().unwrap();
    // §5.5: the upgrade to 8 on a writer at 10 carries root 7, then additional node 17.
    let upgrade = proofs[0].as_str().unwrap();
    assert!(upgrade.starts_with("1801000008010710"), "{upgrade}");
    let seven = out["roots"][0]["hash"].as_str().unwrap();
    let seventeen = out["roots"][1]["hash"].as_str().unwrap();
    let head = format!("1801 00 0008 01 0710{seven} 01 1104{seventeen} 44").replace(' ', "");
    assert_eq!(&upgrade[..head.len()], head);

    let pairs: Vec<Value> =
        requests.iter().zip(proofs).map(|(r, d)| proof(r, d.as_str().unwrap())).collect();
    // A first reader: upgrade, then everything else (the 8→10 upgrades are then downgrades).
    for (i, result) in verify(&node, None, &pairs).iter().enumerate() {
        let value = [None, Some("6235"), Some("6235"), Some("6239"), None, Some("6236")][i];
        assert_ok(result, 10, value);
    }
    // A second reader that starts at 8 (from the proofs of an 8-block writer) grows to 10 with
    // the block-below-start and block-at-start upgrade proofs.
    let eight = node.run_json(
        "hypercore-oracle.js",
        &["write"],
        &json!({ "seed": SEED, "blocks": blocks[..8], "requests": [request(1, None, Some((0, 8)), true)] }),
    );
    let at_eight =
        proof(&request(1, None, Some((0, 8)), true), eight["proofs"][0].as_str().unwrap());
    let results = verify(&node, None, &[at_eight.clone(), pairs[2].clone()]);
    assert_ok(&results[0], 8, None);
    assert_ok(&results[1], 10, Some("6235"));
    let results = verify(&node, None, &[at_eight, pairs[3].clone()]);
    assert_ok(&results[0], 8, None);
    assert_ok(&results[1], 10, Some("6239"));
}
