"""CA public key store and revocation list (terminal/kernel/capk.py)."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from emvkit.terminal.config_files import load_capks, load_revocations
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.kernel.capk import CapkStore, CaPublicKey, RevocationList

VECTORS = Path(__file__).parent / "vectors" / "oda"
RID = bytes.fromhex("A000000003")
MODULUS = bytes.fromhex("C1" + "5A" * 127)


def entry(**changes: Any) -> dict[str, Any]:
    """A well-formed JSON entry (with its correct checksum), then `changes`."""
    checksum = hashlib.sha1(RID + b"\xe1" + MODULUS + b"\x03").hexdigest().upper()
    doc: dict[str, Any] = {"rid": "A000000003", "index": "E1", "modulus": MODULUS.hex().upper(),
                           "exponent": "03", "checksum": checksum, "expiry": "2030-12-31"}
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def test_checksum_is_sha1_of_rid_index_modulus_exponent() -> None:
    key = CaPublicKey(RID, 0xE1, MODULUS, b"\x01\x00\x01")
    independent = hashlib.sha1(bytes.fromhex("A000000003E1") + MODULUS + bytes.fromhex("010001")).digest()
    assert key.compute_checksum() == independent
    assert key.checksum_ok  # no check value to compare
    assert CaPublicKey(RID, 0xE1, MODULUS, b"\x01\x00\x01", checksum=independent).checksum_ok
    assert not CaPublicKey(RID, 0xE1, MODULUS, b"\x03", checksum=independent).checksum_ok


def test_store_add_get_len_iter() -> None:
    a = CaPublicKey(RID, 0x92, MODULUS, b"\x03")
    b = CaPublicKey(bytes.fromhex("A000000004"), 0x92, MODULUS, b"\x03")
    store = CapkStore([a])
    store.add(b)
    assert len(store) == 2 and list(store) == [a, b]
    assert store.get(RID, 0x92) is a
    assert store.get(bytearray(RID), 0x92) is a
    assert store.get(RID, 0x93) is None
    assert store.get(bytes.fromhex("A000000005"), 0x92) is None


def test_store_refuses_a_bad_checksum_and_duplicates() -> None:
    store = CapkStore()
    with pytest.raises(ConfigError, match="A000000003/92: checksum"):
        store.add(CaPublicKey(RID, 0x92, MODULUS, b"\x03", checksum=bytes(20)))
    store.add(CaPublicKey(RID, 0x92, MODULUS, b"\x03"))
    with pytest.raises(ConfigError, match="defined twice"):
        store.add(CaPublicKey(RID, 0x92, MODULUS, b"\x03"))


def test_key_invariants_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        CaPublicKey(RID[:4], 1, MODULUS, b"\x03")
    with pytest.raises(ValueError):
        CaPublicKey(RID, 256, MODULUS, b"\x03")
    with pytest.raises(ValueError):
        CaPublicKey(RID, 1, MODULUS, b"\x03", checksum=b"\x00")


def test_from_json_list_and_single_object() -> None:
    store = CapkStore.from_json([entry(), entry(index="E2", checksum=None, expiry=None, description="x")])
    key = store.get(RID, 0xE1)
    assert key is not None and key.expiry == date(2030, 12, 31) and key.modulus == MODULUS
    second = store.get(RID, 0xE2)
    assert second is not None and second.checksum is None and second.expiry is None
    assert len(CapkStore.from_json(entry(modulus=" ".join([MODULUS.hex()[i:i + 2] for i in range(0, 256, 2)])))) == 1


@pytest.mark.parametrize(("doc", "message"), [
    ([entry(modulus=None)], r"\[0\]\.modulus: missing"),
    ([entry(), entry(index="E2", modulus="C1XZ")], r"\[1\]\.modulus: not a hex string"),
    ([entry(modulus="00" + MODULUS.hex())], r"\[0\]\.modulus: .*does not start with 00"),
    ([entry(modulus="C1" * 249)], r"\[0\]\.modulus: 249 bytes"),
    ([entry(rid="A0000003")], r"\[0\]\.rid: expected 5 bytes"),
    ([entry(index="0E1")], r"\[0\]\.index: not a hex string"),
    ([entry(index="00E1")], r"\[0\]\.index: expected 1 byte "),
    ([entry(index=225)], r"\[0\]\.index: expected a hex string, got int"),
    ([entry(exponent="05")], r"\[0\]\.exponent: 05"),
    ([entry(exponent="")], r"\[0\]\.exponent: empty"),
    ([entry(checksum="00" * 20)], r"\[0\]\.checksum: does not match"),
    ([entry(checksum="00" * 19)], r"\[0\]\.checksum: expected 20 bytes"),
    ([entry(expiry="31/12/2030")], r"\[0\]\.expiry: expected a date YYYY-MM-DD"),
    ([entry(expiry="2030-02-30")], r"\[0\]\.expiry"),
    ([entry(exponant="03")], r"\[0\]: unknown field 'exponant'"),
    ([entry(), entry()], r"\[1\]: CA public key A000000003/E1 is defined twice"),
    (["A000000003"], r"\[0\]: expected an object, got str"),
    ("A000000003", r": expected a JSON list of objects"),
])
def test_bad_capk_json_names_entry_and_field(doc: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^keys\.json" + message):
        CapkStore.from_json(copy.deepcopy(doc), "keys.json")


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "capk.json"
    path.write_text(json.dumps([entry()]))
    assert len(load_capks(path)) == 1
    path.write_text(json.dumps([entry(checksum="11" * 20)]))
    with pytest.raises(ConfigError, match=r"capk\.json\[0\]\.checksum"):
        load_capks(path)
    path.write_text("[{")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_capks(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_capks(tmp_path / "absent.json")


def test_published_visa_test_keys() -> None:
    """Visa test CAPKs 92, 95, 99 with their published check values (see vectors/oda/README.md)."""
    store = load_capks(VECTORS / "visa_test_capks.json")  # add() verifies every checksum
    assert len(store) == 3
    sizes = {0x92: 176, 0x95: 144, 0x99: 128}
    for key in store:
        assert key.checksum is not None and key.checksum_ok
        assert len(key.modulus) == sizes[key.index] and key.exponent == b"\x03"
        raw = RID + bytes((key.index,)) + key.modulus + key.exponent
        assert hashlib.sha1(raw).digest() == key.checksum
    key92 = store.get(RID, 0x92)
    assert key92 is not None
    assert key92.checksum == bytes.fromhex("429C954A3859CEF91295F663C963E582ED6EB253")
    assert key92.modulus.startswith(bytes.fromhex("996AF56F569187D0"))


def test_revocation_list() -> None:
    crl = RevocationList.from_json([{"rid": "A000000003", "index": "92", "serial": "00A1B2"},
                                    {"rid": "A000000004", "index": "F1", "serial": "000001"}])
    assert len(crl) == 2
    assert crl.is_revoked(RID, 0x92, bytes.fromhex("00A1B2"))
    assert not crl.is_revoked(RID, 0x92, bytes.fromhex("00A1B3"))
    assert not crl.is_revoked(RID, 0x95, bytes.fromhex("00A1B2"))
    single = RevocationList.from_json({"rid": "A000000003", "index": "92", "serial": "00A1B2"})
    assert list(single) == [(RID, 0x92, bytes.fromhex("00A1B2"))]


@pytest.mark.parametrize(("doc", "message"), [
    ([{"rid": "A000000003", "index": "92", "serial": "A1B2"}], r"\[0\]\.serial: expected 3 bytes"),
    ([{"rid": "A000000003", "index": "92"}], r"\[0\]\.serial: missing"),
    ([{"rid": "A000000003", "index": "92", "serial": "00A1B2", "ca": 1}], r"\[0\]: unknown field 'ca'"),
])
def test_bad_revocation_json(doc: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^crl\.json" + message):
        RevocationList.from_json(doc, "crl.json")


def test_revocation_load(tmp_path: Path) -> None:
    path = tmp_path / "crl.json"
    path.write_text('[{"rid": "A000000003", "index": "92", "serial": "00 A1 B2"}]')
    assert load_revocations(path).is_revoked(RID, 0x92, bytes.fromhex("00A1B2"))
    with pytest.raises(ValueError):
        RevocationList([(RID, 0x92, b"\x01")])
