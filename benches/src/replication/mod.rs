//! The replication benchmark (issue 9): one side writes a core to disk and serves it over TCP
//! loopback, another process downloads it to its own disk store, verifies and stores every
//! block, and reports the time and its peak RSS. [`harness`] pairs Node and Rust peers and
//! prints the table; [`peer`] is the Rust side (the Node side is
//! `tests/interop/scripts/bench-replicate.js`, same command line and output).

pub mod harness;
pub mod peer;

/// Block `i` of a benchmark core, `size` bytes (at least 8): the 8-byte little-endian index,
/// then byte `j` = `(i * 13 + j) & 255`. The Node script writes the same bytes.
pub fn block(i: u64, size: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(size.max(8));
    b.extend_from_slice(&i.to_le_bytes());
    let seed = i.wrapping_mul(13);
    b.extend((8..size).map(|j| (seed.wrapping_add(j as u64) & 255) as u8));
    b
}

/// Blocks per append when writing the source core: about 1 MiB per append.
pub fn blocks_per_append(size: usize) -> u64 {
    ((1usize << 20) / size.max(1)).max(1) as u64
}

/// The peak resident set size of this process (`VmHWM` of `/proc/self/status`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak RSS to the current RSS (`clear_refs` 5, Linux ≥ 4.0). False when the kernel
/// refused, so the peak still counts what came before.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_carry_their_index_and_the_shared_pattern() {
        let b = block(300, 1024);
        assert_eq!(b.len(), 1024);
        assert_eq!(b[..8], 300u64.to_le_bytes());
        // (300 * 13 + 8) & 255 = 3908 & 255 = 68, as the Node script computes it.
        assert_eq!(b[8], 68);
        assert_eq!(b[1023], ((300 * 13 + 1023) & 255) as u8);
        assert_ne!(block(1, 64), block(2, 64));
    }

    #[test]
    fn appends_are_about_one_mebibyte() {
        assert_eq!(blocks_per_append(1024), 1024);
        assert_eq!(blocks_per_append(65536), 16);
        assert_eq!(blocks_per_append(4 << 20), 1);
    }

    #[test]
    fn peak_rss_is_read_from_proc() {
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }
}
