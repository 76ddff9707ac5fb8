"""ISO 7816-4 APDU encoding and the Channel's 61xx / 6Cxx handling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emvkit.terminal.apdu import Channel, CommandAPDU, ResponseAPDU, sw_meaning
from emvkit.terminal.errors import APDUError, ScriptMismatch
from emvkit.terminal.transport.scripted import ScriptedTransport


@pytest.mark.parametrize(
    ("hexstr", "case", "data", "le", "extended"),
    [
        ("00A40400", 1, "", None, False),
        ("00B2010C00", 2, "", 256, False),
        ("00B2010C10", 2, "", 16, False),
        ("80AE80001D" + "00" * 29, 3, "00" * 29, None, False),
        ("00A404000E325041592E5359532E444446303100", 4, "325041592E5359532E4444463031", 256, False),
        ("00B0000000FFFF", 2, "", 65535, True),
        ("00B00000000000", 2, "", 65536, True),
        ("00D600000000030102030000", 4, "010203", 65536, True),
        ("00D60000000003010203", 3, "010203", None, True),
    ],
)
def test_cases_round_trip(hexstr: str, case: int, data: str, le: int | None, extended: bool) -> None:
    cmd = CommandAPDU.from_bytes(bytes.fromhex(hexstr))
    assert cmd.case == case
    assert cmd.data == bytes.fromhex(data)
    assert cmd.le == le
    assert cmd.extended == extended
    assert cmd.to_bytes() == bytes.fromhex(hexstr)


def test_extended_case_4() -> None:
    data = bytes(300)
    cmd = CommandAPDU(0x00, 0x2A, 0x80, 0x86, data, le=65536, extended=True)
    raw = cmd.to_bytes()
    assert raw[:7] == bytes.fromhex("002A808600012C")
    assert raw[-2:] == b"\x00\x00"
    assert CommandAPDU.from_bytes(raw) == cmd


@pytest.mark.parametrize(
    "hexstr",
    ["00A404", "00A4040005AABB", "00A4040002AABBCCDD", "00B000000000", "0000000000000005AA"],
)
def test_malformed_commands_rejected(hexstr: str) -> None:
    with pytest.raises(APDUError):
        CommandAPDU.from_bytes(bytes.fromhex(hexstr))


def test_field_range_checks() -> None:
    with pytest.raises(APDUError):
        CommandAPDU(0x100, 0, 0, 0)
    with pytest.raises(APDUError):
        CommandAPDU(0, 0, 0, 0, bytes(256))
    with pytest.raises(APDUError):
        CommandAPDU(0, 0, 0, 0, le=257)


@given(
    st.integers(0, 255), st.integers(0, 255), st.binary(max_size=255),
    st.one_of(st.none(), st.integers(1, 256)),
)
def test_short_round_trip(ins: int, p1: int, data: bytes, le: int | None) -> None:
    cmd = CommandAPDU(0x80, ins, p1, 0, data, le)
    assert CommandAPDU.from_bytes(cmd.to_bytes()) == cmd


def test_response_apdu() -> None:
    r = ResponseAPDU.from_bytes(bytes.fromhex("6F009000"))
    assert r.data == b"\x6f\x00" and r.sw == 0x9000 and r.ok
    with pytest.raises(APDUError):
        ResponseAPDU.from_bytes(b"\x90")
    assert sw_meaning(0x6A82) == "file or application not found"
    assert "3 tries left" in sw_meaning(0x63C3)
    assert "16 more bytes" in sw_meaning(0x6110)


SELECT = bytes.fromhex("00A404000E325041592E5359532E444446303100")


def test_channel_get_response_chain() -> None:
    card = ScriptedTransport([
        (SELECT, bytes.fromhex("6F05") + bytes.fromhex("6105")),
        (bytes.fromhex("00C0000005"), bytes.fromhex("8403AABBCC6102")),
        (bytes.fromhex("00C0000002"), bytes.fromhex("DDEE9000")),
    ])
    with card:
        r = Channel(card).transmit(SELECT)
    assert r.data == bytes.fromhex("6F058403AABBCCDDEE") and r.sw == 0x9000
    assert card.finished


def test_channel_wrong_le_resend() -> None:
    read = bytes.fromhex("00B2010C00")
    card = ScriptedTransport([
        (read, bytes.fromhex("6C1A")),
        (bytes.fromhex("00B2010C1A"), bytes(26) + b"\x90\x00"),
    ])
    with card:
        r = Channel(card).transmit(read)
    assert r.data == bytes(26) and r.ok and card.finished


def test_channel_gives_up_on_endless_61xx() -> None:
    steps: list[tuple[bytes, bytes | None]] = [(SELECT, b"\x61\x01")]
    steps += [(bytes.fromhex("00C0000001"), b"\xaa\x61\x01")] * Channel.MAX_CHAINED
    card = ScriptedTransport(steps)
    with card, pytest.raises(APDUError, match="61xx"):
        Channel(card).transmit(SELECT)


def test_channel_passes_errors_through() -> None:
    card = ScriptedTransport([(SELECT, b"\x6a\x82")])
    with card:
        r = Channel(card).transmit(SELECT)
    assert r.sw == 0x6A82 and r.data == b""
    with card, pytest.raises(ScriptMismatch):
        Channel(card).transmit(SELECT)
