//! Running the built `corestore` binary and reading its output as the CLI contract says.
// Each test binary uses its own subset of these helpers; `pub` is how they share them.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A `corestore` command.
pub fn cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corestore"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs `corestore --dir DIR ARGS...` with `stdin`.
pub fn run_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run_cmd(cmd(), dir, args, stdin)
}

/// Runs `command --dir DIR ARGS...` with `stdin`.
pub fn run_cmd(mut command: Command, dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = command
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start corestore");
    let mut input = child.stdin.take().expect("stdin");
    // A command that fails early may close stdin before reading it all.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("run corestore")
}

/// Runs a command that must succeed; its stdout.
pub fn ok_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let out = run_in(dir, args, stdin);
    assert!(
        out.status.success(),
        "corestore {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The JSON lines of a successful command.
pub fn json_lines(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<Value> {
    let stdout = ok_in(dir, args, stdin);
    let text = String::from_utf8(stdout).expect("utf-8 stdout");
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// The one JSON line of a successful command.
pub fn json_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Value {
    let lines = json_lines(dir, args, stdin);
    assert_eq!(lines.len(), 1, "one JSON line from {args:?}: {lines:?}");
    lines.into_iter().next().unwrap_or_default()
}

/// The field names of a JSON object, in order.
pub fn fields(value: &Value) -> Vec<&str> {
    value.as_object().expect("an object").keys().map(String::as_str).collect()
}

/// Asserts a failure: non-zero exit, nothing on stdout, one stderr line mentioning `needle`,
/// no panic.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail; stderr {err:?}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error, got {err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err:?}");
}

/// Is `s` 64 lowercase hex characters?
pub fn is_hex_key(s: &Value) -> bool {
    s.as_str().is_some_and(|s| {
        s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A running `corestore serve`, killed when dropped.
pub struct Server {
    child: std::process::Child,
    /// The address it listens on.
    pub addr: String,
}

impl Server {
    /// Starts `corestore --dir DIR serve --listen 127.0.0.1:0` and reads its `listening` line.
    pub fn start(dir: &Path) -> Self {
        use std::io::BufRead;
        let mut child = cmd()
            .arg("--dir")
            .arg(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start corestore serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).expect("read the listening line");
        let value: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(fields(&value), ["listening"]);
        let addr = value["listening"].as_str().expect("an address").to_owned();
        Self { child, addr }
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("poll serve").is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `replicate-peer.js` block function: 8-byte little-endian `i`, then `i*7919 % 2048`
/// bytes with byte `j` = `(i*13 + j) & 255`.
pub fn js_block(i: u64) -> Vec<u8> {
    let extra = (i * 7919 % 2048) as usize;
    let mut b = i.to_le_bytes().to_vec();
    b.extend((0..extra).map(|j| ((i as usize * 13 + j) & 255) as u8));
    b
}
