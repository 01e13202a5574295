//! Namespaces: components sharing one storage without name collisions.
//!
//! `cargo run -p corestore --example namespaces`

use corestore::{CoreRef, Corestore};
use futures::TryStreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let drive_a = store.namespace("drive-a")?;
    let drive_b = store.namespace("drive-b")?;
    let nested = drive_a.namespace("index")?;

    for (label, ns) in [("root", &store), ("drive-a", &drive_a), ("drive-b", &drive_b)] {
        let core = ns.get(CoreRef::name("db")).await?;
        core.append(format!("written by {label}")).await?;
        println!("{label:>14}: db = {}", core.key());
    }
    let core = nested.get(CoreRef::name("db")).await?;
    println!("drive-a/index: db = {}", core.key());

    let listed: Vec<_> = store.list_namespace(&drive_a.namespace_key()).try_collect().await?;
    let all: Vec<_> = store.list().try_collect().await?;
    println!("drive-a stores {} named core(s); the store holds {}", listed.len(), all.len());
    store.close().await?;
    Ok(())
}
