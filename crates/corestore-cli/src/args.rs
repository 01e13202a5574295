//! Command-line arguments, exactly the commands and flags of `shared/CLI.md`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Corestore for Rust: named, signed, append-only logs, replicated with JavaScript peers.
#[derive(Debug, Parser)]
#[command(name = "corestore", version, about)]
pub(crate) struct Cli {
    /// The store directory.
    #[arg(long, global = true, value_name = "D")]
    pub(crate) dir: Option<PathBuf>,

    /// Log filter for `tracing` output on stderr (`error`, `warn`, `info`, `debug`, `trace`, or
    /// `RUST_LOG` directives); overrides `RUST_LOG`. Default: `warn`.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub(crate) log_level: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// A core named within a namespace chain.
#[derive(Debug, Args)]
pub(crate) struct NameArgs {
    /// A namespace; repeat to chain them, in the order given.
    #[arg(long = "namespace", value_name = "NS", allow_hyphen_values = true)]
    pub(crate) namespaces: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Derive a named core's keys from a primary key (no storage).
    Derive(DeriveArgs),
    /// Create a store.
    Init {
        /// The primary key (hex or z-base-32); random if absent.
        #[arg(long, value_name = "HEX")]
        primary_key: Option<String>,
    },
    /// Append stdin to a named core.
    Append {
        #[command(flatten)]
        names: NameArgs,
        /// The core's name.
        #[arg(long, allow_hyphen_values = true)]
        name: String,
        /// Fixed-size blocks instead of one block per line.
        #[arg(long, value_name = "N")]
        block_size: Option<usize>,
    },
    /// Write blocks of a core to stdout.
    Cat {
        #[command(flatten)]
        target: Target,
        /// First block.
        #[arg(long, value_name = "I")]
        start: Option<u64>,
        /// First block not included.
        #[arg(long, value_name = "J")]
        end: Option<u64>,
    },
    /// Print one core's state.
    Info {
        #[command(flatten)]
        target: Target,
    },
    /// Print every core in the store.
    List,
    /// Replicate the whole store with every TCP connection.
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR")]
        listen: String,
    },
    /// Download a core from a peer.
    Fetch {
        /// The core key.
        key: String,
        /// The peer's address.
        #[arg(long, value_name = "ADDR")]
        connect: String,
        /// First block.
        #[arg(long, value_name = "I")]
        start: Option<u64>,
        /// First block not included.
        #[arg(long, value_name = "J")]
        end: Option<u64>,
    },
    /// Two stores, appends, replication over loopback TCP, verification.
    Demo,
}

impl Command {
    /// The subcommand's name, for messages.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Derive(_) => "derive",
            Self::Init { .. } => "init",
            Self::Append { .. } => "append",
            Self::Cat { .. } => "cat",
            Self::Info { .. } => "info",
            Self::List => "list",
            Self::Serve { .. } => "serve",
            Self::Fetch { .. } => "fetch",
            Self::Demo => "demo",
        }
    }
}

/// A stored core, by key or by name (`KEY | --name NAME [--namespace NS]...`).
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The core key (64 hex or 52 z-base-32 characters).
    pub(crate) key: Option<String>,
    #[command(flatten)]
    pub(crate) names: NameArgs,
    /// The core's name.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) name: Option<String>,
}

/// `corestore derive`.
#[derive(Debug, Args)]
pub(crate) struct DeriveArgs {
    /// The primary key (64 hex or 52 z-base-32 characters).
    #[arg(long, value_name = "HEX")]
    pub(crate) primary_key: String,
    #[command(flatten)]
    pub(crate) names: NameArgs,
    /// The core's name (UTF-8; must not be empty, as in JavaScript).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) name: String,
}
