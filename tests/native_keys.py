"""RSA keys and inputs for the native arithmetic's tests (firmware/native/): seeded, so every run checks the same.

Primes by Miller-Rabin with fixed bases (independent of emvkit's code); the CRT numbers as a card profile
holds them. Sizes cover the EMV range and limb counts that are not powers of two.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from math import gcd

SIZES = (512, 768, 1024, 1152, 1408, 1984)  # bits of n


def _is_prime(m: int) -> bool:
    if m < 2 or m % 2 == 0:
        return m == 2
    d, r = m - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41):
        x = pow(a, d, m)
        if x in (1, m - 1):
            continue
        for _ in range(r - 1):
            x = x * x % m
            if x == m - 1:
                break
        else:
            return False
    return True


def _prime(rnd: random.Random, bits: int, e: int) -> int:
    while True:
        m = rnd.getrandbits(bits) | (3 << (bits - 2)) | 1  # top two bits set: pq has 2 * bits bits
        if _is_prime(m) and gcd(e, m - 1) == 1:
            return m


@dataclass(frozen=True)
class Key:
    n: int
    e: int
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8


def key(bits: int, e: int, seed: int, unbalanced: int = 0) -> Key:
    """A key of ``bits`` bits; ``unbalanced`` moves bits from p to q (q gets more limbs than p)."""
    rnd = random.Random(seed)
    while True:
        p = _prime(rnd, bits // 2 - unbalanced, e)
        q = _prime(rnd, bits // 2 + unbalanced, e)
        if p != q:
            break
    n = p * q
    d = pow(e, -1, (p - 1) * (q - 1))
    return Key(n, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p))


def be(x: int, size: int = 0) -> bytes:
    """Big-endian bytes, ``size`` long (as few as hold x when 0)."""
    return x.to_bytes(size or max(1, (x.bit_length() + 7) // 8), "big")


def ones_key(bits: int, e: int) -> Key:
    """The key of the two largest suitable primes below 2^(bits / 2): limbs of p, q and n all ones but the lowest."""
    found: list[int] = []
    m = (1 << (bits // 2)) - 1
    while len(found) < 2:
        if _is_prime(m) and gcd(e, m - 1) == 1:
            found.append(m)
        m -= 2
    p, q = found
    d = pow(e, -1, (p - 1) * (q - 1))
    return Key(p * q, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p))


@functools.cache
def keys() -> tuple[Key, ...]:
    out = [key(bits, 65537 if i % 2 else 3, seed=bits + i) for i, bits in enumerate(SIZES)]
    out.append(key(1024, 65537, seed=7, unbalanced=40))  # q has more limbs than p
    out.append(key(1024, 3, seed=8, unbalanced=-40))  # p has more limbs than q
    out.append(ones_key(1024, 65537))  # every carry chain runs its full length
    return tuple(out)


def messages(k: Key, count: int, seed: int) -> list[int]:
    """Inputs below n: the edges (0, 1, n - 1, p, q, all ones below n's top bit) and random ones."""
    rnd = random.Random(seed)
    edges = [0, 1, k.n - 1, k.p, k.q, (1 << (k.n.bit_length() - 1)) - 1]
    return edges + [rnd.randrange(k.n) for _ in range(count)]
