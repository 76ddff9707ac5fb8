# Device side of bench/token_cycles.py: frozen into a token image (as the
# module token_probe) and started from the raw REPL with
#   import token_probe; token_probe.main()
# Also runs on the MicroPython unix port (MICROPYPATH=.frozen:REPO), which is
# how it can be tried without QEMU.
#
# Line protocol on the UART (stdin/stdout), one JSON object a line; the
# probe's lines start with "@TP ":
#   probe -> host  {"hello": ...}                        once, at start
#   host  -> probe {"op": "card", "name": ..., "profile": {...},
#                   "commands": [hex, ...], "runs": 16, "step": 1024, "layouts": 3}
#   probe -> host  {"part": "first" | "first_shares" | "later" | "later_shares" | "heap", ...}
#                  (a "_shares" part per wrapped run), then {"part": "done"};
#                  {"error": ...} instead when something failed
#   host  -> probe {"op": "quit"}                        answered {"bye": 1}
# Each part is printed as soon as it is measured and then dropped, so that
# every measured run starts with the same objects alive on the heap.
#
# Figures (QEMU with -icount shift=0: one instruction per emulated ns, so a
# ticks_us() delta x 1000 = instructions; the host does the x1000), for two
# starting points:
# - "first": the first transaction after power-up (no DES key schedule cached);
# - "later": a later transaction of a running token: the provider's cache
#   holds the key schedules the next transaction (ATC + 1) uses too, i.e. the
#   master keys' (a session key changes with the ATC).
# For each: `runs` plain runs, each with the heap laid out a little
# differently (timed_runs): ticks and bytes allocated (micropython.mem_total())
# per C-APDU and run; the R-APDUs of the first run, which the host compares
# with the emulator's, the others compared here. Then half as many runs with
# the crypto entry points wrapped (ticks inside RSA, SHA-1, DES, the SM2
# signature and SM3, outermost call of each group only, per C-APDU, and calls
# per entry point). Then the heap
# search, from "later": the least free heap (after gc.collect(), the card
# built and idle) with which the whole transaction still completes with the
# same R-APDUs, found by blocking the rest of the heap with bytearrays and
# bisecting to `step` bytes, then checked in `layouts` more heap layouts (and
# raised until it holds in all); and what one gc.collect() costs at rest.
# Every run starts from the same state: the card's initial state, a fresh
# counting random source, the card reset, the key cache as said, gc.collect().
import gc
import json
import sys
import time

import micropython

try:  # MicroPython image / unix port with MICROPYPATH
    from firmware.crypto import des, provider, rsa
    from firmware.crypto import sha1 as sha1mod
    from firmware.payapp.card import Card
    from firmware.payapp.rng import CountingRandom
    from firmware.payapp.state import CardState, MemoryStore
except ImportError:  # CPython with emvkit installed
    from emvkit.firmware.crypto import des, provider, rsa
    from emvkit.firmware.crypto import sha1 as sha1mod
    from emvkit.firmware.payapp.card import Card
    from emvkit.firmware.payapp.rng import CountingRandom
    from emvkit.firmware.payapp.state import CardState, MemoryStore

_ticks = time.ticks_us
_diff = time.ticks_diff
_mem_total = getattr(micropython, "mem_total", None)

MARK = "@TP "
PAD = 512  # bytes of padding per run (see timed_runs)
GROUPS = ("rsa", "sha1", "des", "sm2", "sm3")

# (group, owner, attribute, label): every crypto entry point the card can
# reach. The card and the crypto code call them through the module or the
# class (provider.powmod, provider.sha1, key.private, sm2.sign_digest, ...),
# looked up at call time, so replacing the attribute here is seen by every
# caller. An owner given as a string is a module (or "module:Class") of the
# SM suite, found in sys.modules when the meter is installed: only the SM
# card imports them, and importing them here would change the other cards'
# heap figures; an owner not loaded is not wrapped.
ENTRY_POINTS = (
    (0, rsa.RSAPrivateKey, "private", "rsa.RSAPrivateKey.private"),
    (0, provider, "powmod", "provider.powmod"),
    (1, provider, "sha1", "provider.sha1"),
    (1, sha1mod, "sha1", "sha1.sha1 (pure)"),
    (2, provider, "des3_encrypt_block", "provider.des3_encrypt_block"),
    (2, provider, "des3_decrypt_block", "provider.des3_decrypt_block"),
    (2, provider, "des_encrypt_block", "provider.des_encrypt_block"),
    (2, provider, "des_decrypt_block", "provider.des_decrypt_block"),
    (2, provider, "des_cbc_encrypt", "provider.des_cbc_encrypt"),
    (2, des._BlockCipher, "encrypt_block", "des (pure) encrypt_block"),
    (2, des._BlockCipher, "decrypt_block", "des (pure) decrypt_block"),
    (3, "sm2", "sign_digest", "sm2.sign_digest"),
    (3, "sm2", "multiply", "sm2.multiply"),
    (4, "sm3:SM3", "update", "sm3.SM3.update"),
    (4, "sm3:SM3", "digest", "sm3.SM3.digest"),
    (4, "sm3", "sm3", "sm3.sm3"),
)


def _owner(owner):
    # The object behind an ENTRY_POINTS owner, or None (an SM module not loaded).
    if not isinstance(owner, str):
        return owner
    name, _, cls = owner.partition(":")
    mod = sys.modules.get("firmware.crypto." + name) or sys.modules.get("emvkit.firmware.crypto." + name)
    if mod is None:
        return None
    return getattr(mod, cls) if cls else mod


class Meter:
    # Wraps the entry points: ticks per group (outermost call only, so a
    # nested entry point is not counted twice) and, per entry point, calls
    # and ticks including what it calls.
    def __init__(self):
        self.group_ticks = [0] * len(GROUPS)
        self.depth = [0] * len(GROUPS)
        self.calls = [0] * len(ENTRY_POINTS)
        self.ticks = [0] * len(ENTRY_POINTS)
        self.saved = []

    def _wrap(self, index, group, func):
        meter = self

        def metered(*args):
            meter.calls[index] += 1
            meter.depth[group] += 1
            t0 = _ticks()
            try:
                return func(*args)
            finally:
                spent = _diff(_ticks(), t0)
                meter.ticks[index] += spent
                meter.depth[group] -= 1
                if meter.depth[group] == 0:
                    meter.group_ticks[group] += spent

        return metered

    def install(self):
        for index, (group, owner, name, _label) in enumerate(ENTRY_POINTS):
            owner = _owner(owner)
            if owner is None:
                continue
            func = getattr(owner, name)
            self.saved.append((owner, name, func))
            setattr(owner, name, self._wrap(index, group, func))

    def remove(self):
        for owner, name, func in self.saved:
            setattr(owner, name, func)
        self.saved = []

    def report(self):
        calls = {}
        for index, entry in enumerate(ENTRY_POINTS):
            calls[entry[3]] = [self.calls[index], self.ticks[index]]
        groups = {}
        for g, name in enumerate(GROUPS):
            groups[name] = self.group_ticks[g]
        return {"groups": groups, "calls": calls}


def fresh(card, cache=None):
    # The state every run starts from: the card's initial state, a new
    # counting random source, the card reset, the provider's key cache holding
    # `cache` only (nothing: as after power-up), gc.collect().
    card.store = MemoryStore(CardState.from_dict(card.profile.initial_state))
    card.rng = CountingRandom()
    card.reset()
    provider.clear_cache()
    if cache:
        for key in cache:
            provider._cache[key] = cache[key]
    gc.collect()


def replay(card, commands, expected=None):
    # The transaction without measuring; False when an R-APDU is not the
    # expected one (a MemoryError propagates).
    for i in range(len(commands)):
        response = card.process(commands[i])
        if expected is not None and response != expected[i]:
            return False
    return True


def kept_keys(card, commands):
    # The key schedules a running token keeps from one transaction to the
    # next: those the next transaction (ATC + 1) uses as well, i.e. the
    # master keys'; a session key changes with the ATC.
    fresh(card)
    state = card.store.load()
    state.atc += 1
    card.store.save(state)
    replay(card, commands)
    later = set(provider._cache)
    fresh(card)
    replay(card, commands)
    kept = {}
    for key in provider._cache:
        if key in later:
            kept[key] = provider._cache[key]
    return kept


def timed_runs(card, commands, cache, runs, expected):
    # `runs` transactions: ticks and bytes allocated per run and C-APDU, the
    # R-APDUs of the first run, and whether every later run gave the same
    # (or `expected`, when given) R-APDUs. Run k holds a bytearray of
    # k * PAD bytes, allocated first, so that the runs see different heap
    # layouts: where the collector runs and how far the allocator searches
    # for free blocks change the count by several per cent.
    n = len(commands)
    ticks = [[0] * n for _ in range(runs)]
    alloc = [[0] * n for _ in range(runs)]
    responses = [None] * n
    same = True
    padding = [None]
    mem = _mem_total or (lambda: 0)
    for k in range(runs):
        row_t = ticks[k]
        row_a = alloc[k]
        fresh(card, cache)
        padding[0] = bytearray(k * PAD) if k else None
        for i in range(n):
            command = commands[i]
            m0 = mem()
            t0 = _ticks()
            response = card.process(command)
            t1 = _ticks()
            m1 = mem()
            row_t[i] = _diff(t1, t0)
            row_a[i] = m1 - m0
            if k == 0:
                responses[i] = response
            if expected is not None and response != expected[i]:
                same = False
        padding[0] = None
        if expected is None:
            expected = responses
    return ticks, alloc, responses, same


def metered_run(card, commands, cache, pad):
    # One transaction with the crypto entry points wrapped, `pad` bytes of
    # padding held (see timed_runs): ticks per group, per entry point and per
    # C-APDU.
    meter = Meter()
    by_command = [None] * len(commands)  # ticks per group (GROUPS) per C-APDU
    padding = [None]
    meter.install()
    try:
        fresh(card, cache)
        padding[0] = bytearray(pad) if pad else None
        g = meter.group_ticks
        t0 = _ticks()
        for i in range(len(commands)):
            before = list(g)
            card.process(commands[i])
            by_command[i] = [g[j] - before[j] for j in range(len(g))]
        total = _diff(_ticks(), t0)
    finally:
        padding[0] = None
        meter.remove()
    out = meter.report()
    out["total"] = total
    out["by_command"] = by_command
    return out


def block_heap(leave, held):
    # Fill the heap with bytearrays until only about `leave` bytes stay free;
    # the holders go into `held` (a list allocated beforehand).
    gc.collect()
    size = gc.mem_free() - leave
    k = 0
    while k < len(held) and size >= 16:
        excess = gc.mem_free() - leave
        if excess < 64:
            break
        size = min(size, excess - 32)  # the bytearray object takes a block of its own
        try:
            held[k] = bytearray(size)
            k += 1
        except MemoryError:
            size //= 2
    gc.collect()
    return gc.mem_free()


def completes(card, commands, expected, kept, leave, held, pad):
    # One transaction with only about `leave` bytes free, a bytearray of `pad`
    # bytes allocated before the heap is blocked (another layout): returns
    # (completed with the expected R-APDUs, the free bytes it started with).
    for i in range(len(held)):
        held[i] = None
    fresh(card, kept)
    padding = [bytearray(pad) if pad else None]
    free = block_heap(leave, held)
    try:
        done = replay(card, commands, expected)
    except MemoryError:
        done = False
    padding[0] = None
    for i in range(len(held)):
        held[i] = None
    return done, free


def heap_search(card, commands, expected, kept, step, layouts):
    # The least free heap a transaction needs, to `step` bytes: bisection,
    # then the result is checked in `layouts` more heap layouts and raised by
    # `step` until the transaction completes in all of them. Returns (free
    # bytes of the smallest run that completed everywhere, of the largest
    # that failed, runs, heap in use at rest, total heap).
    held = [None] * 256
    fresh(card, kept)
    at_rest = gc.mem_alloc()
    total = gc.mem_alloc() + gc.mem_free()
    lo, hi = 0, gc.mem_free()  # lo fails (assumed), hi completes (the runs before)
    ok_free, fail_free, runs = hi, 0, 0
    while hi - lo > step:
        mid = (lo + hi) // 2
        done, free = completes(card, commands, expected, kept, mid, held, 0)
        runs += 1
        if done:
            hi, ok_free = mid, free
        else:
            lo, fail_free = mid, free
    k = 1
    while k <= layouts and hi < total:
        done, free = completes(card, commands, expected, kept, hi, held, k * PAD)
        runs += 1
        if not done:  # raise the level and check it from the first layout again
            fail_free = free
            hi += step
            k = 0
            continue
        if k == 0:
            ok_free = free
        k += 1
    gc.collect()
    return ok_free, fail_free, runs, at_rest, total


def measure(card, commands, cache, runs, expected, part, emit):
    # One starting point: the plain runs, then half as many wrapped ones
    # (with the first runs' paddings); emits a part for each.
    ticks, alloc, responses, same = timed_runs(card, commands, cache, runs, expected)
    emit({"part": part, "ticks": ticks, "alloc": alloc if _mem_total is not None else None,
          "responses": [r.hex() for r in responses], "same": same})
    ticks = alloc = None
    for k in range(max(1, runs // 2)):
        emit({"part": part + "_shares", "shares": metered_run(card, commands, cache, k * PAD)})
    return responses


def run_card(job, emit):
    commands = [bytes.fromhex(c) for c in job["commands"]]
    card = Card(job["profile"], rng=CountingRandom(), clock=lambda: 0)
    runs = job.get("runs", 16)
    step = job.get("step", 1024)
    layouts = job.get("layouts", 3)
    job = None
    gc.collect()

    # The first transaction after power-up: no key schedule cached.
    expected = measure(card, commands, None, runs, None, "first", emit)
    # A later transaction of a running token: the master keys' schedules cached.
    kept = kept_keys(card, commands)
    measure(card, commands, kept, runs, expected, "later", emit)

    fresh(card, kept)
    t0 = _ticks()
    gc.collect()
    collect = _diff(_ticks(), t0)
    out = {"part": "heap", "kept_keys": len(kept), "collect": collect}
    if step:
        ok, fail, tries, at_rest, total = heap_search(card, commands, expected, kept, step, layouts)
        out.update({"needed": ok, "failed": fail, "runs": tries, "at_rest": at_rest, "total": total, "step": step})
    emit(out)
    emit({"part": "done"})


def emit(message):
    # Streamed to the UART, never one string on the heap: a part takes a few
    # KB, and after the SM card's pure SM2 runs the heap's largest free block
    # can be smaller than that (many KB free, in pieces).
    sys.stdout.write(MARK)
    json.dump(message, sys.stdout)
    sys.stdout.write("\n")


def main():
    gc.collect()
    info = {
        "hello": 1,
        "build": getattr(sys.implementation, "_build", sys.platform),
        "mem_stats": _mem_total is not None,
        "heap_total": gc.mem_alloc() + gc.mem_free(),
        "heap_used": gc.mem_alloc(),
        "sha1": provider.backend_sha1(),
        "des": provider.backend(),
        "powmod": provider.backend_powmod(),
        "sm2": provider.backend_sm2(),
        "sm3": provider.backend_sm3(),
    }
    emit(info)
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if not line:
            continue
        try:
            job = json.loads(line)
            line = None
            op = job.get("op")
            if op == "quit":
                emit({"bye": 1})
                break
            if op != "card":
                raise ValueError("unknown op " + repr(op))
            run_card(job, emit)
            job = None
        except Exception as exc:  # reported to the host, which stops
            emit({"error": type(exc).__name__ + ": " + str(exc)})
        gc.collect()


if __name__ == "__main__":
    main()
