'use strict'
/*
 * JavaScript oracle: hypercore benchmark baseline (corestore 7.12.5 / hypercore 11.39.5)
 * =====================================================================================
 *
 * The JavaScript side of the issue's performance numbers: the Rust benchmarks are quoted as
 * ratios against what this script measures ON THE SAME MACHINE. It uses corestore 7's default
 * storage (hypercore-storage on RocksDB) in a fresh temp dir (removed afterwards), one writer core
 * made like corestore makes it (`store.get({ keyPair })`, manifest v1, single signer).
 *
 *   node scripts/bench-hypercore.js [--blocks N] [--size S] [--batch B] [--single M] [--random R]
 *
 * Defaults: N = 100000 blocks of S = 1024 bytes, B = 100 blocks per append, M = 20000 single
 * appends, R = 100000 random reads. Every block is distinct (its index is written into it).
 * Prints one JSON object on stdout (exit 0; non-zero with a message on stderr on failure):
 *   { "appendBatched":    { "blocks": N, "blockSize": S, "batch": B, "seconds", "perSec" },
 *     "appendSingle":     { "blocks": M, "blockSize": S, "batch": 1, "seconds", "perSec" },
 *     "sequentialGet":    { "blocks": N, "blockSize": S, "seconds", "perSec" },
 *     "storageRandomGet": { "blocks": R, "blockSize": S, "of": N, "seconds", "perSec" },
 *     "node": process.version }
 *   - appendBatched: `await core.append([B blocks])` until N blocks (each append is signed and
 *     flushed to RocksDB, like any hypercore append).
 *   - appendSingle: `await core.append(block)` M times, on a second core.
 *   - sequentialGet: the store is closed and reopened (cold JS caches, data from RocksDB), then
 *     `await core.get(i)` for i = 0..N-1 in order on the batched core.
 *   - storageRandomGet: then `await core.get(i)` at R pseudo-random indexes (fixed xorshift seed).
 * "seconds" is wall time of the loop only (not setup/close); perSec = blocks / seconds.
 */
const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const crypto = require('hypercore-crypto')
const Corestore = require('corestore')

function parseArgs(argv) {
  const opts = { blocks: 100000, size: 1024, batch: 100, single: 20000, random: 100000 }
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '')
    if (!(name in opts) || !argv[i].startsWith('--') || i + 1 >= argv.length) {
      throw new Error('usage: bench-hypercore.js [--blocks N] [--size S] [--batch B] [--single M] [--random R]')
    }
    const value = Number(argv[++i])
    if (!Number.isInteger(value) || value < 0) throw new Error('--' + name + ' must be a non-negative integer')
    opts[name] = value
  }
  if (opts.size < 8) throw new Error('--size must be at least 8')
  if (opts.batch < 1) throw new Error('--batch must be at least 1')
  return opts
}

function makeBlock(template, i) {
  const block = b4a.allocUnsafe(template.byteLength)
  block.set(template)
  block.writeUInt32LE(i % 0x100000000, 0)
  block.writeUInt32LE(Math.floor(i / 0x100000000), 4)
  return block
}

function result(blocks, start, extra) {
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  return { blocks, ...extra, seconds: round(seconds, 4), perSec: round(seconds > 0 ? blocks / seconds : 0, 1) }
}

function round(x, digits) {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-hypercore-'))
  const template = crypto.randomBytes(opts.size)
  const batchedKeyPair = crypto.keyPair(b4a.alloc(32, 1))
  const singleKeyPair = crypto.keyPair(b4a.alloc(32, 2))
  const out = {}
  let store = null

  try {
    store = new Corestore(dir)
    const core = store.get({ keyPair: batchedKeyPair })
    await core.ready()

    let start = process.hrtime.bigint()
    for (let i = 0; i < opts.blocks; ) {
      const n = Math.min(opts.batch, opts.blocks - i)
      const batch = new Array(n)
      for (let j = 0; j < n; j++) batch[j] = makeBlock(template, i + j)
      await core.append(batch)
      i += n
    }
    out.appendBatched = result(opts.blocks, start, { blockSize: opts.size, batch: opts.batch })

    const single = store.get({ keyPair: singleKeyPair })
    await single.ready()
    start = process.hrtime.bigint()
    for (let i = 0; i < opts.single; i++) await single.append(makeBlock(template, i))
    out.appendSingle = result(opts.single, start, { blockSize: opts.size, batch: 1 })

    if (core.length !== opts.blocks || single.length !== opts.single) throw new Error('lengths do not add up')
    await store.close()

    // reopen: fresh Corestore, fresh core, everything read back from RocksDB
    store = new Corestore(dir)
    const reader = store.get({ keyPair: batchedKeyPair })
    await reader.ready()
    if (reader.length !== opts.blocks) throw new Error('reopened core has length ' + reader.length)

    start = process.hrtime.bigint()
    let bytes = 0
    for (let i = 0; i < opts.blocks; i++) bytes += (await reader.get(i)).byteLength
    out.sequentialGet = result(opts.blocks, start, { blockSize: opts.size })
    if (bytes !== opts.blocks * opts.size) throw new Error('read ' + bytes + ' bytes')

    if (opts.random > 0 && opts.blocks > 0) {
      let x = 0x9e3779b9
      start = process.hrtime.bigint()
      for (let i = 0; i < opts.random; i++) {
        x ^= x << 13
        x ^= x >>> 17
        x ^= x << 5
        x >>>= 0
        const block = await reader.get(x % opts.blocks)
        if (block.byteLength !== opts.size) throw new Error('bad block size')
      }
      out.storageRandomGet = result(opts.random, start, { blockSize: opts.size, of: opts.blocks })
    }

    out.node = process.version
    process.stdout.write(JSON.stringify(out) + '\n')
  } finally {
    if (store) await store.close().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error((err && err.stack) || err)
  process.exit(1)
})
