'use strict'
// Live peer for the Rust secret-stream + protomux interop tests.
//
// Usage: node secret-stream-peer.js <port> <initiator|responder> <seed hex>
// Connects to 127.0.0.1:<port>, runs @hyperswarm/secret-stream in the given Noise role with the
// key pair of <seed>, puts protomux on it and plays a fixed script, printing one JSON line per
// observation on stdout:
//   * opens "interop/alpha" (id "a", handshake "node-alpha") and "interop/delta" (which the Rust
//     side rejects); accepts remote opens of "interop/beta" through a pair() handler (the
//     remote-open hook), replying with handshake "node-beta"; "interop/unknown" is not paired, so
//     protomux rejects it;
//   * on every channel: type 0 messages are reported and echoed back as type 1 "echo:<payload>";
//     "batch-please" is answered with three type 1 messages in one corked batch;
//     "close-yourself" makes this side close the channel;
//   * reports channel closes (remote or local) and ends when the Rust side ends the stream.
const net = require('net')
const b4a = require('b4a')
const c = require('compact-encoding')
const NoiseSecretStream = require('@hyperswarm/secret-stream')
const Protomux = require('protomux')

const [port, role, seedHex] = process.argv.slice(2)
const hex = (b) => b4a.toString(b, 'hex')
const str = (b) => b4a.toString(b)
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')

setTimeout(() => {
  out({ event: 'timeout' })
  process.exit(2)
}, 20000).unref()

const keyPair = NoiseSecretStream.keyPair(b4a.from(seedHex, 'hex'))
const socket = net.connect(Number(port), '127.0.0.1')
const stream = new NoiseSecretStream(role === 'initiator', socket, { keyPair })

stream.on('error', (err) => out({ event: 'error', message: err.message }))
stream.on('close', () => {
  out({ event: 'closed' })
  socket.destroy()
})

stream.on('connect', () => {
  out({
    event: 'handshake',
    hash: hex(stream.handshakeHash),
    publicKey: hex(stream.publicKey),
    remotePublicKey: hex(stream.remotePublicKey)
  })
})

const mux = new Protomux(stream)

function channel (protocol, id, handshake) {
  const ch = mux.createChannel({
    protocol,
    id: id ? b4a.from(id) : null,
    handshake: c.raw,
    messages: [
      {
        encoding: c.raw,
        onmessage (payload) {
          const text = str(payload)
          out({ event: 'message', protocol, type: 0, payload: text })
          if (text === 'batch-please') {
            ch.cork()
            for (const p of ['b1', 'b2', 'b3']) ch.messages[1].send(b4a.from(p))
            ch.uncork()
          } else if (text === 'close-yourself') {
            ch.close()
          } else {
            ch.messages[1].send(b4a.from('echo:' + text))
          }
        }
      },
      {
        encoding: c.raw,
        onmessage (payload) {
          out({ event: 'message', protocol, type: 1, payload: str(payload) })
        }
      }
    ],
    onopen (remoteHandshake) {
      out({ event: 'open', protocol, handshake: str(remoteHandshake) })
    },
    onclose (isRemote) {
      out({ event: 'close', protocol, remote: isRemote, opened: ch.opened })
    }
  })
  if (ch === null) return null
  ch.open(b4a.from(handshake))
  return ch
}

mux.pair({ protocol: 'interop/beta' }, () => {
  out({ event: 'remote-open', protocol: 'interop/beta' })
  channel('interop/beta', null, 'node-beta')
})

channel('interop/alpha', 'a', 'node-alpha')
channel('interop/delta', null, 'node-delta')
