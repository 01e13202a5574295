//! Benchmarks for the Rust Corestore: one criterion bench per layer in `benches/`, and the
//! cross-implementation harness (`cargo run --release -p corestore-benches --bin compare`) that
//! runs the same workloads on Node corestore 7 and on Rust back to back and prints one table.
//!
//! Each workload is a library function returning a typed report: [`log`] (appends and reads of
//! one core), [`open`] (10,000 named cores), [`replication`] (two processes over TCP),
//! [`cores`] (1,000 small cores over one stream between two stores) and [`scale`] (a store of
//! millions of blocks, reopened in a fresh process). [`compare`] runs
//! them on both implementations and builds the table.

pub mod child;
pub mod compare;
pub mod cores;
pub mod log;
pub mod open;
pub mod replication;
pub mod scale;

/// A xorshift32 stream: the random indexes of every read workload, the same on the JavaScript
/// side (`x ^= x << 13; x ^= x >>> 17; x ^= x << 5`, unsigned 32-bit).
#[derive(Debug, Clone)]
pub struct XorShift(u32);

impl XorShift {
    /// The seed both sides use.
    pub const SEED: u32 = 0x9e37_79b9;

    /// A stream from [`XorShift::SEED`].
    pub fn new() -> Self {
        Self(Self::SEED)
    }

    /// The next value.
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// The next index below `len` (0 when `len` is 0).
    pub fn index(&mut self, len: u64) -> u64 {
        u64::from(self.next_u32()).checked_rem(len).unwrap_or(0)
    }
}

impl Default for XorShift {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    #[test]
    fn xorshift_matches_the_javascript_stream() {
        // node -e 'let x=0x9e3779b9;for(let i=0;i<3;i++){x^=x<<13;x^=x>>>17;x^=x<<5;x>>>=0;console.log(x)}'
        let mut x = XorShift::new();
        assert_eq!(
            [x.next_u32(), x.next_u32(), x.next_u32()],
            [1_359_758_873, 3_761_132_862, 2_075_758_394]
        );
        assert_eq!(XorShift::new().index(0), 0);
        assert_eq!(XorShift::new().index(1000), 873);
    }
}
