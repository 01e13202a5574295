//! The README's replication snippet, compiled and run (the other snippets are doctests of the
//! `corestore` crate): keep the two in step.

use corestore::{CoreRef, Corestore};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn the_readme_replication_snippet_runs() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));

    // One side serves…
    let server = Corestore::open(&dir_a).await?;
    let core = server.get(CoreRef::name("log")).await?;
    core.append(b"hello").await?;
    let key = *core.key();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let store = server.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            if let Ok(replication) = store.replicate(socket, false) {
                tokio::spawn(replication.finished());
            }
        }
    });

    // …the other connects and reads by key.
    let client = Corestore::open(&dir_b).await?;
    let replica = client.get(key).await?;
    let replication = client.replicate(TcpStream::connect(addr).await?, true)?;
    replica.update(None).await?; // learn the remote length
    replica.download(0, Some(replica.length())).await?.done().await;
    assert_eq!(replica.get(0).await?.as_deref(), Some(&b"hello"[..]));
    replication.close();

    client.close().await?;
    server.close().await?;
    Ok(())
}
