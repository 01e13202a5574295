//! Which blocks are present locally (sparse cores): pages of 32,768 bits (4 KiB) kept in memory
//! and persisted one page per record, little-endian 32-bit words as on the wire.

use std::collections::BTreeMap;

/// Bits per page.
pub const PAGE_BITS: u64 = 32_768;
const WORDS: usize = (PAGE_BITS / 32) as usize;

/// One 4 KiB page.
pub(crate) type Page = Box<[u32; WORDS]>;

/// The present-blocks bitfield.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bitfield {
    pages: BTreeMap<u64, Page>,
}

/// Pages changed by a range update, to persist and then [`Bitfield::commit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StagedPages(Vec<(u64, Page)>);

impl StagedPages {
    /// The changed pages with their stored bytes.
    pub fn encoded(&self) -> impl Iterator<Item = (u64, Vec<u8>)> + '_ {
        self.0.iter().map(|(i, p)| (*i, encode_page(p)))
    }

    /// The changed pages with their stored bytes, of the pages `keep(page index)` selects.
    pub(crate) fn encoded_if(&self, keep: impl Fn(u64) -> bool) -> Vec<(u64, Vec<u8>)> {
        self.0.iter().filter(|(i, _)| keep(*i)).map(|(i, p)| (*i, encode_page(p))).collect()
    }

    /// Adds the current pages of `bitfield` that overlap `[start, end)` and are not staged yet,
    /// unchanged (to persist pages whose bits only a hint covered so far).
    pub(crate) fn include(&mut self, bitfield: &Bitfield, start: u64, end: u64) {
        if start >= end {
            return;
        }
        for page_index in start / PAGE_BITS..=(end - 1) / PAGE_BITS {
            if self.0.iter().any(|(p, _)| *p == page_index) {
                continue;
            }
            let page = bitfield.pages.get(&page_index).cloned().unwrap_or_else(empty_page);
            self.0.push((page_index, page));
        }
    }
}

fn empty_page() -> Page {
    Box::new([0; WORDS])
}

fn encode_page(page: &[u32; WORDS]) -> Vec<u8> {
    page.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn split(index: u64) -> (u64, usize, u32) {
    let bit = index % PAGE_BITS;
    (index / PAGE_BITS, (bit / 32) as usize, (bit % 32) as u32)
}

impl Bitfield {
    /// An empty bitfield.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds from stored pages; pages of the wrong size are padded or cut.
    pub fn from_pages(pages: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Self {
        let mut out = Self::new();
        for (index, bytes) in pages {
            let mut page = empty_page();
            for (word, chunk) in page.iter_mut().zip(bytes.chunks_exact(4)) {
                let mut b = [0u8; 4];
                b.copy_from_slice(chunk);
                *word = u32::from_le_bytes(b);
            }
            out.pages.insert(index, page);
        }
        out
    }

    /// True when block `index` is present.
    pub fn get(&self, index: u64) -> bool {
        let (page, word, bit) = split(index);
        self.pages.get(&page).and_then(|p| p.get(word)).is_some_and(|w| (w >> bit) & 1 == 1)
    }

    /// The pages `[start, end)` set to `value` would become (nothing changes yet).
    pub fn stage(&self, start: u64, end: u64, value: bool) -> StagedPages {
        let mut staged: Vec<(u64, Page)> = Vec::new();
        let mut i = start;
        while i < end {
            let (page_index, word, bit) = split(i);
            let Some(page) = self.staged_page(&mut staged, page_index) else { break };
            let n = (end - i).min(u64::from(32 - bit)) as u32;
            let mask = if n == 32 { u32::MAX } else { ((1u32 << n) - 1) << bit };
            if let Some(w) = page.get_mut(word) {
                if value {
                    *w |= mask;
                } else {
                    *w &= !mask;
                }
            }
            i += u64::from(n);
        }
        StagedPages(staged)
    }

    /// The pages with every block of `indexes` (ascending) set (nothing changes yet).
    pub(crate) fn stage_set(&self, indexes: &[u64]) -> StagedPages {
        let mut staged: Vec<(u64, Page)> = Vec::new();
        for &i in indexes {
            let (page_index, word, bit) = split(i);
            if let Some(w) = self.staged_page(&mut staged, page_index).and_then(|p| p.get_mut(word))
            {
                *w |= 1 << bit;
            }
        }
        StagedPages(staged)
    }

    /// The staged copy of page `page_index` (pages are staged in ascending order: the last one,
    /// or a copy of the current page pushed for it).
    fn staged_page<'a>(
        &self,
        staged: &'a mut Vec<(u64, Page)>,
        page_index: u64,
    ) -> Option<&'a mut Page> {
        if staged.last().is_none_or(|(p, _)| *p != page_index) {
            let page = self.pages.get(&page_index).cloned().unwrap_or_else(empty_page);
            staged.push((page_index, page));
        }
        staged.last_mut().map(|(_, page)| page)
    }

    /// Applies staged pages (after they were persisted).
    pub fn commit(&mut self, staged: StagedPages) {
        for (index, page) in staged.0 {
            self.pages.insert(index, page);
        }
    }

    /// Sets `[start, end)` to `value` at once.
    pub fn set_range(&mut self, start: u64, end: u64, value: bool) {
        let staged = self.stage(start, end, value);
        self.commit(staged);
    }

    /// Number of present blocks in `[start, end)`.
    pub fn count(&self, start: u64, end: u64) -> u64 {
        if start >= end {
            return 0;
        }
        let mut total = 0u64;
        for (&page_index, page) in self.pages.range(start / PAGE_BITS..=(end - 1) / PAGE_BITS) {
            let base = page_index * PAGE_BITS;
            let from = start.max(base) - base;
            let to = end.min(base + PAGE_BITS) - base;
            let mut bit = from;
            while bit < to {
                let offset = bit % 32;
                let n = (to - bit).min(32 - offset);
                let mask = if n == 32 { u32::MAX } else { ((1u32 << n) - 1) << offset };
                let word = page.get((bit / 32) as usize).copied().unwrap_or(0);
                total += u64::from((word & mask).count_ones());
                bit += n;
            }
        }
        total
    }

    /// The first absent block at or after `from`.
    pub fn first_unset(&self, from: u64) -> u64 {
        let mut i = from;
        loop {
            let (page_index, word, bit) = split(i);
            let Some(page) = self.pages.get(&page_index) else { return i };
            let w = page.get(word).copied().unwrap_or(0) | ((1u32 << bit) - 1);
            if w != u32::MAX {
                return i - u64::from(bit) + u64::from(w.trailing_ones());
            }
            i = i - u64::from(bit) + 32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_across_pages() {
        let mut b = Bitfield::new();
        b.set_range(5, 70_000, true);
        assert!(!b.get(4) && b.get(5) && b.get(69_999) && !b.get(70_000));
        assert_eq!(b.first_unset(0), 0);
        assert_eq!(b.first_unset(5), 70_000);
        b.set_range(0, 5, true);
        assert_eq!(b.first_unset(0), 70_000);
        b.set_range(40_000, 40_001, false);
        assert_eq!(b.first_unset(0), 40_000);
        assert_eq!(b.count(0, 1 << 40), 69_999);
        assert_eq!(b.count(32_760, 32_780), 20);
        assert_eq!(b.count(39_999, 40_002), 2);
        let pages: Vec<_> = b.stage(0, 0, true).encoded().collect();
        assert!(pages.is_empty());
        let stored: Vec<_> = b.stage(0, 1, true).encoded().collect();
        assert_eq!(stored[0].1.len(), 4096);
        let re = Bitfield::from_pages(b.pages.iter().map(|(i, p)| (*i, encode_page(p))));
        assert_eq!(re, b);
    }

    proptest! {
        #[test]
        fn matches_a_bool_vector(ops in proptest::collection::vec((0u64..3000, 0u64..200, any::<bool>()), 1..20)) {
            let mut b = Bitfield::new();
            let mut v = vec![false; 3300];
            for (start, len, value) in ops {
                b.set_range(start, start + len, value);
                for x in &mut v[start as usize..(start + len) as usize] {
                    *x = value;
                }
            }
            for (i, x) in v.iter().enumerate() {
                prop_assert_eq!(b.get(i as u64), *x);
            }
            let first = v.iter().position(|x| !x).unwrap() as u64;
            prop_assert_eq!(b.first_unset(0), first);
            for (start, end) in [(0, 3300), (1, 33), (31, 32), (64, 3000), (100, 100)] {
                let expected = v[start as usize..end as usize].iter().filter(|x| **x).count();
                prop_assert_eq!(b.count(start, end), expected as u64);
            }
        }
    }
}
