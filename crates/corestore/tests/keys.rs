//! Key derivation through `Corestore::get` matches all 48 JavaScript corestore 7.12.5 vectors
//! (`corestore-keys/tests/fixtures/keys.json`, a copy of `shared/vectors/keys.json`).

use corestore::keys::{KeyPair, PrimaryKey};
use corestore::{CoreRef, Corestore, GetError};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    primary_key: String,
    namespace_chain: Vec<String>,
    name: String,
    secret_key: String,
    public_key: String,
    manifest_encoding: String,
    core_key: String,
    discovery_key: String,
    library_get_by_name: bool,
}

#[derive(Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[tokio::test]
async fn get_by_name_derives_the_javascript_keys() -> anyhow::Result<()> {
    let file: File =
        serde_json::from_str(include_str!("../../corestore-keys/tests/fixtures/keys.json"))?;
    assert_eq!(file.vectors.len(), 48);
    for (i, v) in file.vectors.iter().enumerate() {
        let ctx = format!("vector {i} (chain {:?}, name {:?})", v.namespace_chain, v.name);
        let primary = PrimaryKey::from_hex(&v.primary_key)?;
        let root = Corestore::builder().primary_key(primary).open().await?;
        let mut store = root.clone();
        for ns in &v.namespace_chain {
            store = store.namespace(ns)?;
        }
        let core = match store.get(CoreRef::name(&v.name)).await {
            Ok(core) => {
                assert!(v.library_get_by_name, "{ctx}: JavaScript refuses this name");
                core
            }
            Err(GetError::EmptyName) => {
                assert!(!v.library_get_by_name, "{ctx}: JavaScript accepts this name");
                // JavaScript derives these through createKeyPair + get({ keyPair }).
                let key_pair = KeyPair::from_secret_key(&hex::decode(&v.secret_key)?)?;
                store.get(key_pair).await?
            }
            Err(e) => panic!("{ctx}: {e}"),
        };
        assert_eq!(core.key().to_hex(), v.core_key, "{ctx}: core key");
        assert_eq!(core.discovery_key().to_hex(), v.discovery_key, "{ctx}: discovery key");
        let manifest = core.manifest().expect("a named core has a manifest");
        assert_eq!(hex::encode(manifest.encode()), v.manifest_encoding, "{ctx}: manifest");
        assert_eq!(manifest.signers[0].public_key.to_hex(), v.public_key, "{ctx}: public key");
        assert!(core.writable(), "{ctx}: named cores are writable");
        root.close().await?;
    }
    Ok(())
}
