//! [`Hypercore::clear`]: dropping local blocks (hypercore 11 `core.clear(start, end)`).
//!
//! The blocks leave storage and the bitfield; the tree nodes stay, so the core still proves
//! every other block and a cleared block downloaded again verifies against them. One atomic
//! storage batch: the block range delete, the bitfield pages and the contiguous-length hint.

use corestore_storage::{Hints, StorageError};

use crate::core::Hypercore;

/// Why a clear failed (nothing changed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClearError {
    /// The range starts after it ends.
    #[error("cannot clear the range {start}..{end}: it starts after it ends")]
    InvalidRange {
        /// First block asked for.
        start: u64,
        /// First block after the range asked for.
        end: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a [`Hypercore::clear`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClearReport {
    /// The range cleared, `[start, end)`, clamped to the core's length (empty when it started
    /// at or past the length).
    pub start: u64,
    /// First block after the range cleared.
    pub end: u64,
    /// How many of its blocks were stored (and are now gone); 0 means nothing changed
    /// (JavaScript's `clear(start, end, { diff: true }).blocks`).
    pub blocks: u64,
}

impl Hypercore {
    /// Removes the locally stored blocks `[start, end)` (`end` is clamped to the length; a
    /// range at or past the length clears nothing). The tree nodes stay: the core still proves
    /// every other block, and a cleared block can be downloaded again and verified. Readers and
    /// writers alike may clear; a writer that clears a block it wrote can no longer serve it.
    ///
    /// One atomic write (block range delete, bitfield pages, contiguous-length hint), nothing
    /// written when no block of the range is stored.
    pub async fn clear(&mut self, start: u64, end: u64) -> Result<ClearReport, ClearError> {
        if start > end {
            return Err(ClearError::InvalidRange { start, end });
        }
        let length = self.tree.length;
        let end = end.min(length);
        let start = start.min(end);
        let blocks = self.bitfield.count(start, end);
        let report = ClearReport { start, end, blocks };
        if blocks == 0 {
            return Ok(report);
        }
        let old_contiguous = self.contiguous_length;
        let contiguous = old_contiguous.min(start);

        // Stored pages are accurate from the stored hint on; the blocks below the old hint that
        // stay ([end, old hint)) may be known only from the hint, so their pages go too.
        let mut staged = self.bitfield.stage(start, end, false);
        if contiguous < old_contiguous {
            staged.include(&self.bitfield, end, old_contiguous);
        }
        let mut batch = self.storage.batch();
        batch.delete_blocks(start, end);
        for (page, bytes) in staged.encoded() {
            batch.put_bitfield_page(page, &bytes);
        }
        if contiguous != old_contiguous {
            batch.put_hints(Hints { contiguous_length: contiguous });
        }
        self.storage.write(batch).await?;

        self.bitfield.commit(staged);
        self.contiguous_length = contiguous;
        Ok(report)
    }
}
