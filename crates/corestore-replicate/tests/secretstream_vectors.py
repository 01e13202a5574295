#!/usr/bin/env python3
"""Produces tests/secretstream_vectors.json with real libsodium (via PyNaCl, which bundles it):
crypto_secretstream_xchacha20poly1305 pushes with TAG_FINAL, TAG_REKEY and across the 32-bit
counter wrap, which the crypto_secretstream crate (the proptest oracle) does not model.

    python3 -m venv venv && ./venv/bin/pip install pynacl==1.6.2
    ./venv/bin/python tests/secretstream_vectors.py > tests/secretstream_vectors.json
"""
import json

import nacl
from nacl import bindings as b

TAG = {
    "message": b.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
    "push": b.crypto_secretstream_xchacha20poly1305_TAG_PUSH,
    "rekey": b.crypto_secretstream_xchacha20poly1305_TAG_REKEY,
    "final": b.crypto_secretstream_xchacha20poly1305_TAG_FINAL,
}


def case(name, key, pushes, counter=None):
    state = b.crypto_secretstream_xchacha20poly1305_state()
    header = b.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    if counter is not None:
        # The state is k[32] || counter[4] (LE) || inonce[8]: start near the wrap.
        state.statebuf[32:36] = counter.to_bytes(4, "little")
    frames = []
    for plain, tag in pushes:
        c = b.crypto_secretstream_xchacha20poly1305_push(state, plain, None, TAG[tag])
        frames.append({"plain": plain.hex(), "tag": TAG[tag], "cipher": c.hex()})
    return {"name": name, "key": key.hex(), "header": header.hex(), "counter": counter,
            "frames": frames}


key = bytes(range(32))
msgs = [bytes([i]) * (i * 7) for i in range(1, 6)]
cases = [
    case("final", key, [(msgs[0], "message"), (msgs[1], "final"), (msgs[2], "message"),
                        (msgs[3], "message")]),
    case("rekey", key, [(msgs[0], "message"), (msgs[1], "rekey"), (msgs[2], "message"),
                        (msgs[3], "push"), (msgs[4], "message")]),
    case("counter-wrap", key, [(m, "message") for m in msgs], counter=0xFFFFFFFD),
]
print(json.dumps({"libsodium": b.sodium_version_string().decode() if hasattr(b, "sodium_version_string") else "pynacl " + nacl.__version__,
                  "cases": cases}, indent=1))
