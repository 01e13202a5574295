//! `corestore derive`: pure key derivation, no storage.

use anyhow::Context;
use corestore::keys::{parse_id, NamedCore, Namespace, PrimaryKey};
use serde::Serialize;

use crate::args::DeriveArgs;

/// The JSON line `derive` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Derived {
    namespace: String,
    public_key: String,
    key: String,
    discovery_key: String,
}

pub(crate) fn run(args: &DeriveArgs) -> anyhow::Result<Derived> {
    let primary =
        parse_id(&args.primary_key).map(PrimaryKey::from_bytes).context("bad --primary-key")?;
    let namespace = Namespace::from_chain(&args.names.namespaces);
    let core =
        NamedCore::derive(&primary, &namespace, args.name.as_bytes()).context("bad --name")?;
    Ok(Derived {
        namespace: namespace.to_hex(),
        public_key: core.key_pair.public_key().to_hex(),
        key: core.key.to_hex(),
        discovery_key: core.discovery_key.to_hex(),
    })
}
