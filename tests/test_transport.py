"""Transports by URL, the scripted card and the trace recorder."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from emvkit.terminal.errors import CardRemoved, ConfigError, ScriptMismatch, TransportError, UnknownScheme
from emvkit.terminal.transport import make_transport, open_transport
from emvkit.terminal.transport.scripted import Pattern, ScriptedTransport, parse_script
from emvkit.terminal.transport.trace import TraceTransport, load_trace

SELECT = bytes.fromhex("00A404000E325041592E5359532E444446303100")


def test_unknown_scheme_is_typed() -> None:
    with pytest.raises(UnknownScheme, match="no transport for scheme 'bogus'"):
        make_transport("bogus:thing")
    with pytest.raises(UnknownScheme, match="not a transport URL"):
        make_transport("no-colon")


def test_scripted_from_text_file(tmp_path: Path) -> None:
    script = tmp_path / "card.script"
    script.write_text(
        "# PPSE then a GPO with any unpredictable number\n"
        f"> {SELECT.hex()}\n< 6A82\n"
        "> 80A8000006 8304 ?? ?? ?? ?? 00\n< 7700 9000\n"
        "> 00B2010C00\n< !removed\n"
    )
    with open_transport(f"scripted:{script}") as card:
        assert card.transmit(SELECT) == b"\x6a\x82"
        assert card.transmit(bytes.fromhex("80A8000006830401020304 00".replace(" ", ""))) == bytes.fromhex(
            "77009000"
        )
        with pytest.raises(CardRemoved):
            card.transmit(bytes.fromhex("00B2010C00"))


def test_scripted_mismatch_names_step_and_both_apdus() -> None:
    card = ScriptedTransport([(SELECT, b"\x90\x00")])
    with card, pytest.raises(ScriptMismatch, match=r"step 1: expected 00A404.*got 00B2010C00"):
        card.transmit(bytes.fromhex("00B2010C00"))
    card2 = ScriptedTransport([])
    with card2, pytest.raises(ScriptMismatch, match="after the script ended"):
        card2.transmit(SELECT)


def test_transmit_on_closed_transport() -> None:
    with pytest.raises(TransportError, match="not open"):
        ScriptedTransport([(SELECT, b"\x90\x00")]).transmit(SELECT)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("> 00A4\n> 00B2\n", "command without a response"),
        ("< 9000\n", "response without a command"),
        ("> 00A4\n", "no response"),
        ("> 00A4\n< 90ZZ\n", "not hex"),
        ("= 00\n", "lines start with"),
        ("> 0A4\n< 9000\n", "odd number"),
    ],
)
def test_script_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_script(text)


def test_pattern_wildcards() -> None:
    p = Pattern("80 A8 ?? 00")
    assert p.matches(bytes.fromhex("80A8FF00")) and not p.matches(bytes.fromhex("80A8FF01"))
    assert not p.matches(bytes.fromhex("80A8FF0000"))
    assert str(p) == "80A8??00"


def test_trace_records_and_replays(tmp_path: Path) -> None:
    ticks = iter([1.0, 1.002, 2.0, 2.5, 3.0, 3.1])
    inner = ScriptedTransport([(SELECT, b"\x90\x00"), (b"\x00\xb2\x01\x0c\x00", b"\x6a\x83"), (SELECT, None)],
                              atr=bytes.fromhex("3B80800101"))
    traced = TraceTransport(inner, clock=lambda: next(ticks))
    with traced:
        traced.transmit(SELECT)
        traced.transmit(b"\x00\xb2\x01\x0c\x00")
        with pytest.raises(CardRemoved):
            traced.transmit(SELECT)
    assert [e.response for e in traced.exchanges] == [b"\x90\x00", b"\x6a\x83", None]
    assert traced.exchanges[0].elapsed_ms == pytest.approx(2.0)
    assert "removed" in (traced.exchanges[2].error or "")
    path = tmp_path / "t.json"
    traced.trace.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["format"] == "emvkit-trace" and doc["exchanges"][1]["response"] == "6A83"
    trace = load_trace(path)
    assert trace.atr == bytes.fromhex("3B80800101")
    with open_transport(f"scripted:{path}") as replay:
        assert replay.transmit(SELECT) == b"\x90\x00"
        assert replay.transmit(b"\x00\xb2\x01\x0c\x00") == b"\x6a\x83"
        with pytest.raises(CardRemoved):
            replay.transmit(SELECT)


def test_bad_trace_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_trace(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="not an emvkit-trace"):
        load_trace(bad)
    bad.write_text(json.dumps({"format": "emvkit-trace", "exchanges": [{"command": "zz"}]}))
    with pytest.raises(ConfigError, match="not hex"):
        load_trace(bad)
    with pytest.raises(ConfigError, match="no such script"):
        make_transport(f"scripted:{tmp_path / 'missing.json'}")
