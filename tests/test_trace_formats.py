"""Traces as pcap and pcapng (terminal/pcap.py): what tshark decodes of them, the round trips, and
malformed captures.

The tshark checks read the files as Wireshark does (link type 264, ``iso14443.subdissector`` set to
``iso7816``): every C-APDU of the tap in an I-block from the reader, every R-APDU with its status
word from the card, and CRC_A verified on every frame that carries one.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emvkit.terminal.cli import main
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.pcap import from_pcap, from_pcapng, to_pcap, to_pcapng
from emvkit.terminal.transport.trace import Exchange, Trace, load_trace, read_trace_file

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (make debs installs it)")

# A C-APDU and R-APDU written out by hand: SELECT PPSE, 6F.. 9000.
SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
FCI = bytes.fromhex("6F0A840E325041592E5359532E4444463031") + b"\x90\x00"


def tapped(tmp_path: Path, name: str) -> Path:
    """A real tap on the emulated Visa card with its trace written to ``name``."""
    path = tmp_path / name
    assert main(["tap", "--reader", "emu:visa", "--trace", str(path)]) == 0
    return path


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    assert TSHARK is not None
    args = [TSHARK, "-r", str(path), "-d", "iso14443.subdissector,iso7816", "-T", "fields", "-E", "separator=;"]
    for f in fields:
        args += ["-e", f]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    return [line.split(";") for line in done.stdout.splitlines()]


@needs_tshark
@pytest.mark.parametrize("suffix", [".pcapng", ".pcap"])
def test_tshark_sees_every_apdu_and_status_word(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                suffix: str) -> None:
    capture = tapped(tmp_path, "t" + suffix)
    capsys.readouterr()
    reference = tapped(tmp_path, "t.json")  # the same card, the same transaction: the same APDUs
    exchanges = load_trace(reference).exchanges
    rows = tshark_fields(capture, "iso14443.event", "iso14443.inf", "iso7816.apdu.sw1", "iso7816.apdu.sw2",
                         "iso14443.crc.status", "iso14443.crc.wrong")
    commands = [bytes.fromhex(r[1]) for r in rows if r[0] == "0xfe" and r[1]]
    responses = [(bytes.fromhex(r[1]), r[2], r[3]) for r in rows if r[0] == "0xff" and r[1]]
    assert [c[1] for c in commands] == [e.command[1] for e in exchanges]  # every instruction, in order
    assert len(responses) == len(exchanges) == 7
    for (data, sw1, sw2), e in zip(responses, exchanges, strict=True):
        assert e.response is not None and len(data) == len(e.response)
        assert int(sw1, 16) == e.response[-2] and int(sw2, 16) == e.response[-1]
    with_crc = [r for r in rows if r[0] in ("0xfe", "0xff")]
    assert with_crc and all(r[4] == "1" for r in with_crc)  # 1: good
    assert not any(r[5] for r in rows)


@needs_tshark
def test_tshark_flags_a_corrupted_crc(tmp_path: Path) -> None:
    """The CRC check above can fail: one flipped CRC byte is reported as wrong."""
    trace = Trace(exchanges=[Exchange(SELECT_PPSE, FCI, 1.0, 1.001)])
    data = bytearray(to_pcapng(trace))
    at = bytes(data).index(FCI) + len(FCI)  # the response's CRC_A follows its INF
    data[at] ^= 0xFF
    path = tmp_path / "bad.pcapng"
    path.write_bytes(bytes(data))
    rows = tshark_fields(path, "iso14443.event", "iso14443.crc.status")
    assert [r[1] for r in rows if r[0] == "0xff"][-1] == "0"  # 0: bad


def test_json_pcapng_json_is_unchanged(tmp_path: Path) -> None:
    source = tapped(tmp_path, "t.json")
    assert main(["trace", "convert", str(source), str(tmp_path / "t.pcapng")]) == 0
    assert main(["trace", "convert", str(tmp_path / "t.pcapng"), str(tmp_path / "back.json")]) == 0
    assert (tmp_path / "back.json").read_text() == source.read_text()
    assert (tmp_path / "back.json").stat().st_mode & 0o777 == 0o600


def test_pcapng_keeps_errors_and_pcap_loses_what_it_has_no_room_for() -> None:
    trace = Trace(atr=bytes.fromhex("3B8080010101"), meta={"reader": "emu:visa"}, exchanges=[
        Exchange(SELECT_PPSE, FCI, 10.5, 10.500125),
        Exchange(bytes.fromhex("80A8000002830000"), None, 10.6, 10.7, "card removed"),
    ])
    assert from_pcapng(to_pcapng(trace)).to_json() == trace.to_json()
    lossy = from_pcap(to_pcap(trace))
    assert lossy.atr == b"" and lossy.meta == {}
    assert [e.command for e in lossy.exchanges] == [SELECT_PPSE, bytes.fromhex("80A8000002830000")]
    assert lossy.exchanges[0].response == FCI and lossy.exchanges[1].error is None
    assert round((lossy.exchanges[0].t_end - lossy.exchanges[0].t_start) * 1e6) == 125


def test_chained_i_blocks_and_r_blocks_are_joined() -> None:
    """A capture with the C-APDU chained in two I-blocks and an R(ACK) between them reads as one exchange."""
    from emvkit.terminal.iso14443 import crc_a

    def frame(event: int, body: bytes, t: int) -> bytes:
        record = struct.pack(">BBH", 0, event, len(body) + 2) + body + crc_a(body)
        return struct.pack("<IIII", 0, t, len(record), len(record)) + record

    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 0xFFFF, 264)
    data = header + frame(0xFE, b"\x12" + SELECT_PPSE[:10], 1) + frame(0xFF, b"\xA2", 2) \
        + frame(0xFE, b"\x03" + SELECT_PPSE[10:], 3) + frame(0xFF, b"\x03" + FCI, 4)
    (e,) = from_pcap(data).exchanges
    assert (e.command, e.response, e.t_start, e.t_end) == (SELECT_PPSE, FCI, 1e-6, 4e-6)


apdus = st.binary(min_size=4, max_size=260)


@given(st.lists(st.tuples(apdus, st.one_of(st.none(), st.binary(min_size=2, max_size=258)),
                          st.integers(0, 10**9), st.integers(0, 10**6)), max_size=6))
def test_pcapng_round_trip_property(items: list[tuple[bytes, bytes | None, int, int]]) -> None:
    exchanges = []
    t = 1_000_000
    for command, response, gap, took in items:
        t += gap
        error = "card removed" if response is None else None
        exchanges.append(Exchange(command, response, t / 1e6, (t + took) / 1e6, error))
        t += took
    trace = Trace(atr=bytes.fromhex("3B8080010101"), meta={"amount": "1.00"}, exchanges=exchanges)
    assert from_pcapng(to_pcapng(trace)).to_json() == trace.to_json()


@pytest.mark.parametrize(("name", "content", "says"), [
    ("empty.pcapng", b"", "not a pcapng file"),
    ("short.pcap", b"\xd4\xc3\xb2\xa1", "not a pcap file"),
    ("truncated.pcapng", None, "truncated"),
    ("ethernet.pcap", struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 0xFFFF, 1), "link type 1"),
    ("garbage.json", b"{not json", "invalid JSON"),
    ("wrong.json", b'{"format": "emvkit-trace", "exchanges": [{"command": "00", "t_start": "x"}]}',
     "t_start: expected a number"),
    ("trace.txt", b"", "a trace file name ends in"),
])
def test_malformed_trace_files(tmp_path: Path, name: str, content: bytes | None, says: str) -> None:
    path = tmp_path / name
    if content is None:
        content = to_pcapng(Trace(exchanges=[Exchange(SELECT_PPSE, FCI, 1.0, 2.0)]))[:-7]
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=says):
        read_trace_file(path)
