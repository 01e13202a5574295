'use strict'
/*
 * JavaScript side of the replication benchmark (corestore 7.12.5 / hypercore 11.39.5)
 * ==================================================================================
 *
 * One process is one side of a replication over TCP loopback; `benches/src/bin/replication-bench.rs`
 * pairs two of them (Node or Rust, same command line and JSON lines) and prints the table.
 *
 *   node scripts/bench-replicate.js serve --dir D --blocks N --size S
 *     Writes a named core of N blocks of S bytes into a corestore (RocksDB) in D, in appends of
 *     about 1 MiB, then listens on 127.0.0.1 (every connection is replicated, as the responder)
 *     and prints {"key":HEX,"port":P,"writeSeconds":W}. It serves until stdin ends or reads a
 *     line "exit", then prints {"peakRssKiB":K,"peakReset":B} and exits. The peak is VmHWM of
 *     /proc/self/status; when B is true it was reset (clear_refs 5) after writing, so it is the
 *     peak while serving.
 *
 *   node scripts/bench-replicate.js fetch --dir D --key HEX --port P --blocks N --size S
 *     Opens the core by key in a fresh corestore in D, connects (the initiator), waits for the
 *     peer, updates, downloads [0, N) and stops the clock once every block is verified and
 *     stored; then reads every block back and compares it with block(i). Prints
 *     {"seconds":T,"blocks":N,"bytes":B,"peakRssKiB":K,"mismatches":M} and exits 0 (1 when a
 *     block differs). T runs from just before the connect to the end of the download.
 *
 * block(i, S): the 8-byte little-endian i, then byte j (8 <= j < S) = (i * 13 + j) & 255.
 */
const fs = require('fs')
const net = require('net')
const readline = require('readline')
const b4a = require('b4a')
const Corestore = require('corestore')

function parseArgs(argv) {
  const opts = { dir: null, key: null, port: 0, blocks: 0, size: 0 }
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '')
    if (!(name in opts) || i + 1 >= argv.length) throw new Error('bad argument ' + argv[i])
    opts[name] = typeof opts[name] === 'number' ? Number(argv[i + 1]) : argv[i + 1]
  }
  if (!opts.dir) throw new Error('--dir is required')
  if (!Number.isInteger(opts.blocks) || opts.blocks < 1) throw new Error('--blocks must be positive')
  if (!Number.isInteger(opts.size) || opts.size < 8) throw new Error('--size must be at least 8')
  return opts
}

function block(i, size) {
  const b = b4a.allocUnsafe(size)
  b.writeUInt32LE(i % 0x100000000, 0)
  b.writeUInt32LE(Math.floor(i / 0x100000000), 4)
  for (let j = 8; j < size; j++) b[j] = (i * 13 + j) & 255
  return b
}

function peakRssKiB() {
  const status = fs.readFileSync('/proc/self/status', 'utf8')
  const m = /VmHWM:\s+(\d+) kB/.exec(status)
  return m ? Number(m[1]) : null
}

function resetPeak() {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5')
    return true
  } catch {
    return false
  }
}

function print(obj) {
  return new Promise((resolve) => process.stdout.write(JSON.stringify(obj) + '\n', resolve))
}

function replicate(store, socket, isInitiator) {
  const s = store.replicate(isInitiator)
  socket.pipe(s).pipe(socket)
  s.on('error', () => {})
  socket.on('error', () => {})
  return s
}

async function serve(opts) {
  const store = new Corestore(opts.dir)
  const core = store.get({ name: 'bench' })
  await core.ready()
  const perAppend = Math.max(1, Math.floor((1 << 20) / opts.size))
  const start = process.hrtime.bigint()
  for (let i = 0; i < opts.blocks; i += perAppend) {
    const batch = []
    for (let j = i; j < Math.min(opts.blocks, i + perAppend); j++) batch.push(block(j, opts.size))
    await core.append(batch)
  }
  const writeSeconds = Number(process.hrtime.bigint() - start) / 1e9
  const peakReset = resetPeak()
  const sockets = []
  const server = net.createServer((socket) => {
    sockets.push(socket)
    replicate(store, socket, false)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  await print({ key: b4a.toString(core.key, 'hex'), port: server.address().port, writeSeconds })
  const rl = readline.createInterface({ input: process.stdin })
  await new Promise((resolve) => {
    rl.on('line', (line) => { if (line.trim() === 'exit') resolve() })
    rl.on('close', resolve)
  })
  const peak = peakRssKiB()
  for (const s of sockets) s.destroy()
  server.close()
  await store.close()
  await print({ peakRssKiB: peak, peakReset })
}

async function fetch(opts) {
  const store = new Corestore(opts.dir)
  const core = store.get({ key: b4a.from(opts.key, 'hex') })
  await core.ready()
  const start = process.hrtime.bigint()
  const socket = net.connect(opts.port, '127.0.0.1')
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  replicate(store, socket, true)
  while (core.peers.length === 0) await new Promise((resolve) => core.once('peer-add', resolve))
  await core.update({ wait: true })
  await core.download({ start: 0, end: opts.blocks }).done()
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  let mismatches = 0
  let bytes = 0
  for (let i = 0; i < opts.blocks; i++) {
    const value = await core.get(i, { wait: false })
    if (value === null || !b4a.equals(value, block(i, opts.size))) mismatches++
    else bytes += value.byteLength
  }
  const peak = peakRssKiB()
  socket.destroy()
  await store.close()
  await print({ seconds, blocks: opts.blocks, bytes, peakRssKiB: peak, mismatches })
  return mismatches === 0 ? 0 : 1
}

async function main() {
  const [mode, ...rest] = process.argv.slice(2)
  const opts = parseArgs(rest)
  if (mode === 'serve') return serve(opts).then(() => 0)
  if (mode === 'fetch') return fetch(opts)
  throw new Error('usage: bench-replicate.js serve|fetch --dir D --blocks N --size S [--key K --port P]')
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n')
  process.exit(2)
})
