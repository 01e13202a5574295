//! Unit tests of the disk backend: replay, damage, compaction and locking.

use super::*;

thread_local! {
    /// Every directory `sync_dir` synced on this thread.
    pub(super) static SYNCED_DIRS: std::cell::RefCell<Vec<PathBuf>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn batch(ops: &[(&[u8], Option<&[u8]>)]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for (k, v) in ops {
        match v {
            Some(v) => b.put(k.to_vec(), v.to_vec()),
            None => b.delete(k.to_vec()),
        };
    }
    b
}

#[tokio::test]
async fn reopen_replays_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = DiskStorage::open(dir.path()).unwrap();
        s.write(batch(&[(b"a", Some(b"1")), (b"b", Some(b"2"))])).await.unwrap();
        s.write(batch(&[(b"a", None), (b"c", Some(b"3"))])).await.unwrap();
        s.flush().await.unwrap();
    }
    let log = dir.path().join(LOG_FILE);
    let good = std::fs::metadata(&log).unwrap().len();
    // A torn append: a record header promising more than was written.
    let f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all_at(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9], good).unwrap();
    let s = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(s.get(b"a").await.unwrap(), None);
    assert_eq!(s.get(b"b").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(s.get(b"c").await.unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(std::fs::metadata(&log).unwrap().len(), good);
}

/// Replay semantics, so with the in-memory index (which replays the whole log on every open; the
/// persistent index trusts the records its runs cover and replays only the rest).
#[tokio::test]
async fn bad_checksum_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let memory = DiskOptions::default().persistent_index(false);
    {
        let s = DiskStorage::open_with(dir.path(), memory).unwrap();
        s.write(batch(&[(b"a", Some(b"1"))])).await.unwrap();
        s.write(batch(&[(b"b", Some(b"BBBBBBBB"))])).await.unwrap();
    }
    let log = dir.path().join(LOG_FILE);
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.windows(8).position(|w| w == b"BBBBBBBB").unwrap();
    bytes[at] = b'X';
    std::fs::write(&log, bytes).unwrap();
    let s = DiskStorage::open_with(dir.path(), memory).unwrap();
    assert_eq!(s.get(b"a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(s.get(b"b").await.unwrap(), None);
}

#[test]
fn second_open_is_locked_and_foreign_files_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = DiskStorage::open(dir.path()).unwrap();
    let err = DiskStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, DiskError::Locked { .. }));
    assert!(err.to_string().starts_with("store is locked by another process"));
    drop(first);
    drop(DiskStorage::open(dir.path()).unwrap());

    std::fs::write(dir.path().join(LOG_FILE), b"CORESTORELOG\x07\0\0\0").unwrap();
    assert!(matches!(
        DiskStorage::open(dir.path()),
        Err(DiskError::UnsupportedFormat { found: 7, supported: 2 })
    ));
    std::fs::write(dir.path().join(LOG_FILE), b"something else entirely").unwrap();
    assert!(matches!(DiskStorage::open(dir.path()), Err(DiskError::NotALog { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_half_a_batch_even_across_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStorage::open_with(dir.path(), DiskOptions::default().compact_min_len(64 << 10))
        .unwrap();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for n in 0u32..2000 {
                let v = n.to_be_bytes().repeat(64);
                s.write(batch(&[(b"a", Some(&v)), (b"b", Some(&v)), (b"c", Some(&v))]))
                    .await
                    .unwrap();
            }
        })
    };
    let mut last = Vec::new();
    while !writer.is_finished() {
        let rows = s.scan(b"a", b"d", 10).await.unwrap();
        if let Some((_, first)) = rows.first() {
            assert_eq!(rows.len(), 3);
            assert!(rows.iter().all(|(_, v)| v == first), "a torn batch was visible");
            assert!(*first >= last, "a read went back in time");
            last.clone_from(first);
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    assert!(s.compactions() > 0);
}

#[tokio::test]
async fn compaction_keeps_live_records_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(dir.path()).unwrap();
    for round in 0..50u8 {
        s.write(batch(&[(b"k", Some(&[round; 1000])), (&[round], Some(b"v"))])).await.unwrap();
    }
    let mut range = WriteBatch::new();
    range.delete_range(vec![10], vec![40]);
    s.write(range).await.unwrap();
    let before = s.log_len();
    s.compact().await.unwrap();
    assert!(s.log_len() < before / 10);
    assert_eq!(s.len(), 21);
    drop(s);
    let s = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(s.get(b"k").await.unwrap(), Some(vec![49; 1000]));
    assert_eq!(s.get(&[9]).await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(s.get(&[10]).await.unwrap(), None);
    assert_eq!(s.scan(&[0], &[255], 100).await.unwrap().len(), 21);
}

#[test]
fn creating_a_store_syncs_the_parent_of_every_new_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a").join("b");
    SYNCED_DIRS.with(|d| d.borrow_mut().clear());
    drop(DiskStorage::open(&dir).unwrap());
    let synced = SYNCED_DIRS.with(std::cell::RefCell::take);
    for want in [root.path().to_path_buf(), root.path().join("a"), dir.clone()] {
        assert!(synced.contains(&want), "{} not synced (synced: {synced:?})", want.display());
    }
}

#[test]
fn compaction_never_builds_a_record_above_the_limit() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s =
        DiskStorage::open_with(dir.path(), DiskOptions::default().persistent_index(false)).unwrap();
    for k in 0u8..10 {
        let len = if k % 2 == 0 { 50 } else { 100 };
        rt.block_on(s.write(batch(&[(&[k], Some(&vec![k; len]))]))).unwrap();
    }
    // Entries of 60 and 110 bytes grouped towards 100-byte records, but no record may exceed
    // 128 bytes (a value near the 1 GiB limit used to make every compaction fail this way).
    let new = tempfile::tempfile().unwrap();
    let state = s.inner.read_state();
    let Keys::Memory(index) = &state.index else { panic!("opened with the in-memory index") };
    let (index, end) = log::rewrite(&state.file, index, &new, &log::new_salt(), 100, 128).unwrap();
    assert_eq!(index.map.len(), 10);
    assert!(end > log::HEADER_LEN);
}

#[tokio::test]
async fn a_failing_compaction_is_not_retried_after_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let s =
        DiskStorage::open_with(dir.path(), DiskOptions::default().compact_min_len(1024)).unwrap();
    // Compaction cannot create its scratch file while a directory sits at its path.
    std::fs::create_dir(dir.path().join(COMPACT_FILE)).unwrap();
    for n in 0u8..200 {
        s.write(batch(&[(b"k", Some(&[n; 100]))])).await.unwrap();
    }
    let failures = s.compaction_failures();
    assert!((1..20).contains(&failures), "{failures} failed compactions for 200 writes");
    assert_eq!(s.compactions(), 0);
    std::fs::remove_dir(dir.path().join(COMPACT_FILE)).unwrap();
    for n in 0u8..200 {
        s.write(batch(&[(b"k", Some(&[n; 100]))])).await.unwrap();
    }
    assert!(s.compactions() > 0, "compaction is tried again once the log has grown");
    assert_eq!(s.get(b"k").await.unwrap(), Some(vec![199; 100]));
}

#[tokio::test]
async fn a_cut_padding_is_restored_so_the_next_record_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(LOG_FILE);
    {
        let s = DiskStorage::open(dir.path()).unwrap();
        // A 13-byte payload: the record is padded with 3 zero bytes.
        s.write(batch(&[(b"a", Some(b"123"))])).await.unwrap();
    }
    let len = std::fs::metadata(&log).unwrap().len();
    OpenOptions::new().write(true).open(&log).unwrap().set_len(len - 2).unwrap();
    {
        let s = DiskStorage::open(dir.path()).unwrap();
        assert_eq!(s.log_len(), len);
        s.write(batch(&[(b"b", Some(b"2"))])).await.unwrap();
    }
    let s = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(s.get(b"a").await.unwrap().as_deref(), Some(&b"123"[..]));
    assert_eq!(s.get(b"b").await.unwrap().as_deref(), Some(&b"2"[..]));
}

#[tokio::test]
async fn cutting_a_tail_without_the_persistent_index_retires_it() {
    let dir = tempfile::tempdir().unwrap();
    let persistent = DiskOptions::default().persistent_index(true).memtable_entries(2);
    {
        let s = DiskStorage::open_with(dir.path(), persistent).unwrap();
        for k in 0u8..10 {
            s.write(batch(&[(&[k], Some(&[k; 10]))])).await.unwrap();
        }
    }
    let manifest = dir.path().join(INDEX_DIR).join("MANIFEST");
    assert!(manifest.exists());
    // A torn tail, cut by an open with the default index.
    let log = dir.path().join(LOG_FILE);
    let len = std::fs::metadata(&log).unwrap().len();
    OpenOptions::new().write(true).open(&log).unwrap().write_all_at(&[7; 40], len).unwrap();
    drop(DiskStorage::open_with(dir.path(), persistent.persistent_index(false)).unwrap());
    assert!(!manifest.exists(), "a persistent index covering a cut stretch survived");
    let s = DiskStorage::open_with(dir.path(), persistent).unwrap();
    for k in 0u8..10 {
        assert_eq!(s.get(&[k]).await.unwrap(), Some(vec![k; 10]));
    }
}

#[tokio::test]
async fn the_log_is_synced_in_the_background_as_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStorage::open(dir.path()).unwrap();
    let synced = |s: &DiskStorage| s.inner.writer.lock().unwrap().synced;
    let before = synced(&s);
    let value = vec![7u8; 1 << 20];
    for n in 0u8..20 {
        s.write(batch(&[(&[n], Some(&value))])).await.unwrap();
    }
    let job = s.inner.background.lock().unwrap().take().expect("a background sync started");
    job.await.unwrap();
    // No flush, yet the first 16 MiB are known durable (and spills will record it).
    assert!(synced(&s) >= before + BACKGROUND_SYNC, "synced {} of {}", synced(&s), s.log_len());
    assert!(synced(&s) < s.log_len());
}
