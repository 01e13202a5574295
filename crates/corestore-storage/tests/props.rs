//! Property tests run against every shipped backend through one generic harness: random batches
//! against a `BTreeMap` model (gets, bounded scans, range deletes, reopen), and schema round trips
//! with index-ordered scans.
#![cfg(unix)] // DiskStorage is Unix-only.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use corestore_keys::{KeyPair, Manifest, Namespace};
use corestore_storage::{
    BatchOp, CoreAuth, DiskOptions, DiskStorage, FaultyStorage, Hints, MemoryStorage, Storage,
    StorageBackend, StoredKeyPair, StoredNode, TreeHead, WriteBatch,
};
use proptest::prelude::*;

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Which backend a case runs on. Disk cases reopen the directory where the test says so.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    Faulty,
    /// Disk with the default options (the persistent index, a table that never fills here: it is
    /// written out when the store is dropped).
    Disk,
    /// Disk with the persistent index and a tiny in-memory table, so runs and merges happen
    /// (and the default cache of run blocks).
    DiskIndexed,
    /// [`Kind::DiskIndexed`] without the cache of run blocks.
    DiskIndexedUncached,
    /// Disk with every key in memory (`persistent_index` off).
    DiskMemoryIndex,
}

fn indexed() -> DiskOptions {
    DiskOptions::default().persistent_index(true).memtable_entries(3)
}

fn options(kind: Kind) -> DiskOptions {
    match kind {
        Kind::DiskIndexed => indexed(),
        Kind::DiskIndexedUncached => indexed().block_cache_bytes(0),
        Kind::DiskMemoryIndex => DiskOptions::default().persistent_index(false),
        _ => DiskOptions::default(),
    }
}

struct Fixture {
    kind: Kind,
    dir: Option<tempfile::TempDir>,
    backend: Arc<dyn StorageBackend>,
}

impl Fixture {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Memory => Self { kind, dir: None, backend: Arc::new(MemoryStorage::new()) },
            Kind::Faulty => Self {
                kind,
                dir: None,
                backend: Arc::new(FaultyStorage::new(Arc::new(MemoryStorage::new()))),
            },
            Kind::Disk | Kind::DiskIndexed | Kind::DiskIndexedUncached | Kind::DiskMemoryIndex => {
                let dir = tempfile::tempdir().unwrap();
                let backend = Arc::new(DiskStorage::open_with(dir.path(), options(kind)).unwrap());
                Self { kind, dir: Some(dir), backend }
            }
        }
    }

    /// A fresh handle on the same data: disk stores are closed and replayed from the log.
    fn reopen(&mut self) {
        if let (
            Kind::Disk | Kind::DiskIndexed | Kind::DiskIndexedUncached | Kind::DiskMemoryIndex,
            Some(dir),
        ) = (self.kind, &self.dir)
        {
            self.backend = Arc::new(MemoryStorage::new());
            self.backend =
                Arc::new(DiskStorage::open_with(dir.path(), options(self.kind)).unwrap());
        }
    }
}

// ---- backend vs model ----

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0u8..4, 0..4)
}

fn op() -> impl Strategy<Value = BatchOp> {
    prop_oneof![
        4 => (key(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(key, value)| BatchOp::Put { key, value }),
        2 => key().prop_map(|key| BatchOp::Delete { key }),
        1 => (key(), key()).prop_map(|(start, end)| BatchOp::DeleteRange { start, end }),
    ]
}

fn apply(model: &mut Model, op: &BatchOp) {
    match op {
        BatchOp::Put { key, value } => {
            model.insert(key.clone(), value.clone());
        }
        BatchOp::Delete { key } => {
            model.remove(key);
        }
        BatchOp::DeleteRange { start, end } => model.retain(|k, _| k < start || k >= end),
    }
}

async fn check_against_model(
    fixture: &mut Fixture,
    batches: Vec<Vec<BatchOp>>,
    probes: Vec<(Vec<u8>, Vec<u8>, usize)>,
) {
    let mut model = Model::new();
    for ops in batches {
        let mut batch = WriteBatch::new();
        for op in ops {
            apply(&mut model, &op);
            batch.push(op);
        }
        fixture.backend.write(batch).await.unwrap();
    }
    fixture.backend.flush().await.unwrap();
    for round in 0..2 {
        let all = fixture.backend.scan(&[], &[255; 8], usize::MAX).await.unwrap();
        assert_eq!(all, model.clone().into_iter().collect::<Vec<_>>(), "round {round}");
        for (k, v) in &model {
            assert_eq!(fixture.backend.get(k).await.unwrap().as_ref(), Some(v));
        }
        for (start, end, limit) in &probes {
            let got = fixture.backend.scan(start, end, *limit).await.unwrap();
            let want: Vec<_> = if start < end {
                model
                    .range(start.clone()..end.clone())
                    .take(*limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            assert_eq!(got, want, "scan {start:?}..{end:?} limit {limit}");
            assert_eq!(fixture.backend.get(start).await.unwrap(), model.get(start).cloned());
        }
        fixture.reopen();
    }
}

fn batches() -> impl Strategy<Value = Vec<Vec<BatchOp>>> {
    prop::collection::vec(prop::collection::vec(op(), 0..8), 0..12)
}

fn probes() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>, usize)>> {
    prop::collection::vec((key(), key(), 0usize..6), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn memory_matches_model(batches in batches(), probes in probes()) {
        block_on(check_against_model(&mut Fixture::new(Kind::Memory), batches, probes));
    }

    #[test]
    fn faulty_passthrough_matches_model(batches in batches(), probes in probes()) {
        block_on(check_against_model(&mut Fixture::new(Kind::Faulty), batches, probes));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn disk_matches_model_and_replays(batches in batches(), probes in probes()) {
        block_on(check_against_model(&mut Fixture::new(Kind::Disk), batches, probes));
    }

    #[test]
    fn disk_schema_round_trip(case in schema_case()) {
        block_on(check_schema(&mut Fixture::new(Kind::Disk), case));
    }

    #[test]
    fn persistent_index_matches_model_and_replays(batches in batches(), probes in probes()) {
        block_on(check_against_model(&mut Fixture::new(Kind::DiskIndexed), batches, probes));
    }

    #[test]
    fn persistent_index_schema_round_trip(case in schema_case()) {
        block_on(check_schema(&mut Fixture::new(Kind::DiskIndexed), case));
    }

    #[test]
    fn persistent_index_without_block_cache_matches_model_and_replays(
        batches in batches(),
        probes in probes(),
    ) {
        block_on(check_against_model(
            &mut Fixture::new(Kind::DiskIndexedUncached),
            batches,
            probes,
        ));
    }

    #[test]
    fn persistent_index_without_block_cache_schema_round_trip(case in schema_case()) {
        block_on(check_schema(&mut Fixture::new(Kind::DiskIndexedUncached), case));
    }

    #[test]
    fn memory_index_matches_model_and_replays(batches in batches(), probes in probes()) {
        block_on(check_against_model(&mut Fixture::new(Kind::DiskMemoryIndex), batches, probes));
    }

    #[test]
    fn memory_index_schema_round_trip(case in schema_case()) {
        block_on(check_schema(&mut Fixture::new(Kind::DiskMemoryIndex), case));
    }
}

// ---- schema round trips and ordering ----

#[derive(Debug, Clone)]
struct SchemaCase {
    seed: u8,
    manifest: bool,
    key_pair: Option<bool>,
    head: TreeHead,
    hints: Hints,
    blocks: BTreeMap<u64, Vec<u8>>,
    deleted_blocks: (u64, u64),
    nodes: BTreeMap<u64, StoredNode>,
    pages: BTreeMap<u64, Vec<u8>>,
    user: BTreeMap<Vec<u8>, Vec<u8>>,
    window: (u64, u64, usize),
}

fn index() -> impl Strategy<Value = u64> {
    // Small indexes collide; huge ones check that ordering is numeric, not byte-length-first.
    prop_oneof![0u64..64, any::<u64>().prop_map(|i| i.min(u64::MAX - 1))]
}

fn schema_case() -> impl Strategy<Value = SchemaCase> {
    let head =
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>(), prop::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(fork, length, tree_hash, signature)| TreeHead {
                fork,
                length,
                tree_hash,
                signature,
            });
    let node = (any::<u64>(), any::<[u8; 32]>()).prop_map(|(size, hash)| StoredNode { size, hash });
    (
        (any::<u8>(), any::<bool>(), prop::option::of(any::<bool>()), head, any::<u64>()),
        prop::collection::btree_map(index(), prop::collection::vec(any::<u8>(), 0..64), 0..24),
        (0u64..80, 0u64..80),
        prop::collection::btree_map(index(), node, 0..12),
        prop::collection::btree_map(index(), prop::collection::vec(any::<u8>(), 0..32), 0..6),
        prop::collection::btree_map(key(), prop::collection::vec(any::<u8>(), 0..16), 0..6),
        (index(), index(), 0usize..30),
    )
        .prop_map(
            |(
                (seed, manifest, key_pair, head, hint),
                blocks,
                deleted_blocks,
                nodes,
                pages,
                user,
                window,
            )| {
                SchemaCase {
                    seed,
                    manifest,
                    key_pair,
                    head,
                    hints: Hints { contiguous_length: hint },
                    blocks,
                    deleted_blocks,
                    nodes,
                    pages,
                    user,
                    window,
                }
            },
        )
}

fn auth_of(case: &SchemaCase) -> CoreAuth {
    let kp = KeyPair::from_seed(&[case.seed; 32]);
    let manifest = Manifest::single_signer(kp.public_key());
    let key = manifest.hash();
    CoreAuth {
        key,
        discovery_key: key.discovery_key(),
        frozen: false,
        manifest: case.manifest.then_some(manifest),
        key_pair: case.key_pair.map(|with_secret| StoredKeyPair {
            public_key: kp.public_key(),
            secret_key: with_secret.then(|| kp.secret_key()),
        }),
    }
}

async fn check_schema(fixture: &mut Fixture, case: SchemaCase) {
    let auth = auth_of(&case);
    let ns = Namespace::ROOT.child("props");
    {
        let storage = Storage::open(fixture.backend.clone()).await.unwrap();
        // A neighbour core whose records must never leak into the tested core's scans.
        let other_auth = CoreAuth {
            manifest: None,
            key_pair: None,
            ..auth_of(&SchemaCase { seed: case.seed ^ 1, ..case.clone() })
        };
        let other = storage.create_core(&other_auth, None).await.unwrap();
        let core = storage.create_core(&auth, Some((&ns, b"name"))).await.unwrap();
        let mut neighbour = other.batch();
        neighbour
            .put_block(0, b"other")
            .put_block(u64::MAX - 1, b"other")
            .put_bitfield_page(0, b"o");
        other.write(neighbour).await.unwrap();

        let mut batch = core.batch();
        batch.put_head(&case.head).put_hints(case.hints);
        for (i, b) in &case.blocks {
            batch.put_block(*i, b);
        }
        batch.delete_blocks(case.deleted_blocks.0, case.deleted_blocks.1);
        for (i, n) in &case.nodes {
            batch.put_tree_node(*i, n);
        }
        for (p, bytes) in &case.pages {
            batch.put_bitfield_page(*p, bytes);
        }
        for (k, v) in &case.user {
            batch.put_user_data(k, Some(v)).put_local_data(k, Some(v));
        }
        core.write(batch).await.unwrap();
        core.flush().await.unwrap();
    }
    fixture.reopen();

    let mut blocks = case.blocks.clone();
    blocks.retain(|i, _| *i < case.deleted_blocks.0 || *i >= case.deleted_blocks.1);

    let storage = Storage::open(fixture.backend.clone()).await.unwrap();
    assert_eq!(storage.alias(&ns, b"name").await.unwrap(), Some(auth.discovery_key));
    assert!(storage.has_core(&auth.discovery_key).await.unwrap());
    let core = storage.open_core(&auth.discovery_key).await.unwrap().unwrap();
    assert_eq!(core.auth().await.unwrap(), auth);
    assert_eq!(core.head().await.unwrap(), Some(case.head.clone()));
    assert_eq!(core.hints().await.unwrap(), case.hints);
    for (i, n) in &case.nodes {
        assert_eq!(core.tree_node(*i).await.unwrap(), Some(*n));
    }
    for (k, v) in &case.user {
        assert_eq!(core.user_data(k).await.unwrap().as_ref(), Some(v));
        assert_eq!(core.local_data(k).await.unwrap().as_ref(), Some(v));
    }
    // Whole scans come back in index order and hold exactly the model.
    let all = core.blocks(0, u64::MAX, usize::MAX).await.unwrap();
    assert_eq!(all, blocks.clone().into_iter().collect::<Vec<_>>());
    assert_eq!(
        core.bitfield_pages().await.unwrap(),
        case.pages.clone().into_iter().collect::<Vec<_>>()
    );
    for (i, b) in &blocks {
        assert_eq!(core.block(*i).await.unwrap().as_ref(), Some(b));
    }
    // A bounded window equals the model's range, in order.
    let (start, end, limit) = case.window;
    let got = core.blocks(start, end, limit).await.unwrap();
    let want: Vec<_> = if start < end {
        blocks.range(start..end).take(limit).map(|(i, b)| (*i, b.clone())).collect()
    } else {
        Vec::new()
    };
    assert_eq!(got, want);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn memory_schema_round_trip(case in schema_case()) {
        block_on(check_schema(&mut Fixture::new(Kind::Memory), case));
    }
}

// ---- hostile log bytes ----

/// What to put after the valid records of a log.
#[derive(Debug, Clone)]
enum Tail {
    /// Arbitrary bytes (a torn or garbage tail).
    Raw(Vec<u8>),
    /// A well-framed record (right length and checksum) around an arbitrary payload.
    Framed(Vec<u8>),
}

fn tail() -> impl Strategy<Value = Tail> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Tail::Raw),
        prop::collection::vec(prop_oneof![3 => 0u8..4, 1 => any::<u8>()], 0..64)
            .prop_map(Tail::Framed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever follows the valid records, opening never panics: it either opens with every
    /// valid record intact, or reports a damaged (well-checksummed but unparsable) record.
    #[test]
    fn hostile_log_tails_open_or_fail_cleanly(batches in batches(), tail in tail()) {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut model = Model::new();
            {
                let disk = DiskStorage::open(dir.path()).unwrap();
                for ops in batches {
                    let mut batch = WriteBatch::new();
                    for op in ops {
                        apply(&mut model, &op);
                        batch.push(op);
                    }
                    disk.write(batch).await.unwrap();
                }
            }
            let raw = matches!(tail, Tail::Raw(_));
            let bytes = match tail {
                Tail::Raw(bytes) => bytes,
                Tail::Framed(payload) => {
                    let mut record = (payload.len() as u32).to_le_bytes().to_vec();
                    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
                    record.extend_from_slice(&payload);
                    record
                }
            };
            let log = dir.path().join("data.log");
            let mut contents = std::fs::read(&log).unwrap();
            contents.extend_from_slice(&bytes);
            std::fs::write(&log, contents).unwrap();
            let everything = |disk: DiskStorage| async move {
                disk.scan(&[], &[255; 8], usize::MAX).await.unwrap()
            };
            match DiskStorage::open(dir.path()) {
                Ok(disk) => {
                    let first = everything(disk).await;
                    if raw {
                        // Random bytes are a torn tail (or, by chance, an empty record): cut off.
                        assert_eq!(first, model.into_iter().collect::<Vec<_>>());
                    }
                    // Replay is deterministic, and what was cut stays cut.
                    assert_eq!(everything(DiskStorage::open(dir.path()).unwrap()).await, first);
                }
                Err(corestore_storage::DiskError::Corrupt { .. }) => assert!(!raw),
                Err(e) => panic!("unexpected error: {e}"),
            }
        });
    }
}
