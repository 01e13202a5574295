//! What a remote peer told us it has: a contiguous prefix plus a sparse bitfield of pages,
//! bounded per peer (a peer cannot make us allocate more than [`MAX_PAGES`] pages by claiming
//! blocks all over the index space; claims past the bound are forgotten, which only means we do
//! not request those blocks from that peer until it tells us again).

use std::collections::BTreeMap;

/// Bits per page.
const PAGE_BITS: u64 = 32_768;
const PAGE_WORDS: usize = (PAGE_BITS / 64) as usize;
/// Pages of remote bitfield kept per peer (4 KiB each: 1 MiB per peer at most).
pub(crate) const MAX_PAGES: usize = 256;

/// The blocks one remote has.
#[derive(Debug, Default)]
pub(crate) struct RemoteBitfield {
    /// The remote has every block below this.
    contiguous: u64,
    pages: BTreeMap<u64, Box<[u64; PAGE_WORDS]>>,
}

impl RemoteBitfield {
    /// True when the remote has block `index`.
    pub(crate) fn get(&self, index: u64) -> bool {
        if index < self.contiguous {
            return true;
        }
        self.pages
            .get(&(index / PAGE_BITS))
            .is_some_and(|p| p[word(index)] & (1 << (index % 64)) != 0)
    }

    /// The remote's contiguous prefix.
    pub(crate) fn contiguous(&self) -> u64 {
        self.contiguous
    }

    /// Marks `[start, end)` as present (`value`) or absent.
    pub(crate) fn set_range(&mut self, start: u64, end: u64, value: bool) {
        if value && start <= self.contiguous {
            let c = self.contiguous.max(end);
            self.contiguous = c;
            self.drop_pages_below(c);
            self.extend_contiguous(c);
            return;
        }
        if !value && start < self.contiguous {
            // The prefix shrinks; whatever lay in [end, old contiguous) stays known.
            let old = self.contiguous;
            self.contiguous = start;
            if end < old {
                self.set_bits(end, old, true);
            }
            self.set_bits(start, end.min(old), false);
        }
        self.set_bits(start.max(self.contiguous), end, value);
    }

    /// Applies a `bitfield` slice: words of 32 bits from `start` (a multiple of 32).
    pub(crate) fn insert_words(&mut self, start: u64, words: &[u32]) {
        for (i, w) in words.iter().enumerate() {
            let base = start + 32 * i as u64;
            if base + 32 <= self.contiguous {
                continue;
            }
            for b in 0..32 {
                let index = base + b;
                let has = w & (1 << b) != 0;
                if index >= self.contiguous {
                    self.set_bits(index, index + 1, has);
                }
            }
        }
        let c = self.contiguous;
        self.extend_contiguous(c);
    }

    fn extend_contiguous(&mut self, from: u64) {
        let mut c = from;
        while self.get_page_bit(c) {
            c += 1;
        }
        if c != self.contiguous {
            self.contiguous = c;
            self.drop_pages_below(c);
        }
    }

    fn get_page_bit(&self, index: u64) -> bool {
        self.pages
            .get(&(index / PAGE_BITS))
            .is_some_and(|p| p[word(index)] & (1 << (index % 64)) != 0)
    }

    fn set_bits(&mut self, start: u64, end: u64, value: bool) {
        let mut i = start;
        while i < end {
            let page = i / PAGE_BITS;
            let page_end = ((page + 1) * PAGE_BITS).min(end);
            if !self.pages.contains_key(&page) {
                if !value || self.pages.len() >= MAX_PAGES {
                    // Nothing to clear here, or no page left to fill: go straight to the next
                    // page we hold (a range of 2^53 blocks costs a few steps, not 2^38).
                    match self.pages.range(page + 1..).next() {
                        Some((&next, _)) => i = next * PAGE_BITS,
                        None => return,
                    }
                    continue;
                }
                self.pages.insert(page, Box::new([0; PAGE_WORDS]));
            }
            if let Some(p) = self.pages.get_mut(&page) {
                for j in i..page_end {
                    let bit = 1u64 << (j % 64);
                    if value {
                        p[word(j)] |= bit;
                    } else {
                        p[word(j)] &= !bit;
                    }
                }
            }
            i = page_end;
        }
    }

    fn drop_pages_below(&mut self, contiguous: u64) {
        let full = contiguous / PAGE_BITS;
        self.pages = self.pages.split_off(&full);
    }

    /// Pages held (for tests of the bound).
    #[cfg(test)]
    pub(crate) fn pages(&self) -> usize {
        self.pages.len()
    }
}

fn word(index: u64) -> usize {
    ((index % PAGE_BITS) / 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefix_ranges_and_words() {
        let mut r = RemoteBitfield::default();
        r.set_range(0, 10, true);
        assert!(r.get(9) && !r.get(10));
        r.set_range(20, 21, true);
        assert!(r.get(20) && !r.get(19) && r.contiguous() == 10);
        r.set_range(10, 20, true);
        assert_eq!(r.contiguous(), 21);
        r.set_range(5, 7, false);
        assert_eq!(r.contiguous(), 5);
        assert!(!r.get(5) && !r.get(6) && r.get(7) && r.get(20));
        r.insert_words(0, &[u32::MAX, 0b101]);
        assert_eq!(r.contiguous(), 33);
        assert!(r.get(34) && !r.get(35));
    }

    #[test]
    fn ranges_of_any_length_cost_bounded_work() {
        let mut r = RemoteBitfield::default();
        r.set_range(100, 101, true);
        r.set_range(1 << 40, 1 << 41, true); // a few pages, then the bound
        r.set_range(1 << 20, 1 << 53, false);
        r.set_range(1 << 20, 1 << 53, true);
        assert!(r.get(100) && !r.get(5) && r.get(1 << 40));
        assert!(r.pages() <= MAX_PAGES);
        r.set_range(0, u64::MAX, false);
        assert!(!r.get(100) && !r.get(1 << 40));
    }

    #[test]
    fn claims_all_over_the_index_space_are_bounded() {
        let mut r = RemoteBitfield::default();
        for i in 0..10_000u64 {
            r.set_range(1 + i * PAGE_BITS * 2, 2 + i * PAGE_BITS * 2, true);
        }
        assert_eq!(r.pages(), MAX_PAGES);
    }

    proptest! {
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((0..300u64, 0..40u64, any::<bool>()), 0..40)) {
            let mut r = RemoteBitfield::default();
            let mut model = vec![false; 400];
            for (start, len, value) in ops {
                r.set_range(start, start + len, value);
                for b in &mut model[start as usize..(start + len) as usize] {
                    *b = value;
                }
                for (i, b) in model.iter().enumerate() {
                    prop_assert_eq!(r.get(i as u64), *b, "index {}", i);
                }
            }
        }
    }
}
