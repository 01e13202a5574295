//! [`ScriptPeer`]: a JavaScript peer script driven over JSON lines (one command object per line
//! on its stdin, one reply object per line on its stdout), as the interop tests use
//! `scripts/replicate-peer.js` and `scripts/store-peer.js`.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::Node;

/// How long a script may take to answer one command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// A running peer script; it is killed when dropped.
#[derive(Debug)]
pub struct ScriptPeer {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ScriptPeer {
    /// Starts `scripts/<script>` for `test`; `None` when Node is not available and the
    /// interop tests are not required (see [`Node::get`]).
    ///
    /// # Panics
    /// When the script cannot be started.
    pub fn spawn(test: &str, script: &str) -> Option<Self> {
        let node = Node::get(test)?;
        let mut cmd = tokio::process::Command::from(node.command(script));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().expect("start node");
        let stdin = child.stdin.take().expect("piped stdin");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Some(Self { _child: child, stdin, lines })
    }

    /// Sends `command` and returns the script's reply.
    ///
    /// # Panics
    /// When the script does not answer within 120 s, exits, answers something that is not
    /// JSON, or answers with an `error` field.
    pub async fn call(&mut self, command: Value) -> Value {
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.expect("write to node");
        let reply = tokio::time::timeout(ANSWER_TIMEOUT, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("node did not answer {command} within 120 s"))
            .expect("read from node")
            .unwrap_or_else(|| panic!("node exited while answering {command}"));
        let value: Value = serde_json::from_str(&reply).expect("node answers JSON");
        assert!(value.get("error").is_none(), "node failed {command}: {}", value["error"]);
        value
    }
}
