# Replays one transaction's C-APDUs on the card application N times and
# prints per-run times; portable, so the same loop runs on CPython and on
# the MicroPython unix port:
#   micropython bench/portable/card_loop.py PROFILE.json COMMANDS.json N
# Prints one JSON line: {"total_ms": [...], "rsa_ms": [...]}.
import json
import sys
import time

# CPython imports the installed package; MicroPython the firmware folder on MICROPYPATH.
try:
    from emvkit.firmware.crypto import rsa
    from emvkit.firmware.payapp.card import Card
    from emvkit.firmware.payapp.rng import CountingRandom
    from emvkit.firmware.payapp.state import MemoryStore
except ImportError:
    from firmware.crypto import rsa
    from firmware.payapp.card import Card
    from firmware.payapp.rng import CountingRandom
    from firmware.payapp.state import MemoryStore

try:
    _ticks = time.ticks_us  # MicroPython

    def _now_us():
        return _ticks()

    _diff = time.ticks_diff
except AttributeError:
    def _now_us():
        return int(time.perf_counter() * 1000000)

    def _diff(a, b):
        return a - b

_rsa_us = [0]
_private = rsa.RSAPrivateKey.private


def _timed_private(self, data):
    t0 = _now_us()
    try:
        return _private(self, data)
    finally:
        _rsa_us[0] += _diff(_now_us(), t0)


rsa.RSAPrivateKey.private = _timed_private


def main(argv):
    with open(argv[1]) as f:
        profile = json.load(f)
    with open(argv[2]) as f:
        commands = [bytes.fromhex(c) for c in json.load(f)]
    runs = int(argv[3])
    card = Card(profile, rng=CountingRandom())
    total = []
    rsa_ms = []
    for _ in range(runs):
        card.store = MemoryStore()
        card.reset()
        _rsa_us[0] = 0
        t0 = _now_us()
        for c in commands:
            card.process(c)
        total.append(_diff(_now_us(), t0) / 1000)
        rsa_ms.append(_rsa_us[0] / 1000)
    print(json.dumps({"total_ms": total, "rsa_ms": rsa_ms}))


main(sys.argv)
