//! Store directory safety: a second process is refused with "store is locked by another process",
//! and a store holding another primary key is refused with "another corestore is stored here".
#![cfg(unix)] // DiskStorage is Unix-only.

use std::process::Command;
use std::sync::Arc;

use corestore_keys::PrimaryKey;
use corestore_storage::{DiskError, DiskStorage, Storage, StorageError};

const CHILD_ENV: &str = "CORESTORE_LOCK_TEST_CHILD_DIR";

/// Serializes the tests of this file. A child process spawned by one test inherits (between fork
/// and exec) the open lock file of another test's store, so a close-then-reopen running at that
/// moment would see the store as locked. That is real `flock` behaviour, not a bug to hide: a
/// program that spawns processes while reopening a store may see the same, brief refusal.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
const EXIT_LOCKED: i32 = 3;

/// Child side of `second_process_is_refused`: a no-op unless the parent set `CHILD_ENV`.
#[test]
fn lock_child_opener() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    match DiskStorage::open(dir) {
        Ok(_) => {
            println!("child: opened");
            std::process::exit(0);
        }
        Err(e @ DiskError::Locked { .. }) => {
            println!("child: {e}");
            std::process::exit(EXIT_LOCKED);
        }
        Err(e) => {
            println!("child: unexpected {e}");
            std::process::exit(4);
        }
    }
}

fn run_child(dir: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_child_opener", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, dir)
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn second_process_is_refused_until_the_first_closes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let first = DiskStorage::open(dir.path()).unwrap();

    let (code, stdout) = run_child(dir.path());
    assert_eq!(code, Some(EXIT_LOCKED), "child output: {stdout}");
    assert!(stdout.contains("store is locked by another process"), "child output: {stdout}");

    // The same process is refused too (the lock is per open, not per process).
    assert!(matches!(DiskStorage::open(dir.path()), Err(DiskError::Locked { .. })));

    drop(first);
    let (code, stdout) = run_child(dir.path());
    assert_eq!(code, Some(0), "child output: {stdout}");
}

#[test]
fn another_primary_key_is_refused_after_reopen() {
    let _serial = serial();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let key = PrimaryKey::from_bytes([1; 32]);
        {
            let storage =
                Storage::open(Arc::new(DiskStorage::open(dir.path()).unwrap())).await.unwrap();
            assert_eq!(storage.init_primary_key(Some(key.clone())).await.unwrap(), key);
        }
        let storage =
            Storage::open(Arc::new(DiskStorage::open(dir.path()).unwrap())).await.unwrap();
        assert_eq!(storage.primary_key(), Some(key.clone()));
        let err =
            storage.init_primary_key(Some(PrimaryKey::from_bytes([2; 32]))).await.unwrap_err();
        assert!(matches!(err, StorageError::ForeignStore));
        assert!(err.to_string().contains("another corestore is stored here"));
        assert_eq!(storage.init_primary_key(None).await.unwrap(), key);
    });
}
