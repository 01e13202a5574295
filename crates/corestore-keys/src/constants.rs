//! The protocol constants, computed from their definitions (spec `keys.md` §1) on first use.

use std::sync::LazyLock;

use crate::hash::namespace;

static HYPERCORE: LazyLock<[[u8; 32]; 6]> = LazyLock::new(|| namespace(b"hypercore"));
static CORESTORE: LazyLock<[[u8; 32]; 1]> = LazyLock::new(|| namespace(b"corestore"));

/// `namespace("corestore", 1)[0]`: the prefix of every named-core seed.
pub fn corestore_ns() -> &'static [u8; 32] {
    &CORESTORE[0]
}

/// `namespace("hypercore", 6)[0]`: the prefix of every tree signable.
pub fn tree() -> &'static [u8; 32] {
    &HYPERCORE[0]
}

/// `namespace("hypercore", 6)[1]`: the initiator's capability namespace.
pub fn replicate_initiator() -> &'static [u8; 32] {
    &HYPERCORE[1]
}

/// `namespace("hypercore", 6)[2]`: the responder's capability namespace.
pub fn replicate_responder() -> &'static [u8; 32] {
    &HYPERCORE[2]
}

/// `namespace("hypercore", 6)[3]`: the prefix of the manifest hash.
pub fn manifest() -> &'static [u8; 32] {
    &HYPERCORE[3]
}

/// `namespace("hypercore", 6)[4]`: the default signer namespace inside a manifest.
pub fn default_signer_namespace() -> &'static [u8; 32] {
    &HYPERCORE[4]
}

/// `namespace("hypercore", 6)[5]`: the default block-encryption namespace (unused so far).
pub fn default_encryption() -> &'static [u8; 32] {
    &HYPERCORE[5]
}

/// The message of the discovery-key hash: ASCII `hypercore`.
pub const DISCOVERY_KEY_MESSAGE: &[u8; 9] = b"hypercore";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_spec_hex() {
        let cases: [(&[u8; 32], &str); 7] = [
            (corestore_ns(), "ac5c4cbfb1064776404637a280c71fac823281d351ebeced03151743270def29"),
            (tree(), "9fac70b50ca14efc4e91c833b204e75b8b5aad8b5881bfc0adb5ef38a3275b9c"),
            (
                replicate_initiator(),
                "51812a2a359b50369536775df89e18e47740f3db72ac0ae70b29594c194dc316",
            ),
            (
                replicate_responder(),
                "0438492d02970cc13528ac0262bca0074e0926260256865accc0bf15bd79127d",
            ),
            (manifest(), "e64b7108eacce47cfc61ac850568f55f8b15b82ec5ed78c4ec597b036e2a1498"),
            (
                default_signer_namespace(),
                "4144eea531e483d54e0c14f4ca68e0644f355343ff6fcb0f005200e12cd747cb",
            ),
            (
                default_encryption(),
                "9aedb6f1dea8487cc1e1698f97eb2f063f6db4c649695622e7b675e2ceafa6e9",
            ),
        ];
        for (value, hex) in cases {
            assert_eq!(hex::encode(value), hex);
        }
    }
}
