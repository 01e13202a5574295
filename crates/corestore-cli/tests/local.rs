//! The local commands (`init`, `append`, `cat`, `info`, `list`) against the CLI contract
//! (shared/CLI.md): JSON fields exactly, raw bytes from `cat`, one-line errors.

mod common;

use common::{assert_one_line_error, fields, is_hex_key, json_in, json_lines, ok_in, run_in};
use serde_json::Value;

const INFO_FIELDS: [&str; 7] =
    ["key", "discoveryKey", "length", "contiguousLength", "byteLength", "writable", "fork"];

fn primary_key() -> String {
    "01".repeat(32)
}

#[test]
fn init_append_info_list_and_cat_follow_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let pk = primary_key();

    let init = json_in(&dir, &["init", "--primary-key", &pk], b"");
    assert_eq!(fields(&init), ["dir"]);
    let printed = std::path::PathBuf::from(init["dir"].as_str().unwrap());
    assert_eq!(printed, dir.canonicalize().unwrap());
    // Init again with the same key is fine.
    json_in(&dir, &["init", "--primary-key", &pk], b"");

    let appended = json_in(&dir, &["append", "--name", "log"], b"hello\nworld\n\nlast");
    assert_eq!(fields(&appended), ["key", "discoveryKey", "length", "byteLength"]);
    assert_eq!(appended["length"], 4);
    assert_eq!(appended["byteLength"], 14);
    assert!(is_hex_key(&appended["key"]) && is_hex_key(&appended["discoveryKey"]));

    // The key is the one `derive` gives for this primary key and name.
    let derived = json_in(&dir, &["derive", "--primary-key", &pk, "--name", "log"], b"");
    assert_eq!(appended["key"], derived["key"]);
    assert_eq!(appended["discoveryKey"], derived["discoveryKey"]);

    // Appending again continues the same core.
    let again = json_in(&dir, &["append", "--name", "log"], b"more\n");
    assert_eq!(
        (again["key"].clone(), again["length"].clone()),
        (appended["key"].clone(), 5.into())
    );

    let info = json_in(&dir, &["info", "--name", "log"], b"");
    assert_eq!(fields(&info), INFO_FIELDS);
    assert_eq!(info["key"], appended["key"]);
    assert_eq!(info["discoveryKey"], appended["discoveryKey"]);
    assert_eq!(info["length"], 5);
    assert_eq!(info["contiguousLength"], 5);
    assert_eq!(info["byteLength"], 18);
    assert_eq!(info["writable"], true);
    assert_eq!(info["fork"], 0);
    // By key, hex or z-base-32: the same core.
    let key = info["key"].as_str().unwrap();
    assert_eq!(json_in(&dir, &["info", key], b""), info);
    let bytes: [u8; 32] =
        std::array::from_fn(|i| u8::from_str_radix(&key[2 * i..2 * i + 2], 16).unwrap());
    assert_eq!(json_in(&dir, &["info", &corestore::keys::to_z32(&bytes)], b""), info);

    assert_eq!(ok_in(&dir, &["cat", "--name", "log"], b""), b"helloworldlastmore");
    assert_eq!(ok_in(&dir, &["cat", key, "--start", "1", "--end", "3"], b""), b"world");
    assert_eq!(ok_in(&dir, &["cat", key, "--start", "3"], b""), b"lastmore");
    assert_eq!(ok_in(&dir, &["cat", key, "--end", "1"], b""), b"hello");
    assert!(ok_in(&dir, &["cat", key, "--start", "2", "--end", "2"], b"").is_empty());

    let list = json_lines(&dir, &["list"], b"");
    assert_eq!(list, [info]);
}

#[test]
fn namespaces_chain_in_order_and_block_size_makes_fixed_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pk = primary_key();
    json_in(dir, &["init", "--primary-key", &pk], b"");
    let ns = ["--namespace", "a", "--namespace", "b", "--name", "main"];
    let ns_rev = ["--namespace", "b", "--namespace", "a", "--name", "main"];
    let input: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();

    let mut args = vec!["append"];
    args.extend(ns);
    args.extend(["--block-size", "4096"]);
    let ab = json_in(dir, &args, &input);
    assert_eq!(ab["length"], 3, "4096 + 4096 + 1808");
    assert_eq!(ab["byteLength"], 10_000);
    let mut derive = vec!["derive", "--primary-key", &pk];
    derive.extend(ns);
    assert_eq!(ab["key"], json_in(dir, &derive, b"")["key"]);

    let mut args = vec!["append"];
    args.extend(ns_rev);
    let ba = json_in(dir, &args, b"x\n");
    assert_ne!(ab["key"], ba["key"], "namespace order matters");
    let root = json_in(dir, &["append", "--name", "main"], b"y\n");
    assert_ne!(root["key"], ab["key"]);

    let mut cat = vec!["cat"];
    cat.extend(ns);
    assert_eq!(ok_in(dir, &cat, b""), input);
    cat.extend(["--start", "2"]);
    assert_eq!(ok_in(dir, &cat, b""), &input[8192..]);

    let mut info = vec!["info"];
    info.extend(ns);
    assert_eq!(json_in(dir, &info, b"")["length"], 3);

    // Every core, each once, sorted by discovery key.
    let list = json_lines(dir, &["list"], b"");
    let mut keys: Vec<&Value> = list.iter().map(|l| &l["discoveryKey"]).collect();
    assert_eq!(keys.len(), 3);
    let listed = keys.clone();
    keys.sort_by_key(|k| k.as_str().unwrap().to_owned());
    assert_eq!(keys, listed);
    assert!(list.iter().all(|l| fields(l) == INFO_FIELDS));
}

#[test]
fn cat_info_and_list_never_create_a_store_or_a_core() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    for args in [&["info", "--name", "x"][..], &["cat", "--name", "x"], &["list"]] {
        assert_one_line_error(&run_in(&missing, args, b""), "no store at");
    }
    assert!(!missing.exists(), "no store directory was created");

    let dir = tmp.path().join("store");
    json_in(&dir, &["init"], b"");
    assert_one_line_error(&run_in(&dir, &["info", "--name", "x"], b""), "no core named \"x\"");
    assert_one_line_error(
        &run_in(&dir, &["cat", "--namespace", "ns", "--name", "x"], b""),
        "no core named \"x\" in namespace ns",
    );
    let unknown = "ab".repeat(32);
    assert_one_line_error(&run_in(&dir, &["info", &unknown], b""), "no core");
    assert_one_line_error(&run_in(&dir, &["cat", &unknown], b""), "no core");
    assert!(json_lines(&dir, &["list"], b"").is_empty(), "nothing was created");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    json_in(dir, &["append", "--name", "log"], b"a\nb\n");
    let cases: [(&[&str], &str); 11] = [
        (&["info", "abcd"], "expected 64 hex or 52 z-base-32"),
        (&["cat", &"g".repeat(64)], "not valid hex"),
        (&["info"], "a KEY or --name"),
        (&["info", &"00".repeat(32), "--name", "log"], "not both"),
        (&["info", &"00".repeat(32), "--namespace", "a"], "--namespace applies to --name"),
        (&["cat", "--name", "log", "--start", "2", "--end", "1"], "--start 2 is after --end 1"),
        (&["cat", "--name", "log", "--end", "3"], "beyond the core's length 2"),
        (&["append", "--name", ""], "name must not be empty"),
        (&["append", "--name", "x", "--block-size", "0"], "--block-size must be between 1"),
        (&["init", "--primary-key", "xyz"], "bad --primary-key"),
        (&["--log-level", "[", "list"], "bad --log-level"),
    ];
    for (args, needle) in cases {
        assert_one_line_error(&run_in(dir, args, b""), needle);
    }
    assert_one_line_error(
        &common::cmd().args(["list"]).output().unwrap(),
        "needs the store directory",
    );
    // Nothing was appended by the failures.
    assert_eq!(json_in(dir, &["info", "--name", "log"], b"")["length"], 2);
}

#[test]
fn a_line_over_the_block_limit_is_refused_and_nothing_after_it_is_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut input = b"fits\n".to_vec();
    input.extend(std::iter::repeat_n(b'z', 8 * 1024 * 1024 + 1));
    assert_one_line_error(&run_in(dir, &["append", "--name", "big"], &input), "line 2 is longer");
    assert!(json_in(dir, &["info", "--name", "big"], b"")["length"].as_u64().unwrap() <= 1);
}

#[test]
fn a_foreign_primary_key_and_a_locked_store_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    json_in(dir, &["init", "--primary-key", &primary_key()], b"");
    assert_one_line_error(
        &run_in(dir, &["init", "--primary-key", &"02".repeat(32)], b""),
        "another primary key",
    );

    // Another process holds the store open: every command that opens it says so.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let holder = rt.block_on(corestore::Corestore::open(dir)).unwrap();
    for args in [&["list"][..], &["append", "--name", "x"], &["info", "--name", "x"], &["init"]] {
        assert_one_line_error(&run_in(dir, args, b"data\n"), "locked by another process");
    }
    rt.block_on(holder.close()).unwrap();
    json_lines(dir, &["list"], b"");
}

#[test]
fn log_level_and_rust_log_send_tracing_to_stderr_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let quiet = run_in(dir, &["append", "--name", "log"], b"a\n");
    assert!(quiet.status.success() && quiet.stderr.is_empty(), "no logs by default");

    let loud = run_in(dir, &["--log-level", "debug", "append", "--name", "log"], b"b\n");
    assert!(loud.status.success());
    let stderr = String::from_utf8_lossy(&loud.stderr);
    assert!(stderr.contains("DEBUG") && stderr.contains("appended a batch"), "{stderr}");
    let line: Value = serde_json::from_slice(&loud.stdout).unwrap();
    assert_eq!(line["length"], 2, "stdout is still exactly the JSON line");

    let mut rust_log = common::cmd();
    rust_log.env("RUST_LOG", "corestore=debug");
    let out = common::run_cmd(rust_log, dir, &["append", "--name", "log"], b"c\n");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("appended a batch"), "RUST_LOG is read");
}

/// `append` streams: a 96 MiB input is appended with a small peak memory (Linux: the peak RSS
/// of the process, read from /proc while its stdin is still open).
#[cfg(target_os = "linux")]
#[test]
fn append_streams_stdin_in_bounded_memory() {
    use std::io::Write;
    use std::process::Stdio;

    const CHUNK: usize = 1024 * 1024;
    const INPUT_MIB: usize = 96;
    let tmp = tempfile::tempdir().unwrap();
    let mut child = common::cmd()
        .arg("--dir")
        .arg(tmp.path())
        .args(["append", "--name", "big", "--block-size", "65536"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    for _ in 0..INPUT_MIB {
        stdin.write_all(&chunk).unwrap();
    }
    stdin.flush().unwrap();
    // Everything but the last pipe-full has been read and appended; the process is alive.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let peak_kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["length"], INPUT_MIB * 16);
    assert_eq!(line["byteLength"], INPUT_MIB * CHUNK);
    assert!(peak_kib < 48 * 1024, "peak RSS {peak_kib} KiB for a {INPUT_MIB} MiB input");
}
