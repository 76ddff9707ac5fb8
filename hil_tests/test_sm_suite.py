"""UnionPay's SM suite (PBOC 3.0) on kernel 7: the built-in ``unionpay-sm``
card taps offline with SM2/SM3 fDDA, and each way that fails, at 10.00 (an
amount the card approves offline):

- **approved:** the terminal says it supports the suite (``DF69`` = ``01`` in
  the PDOL data); the card signs its dynamic data with SM2 (SDAD format 15),
  the kernel opens the SM issuer (format 12) and ICC (format 14) certificates
  under the SM2 test CA ``A000000333/E3`` and verifies the signature;
- **tampered signature:** a recorded tap replayed with one bit of the SM2
  signature in ``9F4B`` flipped: ``sdad_signature``;
- **wrong CA key:** the terminal holds another SM2 key under ``E3``: the
  issuer certificate's signature does not verify;
- **no SM support in the terminal** (``sm_algorithms = false``, ``DF69`` =
  ``00``): the SM-only card refuses GET PROCESSING OPTIONS (6985) for each of
  its two applications, Entry Point selects the next, and none is left.

ODA failures set TVR byte 1 b4 "DDA failed" (fDDA is a DDA) and TSI "ODA
performed"; the card's CTQ says "go online if ODA fails", so the terminal
goes online (Book C-7, as for the RSA cards in test_oda_failures.py).
"""

from __future__ import annotations

import dataclasses

from emvkit.firmware import tlv
from emvkit.hil.dut import Dut, replay
from emvkit.terminal.bitmaps import CTQ_BITS, TSI_BITS, is_set
from emvkit.terminal.config_files import load_config
from emvkit.terminal.kernel.capk import CapkStore, CaPublicKey
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.perso.keys import generate_sm2
from emvkit.terminal.session import Tap

CARD = "unionpay-sm"
AMOUNT = 1000
SM_CA = (bytes.fromhex("A000000333"), 0xE3)  # the built-in SM2 test CA
DDA_FAILED = bytes.fromhex("0800000000")  # TVR byte 1 b4, and nothing else at 10.00


def gpo_objects(tap: Tap) -> tuple[bytes, dict[int, bytes]]:
    """The GET PROCESSING OPTIONS command and the data objects of its (77) response."""
    gpo = next(e for e in tap.trace.exchanges if e.command[1] == 0xA8)
    assert gpo.response is not None and gpo.response[-2:] == b"\x90\x00"
    (template,) = tlv.decode(gpo.response[:-2])
    assert template.tag == 0x77 and template.children is not None
    return gpo.command, {n.tag: n.value for n in template.children}


def assert_fdda_failed(tap: Tap, code: str) -> None:
    r = tap.result
    assert (r.kernel, r.oda, r.oda_result) == (7, "fDDA", code)
    assert r.tvr == DDA_FAILED
    assert is_set(r.tsi, TSI_BITS, "ODA_PERFORMED")
    assert is_set(r.data[0x9F6C], CTQ_BITS, "GO_ONLINE_IF_ODA_FAILS")
    assert r.outcome.outcome is Outcome.ONLINE_REQUEST


def test_sm2_fdda_offline_approval(dut: Dut) -> None:
    tap = dut.tap(AMOUNT, card=CARD)
    r = tap.result
    assert r.outcome.outcome is Outcome.APPROVED and r.cid == b"\x40"
    assert (r.kernel, r.oda, r.oda_result) == (7, "fDDA", "successful")
    assert r.tvr == bytes(5)
    # (owner, format, hash algorithm 04 = SM3, key algorithm 04 = SM2, key length 64, hash matched)
    assert [(c.owner, c.format, c.hash_algorithm, c.key_algorithm, c.key_length, c.hash_matched)
            for c in r.oda_certificates] == [("issuer", 0x12, 4, 4, 64, True), ("icc", 0x14, 4, 4, 64, True)]
    command, objects = gpo_objects(tap)
    assert command[-2:-1] == b"\x01"  # DF69 01 ends the PDOL data: the terminal supports the suite
    sdad = objects[0x9F4B]
    assert sdad[0] == 0x15 and len(sdad) == 2 + sdad[1] + 64  # format 15: ICC dynamic data, then r || s


def test_tampered_sm2_signature_fails_fdda(dut: Dut) -> None:
    script = dut.record(CARD, AMOUNT)
    index = next(i for i, e in enumerate(script.tap.trace.exchanges) if e.command[1] == 0xA8)
    (template,) = tlv.decode(script.response_data(index))
    assert template.children is not None
    sdad = tlv.find(template.children, 0x9F4B)
    assert sdad is not None
    sdad.value = sdad.value[:-1] + bytes((sdad.value[-1] ^ 0x01,))  # the last byte of s
    steps = list(script.steps)
    control, scripted = replay(steps, AMOUNT)
    assert scripted.finished and control.result.outcome.outcome is Outcome.APPROVED  # the replay as recorded
    steps[index] = (steps[index][0], tlv.encode([template]) + b"\x90\x00")
    tap, scripted = replay(steps, AMOUNT)
    assert scripted.finished
    assert_fdda_failed(tap, "sdad_signature")


def config_with_ca(key: CaPublicKey | None) -> TerminalConfig:
    """The default terminal with ``key`` in the SM2 test CA's place (None: no key there)."""
    config = load_config()
    others = [k for k in config.capks if (k.rid, k.index) != SM_CA]
    assert len(others) == len(config.capks) - 1, "the default terminal holds the SM2 test CA"
    config.capks = CapkStore(others + ([key] if key is not None else []))
    return config


def test_wrong_sm2_ca_key_fails_fdda(dut: Dut) -> None:
    other = CaPublicKey(rid=SM_CA[0], index=SM_CA[1], modulus=generate_sm2().public_bytes(), exponent=b"",
                        algorithm="sm2")
    tap = dut.tap(AMOUNT, card=CARD, config=config_with_ca(other))
    assert_fdda_failed(tap, "issuer_certificate_signature")


def test_missing_sm2_ca_key_fails_fdda(dut: Dut) -> None:
    tap = dut.tap(AMOUNT, card=CARD, config=config_with_ca(None))
    assert_fdda_failed(tap, "capk_missing")


def test_terminal_without_sm_support_selects_next_then_ends(dut: Dut) -> None:
    config = dataclasses.replace(load_config(), sm_algorithms=False)
    tap = dut.tap(AMOUNT, card=CARD, config=config)
    exchanges = [(e.command[1], e.response[-2:] if e.response else None) for e in tap.trace.exchanges]
    # PPSE; then for each application: SELECT, GPO with DF69 00 refused with 6985, Select Next.
    assert exchanges == [(0xA4, b"\x90\x00"), (0xA4, b"\x90\x00"), (0xA8, b"\x69\x85"),
                         (0xA4, b"\x90\x00"), (0xA8, b"\x69\x85")]
    gpos = [e.command for e in tap.trace.exchanges if e.command[1] == 0xA8]
    assert all(c[-2:-1] == b"\x00" for c in gpos)  # DF69 00 ends the PDOL data
    assert [s.name for s in tap.result.steps].count("Select Next") == 2
    assert tap.result.outcome.outcome is Outcome.END_APPLICATION
