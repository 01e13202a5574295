'use strict'
/*
 * JavaScript oracle for the Rust hypercore (signed Merkle log) — corestore 7.12.5 / hypercore 11.39.5
 * ====================================================================================================
 *
 * Everything below runs the REAL JavaScript code paths of the pinned packages; nothing about the
 * tree, proofs or signatures is reimplemented here, so the bytes printed are authoritative.
 * All hex is lowercase. Each command reads ONE JSON object on stdin and prints ONE JSON object on
 * stdout; exit code 0 on success, non-zero with a message on stderr on failure (bad input etc.).
 * Temp directories are always removed.
 *
 * Request JSON (`<request>`), the JSON form of hypercore's wire `request` (lib/messages.js):
 *   { "id": 1, "fork": 0,
 *     "block":   { "index": blockIndex, "nodes": n } | null,
 *     "hash":    { "index": treeIndex,  "nodes": n } | null,
 *     "seek":    { "bytes": b, "padding": p } | null,
 *     "upgrade": { "start": s, "length": l } | null,
 *     "manifest": true | false, "priority": 0 }
 *   Missing keys default to null / false / 0 (id defaults to 1). The request is first round-tripped
 *   through c.encode/c.decode(wire.request) so it is exactly what a peer would receive.
 *
 * `node hypercore-oracle.js write`
 *   stdin:  { "seed": "<64 hex: Ed25519 seed of the writer key pair>",
 *             "blocks": ["<hex>", ...],
 *             "batches": [n1, n2, ...],          optional: append the blocks in groups of these sizes
 *                                                (must sum to blocks.length); default: one append per block
 *             "truncate": { "length": l, "blocks": ["<hex>", ...] },  optional: then truncate to l
 *                                                (fork + 1) and append these blocks in one batch
 *             "requests": [<request>, ...] }     optional
 *   The core is created exactly as corestore 7 does it: `new Corestore(tmp).get({ keyPair })` with
 *   keyPair = hypercore-crypto keyPair(seed) (compat false, manifest v1, single signer).
 *   stdout: { "key", "discoveryKey", "manifest" (hex of the manifest compact encoding),
 *             "length", "byteLength", "fork",
 *             "treeHash" (tree/root hash at length), "signature" (hex, exactly as stored and sent:
 *             the 68-byte multiSignature form for manifest v1; null when length is 0),
 *             "roots": [{ "index", "size", "hash" }],           ascending
 *             "nodes": [{ "index", "size", "hash" }],           EVERY tree node in storage, by index
 *             "requests": ["<hex of wire.request encoding>"],   one per input request (extra, handy
 *                                                               for checking a request encoder)
 *             "proofs": [ "<hex of the wire.data message body>" | { "error": "...", "noData": reason } ] }
 *   A proof is the `data` message (body only: no channel id / message type prefix) that the real
 *   replicator would send in reply to that request: the oracle calls hypercore's own
 *   `Replicator.Peer.prototype._handleRequest` (→ `_getProof` → `MerkleTree.proof(core.state, rx, msg)`
 *   → `ProofRequest.fulfill` → `_fulfillRequest`) on a stub peer that captures `wireData.send` and
 *   encodes it with `c.encode(wire.data, msg)`. When the real code would answer with `noData`
 *   instead (block not present, wrong fork, invalid request…), the entry is an OBJECT
 *   `{ "error": "<message>", "noData": <reason> }` with reason 1 = NOT_AVAILABLE,
 *   2 = INVALID_REQUEST (then "error" is the message of the error hypercore raised), or
 *   `noData: null` when hypercore's handler throws instead (e.g. a `hash` request for a tree node
 *   it does not have: TreeProof.settle rejects, nothing is sent and protomux destroys the stream).
 *   So a proof entry is either a hex STRING (a `data` reply) or such an OBJECT, never JSON null.
 *   (Wrong fork / missing block with `manifest: true` gets a manifest-only `data`, as in hypercore.)
 *
 * `node hypercore-oracle.js verify`
 *   stdin:  { "key": "<hex>", "manifest": "<hex>" | null,
 *             "proofs": [ { "request": <request>, "data": "<hex of a wire.data message body>" }, ... ] }
 *   A fresh core that knows only the key (`new Corestore(tmp).get({ key, manifest? })`, a reader)
 *   applies the proofs IN ORDER the way the replicator does on receiving `data` for that inflight
 *   request (Peer._handleData): `data.request` must equal `request.id`, `data.fork` must not be
 *   newer than the core's fork (reorgs are not supported by the oracle), the replicator's own
 *   `_matchingRequest(req, data)` must hold, then `core.verify(data)` (lib/core.js: MerkleTree.verify
 *   + signature/manifest check for upgrades + storing nodes/block/head). If "manifest" is given the
 *   core gets it up front; otherwise the first upgrade must carry it (request.manifest = true).
 *   stdout: { "results": [ { "ok": true, "length": <core length after>, "byteLength": <after>,
 *                            "value": "<hex of the block>" | null } |
 *                          { "ok": false, "error": "<message>" } ] }
 *   A proof that fails leaves the core unchanged; later proofs are still applied.
 */
const fs = require('fs')
const os = require('os')
const path = require('path')
const b4a = require('b4a')
const c = require('compact-encoding')
const crypto = require('hypercore-crypto')
const Corestore = require('corestore')
const Replicator = require('hypercore/lib/replicator')
const messages = require('hypercore/lib/messages')
const { MerkleTree } = require('hypercore/lib/merkle-tree')

const { wire } = messages
const Peer = Replicator.Peer

function hex(buf) {
  return b4a.toString(buf, 'hex')
}

function fromHex(s, what) {
  if (typeof s !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(s)) throw new Error(what + ' must be a hex string')
  return b4a.from(s, 'hex')
}

function nodeJson(n) {
  return { index: n.index, size: n.size, hash: hex(n.hash) }
}

// A request as a peer receives it: JSON -> wire.request bytes -> decoded message.
function toRequest(json) {
  if (!json || typeof json !== 'object') throw new Error('request must be an object')
  const msg = {
    id: json.id === undefined ? 1 : json.id,
    fork: json.fork || 0,
    block: json.block || null,
    hash: json.hash || null,
    seek: json.seek ? { bytes: json.seek.bytes, padding: json.seek.padding || 0 } : null,
    upgrade: json.upgrade || null,
    manifest: !!json.manifest,
    priority: json.priority || 0
  }
  const bytes = c.encode(wire.request, msg)
  return { bytes, msg: c.decode(wire.request, bytes) }
}

async function withStore(prefix, fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  let store = null
  try {
    store = new Corestore(dir)
    await store.ready()
    return await fn(store)
  } finally {
    if (store) await store.close().catch(() => {})
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

// Answers one request with hypercore's own responder code (Peer.prototype._handleRequest) run on a
// stub peer: returns the hex of the `data` message it sends, or { error, noData } for `noData`.
async function answer(session, msg) {
  const core = session.core
  let sent = null
  let invalid = null

  const peer = {
    core,
    // the replicator stub only sees the calls _getProof/_fulfillRequest make on a real one
    replicator: {
      _oninvalidrequest(err, req, from) {
        invalid = err
        // make _getProof rethrow at once instead of sleeping in backoff() first
        from.stats.invalidRequests = Infinity
      },
      _onupload() {}
    },
    stats: { invalidRequests: 0, wireData: { tx: 0 }, wireNoData: { tx: 0 } },
    remoteRequests: new Map([[msg.id, msg]]),
    remoteAllowPush: false,
    pushedLength: 0,
    isActive: () => true,
    wireData: {
      send(m) {
        sent = { type: 'data', m }
      }
    },
    wireNoData: {
      send(m) {
        sent = { type: 'noData', m }
      }
    },
    _getProof: Peer.prototype._getProof,
    _fulfillRequest: Peer.prototype._fulfillRequest
  }
  // incrementTx(peer.stats.wireData, replicator.stats.wireData) needs a replicator stats object
  peer.replicator.stats = { wireData: { tx: 0 }, wireNoData: { tx: 0 } }

  try {
    await Peer.prototype._handleRequest.call(peer, msg)
  } catch (err) {
    // the real peer sends noData(INVALID_REQUEST) after a backoff
    if (err === invalid) return { error: err.message, noData: 2 }
    // a hypercore error escaping the handler (e.g. a hash request for a node it lacks, thrown by
    // TreeProof.settle): the real peer sends nothing and protomux destroys the stream
    if (err && typeof err.code === 'string') return { error: err.message, noData: null }
    throw err
  }

  if (sent === null) throw new Error('the responder sent nothing for request ' + JSON.stringify(msg))
  if (sent.type === 'noData') {
    return { error: sent.m.reason === 1 ? 'not available' : 'no data', noData: sent.m.reason }
  }
  return hex(c.encode(wire.data, sent.m))
}

async function write(input) {
  const seed = fromHex(input.seed, 'seed')
  if (seed.byteLength !== 32) throw new Error('seed must be 32 bytes')
  if (!Array.isArray(input.blocks)) throw new Error('blocks must be an array of hex strings')
  const blocks = input.blocks.map((b, i) => fromHex(b, 'blocks[' + i + ']'))
  const batches = input.batches || blocks.map(() => 1)
  if (!Array.isArray(batches) || batches.reduce((a, b) => a + b, 0) !== blocks.length) {
    throw new Error('batches must sum to blocks.length')
  }
  const requests = (input.requests || []).map(toRequest)

  const keyPair = crypto.keyPair(seed)

  return withStore('hypercore-oracle-write-', async (store) => {
    const session = store.get({ keyPair })
    await session.ready()

    let at = 0
    for (const n of batches) {
      if (!Number.isInteger(n) || n < 0) throw new Error('batch sizes must be non-negative integers')
      if (n === 0) continue
      await session.append(blocks.slice(at, at + n))
      at += n
    }

    // Optional rewrite: truncate (fork + 1), then append more blocks, before answering requests.
    if (input.truncate) {
      const t = input.truncate
      if (!Number.isInteger(t.length) || t.length < 0) throw new Error('truncate.length must be an integer')
      await session.truncate(t.length)
      const more = (t.blocks || []).map((b, i) => fromHex(b, 'truncate.blocks[' + i + ']'))
      if (more.length) await session.append(more)
    }

    const core = session.core
    const state = core.state

    const nodes = []
    for await (const node of core.storage.createTreeNodeStream()) nodes.push(nodeJson(node))
    nodes.sort((a, b) => a.index - b.index)

    const proofs = []
    for (const { msg } of requests) proofs.push(await answer(session, msg))

    const out = {
      key: hex(core.header.key),
      discoveryKey: hex(core.discoveryKey),
      manifest: core.header.manifest ? hex(c.encode(messages.manifest, core.header.manifest)) : null,
      length: state.length,
      byteLength: state.byteLength,
      fork: state.fork,
      treeHash: hex(MerkleTree.hash(state)),
      signature: state.signature ? hex(state.signature) : null,
      roots: state.roots.map(nodeJson),
      nodes,
      requests: requests.map((r) => hex(r.bytes)),
      proofs
    }

    await session.close()
    return out
  })
}

async function verify(input) {
  const key = fromHex(input.key, 'key')
  const manifest =
    input.manifest === null || input.manifest === undefined
      ? null
      : c.decode(messages.manifest, fromHex(input.manifest, 'manifest'))
  if (!Array.isArray(input.proofs)) throw new Error('proofs must be an array')
  const proofs = input.proofs.map((p, i) => ({
    req: toRequest(p.request).msg,
    data: fromHex(p.data, 'proofs[' + i + '].data')
  }))

  return withStore('hypercore-oracle-verify-', async (store) => {
    const session = store.get(manifest ? { key, manifest } : { key })
    await session.ready()
    const core = session.core
    const matching = Replicator.prototype._matchingRequest.bind({ allowPush: false })

    const results = []
    for (const { req, data: bytes } of proofs) {
      try {
        const data = c.decode(wire.data, bytes)
        if (data.request !== req.id) throw new Error('data.request ' + data.request + ' does not answer request id ' + req.id)
        if (data.fork > core.state.fork) throw new Error('reorg (fork ' + data.fork + ') is not supported by the oracle')
        if (!matching(req, data)) throw new Error('data does not match the request')
        if (!(await core.verify(data, null))) throw new Error('proof not applied (core.verify returned false)')
        results.push({
          ok: true,
          length: core.state.length,
          byteLength: core.state.byteLength,
          value: data.block ? hex(data.block.value) : null
        })
      } catch (err) {
        results.push({ ok: false, error: (err && err.message) || String(err) })
      }
    }

    await session.close()
    return { results }
  })
}

async function main() {
  const cmd = process.argv[2]
  if (cmd !== 'write' && cmd !== 'verify') throw new Error('usage: node hypercore-oracle.js write|verify < input.json')
  const input = JSON.parse(fs.readFileSync(0, 'utf8'))
  const out = cmd === 'write' ? await write(input) : await verify(input)
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch((err) => {
  console.error((err && err.stack) || err)
  process.exit(1)
})
