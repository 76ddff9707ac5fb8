"""Certification Authority public keys and the certificate revocation list (EMV 4.3 Book 2 §11.2).

The terminal holds, per RID, the CA public keys it accepts, identified by the
CA Public Key Index the card sends in tag 8F (Book 2 §5.2, §6.2). Each key
comes with its check value, SHA-1 over RID || index || modulus || exponent
(Book 2 §11.2.2), which :meth:`CapkStore.add` verifies so that a mistyped or
truncated key is refused when it is loaded rather than failing every card.

Keys come as JSON: a CA key file (read by
:func:`emvkit.terminal.config_files.load_capks`; this module parses, it reads
no file) or the terminal configuration's ``[[capk]]`` entries. A list of
objects (a single object is also accepted)::

    [
      {
        "rid": "A000000003",          # 5 bytes, hex
        "index": "92",                # 1 byte, hex
        "modulus": "996AF56F...",     # hex, at most 248 bytes, no leading 00
        "exponent": "03",             # hex: 03 or 010001 (Book 2 Annex B2.1)
        "checksum": "429C954A...",    # optional: 20 bytes, hex (SHA-1 check value)
        "expiry": "2029-12-31",       # optional: YYYY-MM-DD
        "description": "Visa test"    # optional, ignored
      }
    ]

An SM2 CA public key (UnionPay's PBOC 3.0 SM suite) names its algorithm and
gives the public key as x || y (64 bytes) instead of modulus and exponent;
its optional check value is SHA-1(RID || index || x || y), emvkit's choice
(``docs/capk.md``)::

    {"rid": "A000000333", "index": "E3", "algorithm": "sm2", "public_key": "95925BB0..."}

A revocation list file names revoked issuer certificates by the CA key that
signed them and their 3-byte Certificate Serial Number (Book 2 §5.3 step 10,
§6.3 step 10)::

    [{"rid": "A000000003", "index": "92", "serial": "00A1B2"}]

Two text layouts are also parsed (``emvkit capk import`` reads them; see
``docs/capk.md``), one key per line, ``#`` comments and blank lines ignored, hex
with or without ``:`` separators:

- the ``.keys`` layout, :func:`parse_keys_text`: ``RID INDEX EXPIRY rsa
  EXPONENT MODULUS sha1 CHECK-VALUE`` (EXPIRY YYMMDD, ``000000`` for none);
- one key per line hex, :func:`parse_hex_lines`: ``RID INDEX EXPONENT MODULUS
  [CHECK-VALUE]``.

Hex may contain spaces. Every malformed file raises :class:`ConfigError`
naming the file, the entry (``capk.json[2].modulus``) and what is wrong. Loading
a bad key is a configuration error; what a *card* gets wrong is an
:class:`~emvkit.terminal.kernel.oda.OdaFailure` value instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date

from emvkit.firmware.crypto.sm2 import SM2Error, decode_point
from emvkit.terminal.errors import ConfigError

__all__ = ["CaPublicKey", "CapkStore", "RevocationList", "parse_hex_lines", "parse_keys_text"]

MAX_MODULUS = 248  # N_CA <= 248 bytes, 1984 bits (Book 2 §5.1, §6.1)
EXPONENTS = (b"\x03", b"\x01\x00\x01")  # 3 and 2^16 + 1 (Book 2 Annex B2.1)

_CAPK_FIELDS = frozenset({"rid", "index", "modulus", "exponent", "checksum", "expiry", "description"})
_SM2_FIELDS = frozenset({"rid", "index", "algorithm", "public_key", "checksum", "expiry", "description"})
ALGORITHMS = ("rsa", "sm2")
SM2_KEY_LENGTH = 64  # x || y on sm2p256v1
_REVOCATION_FIELDS = frozenset({"rid", "index", "serial", "description"})


@dataclass(frozen=True)
class CaPublicKey:
    """One CA public key (Book 2 §11.2.2): RID, index, modulus, exponent, check value, expiry.

    ``algorithm`` is ``rsa`` (EMV) or ``sm2`` (PBOC 3.0 SM suite); an SM2 key
    has its public key x || y in ``modulus`` and an empty ``exponent``."""

    rid: bytes
    index: int
    modulus: bytes
    exponent: bytes
    checksum: bytes | None = None
    expiry: date | None = None
    algorithm: str = "rsa"

    def __post_init__(self) -> None:
        if len(self.rid) != 5:
            raise ValueError(f"a RID is 5 bytes, got {len(self.rid)}")
        if not 0 <= self.index <= 0xFF:
            raise ValueError(f"a CA public key index is one byte, got {self.index}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"a CA public key algorithm is one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.algorithm == "sm2":
            if len(self.modulus) != SM2_KEY_LENGTH or self.exponent:
                raise ValueError("an SM2 CA public key is x || y (64 bytes) without an exponent")
        elif not self.modulus or not self.exponent:
            raise ValueError("modulus and exponent must not be empty")
        if self.checksum is not None and len(self.checksum) != 20:
            raise ValueError(f"a CA public key check value is 20 bytes, got {len(self.checksum)}")

    @property
    def name(self) -> str:
        """``A000000003/92``: how messages refer to the key."""
        return f"{self.rid.hex().upper()}/{self.index:02X}"

    def compute_checksum(self) -> bytes:
        """SHA-1(RID || index || modulus || exponent), the key's check value (Book 2 §11.2.2)."""
        h = hashlib.sha1(self.rid)
        h.update(bytes((self.index,)))
        h.update(self.modulus)
        h.update(self.exponent)
        return h.digest()

    @property
    def checksum_ok(self) -> bool:
        """True when the key carries no check value or the check value matches."""
        return self.checksum is None or self.checksum == self.compute_checksum()


class CapkStore:
    """The terminal's CA public keys, looked up by (RID, index) (Book 2 §6.2)."""

    def __init__(self, keys: Iterable[CaPublicKey] = ()) -> None:
        self._keys: dict[tuple[bytes, int], CaPublicKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: CaPublicKey) -> None:
        """Add a key; :class:`ConfigError` if its check value is wrong or the (RID, index) is taken."""
        if key.checksum is not None and key.checksum != key.compute_checksum():
            raise ConfigError(
                f"CA public key {key.name}: checksum {key.checksum.hex().upper()} does not match "
                f"SHA-1(RID || index || modulus || exponent) = {key.compute_checksum().hex().upper()}"
            )
        slot = (key.rid, key.index)
        if slot in self._keys:
            raise ConfigError(f"CA public key {key.name} is defined twice")
        self._keys[slot] = key

    def get(self, rid: bytes, index: int) -> CaPublicKey | None:
        """The key for this RID and CA Public Key Index (tag 8F), or None."""
        return self._keys.get((bytes(rid), index))

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[CaPublicKey]:
        return iter(self._keys.values())

    @classmethod
    def from_json(cls, doc: object, where: str = "CA public keys") -> CapkStore:
        """Build a store from parsed JSON (the format in the module docstring)."""
        store = cls()
        for i, entry in enumerate(_entries(doc, where)):
            at = f"{where}[{i}]"
            algorithm = entry.get("algorithm", "rsa")
            if algorithm not in ALGORITHMS:
                raise ConfigError(f"{at}.algorithm: one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
            _check_fields(entry, _SM2_FIELDS if algorithm == "sm2" else _CAPK_FIELDS | {"algorithm"}, at)
            if algorithm == "sm2":
                key = _checked_sm2_key(
                    at, rid=_hex(entry, "rid", at, 5), index=_hex(entry, "index", at, 1)[0],
                    public_key=_hex(entry, "public_key", at, SM2_KEY_LENGTH),
                    checksum=_hex(entry, "checksum", at, 20) if "checksum" in entry else None,
                    expiry=_date(entry, "expiry", at) if "expiry" in entry else None)
                try:
                    store.add(key)
                except ConfigError as exc:
                    raise ConfigError(f"{at}: {exc}") from None
                continue
            key = _checked_key(
                at,
                rid=_hex(entry, "rid", at, 5),
                index=_hex(entry, "index", at, 1)[0],
                modulus=_hex(entry, "modulus", at),
                exponent=_hex(entry, "exponent", at),
                checksum=_hex(entry, "checksum", at, 20) if "checksum" in entry else None,
                expiry=_date(entry, "expiry", at) if "expiry" in entry else None,
            )
            try:
                store.add(key)
            except ConfigError as exc:
                raise ConfigError(f"{at}: {exc}") from None
        return store


class RevocationList:
    """Revoked issuer certificates: (RID, CA index, Certificate Serial Number) (Book 2 §6.3 step 10)."""

    def __init__(self, entries: Iterable[tuple[bytes, int, bytes]] = ()) -> None:
        self._revoked: set[tuple[bytes, int, bytes]] = set()
        for rid, index, serial in entries:
            self.add(rid, index, serial)

    def add(self, rid: bytes, index: int, serial: bytes) -> None:
        if len(rid) != 5 or not 0 <= index <= 0xFF or len(serial) != 3:
            raise ValueError("a revocation entry is a 5-byte RID, a one-byte index and a 3-byte serial")
        self._revoked.add((bytes(rid), index, bytes(serial)))

    def is_revoked(self, rid: bytes, index: int, serial: bytes) -> bool:
        return (bytes(rid), index, bytes(serial)) in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def __iter__(self) -> Iterator[tuple[bytes, int, bytes]]:
        return iter(sorted(self._revoked))

    @classmethod
    def from_json(cls, doc: object, where: str = "revocation list") -> RevocationList:
        out = cls()
        for i, entry in enumerate(_entries(doc, where)):
            at = f"{where}[{i}]"
            _check_fields(entry, _REVOCATION_FIELDS, at)
            out.add(_hex(entry, "rid", at, 5), _hex(entry, "index", at, 1)[0], _hex(entry, "serial", at, 3))
        return out


def _checked_key(at: str, rid: bytes, index: int, modulus: bytes, exponent: bytes, checksum: bytes | None,
                 expiry: date | None) -> CaPublicKey:
    """A key whose modulus, exponent and check value (when given) are what Book 2 allows."""
    if len(modulus) > MAX_MODULUS or modulus[0] == 0:
        raise ConfigError(f"{at}.modulus: {len(modulus)} bytes; a CA modulus is 1 to "
                          f"{MAX_MODULUS} bytes and does not start with 00")
    if exponent not in EXPONENTS:
        raise ConfigError(f"{at}.exponent: {exponent.hex().upper()}; EMV allows 03 or 010001")
    key = CaPublicKey(rid=rid, index=index, modulus=modulus, exponent=exponent, checksum=checksum, expiry=expiry)
    if not key.checksum_ok:
        raise ConfigError(f"{at}.checksum: does not match the key; "
                          f"SHA-1(RID || index || modulus || exponent) is "
                          f"{key.compute_checksum().hex().upper()}")
    return key


def _checked_sm2_key(at: str, rid: bytes, index: int, public_key: bytes, checksum: bytes | None,
                     expiry: date | None) -> CaPublicKey:
    """An SM2 CA key whose public key is a point of sm2p256v1 (and whose check value matches, when given)."""
    try:
        decode_point(b"\x04" + public_key)
    except SM2Error as exc:
        raise ConfigError(f"{at}.public_key: {exc}") from None
    key = CaPublicKey(rid=rid, index=index, modulus=public_key, exponent=b"", checksum=checksum, expiry=expiry,
                      algorithm="sm2")
    if not key.checksum_ok:
        raise ConfigError(f"{at}.checksum: does not match the key; SHA-1(RID || index || x || y) is "
                          f"{key.compute_checksum().hex().upper()}")
    return key


# --- the text layouts: one key per line ---

def _lines(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number from 1, whitespace-separated fields) of each line that is not blank or a comment."""
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if fields:
            yield number, fields


def _text_hex(text: str, at: str, name: str, size: int | None = None) -> bytes:
    return _hex({name: text.replace(":", "")}, name, at, size)


def parse_keys_text(text: str, where: str = "CA key file") -> list[CaPublicKey]:
    """The ``.keys`` layout: ``RID INDEX EXPIRY rsa EXPONENT MODULUS sha1 CHECK-VALUE`` per line.

    EXPIRY is YYMMDD (``000000``: none); the check value is required and verified.
    """
    keys = []
    for number, fields in _lines(text):
        at = f"{where}:{number}"
        if len(fields) != 8 or fields[3].lower() != "rsa" or fields[6].lower() != "sha1":
            raise ConfigError(f"{at}: expected RID INDEX EXPIRY rsa EXPONENT MODULUS sha1 CHECK-VALUE "
                              f"(8 fields), got {len(fields)} field(s)")
        keys.append(_checked_key(
            at, rid=_text_hex(fields[0], at, "rid", 5), index=_text_hex(fields[1], at, "index", 1)[0],
            modulus=_text_hex(fields[5], at, "modulus"), exponent=_text_hex(fields[4], at, "exponent"),
            checksum=_text_hex(fields[7], at, "checksum", 20), expiry=_yymmdd(fields[2], f"{at}.expiry")))
    return keys


def parse_hex_lines(text: str, where: str = "CA key file") -> list[CaPublicKey]:
    """One key per line hex: ``RID INDEX EXPONENT MODULUS [CHECK-VALUE]``; a check value given is verified."""
    keys = []
    for number, fields in _lines(text):
        at = f"{where}:{number}"
        if len(fields) not in (4, 5):
            raise ConfigError(f"{at}: expected RID INDEX EXPONENT MODULUS [CHECK-VALUE] (4 or 5 fields), "
                              f"got {len(fields)}")
        keys.append(_checked_key(
            at, rid=_text_hex(fields[0], at, "rid", 5), index=_text_hex(fields[1], at, "index", 1)[0],
            modulus=_text_hex(fields[3], at, "modulus"), exponent=_text_hex(fields[2], at, "exponent"),
            checksum=_text_hex(fields[4], at, "checksum", 20) if len(fields) == 5 else None, expiry=None))
    return keys


def _yymmdd(text: str, at: str) -> date | None:
    if text == "000000":
        return None
    if len(text) == 6 and text.isdigit():
        try:
            return date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))
        except ValueError:
            pass
    raise ConfigError(f"{at}: expected a date YYMMDD (000000 for none), got {text!r}")


# --- JSON field parsing: every fault is a ConfigError naming entry and field ---

def _entries(doc: object, where: str) -> list[dict[str, object]]:
    items = [doc] if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a JSON list of objects (or one object), got {type(doc).__name__}")
    for i, entry in enumerate(items):
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}[{i}]: expected an object, got {type(entry).__name__}")
    return items


def _check_fields(entry: dict[str, object], allowed: frozenset[str], at: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{at}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _hex(entry: dict[str, object], name: str, at: str, size: int | None = None) -> bytes:
    if name not in entry:
        raise ConfigError(f"{at}.{name}: missing")
    text = entry[name]
    if not isinstance(text, str):
        raise ConfigError(f"{at}.{name}: expected a hex string, got {type(text).__name__}")
    compact = "".join(text.split())
    try:
        value = bytes.fromhex(compact)
    except ValueError:
        raise ConfigError(f"{at}.{name}: not a hex string: {text!r}") from None
    if size is not None and len(value) != size:
        unit = "byte" if size == 1 else "bytes"
        raise ConfigError(f"{at}.{name}: expected {size} {unit} ({2 * size} hex digits), got {len(value)}")
    if not value:
        raise ConfigError(f"{at}.{name}: empty")
    return value


def _date(entry: dict[str, object], name: str, at: str) -> date:
    text = entry[name]
    if isinstance(text, str) and len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ConfigError(f"{at}.{name}: expected a date YYYY-MM-DD, got {text!r}")
