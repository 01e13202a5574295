//! The local commands: `init`, `info`, `list` and `cat`.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{bail, Context};
use corestore::keys::parse_id;
use corestore::{Corestore, PrimaryKey};
use futures::StreamExt;
use serde::Serialize;
use tokio::runtime::Runtime;

use crate::args::Target;
use crate::print_json;
use crate::store::{self, InfoLine, Open};

/// Runs `work` on the store in `dir`, then closes it (flushing storage) whatever `work` gave.
pub(crate) fn with_store<T>(
    rt: &Runtime,
    dir: &Path,
    mode: Open,
    primary_key: Option<PrimaryKey>,
    work: impl AsyncFnOnce(&Corestore) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    rt.block_on(async {
        let store = store::open(dir, mode, primary_key).await?;
        let result = work(&store).await;
        let closed = store.close().await.context("closing the store");
        let value = result?;
        closed?;
        Ok(value)
    })
}

/// The JSON line of `init`.
#[derive(Debug, Serialize)]
struct InitLine {
    dir: String,
}

/// `corestore init`: creates the store (or opens it when it is there with the same key).
pub(crate) fn init(rt: &Runtime, dir: &Path, primary_key: Option<&str>) -> anyhow::Result<()> {
    let primary_key = primary_key
        .map(|k| parse_id(k).map(PrimaryKey::from_bytes).context("bad --primary-key"))
        .transpose()?;
    with_store(rt, dir, Open::OrCreate, primary_key, async |_| Ok(()))?;
    print_json(&InitLine { dir: store::display_dir(dir).display().to_string() })
}

/// `corestore info`.
pub(crate) fn info(rt: &Runtime, dir: &Path, target: &Target) -> anyhow::Result<()> {
    let line = with_store(rt, dir, Open::Existing, None, async |store| {
        let core = store::stored_core(store, target).await?;
        Ok(InfoLine::from(core.info()?))
    })?;
    print_json(&line)
}

/// `corestore list`: one `info` line per stored core, in discovery-key order.
pub(crate) fn list(rt: &Runtime, dir: &Path) -> anyhow::Result<()> {
    with_store(rt, dir, Open::Existing, None, async |store| {
        let mut listed = store.list();
        while let Some(discovery_key) = listed.next().await {
            let discovery_key = discovery_key?;
            let core = store
                .get(discovery_key)
                .await
                .with_context(|| format!("cannot open the core {discovery_key}"))?;
            print_json(&InfoLine::from(core.info()?))?;
        }
        Ok(())
    })
}

/// `corestore cat`: blocks `start..end` as raw bytes on stdout, one block in memory at a time.
pub(crate) fn cat(
    rt: &Runtime,
    dir: &Path,
    target: &Target,
    start: Option<u64>,
    end: Option<u64>,
) -> anyhow::Result<()> {
    with_store(rt, dir, Open::Existing, None, async |store| {
        let core = store::stored_core(store, target).await?;
        let length = core.length();
        let (start, end) = range(start, end, length)?;
        let mut out = io::BufWriter::new(io::stdout().lock());
        for index in start..end {
            let Some(block) = core.get(index).await.with_context(|| format!("block {index}"))?
            else {
                bail!("block {index} is not stored locally (fetch it from a peer first)");
            };
            if !write_or_closed(&mut out, &block)? {
                return Ok(());
            }
        }
        match out.flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            flushed => Ok(flushed.context("writing stdout")?),
        }
    })
}

/// Writes `bytes`; `false` when the reader went away (`corestore cat … | head` is not an error).
fn write_or_closed(out: &mut impl Write, bytes: &[u8]) -> anyhow::Result<bool> {
    match out.write_all(bytes) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("writing stdout")),
    }
}

/// The half-open range `--start I --end J` of a core of `length` blocks (default: all).
pub(crate) fn range(
    start: Option<u64>,
    end: Option<u64>,
    length: u64,
) -> anyhow::Result<(u64, u64)> {
    let start_at = start.unwrap_or(0);
    let end_at = end.unwrap_or(length);
    if start_at > end_at {
        bail!("bad range: --start {start_at} is after --end {end_at}");
    }
    if end_at > length {
        bail!("bad range: --end {end_at} is beyond the core's length {length}");
    }
    Ok((start_at, end_at))
}
