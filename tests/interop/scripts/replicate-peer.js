'use strict'
/*
 * JavaScript oracle: a live corestore 7.12.5 / hypercore 11.39.5 replication peer
 * =============================================================================
 *
 * Driven by one JSON command per line on stdin; answers one JSON object per line on stdout
 * (`{"error": "..."}` when a command fails). The store lives in a fresh temp dir (RocksDB, the
 * default corestore storage) that is removed on exit.
 *
 *   {"cmd":"create","blocks":N}         named core "interop", N blocks of block(i) -> {key,length}
 *   {"cmd":"open","key":HEX}            open a core by key (a reader)             -> {key}
 *   {"cmd":"listen"}                    TCP server; every connection is replicated -> {port}
 *                                       (store.replicate(false), as a responder)
 *   {"cmd":"connect","port":P}          connect and replicate as the initiator    -> {ok}
 *   {"cmd":"append","blocks":K[,"salt":S]} append block(length..length+K), each followed by
 *                                       the byte S when a salt is given          -> {length}
 *   {"cmd":"truncate","length":L}       truncate (fork + 1)                       -> {length,fork}
 *   {"cmd":"download","start":S,"end":E} download [S,E), then check every block   -> {mismatches}
 *   {"cmd":"get","index":I[,"timeout":MS]} core.get(I) (waits for a peer; with a timeout, a
 *                                       request that times out gives {value:null,timedOut:true})
 *                                                                              -> {value:HEX}
 *   {"cmd":"clear","start":S,"end":E}   core.clear(S, E) (peers hear range drop)  -> {contiguousLength}
 *   {"cmd":"remoteHas","index":I}       what each peer told us about block I      -> {has:[bool,...]}
 *   {"cmd":"requested"}                 block indexes peers requested from us      -> {blocks:[...]}
 *   {"cmd":"present"}                   indexes stored locally                    -> {present:[...]}
 *   {"cmd":"waitPeer"}                  until the core has a peer                  -> {peers}
 *   {"cmd":"update"}                    core.update({wait:true})                  -> {length,fork}
 *   {"cmd":"waitLength","length":L}     until core.length >= L                     -> {length}
 *   {"cmd":"check","start":S,"end":E}   compare local blocks with block(i)        -> {mismatches}
 *   {"cmd":"info"}                                                                 -> {length,fork,contiguousLength,uploaded,downloaded,legacyChannels}
 *   {"cmd":"spy","port":P,"discoveryKey":HEX}  a raw protomux peer that knows only the discovery
 *                                       key: opens hypercore/alpha with a guessed capability and
 *                                       reports what it received            -> {messages,destroyed}
 *   {"cmd":"legacyName"}                from now on hypercore channels open as "hypercore" (the
 *                                       older name) with "hypercore/alpha" as their alias -> {ok}
 *   {"cmd":"exit"}
 *
 * block(i): 8-byte little-endian i, then (i*7919 % 2048) bytes with byte j = (i*13 + j) & 255:
 * varied sizes (8..2055 bytes), every block distinct. The Rust tests use the same function.
 */
const fs = require('fs')
const os = require('os')
const net = require('net')
const path = require('path')
const readline = require('readline')
const b4a = require('b4a')
const c = require('compact-encoding')
const Corestore = require('corestore')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const Protomux = require('protomux')

function block(i) {
  const extra = (i * 7919) % 2048
  const b = b4a.alloc(8 + extra)
  b.writeUInt32LE(i % 0x100000000, 0)
  b.writeUInt32LE(Math.floor(i / 0x100000000), 4)
  for (let j = 0; j < extra; j++) b[8 + j] = (i * 13 + j) & 255
  return b
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corestore-interop-'))
const store = new Corestore(dir)
let core = null
let uploaded = 0
let legacyChannels = 0
let downloaded = 0
const requested = []
const sockets = []

function track(c) {
  c.on('upload', () => uploaded++)
  c.on('download', () => downloaded++)
  // Record the block requests each peer sends us (the wire handler calls peer.onrequest).
  c.on('peer-add', (peer) => {
    const onrequest = peer.onrequest.bind(peer)
    peer.onrequest = (m) => {
      if (m.block) requested.push(m.block.index)
      return onrequest(m)
    }
  })
}

function replicate(socket, isInitiator) {
  sockets.push(socket)
  const s = store.replicate(isInitiator)
  socket.pipe(s).pipe(socket)
  s.on('error', () => {})
  socket.on('error', () => {})
}

async function check(start, end) {
  let mismatches = 0
  for (let i = start; i < end; i++) {
    const value = await core.get(i, { wait: false })
    if (value === null || !b4a.equals(value, block(i))) mismatches++
  }
  return mismatches
}

async function spy(port, discoveryKey) {
  const socket = net.connect(port, '127.0.0.1')
  const stream = new NoiseSecretStream(true, socket)
  const mux = new Protomux(stream)
  const messages = []
  const raw = c.raw
  const channel = mux.createChannel({
    protocol: 'hypercore/alpha',
    id: b4a.from(discoveryKey, 'hex'),
    handshake: {
      preencode(state) { state.end += 33 },
      encode(state) { state.buffer[state.start++] = 1; state.buffer.set(b4a.alloc(32, 0xab), state.start); state.start += 32 },
      decode(state) { return null }
    },
    messages: Array.from({ length: 10 }, (_, type) => ({ encoding: raw, onmessage: (m) => messages.push({ type, bytes: m.byteLength }) }))
  })
  channel.open()
  const destroyed = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000)
    stream.on('close', () => { clearTimeout(timer); resolve(true) })
    stream.on('error', () => {})
  })
  return { messages, destroyed }
}

async function handle(msg) {
  switch (msg.cmd) {
    case 'create': {
      core = store.get({ name: 'interop' })
      await core.ready()
      track(core)
      const blocks = []
      for (let i = 0; i < msg.blocks; i++) {
        blocks.push(block(i))
        if (blocks.length === 500) await core.append(blocks.splice(0))
      }
      if (blocks.length) await core.append(blocks)
      return { key: b4a.toString(core.key, 'hex'), length: core.length }
    }
    case 'open':
      core = store.get({ key: b4a.from(msg.key, 'hex') })
      await core.ready()
      track(core)
      return { key: b4a.toString(core.key, 'hex') }
    case 'listen': {
      const server = net.createServer((socket) => replicate(socket, false))
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
      return { port: server.address().port }
    }
    case 'connect': {
      const socket = net.connect(msg.port, '127.0.0.1')
      await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
      replicate(socket, true)
      return { ok: true }
    }
    case 'append': {
      const blocks = []
      for (let i = 0; i < msg.blocks; i++) {
        const b = block(core.length + i)
        blocks.push(msg.salt === undefined ? b : b4a.concat([b, b4a.from([msg.salt])]))
      }
      await core.append(blocks)
      return { length: core.length }
    }
    case 'truncate':
      await core.truncate(msg.length)
      return { length: core.length, fork: core.fork }
    case 'download':
      await core.download({ start: msg.start, end: msg.end }).done()
      return { mismatches: await check(msg.start, msg.end) }
    case 'check':
      return { mismatches: await check(msg.start, msg.end) }
    case 'get': {
      let value
      try {
        value = await core.get(msg.index, { timeout: msg.timeout || 0 })
      } catch (err) {
        if (msg.timeout && err.code === 'REQUEST_TIMEOUT') return { value: null, timedOut: true }
        throw err
      }
      return { value: value === null ? null : b4a.toString(value, 'hex') }
    }
    case 'clear': {
      await core.clear(msg.start, msg.end)
      return { contiguousLength: core.contiguousLength }
    }
    case 'remoteHas':
      return { has: core.peers.map((peer) => peer._remoteHasBlock(msg.index)) }
    case 'requested':
      return { blocks: requested }
    case 'present': {
      const present = []
      for (let i = 0; i < core.length; i++) if (await core.has(i)) present.push(i)
      return { present }
    }
    case 'waitPeer':
      while (core.peers.length === 0) await new Promise((resolve) => core.once('peer-add', resolve))
      return { peers: core.peers.length }
    case 'update':
      await core.update({ wait: true })
      return { length: core.length, fork: core.fork }
    case 'waitLength':
      while (core.length < msg.length) await new Promise((resolve) => core.once('append', resolve))
      return { length: core.length }
    case 'info':
      return { length: core.length, fork: core.fork, contiguousLength: core.contiguousLength, uploaded, downloaded, legacyChannels }
    case 'spy':
      return spy(msg.port, msg.discoveryKey)
    case 'legacyName': {
      const create = Protomux.prototype.createChannel
      Protomux.prototype.createChannel = function (opts) {
        if (opts && opts.protocol === 'hypercore/alpha') {
          legacyChannels++
          opts = { ...opts, protocol: 'hypercore', aliases: ['hypercore/alpha'] }
        }
        return create.call(this, opts)
      }
      return { ok: true }
    }
    case 'exit':
      for (const s of sockets) s.destroy()
      await store.close()
      fs.rmSync(dir, { recursive: true, force: true })
      process.stdout.write('{"ok":true}\n', () => process.exit(0))
      return new Promise(() => {})
    default:
      throw new Error('unknown command ' + msg.cmd)
  }
}

const rl = readline.createInterface({ input: process.stdin })
let queue = Promise.resolve()
rl.on('line', (line) => {
  queue = queue.then(async () => {
    let out
    try {
      out = await handle(JSON.parse(line))
    } catch (err) {
      out = { error: String(err && err.stack ? err.stack : err) }
    }
    process.stdout.write(JSON.stringify(out) + '\n')
  })
})
rl.on('close', () => {
  queue.then(() => handle({ cmd: 'exit' }))
})
