//! [`Corestore::list`] and [`Corestore::list_namespace`]: the stored cores as a stream, paged
//! from storage, so a store of a million cores never holds a million keys in memory.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use corestore_keys::{DiscoveryKey, Namespace};
use futures::stream::BoxStream;
use futures::Stream;

use crate::error::ListError;
use crate::store::{Corestore, StoreSession};

/// Discovery keys read from storage at a time.
pub(crate) const LIST_PAGE: usize = 1024;

/// Where a listing goes on from.
enum Cursor {
    /// Every core, after this discovery key.
    All(Option<DiscoveryKey>),
    /// One namespace's named cores, after this name.
    Namespace(Namespace, Option<Vec<u8>>),
}

struct Listing {
    store: Arc<StoreSession>,
    cursor: Cursor,
    page: VecDeque<DiscoveryKey>,
    page_size: usize,
    done: bool,
}

impl Listing {
    /// Reads the next page into `self.page`.
    async fn fill(&mut self) -> Result<(), ListError> {
        let storage = &self.store.root.storage;
        let read = match &mut self.cursor {
            Cursor::All(after) => {
                let page = storage.discovery_keys_page(after.as_ref(), self.page_size).await?;
                if let Some(last) = page.last() {
                    *after = Some(*last);
                }
                let read = page.len();
                self.page.extend(page);
                read
            }
            Cursor::Namespace(namespace, after) => {
                let page = storage
                    .namespace_discovery_keys_page(namespace, after.as_deref(), self.page_size)
                    .await?;
                let read = page.len();
                for (name, discovery_key) in page {
                    self.page.push_back(discovery_key);
                    *after = Some(name);
                }
                read
            }
        };
        self.done = read < self.page_size;
        Ok(())
    }
}

/// The stream of [`Corestore::list`] and [`Corestore::list_namespace`]: discovery keys of stored
/// cores, read from storage a page at a time. `Unpin`, so `next()` works on it directly.
pub struct CoreList {
    inner: BoxStream<'static, Result<DiscoveryKey, ListError>>,
}

impl fmt::Debug for CoreList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreList").finish_non_exhaustive()
    }
}

impl Stream for CoreList {
    type Item = Result<DiscoveryKey, ListError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

fn stream(store: Arc<StoreSession>, cursor: Cursor, page_size: usize) -> CoreList {
    let listing =
        Listing { store, cursor, page: VecDeque::new(), page_size: page_size.max(1), done: false };
    let inner = futures::stream::unfold(listing, |mut listing| async move {
        loop {
            if let Some(discovery_key) = listing.page.pop_front() {
                return Some((Ok(discovery_key), listing));
            }
            if listing.done {
                return None;
            }
            let read = if listing.store.is_closed() {
                Err(ListError::Closed)
            } else {
                listing.fill().await
            };
            if let Err(e) = read {
                listing.done = true;
                return Some((Err(e), listing));
            }
        }
    });
    CoreList { inner: Box::pin(inner) }
}

impl Corestore {
    /// The discovery key of every core stored here (all namespaces), in byte order, as a stream
    /// (JavaScript's `store.list()`). It reads storage a page at a time, so memory stays bounded
    /// however many cores are stored; cores stored while it runs may or may not appear. It ends
    /// with [`ListError::Closed`] if the store closes before the end.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use corestore::{CoreRef, Corestore, DiscoveryKey};
    /// use futures::TryStreamExt;
    ///
    /// let store = Corestore::in_memory().await?;
    /// let core = store.get(CoreRef::name("a")).await?;
    /// let listed: Vec<DiscoveryKey> = store.list().try_collect().await?;
    /// assert_eq!(listed, vec![*core.discovery_key()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn list(&self) -> CoreList {
        stream(self.inner.clone(), Cursor::All(None), LIST_PAGE)
    }

    /// The discovery keys of the named cores stored in `namespace` (see
    /// [`Corestore::namespace_key`]), in name order, as a stream paged like
    /// [`Corestore::list`] (JavaScript's `store.list(namespace)`).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use corestore::{CoreRef, Corestore, DiscoveryKey};
    /// use futures::TryStreamExt;
    ///
    /// let store = Corestore::in_memory().await?;
    /// let drive = store.namespace("drive")?;
    /// let core = drive.get(CoreRef::name("db")).await?;
    /// store.get(CoreRef::name("elsewhere")).await?;
    /// let listed: Vec<DiscoveryKey> = store.list_namespace(&drive.namespace_key()).try_collect().await?;
    /// assert_eq!(listed, vec![*core.discovery_key()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn list_namespace(&self, namespace: &Namespace) -> CoreList {
        stream(self.inner.clone(), Cursor::Namespace(*namespace, None), LIST_PAGE)
    }
}

#[cfg(test)]
mod tests {
    use futures::{StreamExt, TryStreamExt};

    use super::*;
    use crate::CoreRef;

    #[tokio::test]
    async fn small_pages_list_every_core_once_and_a_closed_store_ends_the_stream() {
        let store = Corestore::in_memory().await.unwrap();
        let ns = store.namespace("n").unwrap();
        let mut all = Vec::new();
        let mut named = Vec::new();
        for i in 0..10 {
            let core = store.get(CoreRef::name(format!("root-{i}"))).await.unwrap();
            all.push(*core.discovery_key());
            let core = ns.get(CoreRef::name(format!("ns-{i}"))).await.unwrap();
            all.push(*core.discovery_key());
            named.push(*core.discovery_key());
        }
        all.sort();
        for page in [1, 3, 20, 1024] {
            let listed: Vec<_> =
                stream(store.inner.clone(), Cursor::All(None), page).try_collect().await.unwrap();
            assert_eq!(listed, all, "pages of {page}");
            let cursor = Cursor::Namespace(ns.namespace_key(), None);
            let listed: Vec<_> =
                stream(store.inner.clone(), cursor, page).try_collect().await.unwrap();
            assert_eq!(listed, named, "pages of {page}, in name order");
        }
        let mut listing = stream(store.inner.clone(), Cursor::All(None), 4);
        for _ in 0..4 {
            listing.next().await.unwrap().unwrap();
        }
        store.close().await.unwrap();
        assert!(matches!(listing.next().await, Some(Err(ListError::Closed))));
        assert!(listing.next().await.is_none());
        assert!(matches!(store.list().next().await, Some(Err(ListError::Closed))));
    }
}
