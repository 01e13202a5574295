//! Test-only harness around the JavaScript reference implementation (corestore 7.12.5,
//! hypercore 11.39.5 and friends, pinned in this folder's `package-lock.json`).
//!
//! [`Node::get`] installs the packages with `npm ci` on first use (once per checkout, under a
//! file lock so parallel test binaries do not race) and runs the scripts in `scripts/`.
//!
//! When `node` is not installed the interop tests cannot run. Outside CI they then say so on
//! stderr and return early; with `CORESTORE_INTEROP=require` (set by `.ci/run`) a missing Node is a
//! test failure, so CI never passes without running them.

mod peer;

pub use crate::peer::ScriptPeer;

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

/// A ready Node installation with the pinned reference packages.
#[derive(Debug, Clone)]
pub struct Node {
    dir: PathBuf,
}

fn has_node() -> bool {
    Command::new("node").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

impl Node {
    /// The harness, installing the packages if needed. `None` (after a loud message) when Node
    /// is missing and `CORESTORE_INTEROP` is not `require`.
    ///
    /// # Panics
    /// When Node is required but missing, or `npm ci` fails.
    pub fn get(test: &str) -> Option<Self> {
        match Self::try_get() {
            Ok(Some(node)) => Some(node),
            Ok(None) => {
                eprintln!("SKIPPED {test}: `node` is not on PATH (set CORESTORE_INTEROP=require to fail instead)");
                None
            }
            Err(e) => panic!("{test}: {e}"),
        }
    }

    /// [`Node::get`] without panics or messages, for binaries: `Ok(None)` when `node` is not on
    /// PATH and `CORESTORE_INTEROP` is not `require`.
    pub fn try_get() -> Result<Option<Self>, NodeError> {
        if !has_node() {
            if std::env::var("CORESTORE_INTEROP").is_ok_and(|v| v == "require") {
                return Err(NodeError::Required);
            }
            return Ok(None);
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
        install(&dir)?;
        Ok(Some(Self { dir }))
    }

    /// Path of a script in `scripts/`.
    pub fn script(&self, name: &str) -> PathBuf {
        self.dir.join("scripts").join(name)
    }

    /// Runs `scripts/<name>` with `args`, feeding `stdin`; panics with its stderr if it fails.
    ///
    /// # Panics
    /// When the script cannot be started or exits non-zero.
    pub fn run(&self, name: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(name)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {name}: {e}"));
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin).unwrap_or_else(|e| panic!("writing to node {name}: {e}"));
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("node {name}: {e}"));
        assert!(
            out.status.success(),
            "node {name} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a script with JSON on stdin and parses one JSON document from its stdout.
    ///
    /// # Panics
    /// As [`Node::run`], or when the output is not JSON.
    pub fn run_json(
        &self,
        name: &str,
        args: &[&str],
        input: &serde_json::Value,
    ) -> serde_json::Value {
        let out = self.run(name, args, input.to_string().as_bytes());
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("node {name} printed no JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout))
        })
    }

    /// A `node scripts/<name>` command to spawn yourself (for long-running peers).
    pub fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new("node");
        cmd.arg(self.script(name)).current_dir(&self.dir);
        cmd
    }
}

/// Why [`Node::try_get`] could not make the reference ready.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeError {
    /// `CORESTORE_INTEROP=require` but `node` is not on PATH.
    Required,
    /// `npm ci` ran and failed.
    NpmCi {
        /// Its exit status.
        status: ExitStatus,
    },
    /// Reading the lockfile, locking, starting `npm` or writing the install stamp failed.
    Io(io::Error),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Required => f.write_str("CORESTORE_INTEROP=require but `node` is not on PATH"),
            Self::NpmCi { status } => {
                write!(f, "`npm ci` failed in {} ({status})", env!("CARGO_MANIFEST_DIR"))
            }
            Self::Io(e) => write!(f, "installing the JavaScript reference: {e}"),
        }
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for NodeError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Runs `npm ci` once: skipped when `node_modules/.package-lock.json` matches the lockfile.
fn install(dir: &Path) -> Result<(), NodeError> {
    let lock = File::create(dir.join(".npm-ci.lock"))?;
    lock.lock()?;
    let wanted = std::fs::read(dir.join("package-lock.json"))?;
    let stamp = dir.join("node_modules").join(".corestore-installed");
    if std::fs::read(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()?;
    if !status.success() {
        return Err(NodeError::NpmCi { status });
    }
    std::fs::write(&stamp, wanted)?;
    Ok(())
}
