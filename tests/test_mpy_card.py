"""The same card application under the real MicroPython: byte-identical to emu:.

Each scheme's transaction script runs against ``emu:<card>?rng=counting`` and
``mpy:<card>?rng=counting``; every response must be the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from emvkit.firmware import tlv
from emvkit.terminal.errors import CardRemoved, ConfigError
from emvkit.terminal.transport import Transport, open_transport
from tests.cardutil import (
    PPSE_SELECT,
    generate_ac,
    get_data,
    gpo,
    internal_authenticate,
    read_record,
    select,
    terminal_data,
)

PDOL = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")
CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F35019F3403")


def transaction(card: Transport, aid: str) -> list[bytes]:
    """A full transaction; the script follows the card's own AFL."""
    out = [card.transmit(PPSE_SELECT), card.transmit(select(bytes.fromhex(aid)))]
    fci = tlv.decode(out[-1][:-2])
    pdol = tlv.find_value(fci, 0x9F38, b"") or b""
    out.append(card.transmit(gpo(tlv.build_dol(pdol, terminal_data()))))
    afl = tlv.find_value(tlv.decode(out[-1][:-2]), 0x94) or b""
    for i in range(0, len(afl), 4):
        for number in range(afl[i + 1], afl[i + 2] + 1):
            out.append(card.transmit(read_record(afl[i] >> 3, number)))
    out.append(card.transmit(generate_ac(0x90, tlv.build_dol(CDOL1, terminal_data()))))
    out.append(card.transmit(internal_authenticate(bytes.fromhex("01020304"))))
    out += [card.transmit(get_data(0x9F36)), card.transmit(read_record(11, 1))]
    return out


@pytest.mark.parametrize(
    ("name", "aid"),
    [("visa", "A0000000031010"), ("mastercard", "A0000000041010"), ("unionpay", "A000000333010101"),
     ("wearable", "A0000000031010")],
)
def test_emulator_and_micropython_answer_byte_for_byte(name: str, aid: str) -> None:
    with open_transport(f"emu:{name}?rng=counting") as emu:
        expected = transaction(emu, aid)
    with open_transport(f"mpy:{name}?rng=counting") as mpy:
        got = transaction(mpy, aid)
    assert [r.hex() for r in got] == [r.hex() for r in expected]
    assert sum(1 for r in got if r[-2:] == b"\x90\x00") >= 6


def test_micropython_transport_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read profile .*none\.json: No such file"):
        open_transport(f"mpy:{tmp_path / 'none.json'}")
    with pytest.raises(ConfigError, match="nocard: neither a built-in card"):
        open_transport("mpy:nocard")
    with pytest.raises(ConfigError, match="unknown option"):
        open_transport("mpy:visa?tear=1")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "emvkit-card", "version": 1, "applications": []}')
    with pytest.raises(Exception, match="firmware did not start"):
        open_transport(f"mpy:{bad}")


def test_firmware_killed_mid_transaction_is_card_removed() -> None:
    card = open_transport("mpy:visa")
    try:
        assert card.transmit(PPSE_SELECT)[-2:] == b"\x90\x00"
        card._proc.kill()  # type: ignore[attr-defined]
        card._proc.wait()  # type: ignore[attr-defined]
        with pytest.raises(CardRemoved):
            card.transmit(PPSE_SELECT)
    finally:
        card.close()
