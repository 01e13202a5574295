//! Opening and closing cores leaks nothing: this test binary counts every heap allocation (a
//! `stats_alloc` global allocator, in this binary only) and checks that closing every core
//! returns the heap to what the store held before, cycle after cycle, and that closing the
//! store returns it to what the process held before the store existed. (RSS is not the
//! measure: glibc keeps freed pages; see benches/README.md, "Open 10,000 named cores".)

use std::alloc::System;
use std::sync::Arc;

use corestore::storage::{MemoryStorage, StorageBackend};
use corestore::{CoreRef, Corestore};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes in use now.
fn heap() -> i64 {
    let s = GLOBAL.stats();
    i64::try_from(s.bytes_allocated).unwrap() - i64::try_from(s.bytes_deallocated).unwrap()
}

const CORES: usize = 300;
/// What one cycle may leave over the last (allocator-independent bookkeeping such as a
/// registry that has not shrunk yet): far below one byte per core per cycle.
const SLACK: i64 = 16 * 1024;

async fn cycle(store: &Corestore, append: bool) -> anyhow::Result<()> {
    let mut cores = Vec::with_capacity(CORES);
    for i in 0..CORES {
        let core = store.get(CoreRef::name(format!("core-{i}"))).await?;
        if append {
            core.append(format!("block of {i}")).await?;
        }
        cores.push(core);
    }
    assert_eq!(store.stats().open_cores, CORES);
    for core in cores {
        core.close().await;
    }
    assert_eq!(store.stats().open_cores, 0);
    Ok(())
}

#[tokio::test]
async fn closing_every_core_frees_what_they_held_and_closing_the_store_frees_the_rest(
) -> anyhow::Result<()> {
    // A first store warms what a process sets up once (the runtime's task slots, statics).
    let warm = Corestore::builder().storage(Arc::new(MemoryStorage::new())).open().await?;
    cycle(&warm, true).await?;
    warm.close().await?;
    drop(warm);
    let before_store = heap();
    let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    let store = Corestore::builder().storage(backend.clone()).open().await?;
    // First cycle: creates the cores (their records stay in storage) and warms every cache.
    cycle(&store, true).await?;
    let after_first = heap();
    for round in 0..3 {
        cycle(&store, false).await?;
        let grown = heap() - after_first;
        assert!(grown <= SLACK, "round {round}: {grown} bytes more after closing every core");
    }
    // Open cores hold memory that closing gives back.
    let mut open = Vec::new();
    for i in 0..CORES {
        open.push(store.get(CoreRef::name(format!("core-{i}"))).await?);
    }
    let held = heap() - after_first;
    assert!(held > 100 * i64::try_from(CORES)?, "open cores hold {held} bytes: the probe works");
    // Dropped (not awaited) sessions close on tasks of their own: let them run.
    drop(open);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let grown = heap() - after_first;
    assert!(grown <= SLACK, "{grown} bytes more after dropping every session");
    store.close().await?;
    drop(store);
    drop(backend);
    let left = heap() - before_store;
    assert!(left <= SLACK, "{left} bytes left after closing the store");
    Ok(())
}
