//! Testing your application's replication without sockets or sleeps: wire stores together with
//! in-memory streams. Run the test on a paused clock (`#[tokio::test(start_paused = true)]`)
//! and timers (linger, timeouts, keep-alive) jump ahead whenever everything waits.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use corestore::{CoreRef, Corestore};
//!
//! let (a, b) = (Corestore::in_memory().await?, Corestore::in_memory().await?);
//! let core = a.get(CoreRef::name("chat")).await?;
//! core.append(b"hi").await?;
//! let _link = corestore::testing::connect(&a, &b)?;
//! let replica = b.get(*core.key()).await?;
//! assert_eq!(replica.get(0).await?.as_deref(), Some(&b"hi"[..]));
//! # Ok(())
//! # }
//! ```

use crate::replication::ReplicateError;
use crate::{Corestore, Replication};

/// Bytes an in-memory stream buffers in each direction.
const BUFFER: usize = 256 * 1024;

/// Replicates `a` (the initiator) with `b` over an in-memory duplex stream; dropping the handles
/// leaves the link up, [`Replication::close`] ends it.
pub fn connect(a: &Corestore, b: &Corestore) -> Result<(Replication, Replication), ReplicateError> {
    let (x, y) = tokio::io::duplex(BUFFER);
    Ok((a.replicate(x, true)?, b.replicate(y, false)?))
}

/// Connects every pair of `stores` (a full mesh); returns the links.
pub fn mesh(stores: &[&Corestore]) -> Result<Vec<(Replication, Replication)>, ReplicateError> {
    let mut links = Vec::new();
    for (i, a) in stores.iter().enumerate() {
        for b in &stores[i + 1..] {
            links.push(connect(a, b)?);
        }
    }
    Ok(links)
}
