//! What a core trusts never changes (issue 13 §1): proofs that hash right but carry other node
//! sizes, prologue upgrades, compat manifests and proofs verified for another core.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{block, block_request, memory, replica, upgrade_request, writer};
use corestore_hypercore::{
    tree_hash, Data, DataHash, DataSeek, Hypercore, Node, ProofPlan, ReceiveError, Request, Tree,
    UpgradeRequest, Verifier, VerifyError,
};
use corestore_keys::{CoreKey, KeyPair, Manifest, Prologue, PublicKey};
use corestore_storage::{CoreAuth, MemoryStorage, Storage, StorageBackend};

/// The observable state of a core.
fn state(core: &Hypercore) -> (u64, u64, u64, [u8; 32], Vec<u8>, u64) {
    (
        core.length(),
        core.byte_length(),
        core.fork(),
        core.tree_hash(),
        core.signature().to_vec(),
        core.contiguous_length(),
    )
}

fn with_size(mut n: Node, delta: i64) -> Node {
    n.size = n.size.checked_add_signed(delta).unwrap();
    n
}

fn hash_data(index: u64, nodes: Vec<Node>) -> Data {
    Data { hash: Some(DataHash { index, nodes }), ..Data::default() }
}

async fn node(core: &Hypercore, index: u64) -> Node {
    core.tree_node(index).await.unwrap().unwrap()
}

/// A replica on its own backend (to reopen it), upgraded to `length` of `source`.
async fn replica_at(source: &Hypercore, length: u64) -> (Hypercore, Arc<dyn StorageBackend>) {
    let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
    let storage = Storage::open(backend.clone()).await.unwrap();
    let mut r = Hypercore::open(&storage, *source.key(), None).await.unwrap();
    let data = source.create_proof(&upgrade_request(&r, 1, length, true)).await.unwrap();
    r.receive(data).await.unwrap();
    (r, backend)
}

fn is_size_mismatch(err: &ReceiveError, at: u64) -> bool {
    matches!(err, ReceiveError::Invalid(VerifyError::SizeMismatch { index, .. }) if *index == at)
}

/// Issue 13 §1 (high): a replica at length 21 (roots 15, 35, 40) is sent, unasked, a hash proof
/// of root 35 with the right hash and size + 1.
#[tokio::test]
async fn a_root_with_the_right_hash_and_another_size_is_refused() {
    let source = writer(&memory().await, 11, 21, 7).await;
    let (mut r, backend) = replica_at(&source, 21).await;
    assert_eq!(r.roots().iter().map(|n| n.index).collect::<Vec<_>>(), [15, 35, 40]);
    let root = node(&r, 35).await;
    let before = state(&r);

    let err = r.receive(hash_data(35, vec![with_size(root, 1)])).await.unwrap_err();
    assert!(is_size_mismatch(&err, 35), "{err:?}");
    assert_eq!(state(&r), before);
    assert_eq!(node(&r, 35).await, root);

    // The replica still serves upgrades a third peer accepts, and it reopens.
    let mut third = replica(&source, false).await;
    let data = r.create_proof(&upgrade_request(&third, 1, 21, true)).await.unwrap();
    third.receive(data).await.unwrap();
    assert_eq!(third.tree_hash(), r.tree_hash());
    let storage = Storage::open(backend).await.unwrap();
    let reopened = Hypercore::open(&storage, *source.key(), None).await.unwrap();
    assert_eq!(state(&reopened), before);
}

/// Issue 13 §1 (high): two sibling nodes whose sizes still sum to their parent's
/// (`[1: +9, 5: −9]`) do not overwrite the two correct stored nodes.
#[tokio::test]
async fn a_sibling_pair_with_shifted_sizes_does_not_overwrite_stored_nodes() {
    let source = writer(&memory().await, 12, 8, 8).await;
    let (mut r, _) = replica_at(&source, 8).await;
    for i in 0..8 {
        r.receive(source.create_proof(&block_request(&r, 1, i).await).await.unwrap())
            .await
            .unwrap();
    }
    let (one, five) = (node(&r, 1).await, node(&r, 5).await);
    let before = state(&r);
    let data = hash_data(1, vec![with_size(one, 9), with_size(five, -9)]);
    let err = r.receive(data).await.unwrap_err();
    assert!(is_size_mismatch(&err, 1), "{err:?}");
    assert_eq!((node(&r, 1).await, node(&r, 5).await), (one, five));
    assert_eq!(state(&r), before);
    // The same as a seek proof.
    let data = Data {
        seek: Some(DataSeek { bytes: 3, nodes: vec![with_size(one, 9), with_size(five, -9)] }),
        ..Data::default()
    };
    assert!(r.receive(data).await.is_err());
    assert_eq!((node(&r, 1).await, node(&r, 5).await), (one, five));
}

/// Hostile follow-up: on a sparse replica that holds neither node, the shifted pair cannot be
/// checked against anything, so it is not stored (only its parent, whose hash covers its size,
/// is), and the honest blocks below it still verify afterwards.
#[tokio::test]
async fn an_unchecked_sibling_pair_is_not_stored() {
    let source = writer(&memory().await, 13, 8, 8).await;
    let (mut r, _) = replica_at(&source, 8).await;
    let (one, five, three, eleven) = (
        node(&source, 1).await,
        node(&source, 5).await,
        node(&source, 3).await,
        node(&source, 11).await,
    );
    for data in [
        hash_data(1, vec![with_size(one, 9), with_size(five, -9), eleven]),
        Data {
            seek: Some(DataSeek {
                bytes: 3,
                nodes: vec![with_size(one, 9), with_size(five, -9), eleven],
            }),
            ..Data::default()
        },
    ] {
        r.receive(data).await.unwrap();
        assert_eq!(r.tree_node(1).await.unwrap(), None);
        assert_eq!(r.tree_node(5).await.unwrap(), None);
        assert_eq!(node(&r, 3).await, three);
        assert_eq!(node(&r, 11).await, eleven);
    }
    for i in 0..4 {
        r.receive(source.create_proof(&block_request(&r, 1, i).await).await.unwrap())
            .await
            .unwrap();
        assert_eq!(r.get(i).await.unwrap(), Some(block(i)));
    }
    assert_eq!((node(&r, 1).await, node(&r, 5).await), (one, five));
}

/// Issue 13 §1 (high), writer side: a poisoned inner node would make `truncate(4)` sign a head
/// with the wrong byte length.
#[tokio::test]
async fn a_writer_refuses_poisoned_inner_nodes_and_truncates_correctly() {
    let mut w = writer(&memory().await, 14, 10, 3).await;
    assert_eq!(w.roots().iter().map(|n| n.index).collect::<Vec<_>>(), [7, 17]);
    let (three, eleven) = (node(&w, 3).await, node(&w, 11).await);
    let err = w
        .receive(hash_data(3, vec![with_size(three, 1), with_size(eleven, -1)]))
        .await
        .unwrap_err();
    assert!(is_size_mismatch(&err, 3), "{err:?}");
    assert_eq!(node(&w, 3).await, three);
    w.truncate(4).await.unwrap();
    let expected = writer(&memory().await, 14, 4, 4).await;
    assert_eq!((w.byte_length(), w.tree_hash()), (expected.byte_length(), expected.tree_hash()));
    assert_eq!(w.byte_length(), (0..4).map(|i| block(i).len() as u64).sum::<u64>());
}

/// A writer of a manifest whose prologue covers the first `prologue` blocks.
async fn prologue_writer(prologue: u64, length: u64) -> Hypercore {
    let kp = KeyPair::from_seed(&[15; 32]);
    let mut tree = Tree::default();
    for i in 0..prologue {
        tree.append(&block(i), &mut Vec::new());
    }
    let mut manifest = Manifest::single_signer(kp.public_key());
    manifest.prologue = Some(Prologue { hash: tree.hash(), length: prologue });
    let mut w = Hypercore::create(&memory().await, kp, Some(manifest)).await.unwrap();
    let blocks: Vec<Vec<u8>> = (0..length).map(block).collect();
    w.append(&blocks).await.unwrap();
    w
}

/// Issue 13 §1 (low, interop): an upgrade to exactly the prologue length needs no signature
/// (JavaScript's verifier ignores it there, and `copyPrologue` cores have none); a signature sent
/// in that position is not stored.
#[tokio::test]
async fn an_upgrade_to_the_prologue_needs_no_signature_and_stores_none() {
    let w = prologue_writer(5, 5).await;
    for signature in [None, Some(vec![0xde, 0xad]), Some(w.signature().to_vec())] {
        let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
        let storage = Storage::open(backend.clone()).await.unwrap();
        let mut r = Hypercore::open(&storage, *w.key(), None).await.unwrap();
        let mut data = w.create_proof(&upgrade_request(&r, 1, 5, true)).await.unwrap();
        data.upgrade.as_mut().unwrap().signature.clone_from(&signature);
        r.receive(data).await.unwrap_or_else(|e| panic!("{signature:?}: {e}"));
        assert_eq!((r.length(), r.tree_hash()), (5, w.tree_hash()));
        assert_eq!(r.signature(), b"", "{signature:?}");
        let again =
            Hypercore::open(&Storage::open(backend).await.unwrap(), *w.key(), None).await.unwrap();
        assert_eq!((again.length(), again.signature()), (5, &b""[..]));
        // It serves the prologue head without a signature, and a third peer accepts it.
        let mut third = replica(&w, false).await;
        let data = r.create_proof(&upgrade_request(&third, 1, 5, true)).await.unwrap();
        assert_eq!(data.upgrade.as_ref().unwrap().signature, None);
        third.receive(data).await.unwrap();
        assert_eq!(third.length(), 5);
    }
}

/// Past the prologue a signature is required again, and the prologue hash is checked.
#[tokio::test]
async fn the_prologue_does_not_excuse_other_upgrades() {
    let w = prologue_writer(5, 9).await;
    let r = replica(&w, true).await;
    let mut data = w.create_proof(&upgrade_request(&r, 1, 9, false)).await.unwrap();
    data.upgrade.as_mut().unwrap().signature = None;
    assert!(matches!(
        r.verify(data).await,
        Err(ReceiveError::Invalid(VerifyError::MissingSignature))
    ));
    // Another tree of length 5 is not the prologue, signed or not.
    let mut other =
        Hypercore::create(&memory().await, KeyPair::from_seed(&[19; 32]), None).await.unwrap();
    other.append(&[[1u8; 3], [2; 3], [3; 3], [4; 3], [5; 3]]).await.unwrap();
    let mut data = other.create_proof(&upgrade_request(&r, 1, 5, false)).await.unwrap();
    data.upgrade.as_mut().unwrap().signature = None;
    assert!(matches!(
        r.verify(data).await,
        Err(ReceiveError::Invalid(VerifyError::PrologueViolation))
    ));
}

/// Issue 13 §1 (low): a compat core (key = the signer's public key) keeps only what its key
/// commits to, whatever manifest a peer sends with a valid upgrade.
#[tokio::test]
async fn a_compat_core_stores_only_what_its_key_commits_to() {
    let kp = KeyPair::from_seed(&[16; 32]);
    let key = CoreKey::from_bytes(kp.public_key().to_bytes());
    let canonical = Manifest::single_signer(kp.public_key());
    let verifier = Verifier::new(key, &canonical);
    let mut tree = Tree::default();
    let mut nodes = HashMap::new();
    for i in 0..6 {
        let mut new = Vec::new();
        tree.append(&block(i), &mut new);
        nodes.extend(new.into_iter().map(|n| (n.index, n)));
    }
    let signature = verifier.sign(&kp, &tree.signed()).unwrap();
    let request = Request {
        id: 1,
        upgrade: Some(UpgradeRequest { start: 0, length: 6 }),
        ..Request::default()
    };
    let mut hostile = canonical.clone();
    hostile.version = 2;
    hostile.quorum = 7;
    hostile.linked = Some(vec![CoreKey::from_bytes([9; 32])]);
    hostile.user_data = Some(b"attacker".to_vec());
    hostile.signers[0].namespace = [3; 32];
    for manifest in [Some(hostile), None] {
        let data = ProofPlan::new(&request, 0, 6, None, None)
            .unwrap()
            .assemble(1, |i| nodes.get(&i).copied(), None, &signature, manifest.clone())
            .unwrap();
        let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
        let storage = Storage::open(backend.clone()).await.unwrap();
        let mut r = Hypercore::open(&storage, key, None).await.unwrap();
        r.receive(data).await.unwrap();
        assert_eq!((r.length(), r.tree_hash()), (6, tree.hash()));
        assert_eq!(r.manifest(), Some(&canonical), "{manifest:?}");
        let again =
            Hypercore::open(&Storage::open(backend).await.unwrap(), key, None).await.unwrap();
        assert_eq!(again.manifest(), Some(&canonical));
    }
    // A manifest given locally for a compat key is normalised the same way.
    let mut local = canonical.clone();
    local.user_data = Some(b"x".to_vec());
    local.version = 2;
    let r = Hypercore::open(&memory().await, key, Some(local)).await.unwrap();
    assert_eq!(r.manifest(), Some(&canonical));
    let _ = PublicKey::from_bytes(key.to_bytes());
}

/// Issue 13 §1 (low), stores written before the fix: a compat core whose stored identity holds
/// a peer-chosen manifest exposes only what its key commits to once opened.
#[tokio::test]
async fn a_compat_manifest_stored_by_an_older_version_is_not_exposed() {
    let kp = KeyPair::from_seed(&[22; 32]);
    let key = CoreKey::from_bytes(kp.public_key().to_bytes());
    let canonical = Manifest::single_signer(kp.public_key());
    let mut hostile = canonical.clone();
    hostile.quorum = 7;
    hostile.user_data = Some(b"attacker".to_vec());
    hostile.linked = Some(vec![CoreKey::from_bytes([9; 32])]);
    assert!(hostile.is_compat(&key) && hostile != canonical);
    let storage = memory().await;
    let auth = CoreAuth {
        key,
        discovery_key: key.discovery_key(),
        manifest: Some(hostile),
        key_pair: None,
        frozen: false,
    };
    storage.create_core(&auth, None).await.unwrap();
    let core = Hypercore::open(&storage, key, None).await.unwrap();
    assert_eq!(core.manifest(), Some(&canonical));
}

/// Hardening: a proof verified by one core cannot be applied to another.
#[tokio::test]
async fn a_proof_verified_for_another_core_is_refused() {
    let a = writer(&memory().await, 17, 12, 4).await;
    let b = writer(&memory().await, 18, 12, 4).await;
    let ra = replica(&a, true).await;
    let mut rb = replica(&b, true).await;
    let proof = ra.verify(a.create_proof(&upgrade_request(&ra, 1, 12, false)).await.unwrap());
    let proof = proof.await.unwrap();
    let before = state(&rb);
    assert!(matches!(rb.apply(proof).await, Err(ReceiveError::ForeignProof)));
    assert_eq!(state(&rb), before);
    // Not even to another instance of the same core.
    let mut ra2 = replica(&a, true).await;
    let proof = ra.verify(a.create_proof(&upgrade_request(&ra, 1, 12, false)).await.unwrap());
    assert!(matches!(ra2.apply(proof.await.unwrap()).await, Err(ReceiveError::ForeignProof)));
    assert_eq!(ra2.length(), 0);
    assert_eq!(tree_hash(&[]), ra2.tree_hash());
}

/// Hostile follow-up: a hash section whose (mis-sized) top an upgrade consumes as a root is
/// covered by the signature, and the pure `verify` cannot be used to apply anything.
#[tokio::test]
async fn mis_sized_nodes_consumed_by_an_upgrade_fail_the_signature() {
    let source = writer(&memory().await, 20, 21, 5).await;
    let r = replica(&source, true).await;
    let mut data = source.create_proof(&upgrade_request(&r, 1, 21, false)).await.unwrap();
    let up = data.upgrade.as_mut().unwrap();
    assert_eq!(up.nodes.iter().map(|n| n.index).collect::<Vec<_>>(), [15, 35, 40]);
    let root = up.nodes.remove(1);
    data.hash = Some(DataHash { index: 35, nodes: vec![with_size(root, 1)] });
    assert!(matches!(
        r.verify(data.clone()).await,
        Err(ReceiveError::Invalid(VerifyError::InvalidSignature { .. }))
    ));
    // The honest combination verifies.
    data.hash = Some(DataHash { index: 35, nodes: vec![root] });
    let proof = r.verify(data.clone()).await.unwrap();
    assert_eq!(proof.upgrade().map(|u| u.length), Some(21));
    // A proof completed outside a core is not bound to one.
    let trusted = corestore_hypercore::TrustedTree {
        key: r.key(),
        manifest: r.manifest(),
        fork: 0,
        length: 0,
        roots: &[],
    };
    let pure = corestore_hypercore::verify(data, &trusted).unwrap().complete(|_| None).unwrap();
    let mut r = r;
    assert!(matches!(r.apply(pure).await, Err(ReceiveError::ForeignProof)));
    assert_eq!(r.length(), 0);
    r.apply(proof).await.unwrap();
    assert_eq!((r.length(), r.tree_hash()), (21, source.tree_hash()));
}

/// Proofs verified at the same state apply one after the other (the later ones are checked
/// again against what the earlier ones stored), and a stale upgrade is refused.
#[tokio::test]
async fn proofs_verified_together_apply_in_sequence() {
    let source = writer(&memory().await, 21, 16, 16).await;
    let (mut r, _) = replica_at(&source, 16).await;
    let mut proofs = Vec::new();
    for i in [0, 1, 2, 9] {
        let data = source.create_proof(&block_request(&r, 1, i).await).await.unwrap();
        proofs.push(r.verify(data).await.unwrap());
    }
    // Blocks 0 and 1 share their parents: the second stores only what is still missing.
    assert_eq!(proofs[0].nodes().len(), proofs[1].nodes().len());
    for p in proofs {
        r.apply(p).await.unwrap();
    }
    for i in [0, 1, 2, 9] {
        assert_eq!(r.get(i).await.unwrap(), Some(block(i)));
    }
    let mut w = writer(&memory().await, 21, 16, 16).await;
    let data = source.create_proof(&block_request(&r, 1, 3).await).await.unwrap();
    let proof = w.verify(data).await.unwrap();
    w.truncate(8).await.unwrap();
    assert!(matches!(w.apply(proof).await, Err(ReceiveError::Stale)));
}
