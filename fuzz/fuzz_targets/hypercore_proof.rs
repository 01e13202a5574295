//! Arbitrary bytes as a hypercore `data` message (a proof), decoded and verified against a fixed
//! 13-block tree from several trusted states. Verification must never panic, and whatever it
//! accepts must be the real tree: the signature only covers the honest writer's tree.
#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use corestore_hypercore::{verify, Data, Node, Tree, TrustedTree};
use corestore_keys::{CoreKey, KeyPair, Manifest};
use libfuzzer_sys::fuzz_target;

const LENGTH: u64 = 13;

struct Fixture {
    key: CoreKey,
    manifest: Manifest,
    blocks: Vec<Vec<u8>>,
    nodes: HashMap<u64, Node>,
    /// Full roots and tree hash at every length 0..=LENGTH.
    heads: Vec<(Vec<Node>, [u8; 32])>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let kp = KeyPair::from_seed(&[1; 32]);
    let manifest = Manifest::single_signer(kp.public_key());
    let key = manifest.hash();
    let mut tree = Tree::default();
    let mut all = Vec::new();
    let mut heads = vec![(Vec::new(), tree.hash())];
    let blocks: Vec<Vec<u8>> = (0..LENGTH).map(|i| vec![i as u8; i as usize]).collect();
    for b in &blocks {
        tree.append(b, &mut all);
        heads.push((tree.roots.clone(), tree.hash()));
    }
    Fixture { key, manifest, blocks, nodes: all.into_iter().map(|n| (n.index, n)).collect(), heads }
});

fuzz_target!(|input: &[u8]| {
    let Some((&selector, bytes)) = input.split_first() else { return };
    let Ok(data) = Data::decode(bytes) else { return };
    let f = &*FIXTURE;
    let length = u64::from(selector) % (LENGTH + 1);
    let (roots, _) = &f.heads[length as usize];
    let trusted = TrustedTree {
        key: &f.key,
        manifest: (selector & 0x80 == 0).then_some(&f.manifest),
        fork: 0,
        length,
        roots,
    };
    let Ok(pending) = verify(data, &trusted) else { return };
    // The replica trusts the real nodes below its length.
    let Ok(proof) = pending.complete(|i| f.nodes.get(&i).copied().filter(|n| n.index < 2 * length))
    else {
        return;
    };
    if let Some(up) = proof.upgrade() {
        let (real_roots, real_hash) = &f.heads[up.length as usize];
        assert_eq!(&up.roots, real_roots);
        assert_eq!(&up.tree_hash, real_hash);
    }
    if let Some((index, value)) = proof.block() {
        assert_eq!(Some(value), f.blocks.get(index as usize).map(Vec::as_slice));
    }
});
