//! `Corestore::list` / `list_namespace` as streams over more than one storage page (1,024 keys).

use corestore::{CoreRef, Corestore, DiscoveryKey};
use futures::{StreamExt, TryStreamExt};

#[tokio::test]
async fn list_streams_more_than_one_page_of_cores_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Corestore::open(dir.path()).await.unwrap();
    let ns = store.namespace("many").unwrap();
    let mut all = Vec::new();
    let mut named = Vec::new();
    for i in 0..1100 {
        let core = ns.get(CoreRef::name(format!("core-{i:04}"))).await.unwrap();
        named.push(*core.discovery_key());
        all.push(*core.discovery_key());
    }
    for i in 0..200 {
        all.push(*store.get(CoreRef::name(format!("root-{i}"))).await.unwrap().discovery_key());
    }
    all.sort();
    let listed: Vec<DiscoveryKey> = store.list().try_collect().await.unwrap();
    assert_eq!(listed.len(), 1300);
    assert_eq!(listed, all, "every core once, in byte order");
    let listed: Vec<DiscoveryKey> =
        store.list_namespace(&ns.namespace_key()).try_collect().await.unwrap();
    assert_eq!(listed, named, "the namespace's cores, in name order");
    // Partly read, then dropped: nothing is left behind.
    let first_two: Vec<_> = store.list().take(2).try_collect().await.unwrap();
    assert_eq!(first_two, all[..2]);
    store.close().await.unwrap();
}
