//! Core ids across `Storage` handles (issue 13 §3, medium): two handles over one backend never
//! hand out the same core id, even when the backend yields inside every call, so that their
//! allocations interleave.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use corestore_keys::{KeyPair, Manifest};
use corestore_storage::{
    CoreAuth, CoreStorage, MemoryStorage, Storage, StorageBackend, StoredKeyPair, WriteBatch,
};

/// A backend that lets every other task run before each call (as one doing real I/O would).
#[derive(Debug, Default)]
struct Yielding(MemoryStorage);

#[async_trait]
impl StorageBackend for Yielding {
    async fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        tokio::task::yield_now().await;
        self.0.scan(start, end, limit).await
    }

    async fn write(&self, batch: WriteBatch) -> io::Result<()> {
        tokio::task::yield_now().await;
        self.0.write(batch).await
    }

    async fn flush(&self) -> io::Result<()> {
        tokio::task::yield_now().await;
        self.0.flush().await
    }
}

fn auth(seed: u8) -> CoreAuth {
    let kp = KeyPair::from_seed(&[seed; 32]);
    let manifest = Manifest::single_signer(kp.public_key());
    let key = manifest.hash();
    CoreAuth {
        key,
        discovery_key: key.discovery_key(),
        frozen: false,
        manifest: Some(manifest),
        key_pair: Some(StoredKeyPair {
            public_key: kp.public_key(),
            secret_key: Some(kp.secret_key()),
        }),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn interleaved_creations_on_two_handles_never_share_a_core_id() {
    let backend: Arc<dyn StorageBackend> = Arc::new(Yielding::default());
    let first = Storage::open(backend.clone()).await.unwrap();
    let second = Storage::open(backend.clone()).await.unwrap();
    let auths: Vec<CoreAuth> = (1..=4).map(auth).collect();
    let (a, b, c, d) = tokio::join!(
        first.create_core(&auths[0], None),
        second.create_core(&auths[1], None),
        first.create_core(&auths[2], None),
        second.create_core(&auths[3], None),
    );
    let cores: Vec<CoreStorage> = vec![a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()];
    for (core, byte) in cores.iter().zip(1u8..) {
        let mut batch = core.batch();
        batch.put_block(0, &[byte]);
        core.write(batch).await.unwrap();
    }
    for (core, byte) in cores.iter().zip(1u8..) {
        assert_eq!(core.auth().await.unwrap(), auth(byte), "one core overwrote another");
        assert_eq!(core.block(0).await.unwrap(), Some(vec![byte]));
    }
    // Each is found again by its discovery key, on a handle opened afterwards.
    let third = Storage::open(backend).await.unwrap();
    for (a, byte) in auths.iter().zip(1u8..) {
        let core = third.open_core(&a.discovery_key).await.unwrap().unwrap();
        assert_eq!(core.block(0).await.unwrap(), Some(vec![byte]));
    }
}
