//! Hypercore 11 manifests (spec `wire.md` §1.6): who may sign a core, and the manifest hash that
//! is the core key.

use crate::compact::{DecodeError, Decoder, Encoder};
use crate::constants;
use crate::hash::blake2b_256;
use crate::types::{CoreKey, PublicKey};

const FLAG_ALLOW_PATCH: u64 = 1;
const FLAG_PROLOGUE: u64 = 2;
const FLAG_LINKED: u64 = 4;
const FLAG_USER_DATA: u64 = 8;

/// Highest manifest version the decoder accepts (as hypercore 11 does).
pub const MAX_MANIFEST_VERSION: u64 = 3;

/// The tree hash function of a core. hypercore 11 knows one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// BLAKE2b-256 (wire id 0).
    #[default]
    Blake2b,
}

/// A signer's signature scheme. hypercore 11 knows one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SignatureScheme {
    /// Ed25519 (wire id 0).
    #[default]
    Ed25519,
}

/// One signer of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signer {
    /// The signature scheme.
    pub signature: SignatureScheme,
    /// The namespace the signer signs in (in the signable for version-0 manifests).
    pub namespace: [u8; 32],
    /// The signer's public key.
    pub public_key: PublicKey,
}

impl Signer {
    /// An Ed25519 signer in hypercore's default signer namespace.
    pub fn ed25519(public_key: PublicKey) -> Self {
        Self {
            signature: SignatureScheme::Ed25519,
            namespace: *constants::default_signer_namespace(),
            public_key,
        }
    }
}

/// A static prologue: the tree hash a core must have at `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prologue {
    /// The tree hash at `length`.
    pub hash: [u8; 32],
    /// The length the prologue covers.
    pub length: u64,
}

/// A hypercore 11 manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Manifest {
    /// Manifest version (0 legacy, 1 default, 2 with linked cores / user data).
    pub version: u64,
    /// The tree hash function.
    pub hash: HashAlgorithm,
    /// Whether signers may sign with a patch (multi-signer cores).
    pub allow_patch: bool,
    /// How many signers must sign.
    pub quorum: u64,
    /// The signers.
    pub signers: Vec<Signer>,
    /// An optional static prologue.
    pub prologue: Option<Prologue>,
    /// Linked cores (version ≥ 2).
    pub linked: Option<Vec<CoreKey>>,
    /// Opaque user data (version ≥ 2).
    pub user_data: Option<Vec<u8>>,
}

/// Why manifest bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The bytes are not a valid compact encoding of a manifest.
    #[error("invalid manifest: {0}")]
    Decode(#[from] DecodeError),
    /// A version above [`MAX_MANIFEST_VERSION`].
    #[error("invalid manifest: unknown version {version}")]
    UnknownVersion {
        /// The version read.
        version: u64,
    },
    /// Bytes left over after a complete manifest.
    #[error("invalid manifest: {extra} trailing bytes")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

impl Manifest {
    /// What corestore 7 creates for a named or key-pair core: version 1, one Ed25519 signer in
    /// the default namespace, quorum 1.
    pub fn single_signer(public_key: PublicKey) -> Self {
        Self {
            version: 1,
            hash: HashAlgorithm::Blake2b,
            allow_patch: false,
            quorum: 1,
            signers: vec![Signer::ed25519(public_key)],
            prologue: None,
            linked: None,
            user_data: None,
        }
    }

    /// The compact encoding (hypercore `messages.manifest`).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(70);
        self.encode_into(&mut e);
        e.into_vec()
    }

    /// Appends the compact encoding to `e`.
    pub fn encode_into(&self, e: &mut Encoder) {
        e.uint(self.version);
        if self.version == 0 {
            self.encode_v0(e);
            return;
        }
        let mut flags = 0;
        if self.allow_patch {
            flags |= FLAG_ALLOW_PATCH;
        }
        if self.prologue.is_some() {
            flags |= FLAG_PROLOGUE;
        }
        if self.linked.is_some() {
            flags |= FLAG_LINKED;
        }
        if self.user_data.is_some() {
            flags |= FLAG_USER_DATA;
        }
        e.uint(flags).uint(0).uint(self.quorum);
        encode_signers(e, &self.signers);
        if let Some(p) = &self.prologue {
            e.raw(&p.hash).uint(p.length);
        }
        if let Some(linked) = &self.linked {
            e.uint(linked.len() as u64);
            for key in linked {
                e.raw(key.as_bytes());
            }
        }
        if let Some(data) = &self.user_data {
            e.buffer(data);
        }
    }

    fn encode_v0(&self, e: &mut Encoder) {
        e.uint(0); // hash: blake2b
        match (&self.prologue, self.signers.as_slice()) {
            (Some(p), []) => {
                e.uint(0).raw(&p.hash);
            }
            (_, [signer]) if self.quorum == 1 && !self.allow_patch => {
                e.uint(1);
                encode_signer(e, signer);
            }
            _ => {
                e.uint(2).uint(u64::from(self.allow_patch)).uint(self.quorum);
                encode_signers(e, &self.signers);
            }
        }
    }

    /// Decodes a whole manifest; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let mut d = Decoder::new(bytes);
        let manifest = Self::decode_from(&mut d)?;
        match d.remaining().len() {
            0 => Ok(manifest),
            extra => Err(ManifestError::TrailingBytes { extra }),
        }
    }

    /// Decodes a manifest from the front of `d` (as it appears inside a `data` message).
    pub fn decode_from(d: &mut Decoder<'_>) -> Result<Self, ManifestError> {
        let version = d.uint()?;
        if version == 0 {
            return decode_v0(d);
        }
        if version > MAX_MANIFEST_VERSION {
            return Err(ManifestError::UnknownVersion { version });
        }
        let flags = d.uint()?;
        let hash = decode_hash(d)?;
        let quorum = d.uint()?;
        let signers = decode_signers(d)?;
        let prologue = if flags & FLAG_PROLOGUE == 0 {
            None
        } else {
            Some(Prologue { hash: d.fixed()?, length: d.uint()? })
        };
        let linked = if flags & FLAG_LINKED == 0 {
            None
        } else {
            let n = d.array_len(32)?;
            Some((0..n).map(|_| d.fixed().map(CoreKey::from_bytes)).collect::<Result<_, _>>()?)
        };
        let user_data = if flags & FLAG_USER_DATA == 0 { None } else { Some(d.buffer()?.to_vec()) };
        Ok(Self {
            version,
            hash,
            allow_patch: flags & FLAG_ALLOW_PATCH != 0,
            quorum,
            signers,
            prologue,
            linked,
            user_data,
        })
    }

    /// The manifest hash `BLAKE2b-256(MANIFEST || encode(self))`: the core key.
    pub fn hash(&self) -> CoreKey {
        CoreKey::from_bytes(blake2b_256(&[constants::manifest(), &self.encode()]))
    }

    /// True for a legacy "compat" core: exactly one signer whose public key is the core key.
    pub fn is_compat(&self, key: &CoreKey) -> bool {
        matches!(self.signers.as_slice(), [s] if s.public_key.as_bytes() == key.as_bytes())
    }
}

fn encode_signer(e: &mut Encoder, s: &Signer) {
    e.uint(0).raw(&s.namespace).raw(s.public_key.as_bytes());
}

fn encode_signers(e: &mut Encoder, signers: &[Signer]) {
    e.uint(signers.len() as u64);
    for s in signers {
        encode_signer(e, s);
    }
}

fn decode_hash(d: &mut Decoder<'_>) -> Result<HashAlgorithm, DecodeError> {
    match d.uint()? {
        0 => Ok(HashAlgorithm::Blake2b),
        value => Err(DecodeError::UnknownVariant { what: "hash id", value }),
    }
}

fn decode_signer(d: &mut Decoder<'_>) -> Result<Signer, DecodeError> {
    let signature = match d.uint()? {
        0 => SignatureScheme::Ed25519,
        value => return Err(DecodeError::UnknownVariant { what: "signature id", value }),
    };
    Ok(Signer { signature, namespace: d.fixed()?, public_key: PublicKey::from_bytes(d.fixed()?) })
}

fn decode_signers(d: &mut Decoder<'_>) -> Result<Vec<Signer>, DecodeError> {
    let n = d.array_len(65)?;
    (0..n).map(|_| decode_signer(d)).collect()
}

fn decode_v0(d: &mut Decoder<'_>) -> Result<Manifest, ManifestError> {
    let hash = decode_hash(d)?;
    let base = Manifest {
        version: 0,
        hash,
        allow_patch: false,
        quorum: 0,
        signers: Vec::new(),
        prologue: None,
        linked: None,
        user_data: None,
    };
    match d.uint()? {
        0 => Ok(Manifest { prologue: Some(Prologue { hash: d.fixed()?, length: 0 }), ..base }),
        1 => Ok(Manifest { quorum: 1, signers: vec![decode_signer(d)?], ..base }),
        2 => {
            let flags = d.uint()?;
            let quorum = d.uint()?;
            let signers = decode_signers(d)?;
            Ok(Manifest { allow_patch: flags & 1 != 0, quorum, signers, ..base })
        }
        value => Err(DecodeError::UnknownVariant { what: "manifest v0 type", value }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;
    use proptest::prelude::*;

    #[test]
    fn spec_vectors() {
        let pk = KeyPair::from_seed(&[1; 32]).public_key();
        let m = Manifest::single_signer(pk);
        let bytes = m.encode();
        assert_eq!(
            hex::encode(&bytes),
            "0100000101004144eea531e483d54e0c14f4ca68e0644f355343ff6fcb0f005200e12cd747cb\
             8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        );
        assert_eq!(
            m.hash().to_hex(),
            "d8c3a0597903b28d751c6e0b7107775e388ec5a3cf669bdd1e7ec41b8b8f6e72"
        );
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);

        let v0 = Manifest { version: 0, ..m };
        let bytes = v0.encode();
        assert_eq!(bytes.len(), 68);
        assert_eq!(hex::encode(&bytes[..4]), "00000100");
        assert_eq!(
            v0.hash().to_hex(),
            "a945135b724f9205a06c58bee34f342ac3c77ff0c09fa54ad6220c0eb3168fa8"
        );
        assert_eq!(Manifest::decode(&bytes).unwrap(), v0);
    }

    #[test]
    fn bad_manifests_are_typed_errors() {
        assert_eq!(Manifest::decode(&[4]), Err(ManifestError::UnknownVersion { version: 4 }));
        assert!(matches!(Manifest::decode(&[1, 0, 1]), Err(ManifestError::Decode(_))));
        let mut bytes = Manifest::single_signer(PublicKey::from_bytes([5; 32])).encode();
        bytes.push(0);
        assert_eq!(Manifest::decode(&bytes), Err(ManifestError::TrailingBytes { extra: 1 }));
    }

    fn arb_manifest() -> impl Strategy<Value = Manifest> {
        let signer = (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(ns, pk)| Signer {
            signature: SignatureScheme::Ed25519,
            namespace: ns,
            public_key: PublicKey::from_bytes(pk),
        });
        (
            1u64..=3,
            any::<bool>(),
            0u64..300,
            proptest::collection::vec(signer, 0..4),
            proptest::option::of((any::<[u8; 32]>(), any::<u64>())),
            proptest::option::of(proptest::collection::vec(any::<[u8; 32]>(), 0..3)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        )
            .prop_map(
                |(version, allow_patch, quorum, signers, prologue, linked, user_data)| Manifest {
                    version,
                    hash: HashAlgorithm::Blake2b,
                    allow_patch,
                    quorum,
                    signers,
                    prologue: prologue.map(|(hash, length)| Prologue {
                        hash,
                        length: length & crate::compact::MAX_SAFE_UINT,
                    }),
                    linked: linked.map(|l| l.into_iter().map(CoreKey::from_bytes).collect()),
                    user_data,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(m in arb_manifest()) {
            prop_assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Manifest::decode(&bytes);
        }
    }
}
