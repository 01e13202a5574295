//! The persistent index attacked as a crash or a power cut would: the store is copied at every
//! point where writing the index leaves distinct files (a run partly written, written, merged,
//! the manifest written aside, renamed, old runs removed), and every copy must open with the
//! right data: as it is (a crash: the OS kept every write), and with the log cut or zero-filled
//! after the last completed flush (a power cut: runs and manifests are synced before anything
//! names them, the log only by a flush). Also: stores written with the in-memory index are
//! indexed once on their first open with the default, and a crash in the middle of that resumes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::*;
use crate::backend::BatchOp;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn apply(model: &mut Model, op: &BatchOp) {
    match op {
        BatchOp::Put { key, value } => {
            model.insert(key.clone(), value.clone());
        }
        BatchOp::Delete { key } => {
            model.remove(key);
        }
        BatchOp::DeleteRange { start, end } => {
            model.retain(|k, _| k < start || k >= end);
        }
    }
}

/// A deterministic workload: puts over a few dozen keys (so later runs shadow earlier ones),
/// deletes and range deletes.
fn ops(n: u64) -> Vec<BatchOp> {
    let key = |i: u64| vec![3, 0, 0, 0, 0, 0, 0, 0, 1, 3, (i % 40) as u8];
    let mut ops =
        vec![BatchOp::Put { key: key(n * 7), value: vec![n as u8; (n % 5) as usize * 300] }];
    match n % 6 {
        0 => ops.push(BatchOp::Delete { key: key(n * 3) }),
        1 => ops.push(BatchOp::Put { key: key(n + 1), value: n.to_le_bytes().to_vec() }),
        2 => ops.push(BatchOp::DeleteRange { start: key(n % 20), end: key(n % 20 + 4) }),
        _ => ops.push(BatchOp::Put { key: vec![4], value: n.to_be_bytes().to_vec() }),
    }
    ops
}

fn batch_of(ops: &[BatchOp]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for op in ops {
        b.push(op.clone());
    }
    b
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the store taken at a crash point.
struct Snapshot {
    dir: PathBuf,
    point: &'static str,
    /// The state with every batch acknowledged (or being written) when it was taken.
    state: Model,
    /// The state and log length the last completed flush made durable.
    flushed: Model,
    durable_len: u64,
}

struct Recorder {
    store: PathBuf,
    root: PathBuf,
    state: Model,
    flushed: Model,
    durable_len: u64,
    snapshots: Vec<Snapshot>,
}

/// Copies the store at every crash point until the returned guard is dropped.
fn record(recorder: &Rc<RefCell<Recorder>>) -> impl Drop {
    let hook = recorder.clone();
    lsm::CRASH_POINT.with(|h| {
        *h.borrow_mut() = Some(Box::new(move |point| {
            let mut r = hook.borrow_mut();
            let dir = r.root.join(format!("crash-{}", r.snapshots.len()));
            copy_dir(&r.store, &dir);
            let (state, flushed, durable_len) = (r.state.clone(), r.flushed.clone(), r.durable_len);
            r.snapshots.push(Snapshot { dir, point, state, flushed, durable_len });
        }));
    });
    Unhook
}

/// Removes the crash-point hook when dropped.
struct Unhook;

impl Drop for Unhook {
    fn drop(&mut self) {
        lsm::CRASH_POINT.with(|h| *h.borrow_mut() = None);
    }
}

async fn everything(disk: &DiskStorage) -> Model {
    disk.scan(&[], &[255; 16], usize::MAX).await.unwrap().into_iter().collect()
}

/// Opens `dir` (after `damage`) and checks it holds `want`.
async fn check(dir: &Path, want: &Model, what: &str) {
    let options = DiskOptions::default().memtable_entries(5);
    let disk = match DiskStorage::open_with(dir, options) {
        Ok(disk) => disk,
        Err(e) => panic!("{what}: does not open: {e}"),
    };
    assert_eq!(&everything(&disk).await, want, "{what}");
    // And the index it left behind agrees with a second open.
    drop(disk);
    let disk = DiskStorage::open_with(dir, options).unwrap();
    assert_eq!(&everything(&disk).await, want, "{what}, reopened");
}

/// Every crash-point copy opens with every batch written so far (a crash), and with exactly the
/// flushed batches once the log after the last flush is cut or zero-filled (a power cut).
async fn check_snapshots(snapshots: &[Snapshot]) -> std::collections::BTreeSet<&'static str> {
    let mut points = std::collections::BTreeSet::new();
    for (n, s) in snapshots.iter().enumerate() {
        points.insert(s.point);
        let what = format!("crash copy {n} ({})", s.point);
        for (variant, cut) in [("cut", true), ("zero-filled", false)] {
            let lost = s.dir.with_extension(variant);
            copy_dir(&s.dir, &lost);
            let log = lost.join(LOG_FILE);
            let file = OpenOptions::new().write(true).open(&log).unwrap();
            let len = file.metadata().unwrap().len();
            if cut {
                file.set_len(s.durable_len).unwrap();
            } else {
                let zeros = vec![0u8; (len - s.durable_len) as usize];
                file.write_all_at(&zeros, s.durable_len).unwrap();
            }
            check(&lost, &s.flushed, &format!("{what}, power cut, log after the flush {variant}"))
                .await;
        }
        check(&s.dir, &s.state, &what).await;
    }
    points
}

#[tokio::test]
async fn every_crash_point_of_writing_and_merging_runs_reopens_with_the_right_data() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    let recorder = Rc::new(RefCell::new(Recorder {
        store: store.clone(),
        root: root.path().to_path_buf(),
        state: Model::new(),
        flushed: Model::new(),
        durable_len: log::HEADER_LEN,
        snapshots: Vec::new(),
    }));
    {
        // Declared first, dropped last: the close's writing out is recorded too.
        let _hook = record(&recorder);
        let disk =
            DiskStorage::open_with(&store, DiskOptions::default().memtable_entries(5)).unwrap();
        recorder.borrow_mut().durable_len = disk.log_len();
        for n in 0..24 {
            let ops = ops(n);
            {
                let mut r = recorder.borrow_mut();
                for op in &ops {
                    apply(&mut r.state, op);
                }
            }
            disk.write(batch_of(&ops)).await.unwrap();
            if n % 7 == 6 {
                let len = disk.log_len();
                disk.flush().await.unwrap();
                let mut r = recorder.borrow_mut();
                r.flushed = r.state.clone();
                r.durable_len = len;
            }
        }
        // The close writes the table out too (after syncing the log: all of it is durable).
        let mut r = recorder.borrow_mut();
        r.flushed = r.state.clone();
        r.durable_len = disk.log_len();
    }
    let snapshots = std::mem::take(&mut recorder.borrow_mut().snapshots);
    let points = check_snapshots(&snapshots).await;
    for point in [
        "run partly written",
        "run written",
        "merged run written",
        "manifest written aside",
        "manifest renamed",
        "merged run removed",
    ] {
        assert!(points.contains(point), "no crash at {point:?} (only {points:?})");
    }
}

#[tokio::test]
async fn a_store_written_with_the_in_memory_index_is_indexed_once_and_a_crash_midway_resumes() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    let mut state = Model::new();
    {
        let memory = DiskOptions::default().persistent_index(false);
        let disk = DiskStorage::open_with(&store, memory).unwrap();
        for n in 0..30 {
            let ops = ops(n);
            for op in &ops {
                apply(&mut state, op);
            }
            disk.write(batch_of(&ops)).await.unwrap();
        }
        // A compacted log too (a new salt: nothing of an older index could match it).
        disk.compact().await.unwrap();
        for n in 30..40 {
            let ops = ops(n);
            for op in &ops {
                apply(&mut state, op);
            }
            disk.write(batch_of(&ops)).await.unwrap();
        }
        disk.flush().await.unwrap();
    }
    assert!(!store.join(INDEX_DIR).join("MANIFEST").exists());
    let recorder = Rc::new(RefCell::new(Recorder {
        store: store.clone(),
        root: root.path().to_path_buf(),
        state: state.clone(),
        flushed: state.clone(),
        durable_len: std::fs::metadata(store.join(LOG_FILE)).unwrap().len(),
        snapshots: Vec::new(),
    }));
    {
        let _hook = record(&recorder);
        log::REPLAYED.with(|n| n.set(0));
        let disk =
            DiskStorage::open_with(&store, DiskOptions::default().memtable_entries(5)).unwrap();
        assert!(log::REPLAYED.with(std::cell::Cell::get) > 0, "the first open indexes the log");
        assert_eq!(everything(&disk).await, state);
    }
    log::REPLAYED.with(|n| n.set(0));
    let disk = DiskStorage::open_with(&store, DiskOptions::default().memtable_entries(5)).unwrap();
    assert_eq!(log::REPLAYED.with(std::cell::Cell::get), 0, "the second open replays nothing");
    assert_eq!(everything(&disk).await, state);
    drop(disk);
    // Crashes while the first open was building the index: every copy opens with all the data.
    let snapshots = std::mem::take(&mut recorder.borrow_mut().snapshots);
    assert!(snapshots.len() > 5, "{} crash points", snapshots.len());
    check_snapshots(&snapshots).await;
}

#[tokio::test]
async fn a_damaged_run_block_fails_reads_and_never_returns_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let options = DiskOptions::default().memtable_entries(1000);
    {
        let disk = DiskStorage::open_with(dir.path(), options).unwrap();
        for n in 0..40 {
            disk.write(batch_of(&[BatchOp::Put { key: vec![5, n], value: vec![n; 9] }]))
                .await
                .unwrap();
        }
    }
    let run = std::fs::read_dir(dir.path().join(INDEX_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    let mut bytes = std::fs::read(&run).unwrap();
    bytes[30] ^= 0x40;
    std::fs::write(&run, bytes).unwrap();
    let disk = DiskStorage::open_with(dir.path(), options).unwrap();
    let mut failed = 0;
    for n in 0..40u8 {
        match disk.get(&[5, n]).await {
            Ok(value) => assert_eq!(value, Some(vec![n; 9]), "a damaged index gave wrong data"),
            Err(err) => {
                assert_eq!(err.kind(), io::ErrorKind::InvalidData);
                failed += 1;
            }
        }
    }
    assert!(failed > 0, "the damage went unnoticed");
    drop(disk);
    // The index is a cache of the log: without it, the store opens whole again.
    std::fs::remove_dir_all(dir.path().join(INDEX_DIR)).unwrap();
    let disk = DiskStorage::open_with(dir.path(), options).unwrap();
    for n in 0..40u8 {
        assert_eq!(disk.get(&[5, n]).await.unwrap(), Some(vec![n; 9]));
    }
}
