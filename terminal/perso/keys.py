"""Test RSA keys and the CA public key a terminal needs.

Keys are generated with ``cryptography`` and held in CRT form as
:class:`emvkit.firmware.crypto.rsa.RSAPrivateKey`, the form a card profile stores.
"""

from __future__ import annotations

import hashlib
import secrets

from cryptography.hazmat.primitives.asymmetric import rsa

from emvkit.firmware.crypto import sm2
from emvkit.firmware.crypto.rsa import RSAPrivateKey

__all__ = ["ca_public_key", "generate_rsa", "generate_sm2", "sm2_ca_public_key"]

# EMV allows public exponents 3 and 2^16 + 1 (Book 2 §5.1, §11.2.1).
EXPONENT = 3
CA_BITS_DEFAULT = 1152


def generate_rsa(bits: int, exponent: int = EXPONENT) -> RSAPrivateKey:
    """A fresh RSA key of ``bits`` bits in CRT form."""
    key = rsa.generate_private_key(public_exponent=exponent, key_size=bits)
    numbers = key.private_numbers()
    return RSAPrivateKey(
        n=numbers.public_numbers.n,
        e=numbers.public_numbers.e,
        p=numbers.p,
        q=numbers.q,
        dp=numbers.dmp1,
        dq=numbers.dmq1,
        qinv=numbers.iqmp,
    )


def exponent_bytes(e: int) -> bytes:
    return e.to_bytes(1 if e < 256 else 3, "big")


def ca_public_key(rid: bytes, index: int, key: RSAPrivateKey) -> dict[str, str]:
    """The terminal's CA public key entry, with its SHA-1 check value over
    RID || index || modulus || exponent (EMV Book 2 §11.2.2)."""
    modulus = key.modulus()
    exponent = exponent_bytes(key.e)
    checksum = hashlib.sha1(rid + bytes((index,)) + modulus + exponent).digest()
    return {
        "rid": rid.hex().upper(),
        "index": f"{index:02X}",
        "modulus": modulus.hex().upper(),
        "exponent": exponent.hex().upper(),
        "checksum": checksum.hex().upper(),
    }


def generate_sm2() -> sm2.SM2PrivateKey:
    """A fresh SM2 key on sm2p256v1: d uniform in [1, n-2]."""
    n = sm2.SM2P256V1.n
    return sm2.SM2PrivateKey(1 + secrets.randbelow(n - 2))


def sm2_ca_public_key(rid: bytes, index: int, key: sm2.SM2PrivateKey) -> dict[str, str]:
    """The terminal's entry for an SM2 CA public key (``docs/capk.md``): the
    key as x || y, with emvkit's check value SHA-1(RID || index || x || y)."""
    public = key.public_bytes()
    return {
        "rid": rid.hex().upper(),
        "index": f"{index:02X}",
        "algorithm": "sm2",
        "public_key": public.hex().upper(),
        "checksum": hashlib.sha1(rid + bytes((index,)) + public).digest().hex().upper(),
    }
