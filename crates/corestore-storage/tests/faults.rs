//! `FaultyStorage` under the schema: failed writes leave nothing behind, a failed flush reaches
//! the caller, and a torn batch from a broken backend is detected as corruption, never trusted.

use std::sync::Arc;

use corestore_keys::{KeyPair, Manifest};
use corestore_storage::{
    CoreAuth, FaultyStorage, InjectedFault, MemoryStorage, Storage, StorageError,
};

fn auth() -> CoreAuth {
    let kp = KeyPair::from_seed(&[5; 32]);
    let manifest = Manifest::single_signer(kp.public_key());
    let key = manifest.hash();
    CoreAuth {
        key,
        discovery_key: key.discovery_key(),
        frozen: false,
        manifest: Some(manifest),
        key_pair: None,
    }
}

fn injected(err: &StorageError) -> bool {
    matches!(err, StorageError::Io(e) if InjectedFault::is_injected(e))
}

#[tokio::test]
async fn failed_write_and_flush_reach_the_caller_and_leave_nothing() {
    let faulty = Arc::new(FaultyStorage::new(Arc::new(MemoryStorage::new())));
    let storage = Storage::open(faulty.clone()).await.unwrap();
    let auth = auth();

    faulty.fail_write_after(0);
    assert!(injected(&storage.create_core(&auth, None).await.unwrap_err()));
    assert!(!storage.has_core(&auth.discovery_key).await.unwrap());

    let core = storage.create_core(&auth, None).await.unwrap();
    let mut batch = core.batch();
    batch.put_block(0, b"a");
    faulty.fail_write_after(0);
    assert!(injected(&core.write(batch).await.unwrap_err()));
    assert_eq!(core.block(0).await.unwrap(), None);

    faulty.fail_flush_after(0);
    assert!(injected(&core.flush().await.unwrap_err()));
    core.flush().await.unwrap();
}

#[tokio::test]
async fn torn_core_creation_is_detected_as_corrupt() {
    let faulty = Arc::new(FaultyStorage::new(Arc::new(MemoryStorage::new())));
    let storage = Storage::open(faulty.clone()).await.unwrap();
    let auth = auth();
    // A broken backend keeps only the first operation: the discovery-key index entry.
    faulty.tear_write_after(0, 1);
    assert!(injected(&storage.create_core(&auth, None).await.unwrap_err()));
    let core = storage.open_core(&auth.discovery_key).await.unwrap().unwrap();
    assert!(matches!(core.auth().await, Err(StorageError::Corrupt { what: "core auth", .. })));
}
