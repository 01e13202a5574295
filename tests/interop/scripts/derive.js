'use strict'
// Oracle for `corestore derive`: reads [{primaryKey, namespaces, name}] as JSON on stdin, opens a
// real corestore 7 per primary key (temp dir, unsafe primaryKey) and prints, for each input,
// what store.namespace(...).get({ name }) yields (or the error message it throws).
const fs = require('fs')
const os = require('os')
const path = require('path')
const Corestore = require('corestore')

async function main () {
  const inputs = JSON.parse(fs.readFileSync(0, 'utf8'))
  const out = []
  for (const input of inputs) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corestore-derive-'))
    const store = new Corestore(dir, { primaryKey: Buffer.from(input.primaryKey, 'hex'), unsafe: true })
    await store.ready()
    let ns = store
    for (const n of input.namespaces) ns = ns.namespace(n)
    try {
      const core = ns.get({ name: input.name })
      await core.ready()
      out.push({
        namespace: ns.ns.toString('hex'),
        publicKey: core.keyPair.publicKey.toString('hex'),
        key: core.key.toString('hex'),
        discoveryKey: core.discoveryKey.toString('hex')
      })
      await core.close()
    } catch (err) {
      out.push({ error: err.message })
    }
    await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  process.stdout.write(JSON.stringify(out))
}

main().catch((err) => { console.error(err); process.exit(1) })
