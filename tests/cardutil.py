"""Helpers for tests that talk to the card application directly.

Independent of the code under test on purpose: RSA recovery and the EMV
signature checks here are written out in a few lines (pow + SHA-1), so a bug
in emvkit's signer or in its terminal-side ODA cannot hide itself.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emvkit.firmware import tlv
from emvkit.firmware.payapp.card import Card
from emvkit.firmware.payapp.rng import CountingRandom
from emvkit.terminal.perso.builtin import capk_path, load_builtin

PPSE_SELECT = bytes.fromhex("00A404000E325041592E5359532E444446303100")


def select(aid: bytes, next_occurrence: bool = False) -> bytes:
    return bytes((0x00, 0xA4, 0x04, 0x02 if next_occurrence else 0x00, len(aid))) + aid + b"\x00"


def gpo(pdol_data: bytes) -> bytes:
    body = tlv.encode_tlv(0x83, pdol_data)
    return bytes((0x80, 0xA8, 0x00, 0x00, len(body))) + body + b"\x00"


def read_record(sfi: int, number: int) -> bytes:
    return bytes((0x00, 0xB2, number, (sfi << 3) | 4, 0x00))


def generate_ac(p1: int, data: bytes) -> bytes:
    return bytes((0x80, 0xAE, p1, 0x00, len(data))) + data + b"\x00"


def get_data(tag: int) -> bytes:
    return bytes((0x80, 0xCA, tag >> 8, tag & 0xFF, 0x00))


def internal_authenticate(data: bytes) -> bytes:
    return bytes((0x00, 0x88, 0x00, 0x00, len(data))) + data + b"\x00"


@dataclass
class Exchange:
    card: Card
    log: list[tuple[bytes, bytes]] = field(default_factory=list)

    def send(self, apdu: bytes) -> tuple[bytes, int]:
        response = self.card.process(apdu)
        self.log.append((apdu, response))
        return response[:-2], int.from_bytes(response[-2:], "big")

    def ok(self, apdu: bytes) -> bytes:
        data, sw = self.send(apdu)
        assert sw == 0x9000, f"{apdu.hex()} -> {sw:04X}"
        return data


def profile(name: str) -> dict[str, Any]:
    return copy.deepcopy(load_builtin(name))


def make_card(name: str | dict[str, Any], clock: Any = None) -> Exchange:
    doc = profile(name) if isinstance(name, str) else name
    return Exchange(Card(doc, rng=CountingRandom(), clock=clock))


def terminal_data(**overrides: bytes) -> dict[int, bytes]:
    """Typical terminal data for a contactless purchase of 10.00 EUR."""
    data = {
        0x9F66: bytes.fromhex("36004000"),  # TTQ: EMV mode, online capable, online PIN, signature
        0x9F02: bytes.fromhex("000000001000"),
        0x9F03: bytes(6),
        0x9F1A: bytes.fromhex("0250"),
        0x95: bytes(5),
        0x5F2A: bytes.fromhex("0978"),
        0x9A: bytes.fromhex("261127"),
        0x9C: b"\x00",
        0x9F37: bytes.fromhex("A1B2C3D4"),
        0x9F35: b"\x22",
        0x9F34: bytes.fromhex("1F0302"),
    }
    for key, value in overrides.items():
        data[int(key[1:], 16)] = value
    return data


def capk(rid: str) -> tuple[int, int]:
    """(modulus, exponent) of the built-in test CA of a RID."""
    for entry in json.loads(Path(capk_path()).read_text()):
        if entry["rid"] == rid:
            return int(entry["modulus"], 16), int(entry["exponent"], 16)
    raise KeyError(rid)


def rsa_recover(signature: bytes, n: int, e: int) -> bytes:
    """Independent EMV recovery: pow, then header 6A and trailer BC checks."""
    k = (n.bit_length() + 7) // 8
    assert len(signature) == k, "signature length differs from the modulus"
    block = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    assert block[0] == 0x6A and block[-1] == 0xBC, "bad header or trailer"
    return block


def check_hash(block: bytes, extra: bytes) -> bytes:
    """Check the SHA-1 in a recovered block; returns the recovered message."""
    message, digest = block[1:-21], block[-21:-1]
    assert hashlib.sha1(message + extra).digest() == digest, "hash mismatch"
    return message


def flat(data: bytes) -> dict[int, bytes]:
    return tlv.flatten(tlv.decode(data))
