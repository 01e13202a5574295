'use strict'
/*
 * JavaScript side of the storage-at-scale benchmark (corestore 7.12.5 / hypercore 11.39.5 on
 * RocksDB). `benches/src/scale.rs` runs it (through `compare` and `examples/scale.rs`).
 *
 *   node scripts/bench-scale.js write <dir> <blocks> <batch>  -> {"seconds","perSec","peakRssKb"}
 *   node scripts/bench-scale.js read <dir> <blocks> <random>  -> {"openSeconds","peakRssAfterOpenKb",
 *                                                                 "randomSeconds","randomPerSec"}
 * write: one writer core (store.get({ keyPair })), `await core.append([batch blocks])` of 1 KiB
 * until <blocks> (timed), then close. read (a fresh process): open the store and the core (timed),
 * 1,000 random gets, peak RSS so far (resourceUsage().maxRSS, KiB); then <random> random warm
 * gets (timed).
 */
const b4a = require('b4a')
const crypto = require('hypercore-crypto')
const Corestore = require('corestore')

const SIZE = 1024

function seconds(start) {
  return Number(process.hrtime.bigint() - start) / 1e9
}

function xorshift(seed) {
  let x = seed >>> 0
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x
  }
}

async function write(dir, blocks, batch) {
  const keyPair = crypto.keyPair(b4a.alloc(32, 1))
  const template = crypto.randomBytes(SIZE)
  const store = new Corestore(dir)
  const core = store.get({ keyPair })
  await core.ready()
  const start = process.hrtime.bigint()
  for (let i = 0; i < blocks;) {
    const n = Math.min(batch, blocks - i)
    const list = new Array(n)
    for (let j = 0; j < n; j++) {
      const b = b4a.allocUnsafe(SIZE)
      b.set(template)
      b.writeUInt32LE((i + j) % 0x100000000, 0)
      list[j] = b
    }
    await core.append(list)
    i += n
  }
  const s = seconds(start)
  await store.close()
  return { seconds: s, perSec: blocks / s, peakRssKb: process.resourceUsage().maxRSS }
}

async function read(dir, blocks, random) {
  const keyPair = crypto.keyPair(b4a.alloc(32, 1))
  let start = process.hrtime.bigint()
  const store = new Corestore(dir)
  const core = store.get({ keyPair })
  await core.ready()
  const openSeconds = seconds(start)
  if (core.length !== blocks) throw new Error('length ' + core.length + ', want ' + blocks)
  const next = xorshift(0x9e3779b9)
  for (let i = 0; i < 1000; i++) {
    const b = await core.get(next() % blocks)
    if (b.byteLength !== SIZE) throw new Error('bad block')
  }
  const peakRssAfterOpenKb = process.resourceUsage().maxRSS
  start = process.hrtime.bigint()
  for (let i = 0; i < random; i++) {
    const b = await core.get(next() % blocks)
    if (b.byteLength !== SIZE) throw new Error('bad block')
  }
  const randomSeconds = seconds(start)
  await store.close()
  return { openSeconds, peakRssAfterOpenKb, randomSeconds, randomPerSec: random / randomSeconds }
}

async function main() {
  const [mode, dir, a, b] = process.argv.slice(2)
  const out = mode === 'write' ? await write(dir, Number(a), Number(b)) : await read(dir, Number(a), Number(b))
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((err) => {
  console.error((err && err.stack) || err)
  process.exit(1)
})
