//! The record schema over any [`StorageBackend`]: one keyspace for every core of a store.
//!
//! Keys are order-preserving (tags, then big-endian integers), so a core's blocks, tree nodes and
//! bitfield pages scan in index order:
//!
//! | key | value |
//! |---|---|
//! | `00` | store head: format version, primary key |
//! | `01 ‖ discoveryKey` | core id (uint) |
//! | `02 ‖ namespace ‖ name` | discovery key (corestore alias) |
//! | `03 ‖ id(u64be) ‖ 00` | [`CoreAuth`] |
//! | `03 ‖ id ‖ 01` | [`TreeHead`] |
//! | `03 ‖ id ‖ 02` | [`Hints`] |
//! | `03 ‖ id ‖ 03 ‖ index(u64be)` | block bytes |
//! | `03 ‖ id ‖ 04 ‖ treeIndex(u64be)` | [`StoredNode`] |
//! | `03 ‖ id ‖ 05 ‖ page(u64be)` | bitfield page |
//! | `03 ‖ id ‖ 06 ‖ key` | user data |
//! | `03 ‖ id ‖ 07 ‖ key` | local data |
//! | `04` | next free core id (u64le) |

use std::io;
use std::sync::Arc;

use corestore_keys::compact::{Decoder, Encoder};
use corestore_keys::{DiscoveryKey, Namespace, PrimaryKey};

use crate::backend::{StorageBackend, WriteBatch};
use crate::records::{CoreAuth, Hints, RecordError, StoredNode, TreeHead};

/// The format version this crate writes. Opening a store with a higher one is refused.
pub const FORMAT_VERSION: u64 = 1;

const TAG_HEAD: u8 = 0x00;
const TAG_CORE_BY_DKEY: u8 = 0x01;
const TAG_ALIAS: u8 = 0x02;
const TAG_CORE: u8 = 0x03;
const TAG_NEXT_CORE_ID: u8 = 0x04;

/// Serializes core-id allocation across every [`Storage`] of this process, so that two handles
/// over one backend read and bump the stored counter one after the other.
static CORE_ID_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SUB_AUTH: u8 = 0x00;
const SUB_HEAD: u8 = 0x01;
const SUB_HINTS: u8 = 0x02;
const SUB_BLOCK: u8 = 0x03;
const SUB_TREE: u8 = 0x04;
const SUB_BITFIELD: u8 = 0x05;
const SUB_USER: u8 = 0x06;
const SUB_LOCAL: u8 = 0x07;

const HEAD_HAS_PRIMARY_KEY: u64 = 1;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The backend failed.
    #[error("storage I/O failed: {0}")]
    Io(#[from] io::Error),
    /// A record does not decode: the store is damaged or was written by something else.
    #[error("corrupt {what} record: {source}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// What is wrong with it.
        source: RecordError,
    },
    /// The store was written by a newer, unknown format version.
    #[error("store format version {found} is newer than the supported version {supported}")]
    UnsupportedFormat {
        /// The stored version.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// The store already holds a different primary key.
    #[error("another corestore is stored here (its primary key differs)")]
    ForeignStore,
}

fn corrupt(what: &'static str) -> impl FnOnce(RecordError) -> StorageError {
    move |source| StorageError::Corrupt { what, source }
}

/// The schema layer: typed access to every record of a store.
///
/// Any number of `Storage` handles may share one backend within a process: core ids come from a
/// counter kept in the store and bumped under a process-wide lock, so no two cores ever share
/// one. A backend must not be written by several processes at once ([`crate::DiskStorage`]
/// locks its directory).
#[derive(Debug)]
pub struct Storage {
    backend: Arc<dyn StorageBackend>,
    primary_key: std::sync::Mutex<Option<PrimaryKey>>,
}

impl Storage {
    /// Opens the schema over `backend`, writing a fresh head if the store is empty.
    pub async fn open(backend: Arc<dyn StorageBackend>) -> Result<Arc<Self>, StorageError> {
        let primary_key = if let Some(bytes) = backend.get(&[TAG_HEAD]).await? {
            decode_head(&bytes)?
        } else {
            let mut batch = WriteBatch::new();
            batch.put(vec![TAG_HEAD], encode_head(None));
            backend.write(batch).await?;
            backend.flush().await?;
            None
        };
        Ok(Arc::new(Self { backend, primary_key: std::sync::Mutex::new(primary_key) }))
    }

    /// The next free core id: the stored counter, or for a store written before it existed,
    /// one past the highest id in the discovery-key index. An id whose identity record exists
    /// is never handed out again. Call with [`CORE_ID_LOCK`] held.
    async fn next_core_id(&self) -> Result<u64, StorageError> {
        let mut id = if let Some(bytes) = self.backend.get(&[TAG_NEXT_CORE_ID]).await? {
            let mut d = Decoder::new(&bytes);
            u64::from_le_bytes(d.fixed().map_err(|e| corrupt("core id counter")(e.into()))?)
        } else {
            let mut next = 0;
            for (_, value) in
                scan_all(self.backend.as_ref(), &[TAG_CORE_BY_DKEY], &[TAG_CORE_BY_DKEY + 1])
                    .await?
            {
                let id =
                    Decoder::new(&value).uint().map_err(|e| corrupt("core index")(e.into()))?;
                next = next.max(id + 1);
            }
            next
        };
        while self.backend.get(&core_key(id, SUB_AUTH, None)).await?.is_some() {
            id += 1;
        }
        Ok(id)
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn StorageBackend> {
        &self.backend
    }

    /// The stored primary key, if one was set.
    pub fn primary_key(&self) -> Option<PrimaryKey> {
        self.primary_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Returns the store's primary key, storing `wanted` (or a random key) on first use.
    /// A `wanted` key that differs from the stored one is refused with
    /// [`StorageError::ForeignStore`], as JavaScript corestore refuses it.
    pub async fn init_primary_key(
        &self,
        wanted: Option<PrimaryKey>,
    ) -> Result<PrimaryKey, StorageError> {
        if let Some(stored) = self.primary_key() {
            return match wanted {
                Some(w) if w != stored => Err(StorageError::ForeignStore),
                _ => Ok(stored),
            };
        }
        let key = wanted.unwrap_or_else(PrimaryKey::generate);
        let mut batch = WriteBatch::new();
        batch.put(vec![TAG_HEAD], encode_head(Some(&key)));
        self.backend.write(batch).await?;
        self.backend.flush().await?;
        *self.primary_key.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(key.clone());
        Ok(key)
    }

    /// The discovery key stored for a named core.
    pub async fn alias(
        &self,
        namespace: &Namespace,
        name: &[u8],
    ) -> Result<Option<DiscoveryKey>, StorageError> {
        let Some(bytes) = self.backend.get(&alias_key(namespace, name)).await? else {
            return Ok(None);
        };
        let dk = DiscoveryKey::try_from_slice(&bytes).map_err(|_| StorageError::Corrupt {
            what: "alias",
            source: corestore_keys::compact::DecodeError::UnexpectedEnd {
                needed: 32,
                remaining: bytes.len(),
            }
            .into(),
        })?;
        Ok(Some(dk))
    }

    /// True when a core with this discovery key is stored.
    pub async fn has_core(&self, discovery_key: &DiscoveryKey) -> Result<bool, StorageError> {
        Ok(self.core_id(discovery_key).await?.is_some())
    }

    async fn core_id(&self, discovery_key: &DiscoveryKey) -> Result<Option<u64>, StorageError> {
        let Some(bytes) = self.backend.get(&dkey_key(discovery_key)).await? else {
            return Ok(None);
        };
        let id = Decoder::new(&bytes).uint().map_err(|e| corrupt("core index")(e.into()))?;
        Ok(Some(id))
    }

    /// Opens a stored core, or `None` if there is none with this discovery key.
    pub async fn open_core(
        self: &Arc<Self>,
        discovery_key: &DiscoveryKey,
    ) -> Result<Option<CoreStorage>, StorageError> {
        Ok(self.core_id(discovery_key).await?.map(|id| CoreStorage { storage: self.clone(), id }))
    }

    /// Creates a core record (and its alias, for a named core) in one atomic batch.
    ///
    /// The caller serializes creation per discovery key (the cache does): two concurrent
    /// creations of the same core would both succeed and the later index entry would win.
    pub async fn create_core(
        self: &Arc<Self>,
        auth: &CoreAuth,
        alias: Option<(&Namespace, &[u8])>,
    ) -> Result<CoreStorage, StorageError> {
        let _allocating = CORE_ID_LOCK.lock().await;
        let id = self.next_core_id().await?;
        let mut batch = WriteBatch::new();
        let mut e = Encoder::new();
        e.uint(id);
        batch.put(dkey_key(&auth.discovery_key), e.into_vec());
        if let Some((ns, name)) = alias {
            batch.put(alias_key(ns, name), auth.discovery_key.as_bytes().to_vec());
        }
        batch.put(core_key(id, SUB_AUTH, None), auth.encode());
        batch.put(vec![TAG_NEXT_CORE_ID], (id + 1).to_le_bytes().to_vec());
        self.backend.write(batch).await?;
        Ok(CoreStorage { storage: self.clone(), id })
    }

    /// Discovery keys of every stored core, in byte order.
    pub async fn discovery_keys(&self) -> Result<Vec<DiscoveryKey>, StorageError> {
        let rows =
            scan_all(self.backend.as_ref(), &[TAG_CORE_BY_DKEY], &[TAG_CORE_BY_DKEY + 1]).await?;
        Ok(rows
            .iter()
            .filter_map(|(key, _)| DiscoveryKey::try_from_slice(key.get(1..)?).ok())
            .collect())
    }

    /// Discovery keys of the named cores of `namespace` (corestore `list(namespace)`), in name
    /// order.
    pub async fn namespace_discovery_keys(
        &self,
        namespace: &Namespace,
    ) -> Result<Vec<DiscoveryKey>, StorageError> {
        let start = alias_key(namespace, &[]);
        // The first key after every alias of `namespace`: the namespace bytes plus one.
        let mut end = start.clone();
        while let Some(last) = end.pop() {
            if last < u8::MAX {
                end.push(last + 1);
                break;
            }
        }
        let rows = scan_all(self.backend.as_ref(), &start, &end).await?;
        rows.iter()
            .map(|(_, value)| {
                DiscoveryKey::try_from_slice(value).map_err(|_| StorageError::Corrupt {
                    what: "alias",
                    source: corestore_keys::compact::DecodeError::UnexpectedEnd {
                        needed: 32,
                        remaining: value.len(),
                    }
                    .into(),
                })
            })
            .collect()
    }

    /// One page of [`Storage::discovery_keys`]: up to `limit` discovery keys after `after`
    /// (exclusive; `None` starts at the first), in byte order. Page through every stored core by
    /// passing the last key of a page as the next `after`; a page shorter than `limit` is the
    /// last. Holds at most one page in memory, however many cores are stored.
    pub async fn discovery_keys_page(
        &self,
        after: Option<&DiscoveryKey>,
        limit: usize,
    ) -> Result<Vec<DiscoveryKey>, StorageError> {
        let start = match after {
            Some(dk) => {
                let mut k = dkey_key(dk);
                k.push(0);
                k
            }
            None => vec![TAG_CORE_BY_DKEY],
        };
        let rows = self.backend.scan(&start, &[TAG_CORE_BY_DKEY + 1], limit).await?;
        Ok(rows
            .iter()
            .filter_map(|(key, _)| DiscoveryKey::try_from_slice(key.get(1..)?).ok())
            .collect())
    }

    /// One page of [`Storage::namespace_discovery_keys`]: up to `limit` named cores of
    /// `namespace` whose name sorts after `after` (exclusive; `None` starts at the first), as
    /// (name, discovery key) in name order. Pass the last name of a page as the next `after`; a
    /// page shorter than `limit` is the last.
    pub async fn namespace_discovery_keys_page(
        &self,
        namespace: &Namespace,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, DiscoveryKey)>, StorageError> {
        let prefix = alias_key(namespace, &[]);
        let start = match after {
            Some(name) => {
                let mut k = alias_key(namespace, name);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        // The first key after every alias of `namespace`: the namespace bytes plus one.
        let mut end = prefix.clone();
        while let Some(last) = end.pop() {
            if last < u8::MAX {
                end.push(last + 1);
                break;
            }
        }
        let rows = self.backend.scan(&start, &end, limit).await?;
        rows.into_iter()
            .map(|(key, value)| {
                let dk =
                    DiscoveryKey::try_from_slice(&value).map_err(|_| StorageError::Corrupt {
                        what: "alias",
                        source: corestore_keys::compact::DecodeError::UnexpectedEnd {
                            needed: 32,
                            remaining: value.len(),
                        }
                        .into(),
                    })?;
                let name = key.get(prefix.len()..).unwrap_or_default().to_vec();
                Ok((name, dk))
            })
            .collect()
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<(), StorageError> {
        Ok(self.backend.flush().await?)
    }
}

/// Every entry of `start..end`, read in pages so no single scan is unbounded.
async fn scan_all(
    backend: &dyn StorageBackend,
    start: &[u8],
    end: &[u8],
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    const PAGE: usize = 1024;
    let mut out = Vec::new();
    let mut from = start.to_vec();
    loop {
        let page = backend.scan(&from, end, PAGE).await?;
        let full = page.len() == PAGE;
        if let Some((last, _)) = page.last() {
            from.clone_from(last);
            from.push(0);
        }
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

fn encode_head(primary_key: Option<&PrimaryKey>) -> Vec<u8> {
    let mut e = Encoder::new();
    e.uint(FORMAT_VERSION).uint(if primary_key.is_some() { HEAD_HAS_PRIMARY_KEY } else { 0 });
    if let Some(k) = primary_key {
        e.raw(k.as_bytes());
    }
    e.into_vec()
}

fn decode_head(bytes: &[u8]) -> Result<Option<PrimaryKey>, StorageError> {
    let mut d = Decoder::new(bytes);
    let version = d.uint().map_err(|e| corrupt("store head")(e.into()))?;
    if version > FORMAT_VERSION {
        return Err(StorageError::UnsupportedFormat { found: version, supported: FORMAT_VERSION });
    }
    let flags = d.uint().map_err(|e| corrupt("store head")(e.into()))?;
    if flags & HEAD_HAS_PRIMARY_KEY == 0 {
        return Ok(None);
    }
    let key = d.fixed::<32>().map_err(|e| corrupt("store head")(e.into()))?;
    Ok(Some(PrimaryKey::from_bytes(key)))
}

fn dkey_key(dk: &DiscoveryKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(TAG_CORE_BY_DKEY);
    k.extend_from_slice(dk.as_bytes());
    k
}

fn alias_key(ns: &Namespace, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33 + name.len());
    k.push(TAG_ALIAS);
    k.extend_from_slice(ns.as_bytes());
    k.extend_from_slice(name);
    k
}

fn core_key(id: u64, sub: u8, index: Option<u64>) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.push(TAG_CORE);
    k.extend_from_slice(&id.to_be_bytes());
    k.push(sub);
    if let Some(i) = index {
        k.extend_from_slice(&i.to_be_bytes());
    }
    k
}

fn core_bytes_key(id: u64, sub: u8, key: &[u8]) -> Vec<u8> {
    let mut k = core_key(id, sub, None);
    k.extend_from_slice(key);
    k
}

fn index_of(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

/// One core's records. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CoreStorage {
    storage: Arc<Storage>,
    id: u64,
}

impl CoreStorage {
    /// The store this core lives in.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.storage.backend.get(&key).await?)
    }

    /// The core's identity record.
    pub async fn auth(&self) -> Result<CoreAuth, StorageError> {
        let bytes = self.get(core_key(self.id, SUB_AUTH, None)).await?.unwrap_or_default();
        CoreAuth::decode(&bytes).map_err(corrupt("core auth"))
    }

    /// The signed tree head, if any block was ever appended or downloaded.
    pub async fn head(&self) -> Result<Option<TreeHead>, StorageError> {
        let Some(bytes) = self.get(core_key(self.id, SUB_HEAD, None)).await? else {
            return Ok(None);
        };
        TreeHead::decode(&bytes).map(Some).map_err(corrupt("tree head"))
    }

    /// The hints record (default when absent).
    pub async fn hints(&self) -> Result<Hints, StorageError> {
        let Some(bytes) = self.get(core_key(self.id, SUB_HINTS, None)).await? else {
            return Ok(Hints::default());
        };
        Hints::decode(&bytes).map_err(corrupt("hints"))
    }

    /// Block `index`, if stored.
    pub async fn block(&self, index: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(core_key(self.id, SUB_BLOCK, Some(index))).await
    }

    /// Stored blocks with `start <= index < end`, in order (gaps skipped), at most `limit`.
    pub async fn blocks(
        &self,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        self.scan_indexed(SUB_BLOCK, start, end, limit).await.map(|rows| rows.into_iter().collect())
    }

    /// Tree node `index` (flat-tree index), if stored.
    pub async fn tree_node(&self, index: u64) -> Result<Option<StoredNode>, StorageError> {
        let Some(bytes) = self.get(core_key(self.id, SUB_TREE, Some(index))).await? else {
            return Ok(None);
        };
        StoredNode::decode(&bytes).map(Some).map_err(corrupt("tree node"))
    }

    /// Bitfield page `page`, if stored.
    pub async fn bitfield_page(&self, page: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(core_key(self.id, SUB_BITFIELD, Some(page))).await
    }

    /// Every stored bitfield page, in page order.
    pub async fn bitfield_pages(&self) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        self.scan_indexed(SUB_BITFIELD, 0, u64::MAX, usize::MAX).await
    }

    /// A user-data value.
    pub async fn user_data(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(core_bytes_key(self.id, SUB_USER, key)).await
    }

    /// A local-data value (not replicated).
    pub async fn local_data(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(core_bytes_key(self.id, SUB_LOCAL, key)).await
    }

    async fn scan_indexed(
        &self,
        sub: u8,
        start: u64,
        end: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let from = core_key(self.id, sub, Some(start));
        let to = if end == u64::MAX {
            core_key(self.id, sub + 1, None)
        } else {
            core_key(self.id, sub, Some(end))
        };
        let rows = self.storage.backend.scan(&from, &to, limit).await?;
        Ok(rows.into_iter().filter_map(|(k, v)| index_of(&k).map(|i| (i, v))).collect())
    }

    /// A new batch of writes to this core.
    pub fn batch(&self) -> CoreBatch {
        CoreBatch { id: self.id, batch: WriteBatch::new() }
    }

    /// Applies `batch` atomically (see [`StorageBackend::write`]).
    pub async fn write(&self, batch: CoreBatch) -> Result<(), StorageError> {
        Ok(self.storage.backend.write(batch.batch).await?)
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.storage.flush().await
    }
}

/// Typed writes to one core, applied atomically by [`CoreStorage::write`].
#[derive(Debug)]
pub struct CoreBatch {
    id: u64,
    batch: WriteBatch,
}

impl CoreBatch {
    /// Replaces the identity record (e.g. when the manifest is learned from a peer).
    pub fn put_auth(&mut self, auth: &CoreAuth) -> &mut Self {
        self.batch.put(core_key(self.id, SUB_AUTH, None), auth.encode());
        self
    }

    /// Sets the signed tree head.
    pub fn put_head(&mut self, head: &TreeHead) -> &mut Self {
        self.batch.put(core_key(self.id, SUB_HEAD, None), head.encode());
        self
    }

    /// Sets the hints.
    pub fn put_hints(&mut self, hints: Hints) -> &mut Self {
        self.batch.put(core_key(self.id, SUB_HINTS, None), hints.encode());
        self
    }

    /// Stores block `index`.
    pub fn put_block(&mut self, index: u64, data: &[u8]) -> &mut Self {
        self.batch.put(core_key(self.id, SUB_BLOCK, Some(index)), data.to_vec());
        self
    }

    /// Removes blocks `start..end`.
    pub fn delete_blocks(&mut self, start: u64, end: u64) -> &mut Self {
        self.delete_indexed(SUB_BLOCK, start, end)
    }

    /// Stores tree node `index`.
    pub fn put_tree_node(&mut self, index: u64, node: &StoredNode) -> &mut Self {
        self.batch.put(core_key(self.id, SUB_TREE, Some(index)), node.encode());
        self
    }

    /// Removes tree nodes with flat-tree indexes `start..end`.
    pub fn delete_tree_nodes(&mut self, start: u64, end: u64) -> &mut Self {
        self.delete_indexed(SUB_TREE, start, end)
    }

    /// Stores bitfield page `page`.
    pub fn put_bitfield_page(&mut self, page: u64, bytes: &[u8]) -> &mut Self {
        self.batch.put(core_key(self.id, SUB_BITFIELD, Some(page)), bytes.to_vec());
        self
    }

    /// Sets (or with `None`, removes) a user-data value.
    pub fn put_user_data(&mut self, key: &[u8], value: Option<&[u8]>) -> &mut Self {
        self.put_bytes(SUB_USER, key, value)
    }

    /// Sets (or with `None`, removes) a local-data value.
    pub fn put_local_data(&mut self, key: &[u8], value: Option<&[u8]>) -> &mut Self {
        self.put_bytes(SUB_LOCAL, key, value)
    }

    fn put_bytes(&mut self, sub: u8, key: &[u8], value: Option<&[u8]>) -> &mut Self {
        let k = core_bytes_key(self.id, sub, key);
        match value {
            Some(v) => self.batch.put(k, v.to_vec()),
            None => self.batch.delete(k),
        };
        self
    }

    fn delete_indexed(&mut self, sub: u8, start: u64, end: u64) -> &mut Self {
        if start < end {
            let to = if end == u64::MAX {
                core_key(self.id, sub + 1, None)
            } else {
                core_key(self.id, sub, Some(end))
            };
            self.batch.delete_range(core_key(self.id, sub, Some(start)), to);
        }
        self
    }

    /// Number of operations so far.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// True without operations.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStorage, StoredKeyPair};
    use corestore_keys::{KeyPair, Manifest};

    fn auth(seed: u8) -> CoreAuth {
        let kp = KeyPair::from_seed(&[seed; 32]);
        let manifest = Manifest::single_signer(kp.public_key());
        let key = manifest.hash();
        CoreAuth {
            key,
            discovery_key: key.discovery_key(),
            frozen: false,
            manifest: Some(manifest),
            key_pair: Some(StoredKeyPair {
                public_key: kp.public_key(),
                secret_key: Some(kp.secret_key()),
            }),
        }
    }

    #[tokio::test]
    async fn cores_round_trip_and_reopen() {
        let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
        let storage = Storage::open(backend.clone()).await.unwrap();
        let a = auth(1);
        let ns = Namespace::ROOT.child("x");
        let core = storage.create_core(&a, Some((&ns, b"main"))).await.unwrap();
        let mut batch = core.batch();
        batch
            .put_block(0, b"hello")
            .put_block(1, b"world")
            .put_tree_node(1, &StoredNode { size: 10, hash: [3; 32] })
            .put_head(&TreeHead { fork: 0, length: 2, tree_hash: [4; 32], signature: vec![5; 68] })
            .put_hints(Hints { contiguous_length: 2 });
        core.write(batch).await.unwrap();

        let storage = Storage::open(backend).await.unwrap();
        assert_eq!(storage.alias(&ns, b"main").await.unwrap(), Some(a.discovery_key));
        let core = storage.open_core(&a.discovery_key).await.unwrap().unwrap();
        assert_eq!(core.auth().await.unwrap(), a);
        assert_eq!(core.block(1).await.unwrap().as_deref(), Some(&b"world"[..]));
        assert_eq!(core.blocks(0, 10, 100).await.unwrap().len(), 2);
        assert_eq!(core.head().await.unwrap().unwrap().length, 2);
        assert_eq!(core.tree_node(1).await.unwrap().unwrap().size, 10);
        assert_eq!(core.hints().await.unwrap().contiguous_length, 2);
        // A second core gets a fresh id and does not see the first one's blocks.
        let b = storage.create_core(&auth(2), None).await.unwrap();
        assert_eq!(b.block(0).await.unwrap(), None);
        assert_eq!(storage.discovery_keys().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn namespace_discovery_keys_lists_one_namespace_only() {
        let storage = Storage::open(Arc::new(MemoryStorage::new())).await.unwrap();
        let ns = Namespace::ROOT.child("a");
        // All-0xff namespace: the scan end must not overflow into another tag.
        let last = Namespace::from_bytes([0xff; 32]);
        let (a, b, c, d) = (auth(1), auth(2), auth(3), auth(4));
        storage.create_core(&a, Some((&ns, b"x"))).await.unwrap();
        storage.create_core(&b, Some((&ns, b"y"))).await.unwrap();
        storage.create_core(&c, Some((&Namespace::ROOT, b"x"))).await.unwrap();
        storage.create_core(&d, Some((&last, b"z"))).await.unwrap();
        storage.create_core(&auth(5), None).await.unwrap();
        let mut listed = storage.namespace_discovery_keys(&ns).await.unwrap();
        listed.sort();
        let mut expected = vec![a.discovery_key, b.discovery_key];
        expected.sort();
        assert_eq!(listed, expected);
        assert_eq!(
            storage.namespace_discovery_keys(&Namespace::ROOT).await.unwrap(),
            vec![c.discovery_key]
        );
        assert_eq!(storage.namespace_discovery_keys(&last).await.unwrap(), vec![d.discovery_key]);
        assert_eq!(storage.discovery_keys().await.unwrap().len(), 5);
    }

    #[tokio::test]
    async fn primary_key_is_kept_and_foreign_keys_refused() {
        let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
        let storage = Storage::open(backend.clone()).await.unwrap();
        let key = storage.init_primary_key(None).await.unwrap();
        let storage = Storage::open(backend).await.unwrap();
        assert_eq!(storage.primary_key(), Some(key.clone()));
        assert_eq!(storage.init_primary_key(Some(key.clone())).await.unwrap(), key);
        assert!(matches!(
            storage.init_primary_key(Some(PrimaryKey::from_bytes([9; 32]))).await,
            Err(StorageError::ForeignStore)
        ));
    }

    #[tokio::test]
    async fn two_handles_over_one_backend_never_share_a_core_id() {
        let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
        let first = Storage::open(backend.clone()).await.unwrap();
        let second = Storage::open(backend.clone()).await.unwrap();
        let (one, two) = (auth(1), auth(2));
        let (a, b) = tokio::join!(first.create_core(&one, None), second.create_core(&two, None));
        let (a, b) = (a.unwrap(), b.unwrap());
        let c = second.create_core(&auth(3), None).await.unwrap();
        for (core, byte) in [(&a, 1u8), (&b, 2), (&c, 3)] {
            let mut batch = core.batch();
            batch.put_block(0, &[byte]);
            core.write(batch).await.unwrap();
        }
        // A handle opened later allocates after all of them.
        let third = Storage::open(backend).await.unwrap();
        let d = third.create_core(&auth(4), None).await.unwrap();
        assert_eq!(d.block(0).await.unwrap(), None);
        for (core, byte) in [(&a, 1u8), (&b, 2), (&c, 3)] {
            assert_eq!(core.auth().await.unwrap(), auth(byte), "one core overwrote another");
            assert_eq!(core.block(0).await.unwrap(), Some(vec![byte]));
        }
    }

    #[tokio::test]
    async fn future_format_is_refused() {
        let backend: Arc<dyn StorageBackend> = Arc::new(MemoryStorage::new());
        let mut batch = WriteBatch::new();
        batch.put(vec![TAG_HEAD], vec![2, 0]);
        backend.write(batch).await.unwrap();
        assert!(matches!(
            Storage::open(backend).await,
            Err(StorageError::UnsupportedFormat { found: 2, supported: 1 })
        ));
    }
}
