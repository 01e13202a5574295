//! The Rust side of each workload as a hidden subcommand of the harness binary
//! (`worker log|open|scale …`): it runs the workload in this process and prints its report as
//! one JSON line, as the JavaScript scripts do.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::log::LogOptions;
use crate::scale::Backend;

/// One workload's Rust side (the command lines of the JavaScript scripts).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Worker {
    /// Appends and reads (`bench-hypercore.js`).
    Log {
        /// Blocks appended in batches, then read.
        #[arg(long)]
        blocks: u64,
        /// Bytes per block.
        #[arg(long)]
        size: usize,
        /// Blocks per batched append.
        #[arg(long)]
        batch: u64,
        /// Single appends.
        #[arg(long)]
        single: u64,
        /// Random reads.
        #[arg(long)]
        random: u64,
    },
    /// Open and reopen named cores (`bench-open.js`).
    Open {
        /// Cores.
        #[arg(long)]
        cores: u64,
    },
    /// One process of the store at scale (`bench-scale.js`), on the default backend.
    Scale {
        /// Which one.
        #[command(subcommand)]
        step: ScaleStep,
    },
}

/// The two processes of the store at scale.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ScaleStep {
    /// Write a new store.
    Write {
        /// The store's directory.
        dir: PathBuf,
        /// Blocks.
        blocks: u64,
        /// Blocks per append.
        batch: u64,
    },
    /// Reopen it and read.
    Read {
        /// The store's directory.
        dir: PathBuf,
        /// Blocks it holds.
        blocks: u64,
        /// Random warm gets.
        random: u64,
    },
}

fn print(report: &impl Serialize) -> Result<()> {
    let line = serde_json::to_string(report)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

impl Worker {
    /// Runs the workload (on a current-thread runtime, as the benches do) and prints its
    /// report.
    pub async fn run(self) -> Result<()> {
        match self {
            Self::Log { blocks, size, batch, single, random } => {
                let tmp = tempfile::tempdir().context("temp dir")?;
                let options = LogOptions { blocks, size, batch, single, random };
                print(&crate::log::run(tmp.path(), options).await?)
            }
            Self::Open { cores } => {
                let tmp = tempfile::tempdir().context("temp dir")?;
                print(&crate::open::run(tmp.path(), cores).await?)
            }
            Self::Scale { step: ScaleStep::Write { dir, blocks, batch } } => {
                print(&crate::scale::write(&dir, blocks, batch, Backend::Default).await?)
            }
            Self::Scale { step: ScaleStep::Read { dir, blocks, random } } => {
                print(&crate::scale::read(&dir, blocks, random, Backend::Default).await?)
            }
        }
    }
}
