//! Signatures through the manifest (spec `wire.md` §1.7, hypercore `lib/verifier.js` and
//! `lib/multisig.js`): the multisig wire forms and a [`Verifier`] built from a manifest.
//!
//! Quorums above one verify as JavaScript does; signers that sign an older tree (`patch > 0`,
//! `allowPatch` manifests) are not supported yet and never verify.

use corestore_keys::compact::{DecodeError, Decoder, Encoder};
use corestore_keys::{CoreKey, KeyPair, Manifest, Prologue, Signer};

use crate::hash::{self, Node};

/// One signer's part of a multi-signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerProof {
    /// Index of the signer in the manifest.
    pub signer: u64,
    /// Its Ed25519 signature.
    pub signature: [u8; 64],
    /// How many blocks behind the signed tree the signer's tree is (0: same tree).
    pub patch: u64,
}

/// The `multiSignature` encoding (manifest version ≥ 1): one proof per signer plus patch nodes.
/// A single signer's signature is `01 00 <64 bytes> 00 00` (68 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiSignature {
    /// The signers' proofs.
    pub proofs: Vec<SignerProof>,
    /// Tree nodes rebuilding older trees for patched proofs.
    pub patch: Vec<Node>,
}

impl MultiSignature {
    /// The wire form of one signer's signature over the current tree.
    pub fn single(signer: u64, signature: [u8; 64]) -> Self {
        Self { proofs: vec![SignerProof { signer, signature, patch: 0 }], patch: Vec::new() }
    }

    /// The compact encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(4 + 67 * self.proofs.len() + 42 * self.patch.len());
        e.uint(self.proofs.len() as u64);
        for p in &self.proofs {
            e.uint(p.signer).raw(&p.signature).uint(p.patch);
        }
        hash::encode_nodes(&mut e, &self.patch);
        e.into_vec()
    }

    /// Decodes the version ≥ 1 form (trailing bytes are ignored, as in JavaScript).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        let n = d.array_len(66)?;
        let proofs = (0..n)
            .map(|_| Ok(SignerProof { signer: d.uint()?, signature: d.fixed()?, patch: d.uint()? }))
            .collect::<Result<_, DecodeError>>()?;
        Ok(Self { proofs, patch: hash::decode_nodes(&mut d)? })
    }

    /// Decodes the legacy `multiSignaturev0` form into the version 1 shape (a v0 patch becomes
    /// its length).
    pub fn decode_v0(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes);
        let n = d.array_len(66)?;
        let mut proofs = Vec::with_capacity(n);
        for _ in 0..n {
            let flags = d.uint()?;
            let signer = d.uint()?;
            let signature = d.fixed()?;
            let mut patch = 0;
            if flags & 1 != 0 {
                let _start = d.uint()?;
                patch = d.uint()?;
                let refs = d.array_len(1)?;
                for _ in 0..refs {
                    d.uint()?;
                }
            }
            proofs.push(SignerProof { signer, signature, patch });
        }
        Ok(Self { proofs, patch: hash::decode_nodes(&mut d)? })
    }
}

/// The tree state a signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedTree {
    /// Tree hash of the roots.
    pub tree_hash: [u8; 32],
    /// Number of blocks.
    pub length: u64,
    /// Fork id.
    pub fork: u64,
}

/// Why a tree could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The key pair is not one of the manifest's signers.
    #[error("the key pair is not a signer of this core's manifest")]
    NotASigner,
    /// The key pair, read back from storage, has a public half that is not its seed's.
    #[error("the stored key pair's public key does not match its secret key")]
    KeyPairMismatch,
}

/// Checks (and makes) signatures for a core: built from its key and manifest, exactly like
/// hypercore's `Verifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    key: CoreKey,
    compat: bool,
    version: u64,
    allow_patch: bool,
    quorum: u64,
    signers: Vec<Signer>,
    prologue: Option<Prologue>,
}

impl Verifier {
    /// The verifier of the core `key` with `manifest`. A manifest whose single signer's public
    /// key is `key` makes a "compat" core (raw 64-byte signatures over the 80-byte signable).
    pub fn new(key: CoreKey, manifest: &Manifest) -> Self {
        let compat = manifest.is_compat(&key);
        Self {
            key,
            compat,
            version: if compat { 0 } else { manifest.version },
            allow_patch: !compat && manifest.allow_patch,
            quorum: if compat { 1 } else { manifest.quorum },
            signers: manifest.signers.clone(),
            prologue: if compat { None } else { manifest.prologue },
        }
    }

    /// The manifest's prologue, if any.
    pub fn prologue(&self) -> Option<&Prologue> {
        self.prologue.as_ref()
    }

    /// True when a tree of `length` blocks lies within the prologue: there the tree hash is
    /// checked, never a signature (JavaScript `Verifier.verify`).
    pub(crate) fn prologue_covers(&self, length: u64) -> bool {
        self.version != 0 && self.prologue.is_some_and(|p| length <= p.length)
    }

    /// True for compat cores (key = the signer's public key).
    pub fn is_compat(&self) -> bool {
        self.compat
    }

    fn signable(&self, signer: &Signer, tree: &SignedTree) -> Vec<u8> {
        if self.compat {
            hash::signable_compat(&tree.tree_hash, tree.length, tree.fork).to_vec()
        } else {
            let ctx = if self.version == 0 { &signer.namespace } else { self.key.as_bytes() };
            hash::signable(ctx, &tree.tree_hash, tree.length, tree.fork).to_vec()
        }
    }

    /// True when `signature` (wire form) is a valid signature of `tree` under the manifest,
    /// including the prologue rule. Malformed signatures are simply invalid.
    pub fn verify(&self, tree: &SignedTree, signature: &[u8]) -> bool {
        if self.version == 0 {
            if self.compat || (!self.allow_patch && self.signers.len() == 1) {
                return self
                    .signers
                    .first()
                    .is_some_and(|s| s.public_key.verify(&self.signable(s, tree), signature));
            }
            return MultiSignature::decode_v0(signature).is_ok_and(|m| self.verify_multi(tree, &m));
        }
        if let Some(p) = &self.prologue {
            if tree.length <= p.length {
                return tree.length == p.length && tree.tree_hash == p.hash;
            }
        }
        MultiSignature::decode(signature).is_ok_and(|m| self.verify_multi(tree, &m))
    }

    fn verify_multi(&self, tree: &SignedTree, sig: &MultiSignature) -> bool {
        if self.quorum == 0 || (sig.proofs.len() as u64) < self.quorum {
            return false;
        }
        let mut tried = vec![false; self.signers.len()];
        for proof in sig.proofs.iter().take(self.quorum as usize) {
            if proof.patch > 0 && self.allow_patch {
                return false; // Patched (older-tree) signatures are not supported yet.
            }
            let Ok(i) = usize::try_from(proof.signer) else { return false };
            let (Some(signer), Some(seen)) = (self.signers.get(i), tried.get_mut(i)) else {
                return false;
            };
            if *seen {
                return false;
            }
            *seen = true;
            if !signer.public_key.verify(&self.signable(signer, tree), &proof.signature) {
                return false;
            }
        }
        true
    }

    /// Signs `tree` with `key_pair` as hypercore does: the 68-byte multisig wrapper for a
    /// single-signer manifest of version ≥ 1, the raw 64-byte signature otherwise (compat,
    /// version 0, or one part of a multi-signer quorum).
    pub fn sign(&self, key_pair: &KeyPair, tree: &SignedTree) -> Result<Vec<u8>, SignError> {
        let public_key = key_pair.public_key();
        let signer = self
            .signers
            .iter()
            .find(|s| s.public_key == public_key)
            .ok_or(SignError::NotASigner)?;
        let signature =
            key_pair.sign(&self.signable(signer, tree)).map_err(|_| SignError::KeyPairMismatch)?;
        if self.signers.len() != 1 || self.version == 0 {
            return Ok(signature.to_vec());
        }
        Ok(MultiSignature::single(0, signature).encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corestore_keys::PublicKey;

    fn vector_tree() -> SignedTree {
        let p = Node::parent(&Node::leaf(0, b"hello"), &Node::leaf(1, b"world"));
        SignedTree { tree_hash: hash::tree_hash(&[p, Node::leaf(2, b"!")]), length: 3, fork: 0 }
    }

    #[test]
    fn spec_1_8_signature() {
        let kp = KeyPair::from_seed(&[1; 32]);
        let manifest = Manifest::single_signer(kp.public_key());
        let key = manifest.hash();
        assert_eq!(
            key.to_hex(),
            "d8c3a0597903b28d751c6e0b7107775e388ec5a3cf669bdd1e7ec41b8b8f6e72"
        );
        let v = Verifier::new(key, &manifest);
        let sig = v.sign(&kp, &vector_tree()).unwrap();
        assert_eq!(
            hex::encode(&sig),
            "0100ef90c38a7498eba2369e467f926fe785e962d8c781703766863ac4703d8a403c\
             4eea5634e581eabd45ec85239a9259af64bd825bd943376d4f8e2daa8aa4bb080000"
        );
        assert_eq!(sig.len(), 68);
        assert!(v.verify(&vector_tree(), &sig));
        assert!(!v.verify(&SignedTree { fork: 1, ..vector_tree() }, &sig));
        assert!(!v.verify(&SignedTree { length: 4, ..vector_tree() }, &sig));
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert!(!v.verify(&vector_tree(), &bad));
        assert!(!v.verify(&vector_tree(), &sig[..64]));
        assert!(!v.verify(&vector_tree(), &[]));
        assert_eq!(MultiSignature::decode(&sig).unwrap().encode(), sig);
    }

    #[test]
    fn compat_core_uses_raw_signatures() {
        let kp = KeyPair::from_seed(&[2; 32]);
        let key = CoreKey::from_bytes(kp.public_key().to_bytes());
        let v = Verifier::new(key, &Manifest::single_signer(kp.public_key()));
        assert!(v.is_compat());
        let sig = v.sign(&kp, &vector_tree()).unwrap();
        assert_eq!(sig.len(), 64);
        assert!(kp
            .public_key()
            .verify(&hash::signable_compat(&vector_tree().tree_hash, 3, 0), &sig));
        assert!(v.verify(&vector_tree(), &sig));
    }

    #[test]
    fn quorum_of_two() {
        let a = KeyPair::from_seed(&[3; 32]);
        let b = KeyPair::from_seed(&[4; 32]);
        let mut manifest = Manifest::single_signer(a.public_key());
        manifest.signers.push(Signer::ed25519(b.public_key()));
        manifest.quorum = 2;
        let v = Verifier::new(manifest.hash(), &manifest);
        let tree = vector_tree();
        let sa: [u8; 64] = v.sign(&a, &tree).unwrap().try_into().unwrap();
        let sb: [u8; 64] = v.sign(&b, &tree).unwrap().try_into().unwrap();
        let both = MultiSignature {
            proofs: vec![
                SignerProof { signer: 1, signature: sb, patch: 0 },
                SignerProof { signer: 0, signature: sa, patch: 0 },
            ],
            patch: Vec::new(),
        };
        assert!(v.verify(&tree, &both.encode()));
        assert!(!v.verify(&tree, &MultiSignature::single(0, sa).encode()));
        let twice = MultiSignature {
            proofs: vec![both.proofs[1].clone(), both.proofs[1].clone()],
            patch: Vec::new(),
        };
        assert!(!v.verify(&tree, &twice.encode()));
        let stranger = KeyPair::from_seed(&[5; 32]);
        assert_eq!(v.sign(&stranger, &tree), Err(SignError::NotASigner));
    }

    #[test]
    fn prologue_rule() {
        let kp = KeyPair::from_seed(&[6; 32]);
        let tree = vector_tree();
        let mut manifest = Manifest::single_signer(kp.public_key());
        manifest.prologue = Some(Prologue { hash: tree.tree_hash, length: 3 });
        let v = Verifier::new(manifest.hash(), &manifest);
        assert!(v.verify(&tree, &[]));
        assert!(!v.verify(&SignedTree { tree_hash: [0; 32], ..tree }, &[]));
        assert!(!v.verify(&SignedTree { length: 2, ..tree }, &[]));
        let later = SignedTree { length: 4, ..tree };
        assert!(!v.verify(&later, &[]));
        assert!(v.verify(&later, &v.sign(&kp, &later).unwrap()));
        let _ = PublicKey::from_bytes([0; 32]);
    }
}
