//! The 48 key-derivation vectors produced by JavaScript corestore 7.12.5
//! (`tests/fixtures/keys.json`, a copy of `shared/vectors/keys.json`), plus derivation proptests.

use corestore_keys::{
    derive_key_pair, derive_seed, KeyError, Manifest, NamedCore, Namespace, PrimaryKey,
};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    primary_key: String,
    namespace_chain: Vec<String>,
    name: String,
    name_utf8_hex: String,
    namespace: String,
    seed: String,
    secret_key: String,
    public_key: String,
    manifest_encoding: String,
    core_key: String,
    discovery_key: String,
    library_get_by_name: bool,
}

#[derive(Deserialize)]
struct File {
    constants: std::collections::BTreeMap<String, String>,
    vectors: Vec<Vector>,
}

fn load() -> File {
    let text = include_str!("fixtures/keys.json");
    serde_json::from_str(text).expect("fixture parses")
}

#[test]
fn all_48_vectors_match_javascript() {
    let file = load();
    assert_eq!(file.vectors.len(), 48);
    for (i, v) in file.vectors.iter().enumerate() {
        let ctx = format!("vector {i} (chain {:?}, name {:?})", v.namespace_chain, v.name);
        let primary = PrimaryKey::from_hex(&v.primary_key).unwrap();
        let ns = Namespace::from_chain(&v.namespace_chain);
        assert_eq!(ns.to_hex(), v.namespace, "{ctx}: namespace");
        assert_eq!(hex::encode(v.name.as_bytes()), v.name_utf8_hex, "{ctx}: utf-8");
        let name = v.name.as_bytes();
        assert_eq!(hex::encode(*derive_seed(&primary, &ns, name)), v.seed, "{ctx}: seed");
        let pair = derive_key_pair(&primary, &ns, name);
        assert_eq!(pair.public_key().to_hex(), v.public_key, "{ctx}: public key");
        assert_eq!(hex::encode(*pair.secret_key()), v.secret_key, "{ctx}: secret key");
        let core = NamedCore::from_key_pair(ns, pair);
        assert_eq!(hex::encode(core.manifest.encode()), v.manifest_encoding, "{ctx}: manifest");
        assert_eq!(core.key.to_hex(), v.core_key, "{ctx}: core key");
        assert_eq!(core.discovery_key.to_hex(), v.discovery_key, "{ctx}: discovery key");
        let decoded = Manifest::decode(&hex::decode(&v.manifest_encoding).unwrap()).unwrap();
        assert_eq!(decoded.hash(), core.key, "{ctx}: manifest round trip");
        // get({ name }) refuses exactly the names JavaScript refuses.
        match NamedCore::derive(&primary, &ns, name) {
            Ok(named) => {
                assert!(v.library_get_by_name, "{ctx}: JS refused this name");
                assert_eq!(named, core);
            }
            Err(KeyError::EmptyName) => assert!(!v.library_get_by_name, "{ctx}: JS accepted it"),
            Err(e) => panic!("{ctx}: unexpected {e}"),
        }
    }
}

#[test]
fn constants_match_the_fixture() {
    let file = load();
    let c = |k: &str| file.constants[k].clone();
    assert_eq!(c("CORESTORE_NS"), hex::encode(corestore_keys::constants::corestore_ns()));
    assert_eq!(c("CORESTORE_ROOT_NAMESPACE"), Namespace::ROOT.to_hex());
    assert_eq!(c("HYPERCORE_TREE"), hex::encode(corestore_keys::constants::tree()));
    assert_eq!(c("HYPERCORE_MANIFEST"), hex::encode(corestore_keys::constants::manifest()));
    assert_eq!(
        c("HYPERCORE_DEFAULT_NAMESPACE"),
        hex::encode(corestore_keys::constants::default_signer_namespace())
    );
    assert_eq!(
        c("DISCOVERY_KEY_MESSAGE"),
        hex::encode(corestore_keys::constants::DISCOVERY_KEY_MESSAGE)
    );
}

proptest! {
    #[test]
    fn derivation_is_deterministic(pk in any::<[u8; 32]>(), chain in proptest::collection::vec(".{0,8}", 0..3), name in ".{1,16}") {
        let primary = PrimaryKey::from_bytes(pk);
        let ns = Namespace::from_chain(&chain);
        let a = NamedCore::derive(&primary, &ns, name.as_bytes()).unwrap();
        let b = NamedCore::derive(&primary.clone(), &Namespace::from_chain(&chain), name.as_bytes()).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn different_inputs_never_collide(pk in any::<[u8; 32]>(), other_pk in any::<[u8; 32]>(),
                                      ns_a in ".{0,8}", ns_b in ".{0,8}", name_a in ".{1,8}", name_b in ".{1,8}") {
        let a = NamedCore::derive(&PrimaryKey::from_bytes(pk), &Namespace::ROOT.child(&ns_a), name_a.as_bytes()).unwrap();
        let b = NamedCore::derive(&PrimaryKey::from_bytes(pk), &Namespace::ROOT.child(&ns_b), name_b.as_bytes()).unwrap();
        prop_assert_eq!(a.key == b.key, ns_a == ns_b && name_a == name_b);
        let c = NamedCore::derive(&PrimaryKey::from_bytes(other_pk), &Namespace::ROOT.child(&ns_a), name_a.as_bytes()).unwrap();
        prop_assert_eq!(a.key == c.key, pk == other_pk);
        prop_assert_ne!(a.discovery_key.to_bytes(), a.key.to_bytes());
    }
}
