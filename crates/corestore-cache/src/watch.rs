//! [`Watcher`]: a stream of values as they open.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

/// A stream of every value opened after [`crate::Cache::watch`] was called; it ends when the
/// cache closes. Dropping it unregisters it.
pub struct Watcher<V> {
    rx: mpsc::UnboundedReceiver<Arc<V>>,
}

impl<V> Watcher<V> {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Arc<V>>) -> Self {
        Self { rx }
    }
}

impl<V> Stream for Watcher<V> {
    type Item = Arc<V>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Arc<V>>> {
        self.rx.poll_recv(cx)
    }
}

impl<V> fmt::Debug for Watcher<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher").field("pending", &self.rx.len()).finish()
    }
}
