//! Sessions: cheap handles on shared cores, and store sessions that close what they opened.
//!
//! `cargo run -p corestore --example sessions`

use corestore::{CoreRef, Corestore, SessionOptions};
use futures::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let mut opened = store.watch()?;

    let writer = store.get(CoreRef::name("log")).await?;
    let reader = writer.clone(); // a new session on the same core
    println!("watch: {} opened", opened.next().await.map(|c| *c.key()).unwrap_or_default());

    // A read stream that follows the core live, on its own session.
    let mut live = Box::pin(reader.read_stream(0.., true));
    writer.append_batch(&[b"one", b"two"]).await?;
    for _ in 0..2 {
        if let Some(block) = live.next().await.transpose()? {
            println!("live read: {}", String::from_utf8_lossy(&block));
        }
    }

    // A store session: the cores it opens close with it; the root's stay open.
    let component = store.session(SessionOptions::new())?;
    let mine = component.get(*writer.key()).await?;
    println!(
        "sessions on the core: {}",
        store.stats().core_sessions + component.stats().core_sessions
    );
    component.close().await?;
    println!(
        "component closed: its handle closed {}, root's open {}",
        mine.is_closed(),
        !writer.is_closed()
    );

    store.close().await?;
    println!("root closed: writer closed {}", writer.is_closed());
    Ok(())
}
