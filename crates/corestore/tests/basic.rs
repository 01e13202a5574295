//! JavaScript corestore 7 `test/basic.js`, the cases that need no network, ported. Each test's
//! doc names its JavaScript original.

use corestore::keys::derive_key_pair;
use corestore::{
    CoreRef, Corestore, GetError, GetOptions, Manifest, Namespace, OpenError, PrimaryKey,
    SessionOptions, StoreStats,
};
use futures::{StreamExt, TryStreamExt};

fn stats(store: &Corestore) -> StoreStats {
    store.stats()
}

/// `basic` and `basic non parallel`: two gets of one name share one core; its key is the
/// manifest hash, not the signer's public key.
#[tokio::test]
async fn basic() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let (a, b) = tokio::join!(store.get(CoreRef::name("test")), store.get(CoreRef::name("test")));
    let (a, b) = (a?, b?);
    assert_eq!(a.key(), b.key());
    assert_eq!(stats(&store).open_cores, 1, "same internal core");
    let c = store.get(CoreRef::name("test")).await?;
    assert_eq!(c.key(), a.key());
    assert_eq!(stats(&store).open_cores, 1);
    let manifest = a.manifest().expect("named cores have a manifest");
    assert_eq!(manifest.signers.len(), 1);
    assert_ne!(a.key().as_bytes(), manifest.signers[0].public_key.as_bytes());
    a.close().await;
    b.close().await;
    c.close().await;
    assert_eq!(stats(&store).open_cores, 0);
    Ok(())
}

/// `pass primary key`: an explicit primary key is stored and read back on reopen, and derives
/// the same named core in another store; a different key is refused (not in the JS test:
/// JavaScript throws "Another corestore is stored here").
#[tokio::test]
async fn pass_primary_key() -> anyhow::Result<()> {
    let primary_key = PrimaryKey::from_bytes([1; 32]);
    let dir = tempfile::tempdir()?;
    let store =
        Corestore::builder().path(dir.path()).primary_key(primary_key.clone()).open().await?;
    assert_eq!(store.primary_key(), &primary_key);
    let core = store.get(CoreRef::name("test")).await?;
    let key = *core.key();
    core.close().await;
    store.close().await?;

    let store2 = Corestore::open(dir.path()).await?;
    assert_eq!(store2.primary_key(), &primary_key);
    store2.close().await?;

    let refused =
        Corestore::builder().path(dir.path()).primary_key(PrimaryKey::from_bytes([2; 32])).open();
    assert!(matches!(refused.await, Err(OpenError::AnotherCorestore)));

    let other = tempfile::tempdir()?;
    let store = Corestore::builder().path(other.path()).primary_key(primary_key).open().await?;
    let core = store.get(CoreRef::name("test")).await?;
    assert_eq!(core.key(), &key);
    core.close().await;
    store.close().await?;
    Ok(())
}

/// `named cores are stable`: a named core created with another manifest (version 0) keeps it
/// when reopened by name alone in a fresh store on the same storage.
#[tokio::test]
async fn named_cores_are_stable() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Corestore::open(dir.path()).await?;
    let key_pair = derive_key_pair(store.primary_key(), &Namespace::ROOT, b"test");
    let old = Manifest { version: 0, ..Manifest::single_signer(key_pair.public_key()) };
    let core = store.get_with(CoreRef::name("test"), GetOptions::new().manifest(old)).await?;
    let expected = core.manifest();
    let key = *core.key();
    assert_eq!(expected.as_ref().map(|m| m.version), Some(0));
    core.close().await;
    store.close().await?;

    let fresh = Corestore::open(dir.path()).await?;
    let core = fresh.get(CoreRef::name("test")).await?;
    assert_eq!(core.manifest(), expected);
    assert_eq!(core.key(), &key);
    assert!(core.writable());
    core.close().await;
    fresh.close().await?;
    Ok(())
}

/// `open by discovery key`: a discovery key opens only a stored core; the same core opens by
/// manifest, and then by discovery key.
#[tokio::test]
async fn open_by_discovery_key() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let zero = corestore::DiscoveryKey::from_bytes([0; 32]);
    assert!(matches!(
        store.get(zero).await,
        Err(GetError::NotStored { discovery_key }) if discovery_key == zero
    ));
    let key_pair = corestore::KeyPair::generate();
    let manifest = Manifest::single_signer(key_pair.public_key());
    let discovery_key = manifest.hash().discovery_key();
    assert!(matches!(store.get(discovery_key).await, Err(GetError::NotStored { .. })));
    let a2 = store.get(manifest).await?;
    assert_eq!(a2.discovery_key(), &discovery_key);
    a2.close().await;
    let again = store.get(discovery_key).await?;
    assert_eq!(again.discovery_key(), &discovery_key);
    again.close().await;
    store.close().await?;
    Ok(())
}

/// `session of hypercore sessions are tracked in corestore sessions`: closing a store session
/// closes the core sessions opened through it, clones included, and not the root.
#[tokio::test]
async fn sessions_tracked_in_corestore_sessions() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let session = store.session(SessionOptions::new())?;
    let a = session.get(CoreRef::name("test")).await?;
    let b = a.clone();
    assert_eq!(session.stats().core_sessions, 2);
    session.close().await?;
    assert!(a.is_closed(), "a closed (explicit)");
    assert!(b.is_closed(), "b closed (implicit)");
    assert!(matches!(a.append(b"x").await, Err(corestore::AppendError::Closed)));
    assert_eq!(store.stats().open_cores, 0);
    assert!(!store.is_closed());
    let c = store.get(CoreRef::name("test")).await?;
    assert!(!c.is_closed());
    store.close().await?;
    assert!(c.is_closed());
    Ok(())
}

/// `corestores set does not grow when sessions are closed`.
#[tokio::test]
async fn corestores_set_does_not_grow_when_sessions_are_closed() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let before = store.stats().store_sessions;
    let sessions: Vec<_> =
        (0..10).map(|_| store.session(SessionOptions::new())).collect::<Result<_, _>>()?;
    assert!(store.stats().store_sessions > before, "sanity check: corestores set grew");
    for s in &sessions {
        s.close().await?;
    }
    assert_eq!(store.stats().store_sessions, before);
    Ok(())
}

/// `namespace sessions are removed from corestores set on close`.
#[tokio::test]
async fn namespace_sessions_are_removed_on_close() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let before = store.stats().store_sessions;
    let namespaces: Vec<_> =
        (0..10).map(|i| store.namespace(format!("ns-{i}"))).collect::<Result<_, _>>()?;
    assert!(store.stats().store_sessions > before, "sanity check: corestores set grew");
    for ns in &namespaces {
        ns.close().await?;
    }
    assert_eq!(store.stats().store_sessions, before);
    // Dropping one without closing also leaves the set.
    drop(store.namespace("dropped")?);
    assert_eq!(store.stats().store_sessions, before);
    Ok(())
}

/// `list stream`: every stored core, or one namespace's.
#[tokio::test]
async fn list_stream() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let namespace = store.namespace("test")?;
    let mut all = Vec::new();
    let mut in_namespace = Vec::new();
    for i in 0..10 {
        let name = format!("core{i}");
        let core = if i < 5 {
            store.get(CoreRef::name(&name)).await?
        } else {
            let core = namespace.get(CoreRef::name(&name)).await?;
            in_namespace.push(*core.discovery_key());
            core
        };
        all.push(*core.discovery_key());
    }
    all.sort();
    in_namespace.sort();
    let mut listed_all: Vec<_> = store.list().try_collect().await?;
    let mut listed_ns: Vec<_> =
        store.list_namespace(&namespace.namespace_key()).try_collect().await?;
    listed_all.sort();
    listed_ns.sort();
    assert_eq!(listed_all, all, "without namespace: every core");
    assert_eq!(listed_ns, in_namespace, "with namespace: its cores");
    assert_ne!(listed_all, listed_ns);
    assert!(listed_ns.iter().all(|k| listed_all.contains(k)));
    store.close().await?;
    Ok(())
}

/// `weak ref to react to cores opening`: a watcher sees the core open and, holding only a weak
/// reference, sees it close when its last session closes.
#[tokio::test]
async fn weak_ref_to_react_to_cores_opening() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let mut watch = store.watch()?;
    let core = store.get(CoreRef::name("hello")).await?;
    let weak = watch.next().await.expect("weak ref opened passively");
    assert_eq!(weak.key(), core.key());
    assert!(!weak.is_closed());
    core.close().await;
    weak.closed().await;
    assert!(weak.is_closed(), "weak ref closed passively");
    store.close().await?;
    Ok(())
}

/// `watchers are cleared when store is closed`.
#[tokio::test]
async fn watchers_are_cleared_when_store_is_closed() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let mut watch = store.watch()?;
    assert_eq!(store.stats().watchers, 1, "watchers exist before close");
    store.close().await?;
    assert_eq!(store.stats().watchers, 0, "watchers cleared after close");
    assert!(watch.next().await.is_none());
    assert!(store.watch().is_err());
    Ok(())
}

/// `basic - open with a keypair, read-only session concurrently opened`: a core opened by key
/// alone has no manifest; a second `get` with the manifest and key pair, while the first session
/// is still open, makes the shared core (and so both sessions) know both.
#[tokio::test]
async fn open_with_a_keypair_read_only_session_concurrently_opened() -> anyhow::Result<()> {
    let store = Corestore::in_memory().await?;
    let key_pair = corestore::KeyPair::generate();
    let manifest = Manifest::single_signer(key_pair.public_key());
    let key = manifest.hash();
    let core1 = store.get_with(key, GetOptions::new().key_pair(key_pair.clone())).await?;
    assert!(core1.manifest().is_some() && core1.writable());

    let key_pair = corestore::KeyPair::generate();
    let manifest = Manifest::single_signer(key_pair.public_key());
    let key = manifest.hash();
    let core1 = store.get(key).await?;
    assert!(core1.manifest().is_none());
    assert!(!core1.writable());
    let core2 =
        store.get_with(key, GetOptions::new().manifest(manifest).key_pair(key_pair)).await?;
    assert!(core2.manifest().is_some());
    assert!(core2.writable());
    assert!(core1.manifest().is_some(), "the shared core learned it");
    core2.append(b"signed").await?;
    assert_eq!(core1.length(), 1);
    store.close().await?;
    Ok(())
}

/// `manifest is persisted`: a manifest learned by a later `get` while the core is open is
/// stored, and a fresh store on the same storage knows it from the key alone.
#[tokio::test]
async fn manifest_is_persisted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let manifest = Manifest::single_signer(corestore::KeyPair::generate().public_key());
    let key = manifest.hash();
    {
        let store = Corestore::open(dir.path()).await?;
        let a = store.get(key).await?;
        assert!(a.manifest().is_none());
        let a2 = store.get(manifest.clone()).await?;
        assert!(a.manifest().is_some());
        assert!(a2.manifest().is_some());
        store.close().await?;
    }
    let store = Corestore::open(dir.path()).await?;
    let a = store.get(key).await?;
    assert_eq!(a.manifest(), Some(manifest));
    store.close().await?;
    Ok(())
}
