'use strict'
/*
 * JavaScript side of the many-small-cores benchmark (corestore 7.12.5 / hypercore 11.39.5)
 * =======================================================================================
 *
 * One process is one store; `benches/src/bin/cores-bench.rs` pairs two of them (Node or Rust,
 * same command line and JSON lines) over one TCP loopback stream and prints the comparison.
 *
 *   node scripts/bench-cores.js serve --dir D --keys F --cores C --blocks N --size S
 *     Writes C named cores ("bench-<c>"), each of N blocks of S bytes in one append, into a
 *     corestore (RocksDB) in D, writes their keys (hex, one a line, in order) to F, then listens
 *     on 127.0.0.1 (every connection is store.replicate(false)) and prints
 *     {"port":P,"writeSeconds":W}. It serves until stdin ends or reads "exit", then prints
 *     {"peakRssKiB":K,"peakReset":B} (VmHWM; reset with clear_refs 5 after writing when B).
 *
 *   node scripts/bench-cores.js fetch --dir D --keys F --port P --cores C --blocks N --size S
 *     Opens every core of F by key in a fresh corestore in D (all ready), then starts the
 *     clock, connects (store.replicate(true), one stream), and for every core at once waits
 *     for its peer, updates and downloads [0, N); the clock stops when the last core is
 *     complete. Then reads every block back and compares it with block(c, i). Prints
 *     {"seconds":T,"cores":C,"bytes":B,"peakRssKiB":K,"mismatches":M}; exits 1 on a mismatch.
 *
 * block(c, i, S): 8-byte little-endian c, 8-byte little-endian i, then byte j (16 <= j < S) =
 * (c * 31 + i * 13 + j) & 255.
 */
const fs = require('fs')
const net = require('net')
const readline = require('readline')
const b4a = require('b4a')
const Corestore = require('corestore')

function parseArgs(argv) {
  const opts = { dir: null, keys: null, port: 0, cores: 0, blocks: 0, size: 0 }
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '')
    if (!(name in opts) || i + 1 >= argv.length) throw new Error('bad argument ' + argv[i])
    opts[name] = typeof opts[name] === 'number' ? Number(argv[i + 1]) : argv[i + 1]
  }
  if (!opts.dir || !opts.keys) throw new Error('--dir and --keys are required')
  if (!Number.isInteger(opts.cores) || opts.cores < 1) throw new Error('--cores must be positive')
  if (!Number.isInteger(opts.blocks) || opts.blocks < 1) throw new Error('--blocks must be positive')
  if (!Number.isInteger(opts.size) || opts.size < 16) throw new Error('--size must be at least 16')
  return opts
}

function u64le(b, offset, n) {
  b.writeUInt32LE(n % 0x100000000, offset)
  b.writeUInt32LE(Math.floor(n / 0x100000000), offset + 4)
}

function block(c, i, size) {
  const b = b4a.allocUnsafe(size)
  u64le(b, 0, c)
  u64le(b, 8, i)
  const seed = c * 31 + i * 13
  for (let j = 16; j < size; j++) b[j] = (seed + j) & 255
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
  const start = process.hrtime.bigint()
  const cores = []
  const keys = []
  for (let c = 0; c < opts.cores; c++) {
    const core = store.get({ name: 'bench-' + c })
    await core.ready()
    const batch = []
    for (let i = 0; i < opts.blocks; i++) batch.push(block(c, i, opts.size))
    await core.append(batch)
    keys.push(b4a.toString(core.key, 'hex'))
    cores.push(core)
  }
  fs.writeFileSync(opts.keys, keys.join('\n') + '\n')
  const writeSeconds = Number(process.hrtime.bigint() - start) / 1e9
  const peakReset = resetPeak()
  const sockets = []
  const server = net.createServer((socket) => {
    socket.setNoDelay(true)
    sockets.push(socket)
    replicate(store, socket, false)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  await print({ port: server.address().port, writeSeconds })
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

async function complete(core, blocks) {
  while (core.peers.length === 0) await new Promise((resolve) => core.once('peer-add', resolve))
  await core.update({ wait: true })
  await core.download({ start: 0, end: blocks }).done()
}

async function fetch(opts) {
  const keys = fs.readFileSync(opts.keys, 'utf8').split('\n').filter((l) => l.trim() !== '')
  if (keys.length !== opts.cores) throw new Error(keys.length + ' keys for ' + opts.cores + ' cores')
  const store = new Corestore(opts.dir)
  const cores = keys.map((key) => store.get({ key: b4a.from(key.trim(), 'hex') }))
  await Promise.all(cores.map((core) => core.ready()))
  const start = process.hrtime.bigint()
  const socket = net.connect(opts.port, '127.0.0.1')
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.setNoDelay(true)
  replicate(store, socket, true)
  await Promise.all(cores.map((core) => complete(core, opts.blocks)))
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  let mismatches = 0
  let bytes = 0
  for (let c = 0; c < cores.length; c++) {
    for (let i = 0; i < opts.blocks; i++) {
      const value = await cores[c].get(i, { wait: false })
      if (value === null || !b4a.equals(value, block(c, i, opts.size))) mismatches++
      else bytes += value.byteLength
    }
  }
  const peak = peakRssKiB()
  socket.destroy()
  await store.close()
  await print({ seconds, cores: cores.length, bytes, peakRssKiB: peak, mismatches })
  return mismatches === 0 ? 0 : 1
}

async function main() {
  const [mode, ...rest] = process.argv.slice(2)
  const opts = parseArgs(rest)
  if (mode === 'serve') return serve(opts).then(() => 0)
  if (mode === 'fetch') return fetch(opts)
  throw new Error('usage: bench-cores.js serve|fetch --dir D --keys F --cores C --blocks N --size S [--port P]')
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + '\n')
  process.exit(2)
})
