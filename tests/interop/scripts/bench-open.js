'use strict'
/*
 * JavaScript side of the open-10k benchmark (corestore 7.12.5, default RocksDB storage):
 *
 *   node --expose-gc scripts/bench-open.js [--cores N]
 *
 * In a fresh temp dir (removed afterwards): open N named cores (`store.get({ name })` for
 * names core-0..core-N-1, then `Promise.all(ready)`), close them all, close the store, reopen
 * it from disk, open the same N cores again, close them all. Prints one JSON object:
 *   { cores, open: { seconds, rssBytes }, close: { seconds, rssBytes },
 *     reopen: { seconds, rssBytes }, closeAgain: { seconds, rssBytes },
 *     storeClosed: { seconds, rssBytes }, baselineRssBytes, node }
 * rssBytes is process RSS after the step (after a full GC when --expose-gc is given);
 * seconds is wall time of the step only.
 */
const fs = require('fs')
const os = require('os')
const path = require('path')
const Corestore = require('corestore')

function parseArgs(argv) {
  const opts = { cores: 10000 }
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '')
    if (!(name in opts) || i + 1 >= argv.length) throw new Error('usage: bench-open.js [--cores N]')
    const value = Number(argv[++i])
    if (!Number.isInteger(value) || value < 1) throw new Error('--' + name + ' must be a positive integer')
    opts[name] = value
  }
  return opts
}

function rss() {
  if (global.gc) global.gc()
  return process.memoryUsage().rss
}

async function step(fn) {
  const start = process.hrtime.bigint()
  await fn()
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  return { seconds, rssBytes: rss() }
}

async function openAll(store, n) {
  const cores = []
  for (let i = 0; i < n; i++) cores.push(store.get({ name: 'core-' + i }))
  await Promise.all(cores.map((c) => c.ready()))
  return cores
}

async function main() {
  const { cores: n } = parseArgs(process.argv.slice(2))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corestore-bench-open-'))
  try {
    let store = new Corestore(dir)
    await store.ready()
    const baselineRssBytes = rss()
    let cores = null
    const open = await step(async () => { cores = await openAll(store, n) })
    const close = await step(async () => { await Promise.all(cores.map((c) => c.close())); cores = null })
    await store.close()
    store = new Corestore(dir)
    await store.ready()
    const reopen = await step(async () => { cores = await openAll(store, n) })
    const closeAgain = await step(async () => { await Promise.all(cores.map((c) => c.close())); cores = null })
    const storeClosed = await step(async () => { await store.close(); store = null })
    process.stdout.write(JSON.stringify({ cores: n, baselineRssBytes, open, close, reopen, closeAgain, storeClosed, node: process.version }) + '\n')
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  process.stderr.write((err && err.stack) || String(err))
  process.stderr.write('\n')
  process.exit(1)
})
