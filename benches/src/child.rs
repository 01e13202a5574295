//! Runs one side of a workload as a child process and reads its report: the last non-empty
//! line of its stdout, one JSON object (every Rust worker and every JavaScript script prints
//! its report that way).

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde::de::DeserializeOwned;

/// How long one child may run before it is killed: a guard against a hang, far above what the
/// full-size workloads take on a loaded 2-core machine.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(3600);

/// Runs `cmd` (stdin closed, stderr passed through) and parses its report. `what` names it in
/// errors.
pub async fn report<T: DeserializeOwned>(mut cmd: Command, what: &str) -> Result<T> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(CHILD_TIMEOUT, cmd.output())
        .await
        .with_context(|| format!("{what}: no report within {} s", CHILD_TIMEOUT.as_secs()))?
        .with_context(|| format!("{what}: cannot start `{program}`"))?;
    ensure!(out.status.success(), "{what} failed ({}); its stderr is above", out.status);
    let text = String::from_utf8(out.stdout).with_context(|| format!("{what}: stdout"))?;
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .with_context(|| format!("{what} printed no report"))?;
    serde_json::from_str(line).with_context(|| format!("{what} printed a bad report: {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Answer {
        n: u64,
    }

    fn shell(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[tokio::test]
    async fn the_last_line_is_the_report() {
        let a: Answer = report(shell("echo noise; echo '{\"n\": 7}'; echo"), "sh").await.unwrap();
        assert_eq!(a.n, 7);
    }

    #[tokio::test]
    async fn failures_and_bad_reports_are_errors() {
        let failed = report::<Answer>(shell("echo '{\"n\": 1}'; exit 3"), "sh").await;
        assert!(failed.unwrap_err().to_string().contains("failed"));
        let silent = report::<Answer>(shell("true"), "sh").await;
        assert!(silent.unwrap_err().to_string().contains("no report"));
        let bad = report::<Answer>(shell("echo '{\"m\": 1}'"), "sh").await;
        assert!(bad.unwrap_err().to_string().contains("bad report"));
        let missing = report::<Answer>(Command::new("/nonexistent/program"), "x").await;
        assert!(missing.unwrap_err().to_string().contains("cannot start"));
    }
}
