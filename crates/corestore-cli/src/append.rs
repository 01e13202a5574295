//! `corestore append`: stdin, split into blocks (lines or fixed sizes), appended in bounded
//! batches so an input of any size needs a few MiB of memory.

use std::io::{self, BufRead, Read};
use std::path::Path;

use anyhow::Context;
use corestore::CoreRef;
use serde::Serialize;
use tokio::runtime::Runtime;

use crate::print_json;
use crate::store::{self, Open};

/// The largest block: a block and its proof must fit in one replication frame (16 MiB).
pub(crate) const MAX_BLOCK: usize = 8 * 1024 * 1024;
/// Blocks per signed batch, at most.
const BATCH_BLOCKS: usize = 1024;
/// Bytes per batch: a batch is appended once it holds this much.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Why the input could not be split into blocks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum InputError {
    /// A line is longer than a block may be.
    #[error("line {line} is longer than the {max}-byte block limit (use --block-size)")]
    LineTooLong {
        /// The line, counting from 1.
        line: u64,
        /// The limit.
        max: usize,
    },
    /// `--block-size` is zero or above the limit.
    #[error("--block-size must be between 1 and {max}, got {size}")]
    BadBlockSize {
        /// The size asked for.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Reading stdin failed.
    #[error("reading stdin: {0}")]
    Read(#[from] io::Error),
}

/// How input splits into blocks.
#[derive(Debug, Clone, Copy)]
enum Split {
    /// One block per line, without its `\n` (a last line without one counts too).
    Lines,
    /// Blocks of exactly this many bytes (the last may be shorter).
    Fixed(usize),
}

/// The blocks of a reader, one at a time, each at most [`MAX_BLOCK`] bytes.
#[derive(Debug)]
pub(crate) struct Blocks<R> {
    reader: R,
    split: Split,
    line: u64,
}

impl<R: BufRead> Blocks<R> {
    /// Splits `reader` by lines, or into `block_size`-byte blocks.
    pub(crate) fn new(reader: R, block_size: Option<usize>) -> Result<Self, InputError> {
        let split = match block_size {
            None => Split::Lines,
            Some(size) if (1..=MAX_BLOCK).contains(&size) => Split::Fixed(size),
            Some(size) => return Err(InputError::BadBlockSize { size, max: MAX_BLOCK }),
        };
        Ok(Self { reader, split, line: 0 })
    }

    /// The next block, or `None` at the end of the input.
    pub(crate) fn next_block(&mut self) -> Result<Option<Vec<u8>>, InputError> {
        let mut block = Vec::new();
        match self.split {
            Split::Lines => {
                self.line += 1;
                // One byte over the limit tells a too-long line from one that fits exactly.
                let limit = MAX_BLOCK as u64 + 1;
                let read = (&mut self.reader).take(limit).read_until(b'\n', &mut block)?;
                if read == 0 {
                    return Ok(None);
                }
                if block.last() == Some(&b'\n') {
                    block.pop();
                } else if block.len() > MAX_BLOCK {
                    return Err(InputError::LineTooLong { line: self.line, max: MAX_BLOCK });
                }
            }
            Split::Fixed(size) => {
                if (&mut self.reader).take(size as u64).read_to_end(&mut block)? == 0 {
                    return Ok(None);
                }
            }
        }
        Ok(Some(block))
    }

    /// The next batch: up to [`BATCH_BLOCKS`] blocks, ending once it holds [`BATCH_BYTES`];
    /// empty at the end of the input.
    pub(crate) fn next_batch(&mut self) -> Result<Vec<Vec<u8>>, InputError> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < BATCH_BLOCKS && bytes < BATCH_BYTES {
            let Some(block) = self.next_block()? else { break };
            bytes += block.len();
            batch.push(block);
        }
        Ok(batch)
    }
}

/// The JSON line of `append`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AppendLine {
    key: String,
    discovery_key: String,
    length: u64,
    byte_length: u64,
}

/// `corestore append`: reads stdin to its end, appending each batch as it fills.
pub(crate) fn run(
    rt: &Runtime,
    dir: &Path,
    namespaces: &[String],
    name: &str,
    block_size: Option<usize>,
) -> anyhow::Result<()> {
    let mut blocks = Blocks::new(io::stdin().lock(), block_size)?;
    if name.is_empty() {
        anyhow::bail!("bad --name: a core name must not be empty");
    }
    let store = rt.block_on(store::open(dir, Open::OrCreate, None))?;
    let result = append_all(rt, &store, namespaces, name, &mut blocks);
    let closed = rt.block_on(store.close()).context("closing the store");
    let line = result?;
    closed?;
    print_json(&line)
}

fn append_all(
    rt: &Runtime,
    store: &corestore::Corestore,
    namespaces: &[String],
    name: &str,
    blocks: &mut Blocks<impl BufRead>,
) -> anyhow::Result<AppendLine> {
    let core = rt
        .block_on(store::namespaced(store, namespaces)?.get(CoreRef::name(name)))
        .with_context(|| format!("cannot open the core named {name:?}"))?;
    if !core.writable() {
        anyhow::bail!("the core named {name:?} is not writable in this store");
    }
    loop {
        let batch = blocks.next_batch()?;
        if batch.is_empty() {
            break;
        }
        let length = rt.block_on(core.append_batch(&batch)).context("append failed")?;
        tracing::debug!(blocks = batch.len(), length, "appended a batch");
    }
    Ok(AppendLine {
        key: core.key().to_hex(),
        discovery_key: core.discovery_key().to_hex(),
        length: core.length(),
        byte_length: core.byte_length(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], block_size: Option<usize>) -> Result<Vec<Vec<u8>>, InputError> {
        let mut blocks = Blocks::new(input, block_size)?;
        let mut all = Vec::new();
        while let Some(b) = blocks.next_block()? {
            all.push(b);
        }
        Ok(all)
    }

    #[test]
    fn lines_drop_their_newline_and_keep_empty_lines_and_a_last_partial_line() {
        let blocks = split(b"a\n\nbc\r\nd", None).unwrap();
        assert_eq!(blocks, [&b"a"[..], b"", b"bc\r", b"d"]);
        assert!(split(b"", None).unwrap().is_empty());
        assert_eq!(split(b"\n", None).unwrap(), [b""]);
    }

    #[test]
    fn fixed_blocks_end_with_a_short_one() {
        assert_eq!(split(b"abcdefg", Some(3)).unwrap(), [&b"abc"[..], b"def", b"g"]);
        assert_eq!(split(b"abcdef", Some(3)).unwrap(), [&b"abc"[..], b"def"]);
        assert!(matches!(split(b"x", Some(0)), Err(InputError::BadBlockSize { size: 0, .. })));
        let over = MAX_BLOCK + 1;
        assert!(matches!(split(b"x", Some(over)), Err(InputError::BadBlockSize { .. })));
    }

    #[test]
    fn a_line_may_be_exactly_the_limit_but_not_longer() {
        let mut input = vec![b'x'; MAX_BLOCK];
        input.push(b'\n');
        input.extend_from_slice(b"ok\n");
        let blocks = split(&input, None).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].len(), MAX_BLOCK);

        let mut input = b"first\n".to_vec();
        input.extend(std::iter::repeat_n(b'y', MAX_BLOCK + 1));
        assert!(matches!(split(&input, None), Err(InputError::LineTooLong { line: 2, .. })));
    }

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let input = "x\n".repeat(BATCH_BLOCKS * 2 + 5);
        let mut blocks = Blocks::new(input.as_bytes(), None).unwrap();
        let sizes: Vec<usize> =
            std::iter::from_fn(|| Some(blocks.next_batch().unwrap()).filter(|b| !b.is_empty()))
                .map(|b| b.len())
                .collect();
        assert_eq!(sizes, [BATCH_BLOCKS, BATCH_BLOCKS, 5]);

        let input = vec![7u8; BATCH_BYTES * 2];
        let mut blocks = Blocks::new(&input[..], Some(1024 * 1024)).unwrap();
        assert_eq!(blocks.next_batch().unwrap().len(), 4);
        assert_eq!(blocks.next_batch().unwrap().len(), 4);
        assert!(blocks.next_batch().unwrap().is_empty());
    }
}
