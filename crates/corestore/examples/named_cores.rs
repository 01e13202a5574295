//! Named cores: derived from the store's primary key, writable, stable across restarts.
//!
//! `cargo run -p corestore --example named_cores [DIR]` (a temp dir by default).

use corestore::{CoreRef, Corestore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map_or_else(|| temp.path().to_path_buf(), Into::into);

    let store = Corestore::open(&dir).await?;
    let core = store.get(CoreRef::name("my-core")).await?;
    let length = core.append_batch(&[b"hello", b"world"]).await?;
    println!("my-core has {length} blocks (key {})", core.key());
    let key = *core.key();
    store.close().await?;

    // Reopened later, the same name gives the same core, still writable; so does its key.
    let store = Corestore::open(&dir).await?;
    let again = store.get(CoreRef::name("my-core")).await?;
    assert_eq!(again.key(), &key);
    let by_key = store.get(key).await?;
    println!("reopened: length {}, writable {}", by_key.length(), by_key.writable());
    for block in 0..by_key.length() {
        let data = by_key.get(block).await?.unwrap_or_default();
        println!("  block {block}: {}", String::from_utf8_lossy(&data));
    }
    store.close().await?;
    Ok(())
}
