//! The facade's own behaviours: keys in every form, writability, read-only stores, session and
//! store close, use after close, waiting reads, read and event streams.

use std::time::Duration;

use corestore::{
    AppendError, BlockError, CoreEvent, CoreRef, Corestore, GetError, GetOptions, SessionOptions,
    TruncateError,
};
use futures::{StreamExt, TryStreamExt};

#[tokio::test]
async fn a_key_in_any_form_opens_a_session_on_the_same_core() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let named = store.get(CoreRef::name("my-core-1")).await?;
    let key = *named.key();
    let by_key = store.get(key).await?;
    let by_hex = store.get(CoreRef::parse_key(&key.to_hex())?).await?;
    let by_z32 = store.get(CoreRef::parse_key(&key.to_z32())?).await?;
    let by_bytes = store.get(CoreRef::key_bytes(key.as_bytes())?).await?;
    let by_array = store.get(key.to_bytes()).await?;
    assert_eq!(store.stats().open_cores, 1);
    assert_eq!(store.stats().core_sessions, 6);
    for core in [&by_key, &by_hex, &by_z32, &by_bytes, &by_array] {
        assert_eq!(core.key(), &key);
        assert!(core.writable(), "the store holds the secret key");
    }
    assert!(CoreRef::parse_key("not a key").is_err());
    assert!(CoreRef::key_bytes(&[0; 31]).is_err());
    named.append(b"hello").await?;
    assert_eq!(by_z32.get(0).await?.as_deref(), Some(&b"hello"[..]));
    store.close().await?;
    Ok(())
}

/// A named core reopened later by its key (in a fresh store on the same disk) is writable.
#[tokio::test]
async fn a_named_core_reopened_by_key_is_writable() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Corestore::open(dir.path()).await?;
    let core = store.get(CoreRef::name("main")).await?;
    assert_eq!(core.append_batch(&[b"a", b"b"]).await?, 2);
    let key = *core.key();
    store.close().await?;
    assert!(core.is_closed());

    let store = Corestore::open(dir.path()).await?;
    let core = store.get(key).await?;
    assert!(core.writable());
    assert_eq!(core.length(), 2);
    assert_eq!(core.append(b"c").await?, 3);
    // A key this store never saw is a read-only replica.
    let other = store.get(corestore::KeyPair::generate()).await?;
    let foreign = *other.key();
    drop(other);
    let fresh = Corestore::in_memory().await?;
    let replica = fresh.get(foreign).await?;
    assert!(!replica.writable());
    assert!(matches!(replica.append(b"x").await, Err(AppendError::NotWritable)));
    store.close().await?;
    Ok(())
}

#[tokio::test]
async fn options_writable_and_create_if_missing() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let missing =
        store.get_with(CoreRef::name("nope"), GetOptions::new().create_if_missing(false)).await;
    assert!(matches!(missing, Err(GetError::NotStored { .. })));
    assert!(store.list().next().await.is_none(), "nothing was created");
    assert!(matches!(store.get(CoreRef::name("")).await, Err(GetError::EmptyName)));

    let writer = store.get(CoreRef::name("w")).await?;
    let reader = store.get_with(*writer.key(), GetOptions::new().writable(false)).await?;
    assert!(writer.writable() && !reader.writable());
    assert!(matches!(reader.append(b"x").await, Err(AppendError::NotWritable)));
    assert!(matches!(reader.truncate(0).await, Err(TruncateError::NotWritable)));
    store.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_read_only_store_opens_stored_cores_read_only_and_creates_nothing() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let store = Corestore::open(dir.path()).await?;
    let key = *store.get(CoreRef::name("main")).await?.key();
    store.close().await?;

    let store = Corestore::builder().path(dir.path()).read_only(true).passive(true).open().await?;
    assert!(store.is_read_only() && store.is_passive());
    let core = store.get(key).await?;
    assert!(!core.writable());
    assert!(matches!(store.get(CoreRef::name("new")).await, Err(GetError::NotStored { .. })));
    // A session can lift the flag for its own cores.
    let writer = store.session(SessionOptions::new().read_only(false))?;
    assert!(writer.get(CoreRef::name("main")).await?.writable());
    store.close().await?;
    Ok(())
}

#[tokio::test]
async fn namespaces_and_sessions_share_cores_and_close_only_their_own() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let ns = store.namespace("a")?.namespace("b")?;
    assert_eq!(ns.namespace_key(), corestore::Namespace::from_chain(["a", "b"]));
    let root_main = store.get(CoreRef::name("main")).await?;
    let ns_main = ns.get(CoreRef::name("main")).await?;
    assert_ne!(root_main.key(), ns_main.key(), "namespaces derive different cores");
    let shared = ns.get(*root_main.key()).await?;
    assert_eq!(store.stats().open_cores, 2);

    // A session back at the root namespace derives the root's cores.
    let reset = ns.session(SessionOptions::new().namespace(corestore::Namespace::ROOT))?;
    assert_eq!(reset.get(CoreRef::name("main")).await?.key(), root_main.key());
    // Another primary key derives other cores.
    let other = store
        .session(SessionOptions::new().primary_key(corestore::PrimaryKey::from_bytes([7; 32])))?;
    assert_ne!(other.get(CoreRef::name("main")).await?.key(), root_main.key());

    ns.close().await?;
    assert!(ns_main.is_closed() && shared.is_closed());
    assert!(!root_main.is_closed(), "the root's own session stays open");
    assert!(matches!(ns.get(CoreRef::name("x")).await, Err(GetError::Closed)));
    assert!(ns.namespace("c").is_err());
    assert_eq!(root_main.append(b"still writable").await?, 1);

    store.close().await?;
    assert!(root_main.is_closed());
    assert!(matches!(root_main.append(b"x").await, Err(AppendError::Closed)));
    assert!(matches!(root_main.get(0).await, Err(BlockError::Closed)));
    assert!(root_main.info().is_err());
    assert!(matches!(store.get(CoreRef::name("main")).await, Err(GetError::Closed)));
    assert!(matches!(reset.get(CoreRef::name("main")).await, Err(GetError::Closed)));
    assert_eq!(store.stats().open_cores, 0);
    Ok(())
}

#[tokio::test]
async fn dropping_the_last_session_closes_the_core() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let a = store.get(CoreRef::name("x")).await?;
    let b = a.clone();
    assert_eq!(store.stats().core_sessions, 2);
    drop(a);
    assert_eq!(store.stats().open_cores, 1);
    let watcher = b.clone();
    drop(b);
    assert_eq!(store.stats().open_cores, 1, "the clone is a session too");
    drop(watcher);
    tokio::task::yield_now().await;
    assert_eq!(store.stats(), corestore::StoreStats::default());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn get_waits_for_an_append_with_timeout_and_wait_false() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let writer = store.get(CoreRef::name("w")).await?;
    let key = *writer.key();
    let now = store.get_with(key, GetOptions::new().wait(false)).await?;
    assert_eq!(now.get(0).await?, None);
    let bounded = store.get_with(key, GetOptions::new().timeout(Duration::from_secs(2))).await?;
    assert!(matches!(bounded.get(0).await, Err(BlockError::Timeout { index: 0, .. })));

    let waiting = store.get(key).await?;
    let read = waiting.get(1);
    tokio::pin!(read);
    assert!(futures::poll!(read.as_mut()).is_pending());
    writer.append(b"zero").await?;
    assert!(futures::poll!(read.as_mut()).is_pending());
    writer.append(b"one").await?;
    assert_eq!(read.await?.as_deref(), Some(&b"one"[..]));
    assert!(waiting.has(1).await? && !waiting.has(2).await?);
    store.close().await?;
    Ok(())
}

#[tokio::test]
async fn read_streams_bounded_unbounded_and_live() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let core = store.get(CoreRef::name("s")).await?;
    core.append_batch(&[b"a", b"b", b"c"]).await?;
    let all: Vec<_> = core.read_stream(.., false).collect().await;
    let all: Vec<Vec<u8>> = all.into_iter().collect::<Result<_, _>>()?;
    assert_eq!(all, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    let some: Vec<_> = core.read_stream(1..=1, false).map(Result::unwrap).collect().await;
    assert_eq!(some, [b"b".to_vec()]);

    let mut live = Box::pin(core.read_stream(2.., true));
    assert_eq!(live.next().await.transpose()?.as_deref(), Some(&b"c"[..]));
    let next = live.next();
    tokio::pin!(next);
    assert!(futures::poll!(next.as_mut()).is_pending());
    core.append(b"d").await?;
    assert_eq!(next.await.transpose()?.as_deref(), Some(&b"d"[..]));

    let no_wait = store.get_with(*core.key(), GetOptions::new().wait(false)).await?;
    let missing: Vec<_> = no_wait.read_stream(3..6, false).collect().await;
    assert!(missing.len() == 2 && missing[0].is_ok());
    assert!(matches!(missing[1], Err(BlockError::NotAvailable { index: 4 })));
    store.close().await?;
    assert!(live.next().await.transpose().is_err(), "a live stream ends with the store");
    Ok(())
}

#[tokio::test]
async fn events_info_seek_and_truncate() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let core = store.get(CoreRef::name("e")).await?;
    let mut events = Box::pin(core.events());
    core.append_batch(&[&b"aa"[..], b"bbb"]).await?;
    assert_eq!(events.next().await, Some(CoreEvent::Append { length: 2, byte_length: 5 }));
    assert_eq!(core.seek(3).await?, (1, 1));
    core.truncate(1).await?;
    assert_eq!(events.next().await, Some(CoreEvent::Truncate { length: 1, fork: 1 }));
    let info = core.info()?;
    assert_eq!((info.length, info.byte_length, info.fork, info.contiguous_length), (1, 2, 1, 1));
    assert!(info.writable && info.key == *core.key());
    store.close().await?;
    assert_eq!(events.next().await, None, "the event stream ends when the core closes");
    Ok(())
}

#[tokio::test]
async fn a_custom_backend_keeps_the_primary_key_and_cores() -> anyhow::Result<()> {
    let backend: std::sync::Arc<dyn corestore::storage::StorageBackend> =
        std::sync::Arc::new(corestore::storage::MemoryStorage::new());
    let store = Corestore::builder().storage(backend.clone()).open().await?;
    let primary_key = store.primary_key().clone();
    let core = store.get(CoreRef::name("kept")).await?;
    core.append(b"data").await?;
    let key = *core.key();
    store.close().await?;

    let store = Corestore::builder().storage(backend).open().await?;
    assert_eq!(store.primary_key(), &primary_key, "random on first open, then persisted");
    let core = store.get(CoreRef::name("kept")).await?;
    assert_eq!((core.key(), core.length()), (&key, 1));
    let listed: Vec<_> = store.list().try_collect().await?;
    assert_eq!(listed, vec![*core.discovery_key()]);
    store.close().await?;
    Ok(())
}
