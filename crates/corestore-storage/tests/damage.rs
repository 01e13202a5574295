//! Damage to the log of a `DiskStorage`: lost pages end the log, record-shaped bytes inside
//! values are never replayed, damage to flushed data is refused (never cut), and a store
//! written in log format version 1 opens and is converted once.
#![cfg(unix)] // DiskStorage is Unix-only.

use std::path::Path;
use std::sync::Arc;

use corestore_keys::{KeyPair, Manifest, Namespace, PrimaryKey};
use corestore_storage::{
    CoreAuth, DiskError, DiskStorage, Hints, Storage, StorageBackend, StoredKeyPair, StoredNode,
    TreeHead, WriteBatch,
};

fn put(key: &[u8], value: &[u8]) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(key.to_vec(), value.to_vec());
    b
}

/// Closes the store as a crash would: dropping it syncs the log and writes the persistent
/// index's table out, which a crash never lets happen, so the index directory is put back as it
/// was before the drop (with the default table size, empty: the next open replays the whole log,
/// which is what these tests damage).
fn crash(disk: DiskStorage, dir: &Path) {
    let index = dir.join("index");
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&index)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .map(|p| {
                    let bytes = std::fs::read(&p).unwrap();
                    (p, bytes)
                })
                .collect()
        })
        .unwrap_or_default();
    drop(disk);
    if index.exists() {
        std::fs::remove_dir_all(&index).unwrap();
        std::fs::create_dir(&index).unwrap();
        for (path, bytes) in files {
            std::fs::write(path, bytes).unwrap();
        }
    }
}

/// Writes `batches` (flushed or not), crashes, and returns the log length after each.
async fn write_all(dir: &Path, batches: Vec<WriteBatch>, flush: bool) -> Vec<u64> {
    let disk = DiskStorage::open(dir).unwrap();
    let mut ends = vec![disk.log_len()];
    for b in batches {
        disk.write(b).await.unwrap();
        ends.push(disk.log_len());
    }
    if flush {
        disk.flush().await.unwrap();
    }
    crash(disk, dir);
    ends
}

fn log(dir: &Path) -> std::path::PathBuf {
    dir.join("data.log")
}

fn zero(dir: &Path, start: u64, end: u64) {
    let mut bytes = std::fs::read(log(dir)).unwrap();
    bytes[start as usize..end as usize].fill(0);
    std::fs::write(log(dir), bytes).unwrap();
}

/// A record framed as log version 1 frames one (`len crc32 payload`), which older replays
/// accepted wherever they met it.
fn v1_record(payload: &[u8]) -> Vec<u8> {
    let mut record = (payload.len() as u32).to_le_bytes().to_vec();
    record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    record.extend_from_slice(payload);
    record
}

fn v1_put(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut payload = vec![1];
    payload.extend_from_slice(&(key.len() as u32).to_le_bytes());
    payload.extend_from_slice(key);
    payload.extend_from_slice(&(value.len() as u32).to_le_bytes());
    payload.extend_from_slice(value);
    v1_record(&payload)
}

#[tokio::test]
async fn a_lost_page_ends_the_log_instead_of_being_walked_through() {
    let dir = tempfile::tempdir().unwrap();
    // 4998 bytes make the middle record a multiple of 8 long in either format, so a replay
    // that accepts all-zero headers would walk the zeros straight to the third record.
    let ends = write_all(
        dir.path(),
        vec![put(b"a", b"1"), put(b"b", &[b'B'; 4998]), put(b"c", b"3")],
        false,
    )
    .await;
    // Power loss: the pages of the second batch read as zeros.
    zero(dir.path(), ends[1], ends[2]);
    let disk = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(disk.get(b"a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(disk.get(b"b").await.unwrap(), None);
    assert_eq!(disk.get(b"c").await.unwrap(), None, "batch 3 replayed without batch 2");
    assert_eq!(disk.log_len(), ends[1]);
}

#[tokio::test]
async fn record_shaped_bytes_inside_a_value_are_never_replayed() {
    // A core's author plants a record inside a block: a put, and one that does not parse
    // (which used to make the whole store refuse to open).
    for planted in [v1_put(b"evil", b"!"), v1_record(&[0xff, 1, 2])] {
        let dir = tempfile::tempdir().unwrap();
        let mut value = vec![0u8; 4094];
        value.extend_from_slice(&planted);
        value.extend_from_slice(&[0; 64]);
        let ends =
            write_all(dir.path(), vec![put(b"a", b"1"), put(b"v", &value), put(b"c", b"3")], false)
                .await;
        // Power loss zero-fills the page holding the record header and everything up to the
        // planted bytes (the value starts 18 bytes into a version-1 record, 26 into this one).
        let planted_at = (ends[1]..ends[2])
            .find(|&at| {
                let bytes = std::fs::read(log(dir.path())).unwrap();
                bytes[at as usize..].starts_with(&planted)
            })
            .unwrap();
        zero(dir.path(), ends[1], planted_at);
        let disk = DiskStorage::open(dir.path()).unwrap();
        let all = disk.scan(&[], &[255; 8], usize::MAX).await.unwrap();
        assert_eq!(all, vec![(b"a".to_vec(), b"1".to_vec())]);
    }
}

/// A flush mark (record kind 2) claiming `durable`, framed as this log frames one, with a
/// header checksum an attacker can compute without the file's salt: over `offset` (when
/// `bind_offset`), the length, the payload checksum and the kind. The log would take it only if
/// the salt were not in the checksum.
fn forged_mark(offset: u64, bind_offset: bool, durable: u64) -> Vec<u8> {
    let body = durable.to_le_bytes();
    let pcrc = crc32fast::hash(&body);
    let mut h = crc32fast::Hasher::new();
    if bind_offset {
        h.update(&offset.to_le_bytes());
    }
    h.update(&8u32.to_le_bytes());
    h.update(&pcrc.to_le_bytes());
    h.update(&[2]);
    let mut mark = 8u32.to_le_bytes().to_vec();
    mark.extend_from_slice(&pcrc.to_le_bytes());
    mark.extend_from_slice(&h.finalize().to_le_bytes());
    mark.extend_from_slice(&[2, 0, 0, 0]);
    mark.extend_from_slice(&body);
    mark
}

/// Issue 13 §3 (high), in today's format: a core's author plants flush marks inside a block,
/// each at the 8-aligned place it lands (the layout is predictable, the salt is not), claiming
/// the whole file durable. After a torn unflushed record before them, open must cut the tail as
/// usual: were a planted mark taken, the store would refuse to open (`Damaged`), which is how
/// the old format let an author make a different core, or the whole store, unopenable.
#[tokio::test]
async fn a_flush_mark_planted_inside_a_value_never_makes_open_refuse() {
    let batches = |value: &[u8]| vec![put(b"b", b"BBBBBBBB"), put(b"v", value), put(b"c", b"3")];
    // Where the value lands: the same batches with a recognisable value of the same length.
    let probe = tempfile::tempdir().unwrap();
    let len = 4096;
    {
        let disk = DiskStorage::open(probe.path()).unwrap();
        disk.write(put(b"a", b"1")).await.unwrap();
        disk.flush().await.unwrap();
        crash(disk, probe.path());
    }
    write_all(probe.path(), batches(&vec![0xa5; len]), false).await;
    let bytes = std::fs::read(log(probe.path())).unwrap();
    let start = bytes.windows(64).position(|w| w == [0xa5; 64]).unwrap() as u64;
    let first = start.div_ceil(8) * 8;
    let mut value = vec![0u8; len];
    let mut at = first;
    for bind_offset in [true, false] {
        let mark = forged_mark(at, bind_offset, 1 << 40);
        let i = (at - start) as usize;
        value[i..i + mark.len()].copy_from_slice(&mark);
        at += mark.len() as u64;
    }
    // The real store: `a` flushed, then the batches with the planted value, then a crash.
    let dir = tempfile::tempdir().unwrap();
    {
        let disk = DiskStorage::open(dir.path()).unwrap();
        disk.write(put(b"a", b"1")).await.unwrap();
        disk.flush().await.unwrap();
        crash(disk, dir.path());
    }
    write_all(dir.path(), batches(&value), false).await;
    let mut bytes = std::fs::read(log(dir.path())).unwrap();
    assert_eq!(
        &bytes[first as usize..first as usize + 24],
        &value[(first - start) as usize..][..24]
    );
    // The unflushed `b` is torn.
    let torn = bytes.windows(8).position(|w| w == b"BBBBBBBB").unwrap();
    bytes[torn] ^= 1;
    std::fs::write(log(dir.path()), &bytes).unwrap();
    let disk =
        DiskStorage::open(dir.path()).unwrap_or_else(|e| panic!("a planted mark was taken: {e}"));
    let all = disk.scan(&[], &[255; 8], usize::MAX).await.unwrap();
    assert_eq!(all, vec![(b"a".to_vec(), b"1".to_vec())]);
}

#[tokio::test]
async fn damage_before_a_flush_refuses_to_open_and_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_all(dir.path(), vec![put(b"a", b"1"), put(b"b", b"BBBBBBBB"), put(b"c", b"3")], true)
        .await;
    let mut bytes = std::fs::read(log(dir.path())).unwrap();
    let at = bytes.windows(8).position(|w| w == b"BBBBBBBB").unwrap();
    bytes[at] ^= 1;
    std::fs::write(log(dir.path()), &bytes).unwrap();
    let err = DiskStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, DiskError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("refusing to open"));
    assert_eq!(std::fs::read(log(dir.path())).unwrap(), bytes, "the damaged log was changed");
}

#[tokio::test]
async fn damage_after_the_last_flush_is_a_torn_tail_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    {
        let disk = DiskStorage::open(dir.path()).unwrap();
        disk.write(put(b"a", b"1")).await.unwrap();
        disk.flush().await.unwrap();
        disk.write(put(b"b", b"BBBBBBBB")).await.unwrap();
        disk.write(put(b"c", b"3")).await.unwrap();
        crash(disk, dir.path());
    }
    let mut bytes = std::fs::read(log(dir.path())).unwrap();
    let at = bytes.windows(8).position(|w| w == b"BBBBBBBB").unwrap();
    bytes[at] ^= 1;
    std::fs::write(log(dir.path()), &bytes).unwrap();
    let disk = DiskStorage::open(dir.path()).unwrap();
    let all = disk.scan(&[], &[255; 8], usize::MAX).await.unwrap();
    assert_eq!(all, vec![(b"a".to_vec(), b"1".to_vec())]);
}

fn fixture_auth(seed: u8) -> CoreAuth {
    let kp = KeyPair::from_seed(&[seed; 32]);
    let manifest = Manifest::single_signer(kp.public_key());
    let key = manifest.hash();
    CoreAuth {
        key,
        discovery_key: key.discovery_key(),
        manifest: Some(manifest),
        key_pair: Some(StoredKeyPair {
            public_key: kp.public_key(),
            secret_key: Some(kp.secret_key()),
        }),
        frozen: false,
    }
}

/// Checks the contents `tests/fixtures/v1-data.log` was written with (by the version-1 code,
/// through the schema): primary key `[7; 32]`; core 1 (alias `fixture`/`main`) with 40 blocks
/// appended in 4 batches, then blocks 5..15 deleted, user and local data; core 2 with one block.
async fn check_fixture(disk: DiskStorage) {
    let storage = Storage::open(Arc::new(disk)).await.unwrap();
    assert_eq!(storage.primary_key(), Some(PrimaryKey::from_bytes([7; 32])));
    let (a, b) = (fixture_auth(1), fixture_auth(2));
    let ns = Namespace::ROOT.child("fixture");
    assert_eq!(storage.alias(&ns, b"main").await.unwrap(), Some(a.discovery_key));
    let core = storage.open_core(&a.discovery_key).await.unwrap().unwrap();
    assert_eq!(core.auth().await.unwrap(), a);
    let head = TreeHead { fork: 0, length: 40, tree_hash: [3; 32], signature: vec![9; 64] };
    assert_eq!(core.head().await.unwrap(), Some(head));
    assert_eq!(core.hints().await.unwrap(), Hints { contiguous_length: 40 });
    assert_eq!(core.bitfield_page(0).await.unwrap(), Some(vec![3; 64]));
    let blocks = core.blocks(0, u64::MAX, usize::MAX).await.unwrap();
    let want: Vec<u64> = (0..5).chain(15..40).collect();
    assert_eq!(blocks.iter().map(|(i, _)| *i).collect::<Vec<_>>(), want);
    for (i, data) in blocks {
        assert_eq!(data, vec![i as u8; 100 + i as usize]);
    }
    let node = StoredNode { size: 139, hash: [39; 32] };
    assert_eq!(core.tree_node(78).await.unwrap(), Some(node));
    assert_eq!(core.user_data(b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(core.local_data(b"l").await.unwrap().as_deref(), Some(&b"w"[..]));
    let other = storage.open_core(&b.discovery_key).await.unwrap().unwrap();
    assert_eq!(other.block(0).await.unwrap().as_deref(), Some(&b"other core"[..]));
    assert_eq!(storage.discovery_keys().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_version_1_store_opens_and_is_converted_once() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-data.log");
    std::fs::copy(fixture, log(dir.path())).unwrap();
    check_fixture(DiskStorage::open(dir.path()).unwrap()).await;
    let bytes = std::fs::read(log(dir.path())).unwrap();
    assert_eq!(&bytes[..16], b"CORESTORELOG\x02\0\0\0", "the log was not converted");
    // The converted log opens as it is, and takes writes.
    let disk = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(std::fs::read(log(dir.path())).unwrap(), bytes);
    disk.write(put(b"\x09new", b"x")).await.unwrap();
    disk.flush().await.unwrap();
    drop(disk);
    let disk = DiskStorage::open(dir.path()).unwrap();
    assert_eq!(disk.get(b"\x09new").await.unwrap().as_deref(), Some(&b"x"[..]));
    check_fixture(disk).await;
}

/// A version-1 store that lost a page before it was upgraded: the conversion keeps the records
/// before the zeros and never walks through them to a later record (which version 1's own replay
/// once did, as an empty record's checksum is 0).
#[tokio::test]
async fn a_version_1_log_with_a_lost_page_converts_only_what_precedes_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"CORESTORELOG\x01\0\0\0".to_vec();
    bytes.extend(v1_put(b"a", b"1"));
    // A lost record, a multiple of 8 bytes long, read back as zeros.
    let lost = v1_put(b"b", &[b'B'; 4086]);
    assert_eq!(lost.len() % 8, 0);
    bytes.extend(vec![0; lost.len()]);
    bytes.extend(v1_put(b"c", b"3"));
    std::fs::write(log(dir.path()), &bytes).unwrap();
    let disk = DiskStorage::open(dir.path()).unwrap();
    let all = disk.scan(&[], &[255; 8], usize::MAX).await.unwrap();
    assert_eq!(all, vec![(b"a".to_vec(), b"1".to_vec())], "replayed past the lost page");
    assert_eq!(&std::fs::read(log(dir.path())).unwrap()[..16], b"CORESTORELOG\x02\0\0\0");
}

#[test]
fn a_future_log_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut header = b"CORESTORELOG\x03\0\0\0".to_vec();
    header.extend_from_slice(&[0; 16]);
    std::fs::write(log(dir.path()), &header).unwrap();
    let err = DiskStorage::open(dir.path()).unwrap_err();
    assert!(matches!(err, DiskError::UnsupportedFormat { found: 3, supported: 2 }), "{err}");
    assert_eq!(std::fs::read(log(dir.path())).unwrap(), header);
}
