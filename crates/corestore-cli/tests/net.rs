//! `serve`, `fetch` and `demo` between Rust stores over loopback TCP, against the CLI contract.

mod common;

use std::process::Stdio;

use common::{assert_one_line_error, fields, json_in, ok_in, run_cmd, run_in, Server};

const FETCH_FIELDS: [&str; 4] = ["key", "length", "byteLength", "ms"];

fn lines(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| format!("line {i} of the served core\n").into_bytes()).collect()
}

#[test]
fn serve_and_fetch_replicate_a_core_whole_or_a_range() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let input = lines(3000);
    let appended = json_in(&a, &["append", "--namespace", "ns", "--name", "log"], &input);
    let key = appended["key"].as_str().unwrap().to_owned();
    let mut server = Server::start(&a);

    let out = run_in(&b, &["fetch", &key, "--connect", &server.addr], b"");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "no progress bar when stderr is not a terminal");
    let fetched: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fields(&fetched), FETCH_FIELDS);
    assert_eq!(fetched["key"], appended["key"]);
    assert_eq!(fetched["length"], 3000);
    assert_eq!(fetched["byteLength"], appended["byteLength"]);
    assert!(fetched["ms"].is_u64());
    let info = json_in(&b, &["info", &key], b"");
    assert_eq!(
        (info["contiguousLength"].clone(), info["writable"].clone()),
        (3000.into(), false.into())
    );
    let want: Vec<u8> = input.split(|&b| b == b'\n').flatten().copied().collect();
    assert_eq!(ok_in(&b, &["cat", &key], b""), want);
    // Fetching again has nothing left to do and still succeeds.
    assert_eq!(json_in(&b, &["fetch", &key, "--connect", &server.addr], b"")["length"], 3000);

    // A range: only those blocks are stored.
    let args = ["fetch", &key, "--connect", &server.addr, "--start", "10", "--end", "20"];
    let ranged = json_in(&c, &args, b"");
    assert_eq!(ranged["length"], 3000, "the remote's length");
    let part = ok_in(&c, &["cat", &key, "--start", "10", "--end", "20"], b"");
    let want: Vec<u8> =
        (10..20).flat_map(|i| format!("line {i} of the served core").into_bytes()).collect();
    assert_eq!(part, want);
    assert_one_line_error(&run_in(&c, &["cat", &key], b""), "block 0 is not stored locally");
    assert!(server.is_running(), "serve runs until killed");
}

#[test]
fn serve_takes_many_connections_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let keys: Vec<String> = ["one", "two"]
        .iter()
        .map(|name| {
            let out = json_in(&a, &["append", "--name", name], &lines(500));
            out["key"].as_str().unwrap().to_owned()
        })
        .collect();
    let server = Server::start(&a);
    let children: Vec<_> = (0..4)
        .map(|i| {
            let key = &keys[i % 2];
            common::cmd()
                .arg("--dir")
                .arg(tmp.path().join(format!("peer{i}")))
                .args(["fetch", key, "--connect", &server.addr])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "fetch {i}: {}", String::from_utf8_lossy(&out.stderr));
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["key"].as_str(), Some(keys[i % 2].as_str()));
        assert_eq!(line["length"], 500);
    }
}

#[test]
fn fetch_failures_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let key =
        json_in(&a, &["append", "--name", "log"], b"x\ny\n")["key"].as_str().unwrap().to_owned();
    let server = Server::start(&a);

    // A port nobody listens on: bind one, then free it.
    let free =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    assert_one_line_error(&run_in(&b, &["fetch", &key, "--connect", &free], b""), "cannot connect");
    assert_one_line_error(
        &run_in(&b, &["fetch", "nope", "--connect", &server.addr], b""),
        "bad KEY",
    );
    let args = ["fetch", &key, "--connect", &server.addr, "--end", "3"];
    assert_one_line_error(&run_in(&b, &args, b""), "beyond the core's length 2");

    // A core the server does not hold: said so after the (shortened) bounded wait.
    let unknown = "ab".repeat(32);
    let mut short = common::cmd();
    short.env("CORESTORE_FETCH_TIMEOUT_MS", "1500");
    let out = run_cmd(short, &b, &["fetch", &unknown, "--connect", &server.addr], b"");
    assert_one_line_error(&out, "does not have core abab");
}

#[test]
fn the_demo_replicates_verifies_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::cmd().arg("demo").env("TMPDIR", tmp.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("chat/messages: 3000 blocks"), "{stdout}");
    assert!(stdout.contains("media/thumbnails: 2000 blocks"), "{stdout}");
    assert!(stdout.contains("replicated 5000 blocks"), "{stdout}");
    assert!(stdout.contains("verified every block"), "{stdout}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the demo removed its stores: {left:?}");
}
