//! `corestore derive` against the CLI contract, the shared JavaScript vectors and a live
//! JavaScript corestore on fresh random inputs.

use std::process::{Command, Output};

use corestore_interop::Node;
use serde_json::{json, Value};

fn corestore(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corestore")).args(args).output().expect("run corestore")
}

fn derive(primary_key: &str, namespaces: &[&str], name: &str) -> Output {
    let mut args = vec!["derive", "--primary-key", primary_key];
    for ns in namespaces {
        args.extend(["--namespace", ns]);
    }
    args.extend(["--name", name]);
    corestore(&args)
}

fn json_line(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "exactly one JSON line: {text:?}");
    serde_json::from_str(&text).unwrap()
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error, got {err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(!err.contains("panicked"));
}

#[test]
fn matches_the_shared_javascript_vectors() {
    let text = include_str!("../../corestore-keys/tests/fixtures/keys.json");
    let file: Value = serde_json::from_str(text).unwrap();
    let mut checked = 0;
    for v in file["vectors"].as_array().unwrap() {
        let namespaces: Vec<&str> =
            v["namespaceChain"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        let out =
            derive(v["primaryKey"].as_str().unwrap(), &namespaces, v["name"].as_str().unwrap());
        if !v["libraryGetByName"].as_bool().unwrap() {
            assert_one_line_error(&out, "name must not be empty");
            continue;
        }
        let got = json_line(&out);
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["namespace", "publicKey", "key", "discoveryKey"]);
        assert_eq!(got["namespace"], v["namespace"]);
        assert_eq!(got["publicKey"], v["publicKey"]);
        assert_eq!(got["key"], v["coreKey"]);
        assert_eq!(got["discoveryKey"], v["discoveryKey"]);
        checked += 1;
    }
    assert_eq!(checked, 36);
}

#[test]
fn accepts_a_z32_primary_key() {
    let hex = "01".repeat(32);
    let z32 = corestore_interop_z32(&[1; 32]);
    assert_eq!(json_line(&derive(&hex, &[], "test")), json_line(&derive(&z32, &[], "test")));
    assert_eq!(
        json_line(&derive(&hex, &[], "test"))["key"],
        "7d242a30142451d08a02f3b2288986b27d272e87168ce2156ba4d0fbd568ae80"
    );
}

fn corestore_interop_z32(bytes: &[u8; 32]) -> String {
    corestore::keys::to_z32(bytes)
}

#[test]
fn bad_input_is_a_one_line_error() {
    assert_one_line_error(&derive("abcd", &[], "x"), "expected 64 hex or 52 z-base-32");
    assert_one_line_error(&derive(&"g".repeat(64), &[], "x"), "not valid hex");
    assert_one_line_error(&derive(&"l".repeat(52), &[], "x"), "not valid z-base-32");
    assert_one_line_error(&derive(&"00".repeat(32), &[], ""), "name must not be empty");
    assert_one_line_error(&corestore(&["derive", "--name", "x"]), "--primary-key");
    assert_one_line_error(&corestore(&["nonsense"]), "nonsense");
}

/// A tiny deterministic generator (xorshift64*), seeded per run and printed on failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn name(&mut self) -> String {
        const PIECES: [&str; 12] =
            ["a", "core", "ü", "名前", "🚀", "κλειδί", " ", "-", "0", "ß", "\u{301}", "z"];
        (0..=self.below(6)).map(|_| PIECES[self.below(12) as usize]).collect()
    }
}

#[test]
fn agrees_with_live_javascript_on_random_inputs() {
    let Some(node) = Node::get("agrees_with_live_javascript_on_random_inputs") else { return };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let inputs: Vec<Value> = (0..12)
        .map(|_| {
            let pk = corestore::keys::to_hex(&std::array::from_fn::<u8, 32, _>(|_| {
                rng.below(256) as u8
            }));
            let namespaces: Vec<String> = (0..rng.below(4)).map(|_| rng.name()).collect();
            json!({ "primaryKey": pk, "namespaces": namespaces, "name": rng.name() })
        })
        .collect();
    let expected = node.run_json("derive.js", &[], &Value::Array(inputs.clone()));
    for (input, want) in inputs.iter().zip(expected.as_array().unwrap()) {
        let namespaces: Vec<&str> =
            input["namespaces"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        let got = json_line(&derive(
            input["primaryKey"].as_str().unwrap(),
            &namespaces,
            input["name"].as_str().unwrap(),
        ));
        assert_eq!(&got, want, "seed {seed}: input {input}");
    }
}
