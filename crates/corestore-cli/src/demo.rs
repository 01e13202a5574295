//! `corestore demo`, the quick start: two stores in temporary directories, a few thousand blocks
//! appended to two named cores in different namespaces, replication over loopback TCP, every
//! block verified, a short summary with timings, everything removed.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use corestore::{Core, CoreRef, Corestore, GetOptions};
use indicatif::HumanBytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// Blocks of the chat log (short text lines).
const CHAT_BLOCKS: u64 = 3000;
/// Blocks of the media core (1 KiB to 4 KiB of bytes each).
const MEDIA_BLOCKS: u64 = 2000;
/// Blocks per append batch.
const BATCH: u64 = 100;
/// How long the demo waits for the download before it reports a failure.
const PATIENCE: Duration = Duration::from_secs(120);

/// Block `i` of the chat core.
fn chat_block(i: u64) -> Vec<u8> {
    format!("message {i:>4} from alice: the quick brown fox jumps over {} lazy dogs", i % 97)
        .into_bytes()
}

/// Block `i` of the media core: deterministic bytes of varied length.
fn media_block(i: u64) -> Vec<u8> {
    let len = 1024 + (i * 7919 % 3072) as usize;
    (0..len).map(|j| (i as usize).wrapping_mul(31).wrapping_add(j) as u8).collect()
}

/// One core of the demo.
struct Spec {
    namespace: &'static str,
    name: &'static str,
    blocks: u64,
    block: fn(u64) -> Vec<u8>,
}

const SPECS: [Spec; 2] = [
    Spec { namespace: "chat", name: "messages", blocks: CHAT_BLOCKS, block: chat_block },
    Spec { namespace: "media", name: "thumbnails", blocks: MEDIA_BLOCKS, block: media_block },
];

/// `corestore demo`.
pub(crate) fn run(rt: &Runtime) -> anyhow::Result<()> {
    let dir_a = tempfile::Builder::new()
        .prefix("corestore-demo-a-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let dir_b = tempfile::Builder::new()
        .prefix("corestore-demo-b-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let summary = rt.block_on(demo(dir_a.path(), dir_b.path()));
    let removed = dir_a.close().and(dir_b.close()).context("cannot remove the temporary stores");
    let summary = summary?;
    removed?;
    println!("{summary}");
    println!("Both temporary stores are removed. Next: `corestore --help`, or the README's tour.");
    Ok(())
}

async fn demo(dir_a: &std::path::Path, dir_b: &std::path::Path) -> anyhow::Result<String> {
    let mut out = String::from("Corestore demo: two stores in temporary directories\n");
    let alice = Corestore::open(dir_a).await.context("cannot open store A")?;
    let bob = Corestore::open(dir_b).await.context("cannot open store B")?;
    let result = replicate(&alice, &bob, &mut out).await;
    let closed_a = alice.close().await;
    let closed_b = bob.close().await;
    result?;
    closed_a.context("closing store A")?;
    closed_b.context("closing store B")?;
    Ok(out)
}

async fn replicate(alice: &Corestore, bob: &Corestore, out: &mut String) -> anyhow::Result<()> {
    use std::fmt::Write;

    // Store A: two named cores in two namespaces, appended in batches.
    let began = Instant::now();
    let mut written = Vec::new();
    for spec in &SPECS {
        let core = alice.namespace(spec.namespace)?.get(CoreRef::name(spec.name)).await?;
        let mut start = 0;
        while start < spec.blocks {
            let end = (start + BATCH).min(spec.blocks);
            let batch: Vec<Vec<u8>> = (start..end).map(spec.block).collect();
            core.append_batch(&batch).await?;
            start = end;
        }
        written.push(core);
    }
    let append_time = began.elapsed();
    for (spec, core) in SPECS.iter().zip(&written) {
        writeln!(
            out,
            "  store A  {}/{}: {} blocks, {}, key {}",
            spec.namespace,
            spec.name,
            core.length(),
            HumanBytes(core.byte_length()),
            core.key()
        )?;
    }
    ensure!(written[0].key() != written[1].key(), "the namespaces give different keys");
    let total_blocks: u64 = written.iter().map(Core::length).sum();
    let total_bytes: u64 = written.iter().map(Core::byte_length).sum();
    writeln!(out, "  appended {total_blocks} blocks in {}", ms(append_time))?;

    // A serves on loopback TCP; B knows only the two keys (names never leave A).
    let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot listen on loopback")?;
    let address = listener.local_addr()?;
    let server = alice.clone();
    let accept = tokio::spawn(async move {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        let replication = server.replicate(socket, false)?;
        anyhow::Ok(replication.finished().await?)
    });
    let began = Instant::now();
    let socket = TcpStream::connect(address).await.context("cannot connect on loopback")?;
    let _ = socket.set_nodelay(true);
    let options = GetOptions::new().wait(false);
    let mut replicas = Vec::new();
    for core in &written {
        replicas.push(bob.get_with(*core.key(), options.clone()).await?);
    }
    let replication = bob.replicate(socket, true)?;
    let handle = replication.handle();
    let downloaded = tokio::time::timeout(PATIENCE, download_all(&replicas)).await;
    let replicate_time = began.elapsed();
    handle.close();
    let _ = replication.finished().await;
    accept.abort();
    downloaded.context("the download did not finish in time")??;

    // Every block, byte for byte, and B cannot write A's cores.
    let began = Instant::now();
    for ((spec, replica), original) in SPECS.iter().zip(&replicas).zip(&written) {
        ensure!(replica.length() == original.length(), "{}: lengths differ", spec.name);
        ensure!(!replica.writable(), "{}: a replica is not writable", spec.name);
        for i in 0..spec.blocks {
            match replica.get(i).await? {
                Some(block) if block == (spec.block)(i) => {}
                Some(_) => bail!("{}/{} block {i} differs", spec.namespace, spec.name),
                None => bail!("{}/{} block {i} is missing", spec.namespace, spec.name),
            }
        }
    }
    let verify_time = began.elapsed();
    let millis = u64::try_from(replicate_time.as_millis()).unwrap_or(u64::MAX).max(1);
    let rate = total_bytes.saturating_mul(1000) / millis;
    writeln!(
        out,
        "  store B  replicated {total_blocks} blocks ({}) over TCP {address} in {} ({}/s)",
        HumanBytes(total_bytes),
        ms(replicate_time),
        HumanBytes(rate)
    )?;
    writeln!(
        out,
        "  store B  verified every block against what A wrote in {} (proofs and signatures \
         were checked on arrival); B cannot write A's cores",
        ms(verify_time)
    )?;
    Ok(())
}

/// Learns each replica's length from the peer, then downloads all of it.
async fn download_all(replicas: &[Core]) -> anyhow::Result<()> {
    for replica in replicas {
        replica.update(None).await?;
        let download = replica.download(0, Some(replica.length())).await?;
        download.done().await;
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}
