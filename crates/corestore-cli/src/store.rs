//! Opening the store of `--dir`, finding the core a command names, and the `info` JSON line.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use corestore::{Core, CoreInfo, CoreRef, Corestore, GetError, GetOptions, OpenError, PrimaryKey};
use serde::Serialize;

use crate::args::Target;

/// Whether a command may create the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// Open the store, creating it (and its primary key) if it is not there.
    OrCreate,
    /// The store must exist already (`cat`, `info`, `list` create nothing).
    Existing,
}

/// The `--dir` of a command that needs one.
pub(crate) fn dir<'a>(dir: Option<&'a Path>, command: &str) -> anyhow::Result<&'a Path> {
    match dir {
        Some(dir) => Ok(dir),
        None => bail!("`corestore {command}` needs the store directory: --dir D"),
    }
}

/// Opens the store in `dir`.
pub(crate) async fn open(
    dir: &Path,
    mode: Open,
    primary_key: Option<PrimaryKey>,
) -> anyhow::Result<Corestore> {
    if mode == Open::Existing && !is_store(dir) {
        bail!("no store at {} (create one with `corestore --dir {0} init`)", dir.display());
    }
    let mut builder = Corestore::builder().path(dir);
    if let Some(primary_key) = primary_key {
        builder = builder.primary_key(primary_key);
    }
    builder.open().await.map_err(|e| match e {
        OpenError::AnotherCorestore => anyhow::anyhow!(
            "the store at {} has another primary key (a foreign corestore)",
            dir.display()
        ),
        e => anyhow::Error::new(e).context(format!("cannot open the store at {}", dir.display())),
    })
}

/// A directory that exists and is not empty: opening anything else would create a store.
fn is_store(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// The absolute path of `dir`, for output.
pub(crate) fn display_dir(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// `store` moved into the namespace chain `names`, in the order given.
pub(crate) fn namespaced(store: &Corestore, names: &[String]) -> anyhow::Result<Corestore> {
    let mut store = store.clone();
    for name in names {
        store = store.namespace(name)?;
    }
    Ok(store)
}

/// What a [`Target`] names, and how to say so in an error.
pub(crate) fn resolve(target: &Target) -> anyhow::Result<(CoreRef, String)> {
    match (&target.key, &target.name) {
        (Some(_), Some(_)) => bail!("give either a core KEY or --name NAME, not both"),
        (Some(_), None) if !target.names.namespaces.is_empty() => {
            bail!("--namespace applies to --name only, not to a KEY")
        }
        (Some(key), None) => {
            let core = CoreRef::parse_key(key).context("bad KEY")?;
            Ok((core, format!("core {key}")))
        }
        (None, Some(name)) => {
            let chain = &target.names.namespaces;
            let said = if chain.is_empty() {
                format!("core named {name:?}")
            } else {
                format!("core named {name:?} in namespace {}", chain.join("/"))
            };
            Ok((CoreRef::name(name), said))
        }
        (None, None) => bail!("name the core: a KEY or --name NAME"),
    }
}

/// Opens the stored core `target` names; never creates one. Reads of missing blocks return at
/// once.
pub(crate) async fn stored_core(store: &Corestore, target: &Target) -> anyhow::Result<Core> {
    let (core, said) = resolve(target)?;
    let store = namespaced(store, &target.names.namespaces)?;
    let options = GetOptions::new().create_if_missing(false).wait(false);
    match store.get_with(core, options).await {
        Ok(core) => Ok(core),
        Err(GetError::NotStored { .. }) => bail!("no {said} in this store"),
        Err(GetError::EmptyName) => bail!("bad --name: a core name must not be empty"),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot open the {said}"))),
    }
}

/// The JSON line of `info` and `list`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InfoLine {
    key: String,
    discovery_key: String,
    length: u64,
    contiguous_length: u64,
    byte_length: u64,
    writable: bool,
    fork: u64,
}

impl From<CoreInfo> for InfoLine {
    fn from(info: CoreInfo) -> Self {
        Self {
            key: info.key.to_hex(),
            discovery_key: info.discovery_key.to_hex(),
            length: info.length,
            contiguous_length: info.contiguous_length,
            byte_length: info.byte_length,
            writable: info.writable,
            fork: info.fork,
        }
    }
}
