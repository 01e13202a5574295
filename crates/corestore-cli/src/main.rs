//! The `corestore` command line. Its commands and JSON output are the public contract in
//! `shared/CLI.md`: one JSON object per line on stdout, one-line errors on stderr, non-zero exit
//! on failure.

mod append;
mod args;
mod demo;
mod derive;
mod local;
mod net;
mod store;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version go to stdout and succeed.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message is several lines (error, details, usage); keep the part before the
            // usage, on one line.
            let text = e.to_string();
            let summary: Vec<&str> =
                text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            eprintln!("corestore: {}", summary.join(" ").trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, joined.
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                line.push_str(": ");
                line.push_str(&cause.to_string());
            }
            eprintln!("corestore: {line}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.log_level.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let dir = cli.dir.as_deref();
    let name = cli.command.name();
    match cli.command {
        Command::Derive(args) => print_json(&derive::run(&args)?),
        Command::Init { primary_key } => {
            local::init(&rt, store::dir(dir, name)?, primary_key.as_deref())
        }
        Command::Append { names, name: core, block_size } => {
            append::run(&rt, store::dir(dir, name)?, &names.namespaces, &core, block_size)
        }
        Command::Cat { target, start, end } => {
            local::cat(&rt, store::dir(dir, name)?, &target, start, end)
        }
        Command::Info { target } => local::info(&rt, store::dir(dir, name)?, &target),
        Command::List => local::list(&rt, store::dir(dir, name)?),
        Command::Serve { listen } => net::serve(&rt, store::dir(dir, name)?, &listen),
        Command::Fetch { key, connect, start, end } => {
            net::fetch(&rt, store::dir(dir, name)?, &key, &connect, start, end)
        }
        Command::Demo => demo::run(&rt),
    }
}

/// `tracing` output on stderr: `--log-level`, else `RUST_LOG`, else warnings and errors.
fn init_logging(level: Option<&str>) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(level) => EnvFilter::try_new(level).context("bad --log-level")?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

/// Writes one JSON object and a newline to stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}
