//! Corestore for Rust: a Hypercore factory that manages many named, signed, append-only logs
//! in one storage, wire- and key-compatible with JavaScript corestore 7: the same primary key,
//! namespace and name give the same key pair, core key and discovery key as JavaScript.
//!
//! A [`Corestore`] opens cores ([`Corestore::get`]) by name, key, discovery key, key pair or
//! manifest; every [`Core`] it returns is a cheap session on one shared core per store, closed
//! when its last session goes. Namespaces and sessions share the cores, the cache and the
//! storage. The facade re-exports its layers as modules ([`keys`], [`storage`], [`hypercore`],
//! [`replicate`]); depend on a layer crate directly to take only what you need.
//!
//! # Creating a store
//! JavaScript's `new Corestore('./my-storage')`: the primary key is random on first open and
//! persisted in the storage.
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use corestore::Corestore;
//!
//! let store = Corestore::open("./my-storage").await?;
//! # Ok(()) }
//! ```
//! [`Corestore::in_memory`] makes an ephemeral store, and [`Corestore::builder`] takes a custom
//! [`storage::StorageBackend`], an explicit primary key (refused with
//! [`OpenError::AnotherCorestore`] when another one is stored), or the read-only and passive
//! flags.
//!
//! # Loading cores
//! `store.get({ name })` derives a writable core from the name; `store.get(key)` opens a
//! session on a core by key (the same core when it is already open). Names are local: peers
//! never see them.
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use corestore::{CoreRef, Corestore};
//!
//! let store = Corestore::in_memory().await?;
//! let core1 = store.get(CoreRef::name("my-core-1")).await?;
//! let core2 = store.get(CoreRef::name("my-core-2")).await?;
//! // `get` returns a ready core, so its key is there at once.
//! let core3 = store.get(*core1.key()).await?; // another session on core1
//! assert_eq!(core3.key(), core1.key());
//! assert!(core1.writable() && core2.writable());
//!
//! // A key in hex or z-base-32 works too, as hypercore-id-encoding reads it.
//! let core4 = store.get(CoreRef::parse_key(&core2.key().to_z32())?).await?;
//! assert_eq!(core4.key(), core2.key());
//!
//! core1.append(b"hello").await?;
//! assert_eq!(core3.get(0).await?.as_deref(), Some(&b"hello"[..]));
//!
//! // A key this store holds no secret for is a read-only replica.
//! let other = corestore::KeyPair::generate();
//! let other_key = corestore::Manifest::single_signer(other.public_key()).hash();
//! let core5 = store.get(other_key).await?;
//! assert!(!core5.writable());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//! Options ([`GetOptions`]) are passed with [`Corestore::get_with`]: `writable(false)`,
//! `create_if_missing(false)`, `eager`, `wait(false)` and `timeout` for block reads, and an
//! explicit `manifest` or `key_pair`.
//!
//! # Namespaces
//! `store.namespace(name)` makes a store whose names do not collide with other namespaces';
//! namespaces chain.
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use corestore::{CoreRef, Corestore};
//!
//! let store = Corestore::in_memory().await?;
//! let ns1 = store.namespace("a")?;
//! let ns2 = ns1.namespace("b")?;
//! let core1 = ns1.get(CoreRef::name("main")).await?; // these load different cores
//! let core2 = ns2.get(CoreRef::name("main")).await?;
//! assert_ne!(core1.key(), core2.key());
//!
//! // Components sharing one storage each get their own namespace.
//! let drive_a = store.namespace("drive-a")?;
//! let drive_b = store.namespace("drive-b")?;
//! let a = drive_a.get(CoreRef::name("db")).await?;
//! let b = drive_b.get(CoreRef::name("db")).await?;
//! assert_ne!(a.key(), b.key());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Sessions
//! `store.session(options)` shares everything with the original (cores, cache, storage) while
//! optionally resetting the namespace or overriding the primary key. Closing a session or
//! namespace closes the cores it opened, not the root; closing the root closes everything, and
//! any later use is a typed `Closed` error.
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use corestore::{AppendError, CoreRef, Corestore, Namespace, SessionOptions};
//!
//! let store = Corestore::in_memory().await?;
//! let deep = store.namespace("app")?.namespace("component")?;
//! // Back to the default namespace: predictable key derivation for an accepted store.
//! let session = deep.session(SessionOptions::new().namespace(Namespace::ROOT))?;
//! let main = session.get(CoreRef::name("main")).await?;
//! assert_eq!(main.key(), store.get(CoreRef::name("main")).await?.key());
//!
//! session.close().await?;
//! assert!(matches!(main.append(b"late").await, Err(AppendError::Closed)));
//! store.close().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Listing and watching
//! [`Corestore::list`] streams the discovery key of every stored core, paged from storage
//! ([`Corestore::list_namespace`] one namespace's), and [`Corestore::watch`] is a stream of cores
//! as they open.
//!
//! # Replicating and clearing
//! [`Corestore::replicate`] replicates every open core over one stream ([`testing`] wires
//! stores in memory for tests); on a core, `get(i)` of a missing block waits for a peer,
//! [`Core::update`] learns the peers' length, [`Core::download`] fetches a range, and
//! [`Core::clear`] drops local blocks again (peers are told, and a later `get` re-downloads).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod backend;
mod core;
mod error;
mod get;
mod list;
mod open;
mod replication;
mod session;
mod store;
pub mod testing;
mod watch;

pub use corestore_hypercore as hypercore;
pub use corestore_keys as keys;
pub use corestore_replicate as replicate;
pub use corestore_storage as storage;

pub use crate::core::CoreEvent;
pub use crate::error::{
    AppendError, BlockError, ClearError, CloseError, ClosedError, GetError, KeyParseError,
    ListError, OpenError, SeekError, TruncateError,
};
pub use crate::get::{CoreRef, GetOptions};
pub use crate::list::CoreList;
pub use crate::replication::ReplicateError;
pub use crate::session::{Core, CoreInfo};
pub use crate::store::{Builder, Corestore, SessionOptions, StoreStats, DEFAULT_LINGER};
pub use crate::watch::{CoreWatch, WatchedCore};
pub use corestore_hypercore::ClearReport;
pub use corestore_keys::{CoreKey, DiscoveryKey, KeyPair, Manifest, Namespace, PrimaryKey};
pub use corestore_replicate::{Download, Replication, ReplicationError, ReplicationHandle};
