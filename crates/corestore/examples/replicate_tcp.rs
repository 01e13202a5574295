//! Replication over TCP between two processes (or with a Node corestore 7 peer).
//!
//! ```sh
//! cargo run -p corestore --example replicate_tcp -- serve 127.0.0.1:7777       # prints a key
//! cargo run -p corestore --example replicate_tcp -- fetch 127.0.0.1:7777 KEY   # reads it
//! ```
//!
//! `serve` writes a named core in a temporary store and replicates the whole store with every
//! connection; `fetch` connects, learns the length and prints every block. Either side can be a
//! JavaScript peer: `store.replicate(isInitiator)` piped to a `net` socket speaks the same bytes.

use corestore::{CoreRef, Corestore};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["serve", addr] => {
            let store = Corestore::in_memory().await?;
            let core = store.get(CoreRef::name("example")).await?;
            core.append_batch(&[&b"hello"[..], b"from", b"rust"]).await?;
            let listener = TcpListener::bind(addr).await?;
            println!("serving {} on {}", core.key().to_hex(), listener.local_addr()?);
            loop {
                let (socket, _) = listener.accept().await?;
                // Many connections at once: each replicates in its own task.
                store.replicate(socket, false)?;
            }
        }
        ["fetch", addr, key] => {
            let store = Corestore::in_memory().await?;
            let core = store.get(CoreRef::parse_key(key)?).await?;
            let stream = store.replicate(TcpStream::connect(addr).await?, true)?;
            core.update(None).await?;
            for i in 0..core.length() {
                let block = core.get(i).await?.unwrap_or_default();
                println!("{i}: {}", String::from_utf8_lossy(&block));
            }
            stream.close();
            Ok(())
        }
        _ => anyhow::bail!("usage: replicate_tcp serve ADDR | fetch ADDR KEY"),
    }
}
