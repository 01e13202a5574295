'use strict'
/*
 * JavaScript oracle: a whole corestore 7.12.5 store replicating many cores over one stream
 * =====================================================================================
 *
 * One JSON command per line on stdin, one JSON object per line on stdout (`{"error"}` on
 * failure); the store lives in a temp dir removed on exit.
 *
 *   {"cmd":"create","cores":[{"namespace":[NS...],"name":N,"blocks":K}]}
 *        named cores (namespaces chained in order), block i = utf8(N + ":" + i)
 *                                                   -> {cores:[{key,discoveryKey,length}]}
 *   {"cmd":"open","keys":[HEX...]}                   open cores by key   -> {ok}
 *   {"cmd":"listen"} / {"cmd":"connect","port":P}    one TCP stream, store.replicate(...)
 *   {"cmd":"fetch","key":HEX,"name":N,"length":L}   download 0..L and check every block
 *                                                   -> {mismatches}
 *   {"cmd":"list"}                                   every stored core  -> {discoveryKeys}
 *   {"cmd":"exit"}                                                       -> {ok}
 */
const fs = require('fs')
const os = require('os')
const net = require('net')
const path = require('path')
const readline = require('readline')
const b4a = require('b4a')
const Corestore = require('corestore')

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corestore-store-peer-'))
const store = new Corestore(dir)
const sessions = []
const sockets = []

function replicate(socket, isInitiator) {
  sockets.push(socket)
  const s = store.replicate(isInitiator)
  socket.pipe(s).pipe(socket)
  s.on('error', () => {})
  socket.on('error', () => {})
}

async function handle(msg) {
  switch (msg.cmd) {
    case 'create': {
      const out = []
      for (const spec of msg.cores) {
        let ns = store
        for (const n of spec.namespace) ns = ns.namespace(n)
        const core = ns.get({ name: spec.name })
        await core.ready()
        sessions.push(core)
        const blocks = []
        for (let i = 0; i < spec.blocks; i++) blocks.push(b4a.from(spec.name + ':' + i))
        if (blocks.length) await core.append(blocks)
        out.push({ key: b4a.toString(core.key, 'hex'), discoveryKey: b4a.toString(core.discoveryKey, 'hex'), length: core.length })
      }
      return { cores: out }
    }
    case 'open':
      for (const key of msg.keys) {
        const core = store.get({ key: b4a.from(key, 'hex') })
        await core.ready()
        sessions.push(core)
      }
      return { ok: true }
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
    case 'fetch': {
      const core = store.get({ key: b4a.from(msg.key, 'hex') })
      await core.ready()
      sessions.push(core)
      await core.download({ start: 0, end: msg.length }).done()
      let mismatches = 0
      for (let i = 0; i < msg.length; i++) {
        const v = await core.get(i, { wait: false })
        if (v === null || b4a.toString(v) !== msg.name + ':' + i) mismatches++
      }
      return { mismatches }
    }
    case 'list': {
      const discoveryKeys = []
      for await (const dk of store.list()) discoveryKeys.push(b4a.toString(dk, 'hex'))
      return { discoveryKeys: discoveryKeys.sort() }
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
rl.on('close', () => { queue.then(() => handle({ cmd: 'exit' })) })
