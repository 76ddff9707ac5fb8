"""``emvkit capk``: the shipped keys' check values, import in each layout, refusals, removal, and the imported
keys used by ``tap`` with no ``capk_files`` in the configuration; the real-reader default of ``--host``.

Each test has its own ``$XDG_DATA_HOME`` (tests/conftest.py), so imports never touch the user's keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from emvkit.terminal.capk import user_capk_file
from emvkit.terminal.cli import main
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.emulator.serial_server import TcpLinkServer
from tests.conftest import ROOT

SHIPPED = ROOT / "terminal" / "capk"
# A published Visa test key (VSDC CA Public Test Key, 1152 bits) and its published check value.
VISA_95 = {
    "rid": "A000000003", "index": "95", "exponent": "03",
    "modulus": "BE9E1FA5E9A803852999C4AB432DB28600DCD9DAB76DFAAA47355A0FE37B1508AC6BF38860D3C6C2E5B12A3CAAF2A7005A7241E"
    "BAA7771112C74CF9A0634652FBCA0E5980C54A64761EA101A114E0F0B5572ADD57D010B7C9C887E104CA4EE1272DA66D997B9A90B5A6"
    "D624AB6C57E73C8F919000EB5F684898EF8C3DBEFB330C62660BED88EA78E909AFF05F6DA627B",
    "checksum": "EE1511CEC71020A9B90443B37B1D5F6E703030F6",
}


def _sha1(entry: dict[str, str]) -> str:
    fields = (entry["rid"], entry["index"], entry["modulus"], entry["exponent"])
    return hashlib.sha1(b"".join(bytes.fromhex(f) for f in fields)).hexdigest().upper()


def _listed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["capk", "list", "--json"]) == 0
    rows: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return rows


@pytest.mark.parametrize("kind", ["test", "production"])
def test_every_shipped_key_has_its_published_check_value(kind: str) -> None:
    entries = json.loads((SHIPPED / f"{kind}.json").read_text())
    assert entries
    for entry in entries:
        assert _sha1(entry) == entry["checksum"], f"{entry['rid']}/{entry['index']}"
        assert entry["description"], "every shipped key says where it comes from"
    rids = {e["rid"] for e in entries}
    assert {"A000000003", "A000000004"} <= rids


def test_list_marks_built_in_test_and_production(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _listed(capsys)
    sources = {(r["key"], r["source"]) for r in rows}
    assert ("A000000003/92", "test") in sources
    assert ("A000000004/05", "production") in sources
    assert ("A000000333/09", "production") in sources
    assert all(r["used"] for r in rows)


def test_import_each_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = VISA_95
    as_json = tmp_path / "k.json"
    as_json.write_text(json.dumps([key]))
    colons = ":".join(key["modulus"][i:i + 2] for i in range(0, len(key["modulus"]), 2))
    as_keys = tmp_path / "k.keys"
    as_keys.write_text(f"# a comment\na0:00:00:00:03 95 000000 rsa 03 {colons.lower()} sha1 {key['checksum']}\n")
    as_hex = tmp_path / "k.txt"
    as_hex.write_text(f"{key['rid']} 96 {key['exponent']} {key['modulus']} "
                      f"{_sha1({**key, 'index': '96'})}\n\n")
    for path in (as_json, as_keys, as_hex):
        assert main(["capk", "import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "A000000003/95: imported" in out and "A000000003/95: unchanged" in out
    assert "A000000003/96: imported" in out
    rows = _listed(capsys)
    imported = {r["key"] for r in rows if r["source"] == "imported"}
    assert imported == {"A000000003/95", "A000000003/96"}
    # the imported 95 takes the place of the built-in test key with the same RID and index
    assert [r["used"] for r in rows if r["key"] == "A000000003/95"] == [True, False]
    assert user_capk_file().is_relative_to(Path(os.environ["XDG_DATA_HOME"]))
    assert user_capk_file().stat().st_mode & 0o777 == 0o600


def test_a_wrong_check_value_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**VISA_95, "checksum": "EE1511CEC71020A9B90443B37B1D5F6E703030F7"}]))
    assert main(["capk", "import", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "checksum: does not match" in captured.err
    assert "Traceback" not in captured.err and not user_capk_file().exists()


def test_a_key_without_check_value_needs_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare.txt"
    bare.write_text(f"{VISA_95['rid']} 95 03 {VISA_95['modulus']}\n")
    assert main(["capk", "import", str(bare)]) == 2
    assert "no check value" in capsys.readouterr().err
    assert main(["capk", "import", str(bare), "--no-check-value"]) == 0
    assert VISA_95["checksum"] in capsys.readouterr().out  # computed and shown


def test_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps(VISA_95))
    assert main(["capk", "import", str(path)]) == 0
    assert main(["capk", "remove", "a000000003/95"]) == 0
    assert not any(r["source"] == "imported" for r in _listed(capsys))
    assert main(["capk", "remove", "A000000003/95"]) == 2
    assert main(["capk", "remove", "A0000003/95"]) == 2
    err = capsys.readouterr().err
    assert "no imported key A000000003/95" in err and "RID/INDEX" in err


def test_tap_uses_imported_keys_without_capk_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "card.json"
    assert main(["perso", "--scheme", "visa", "--ca-index", "E7", "--out", str(card)]) == 0
    config = tmp_path / "term.toml"
    default = (ROOT / "terminal" / "kernel" / "default_terminal.toml").read_text()
    config.write_text(default.replace('capk_files = ["builtin"]', "capk_files = []"))

    def tap() -> dict[str, object]:
        capsys.readouterr()
        assert main(["tap", "--reader", f"emu:{card}", "--config", str(config), "--json"]) == 0
        doc: dict[str, object] = json.loads(capsys.readouterr().out)
        return doc

    before = tap()
    failure = before["oda_failure"]
    assert isinstance(failure, dict) and failure["code"] == "capk_missing"
    assert main(["capk", "import", str(tmp_path / "card.capk.json")]) == 0
    after = tap()
    assert (after["oda"], after["oda_result"], after["oda_failure"]) == ("fDDA", "successful", None)


@pytest.fixture
def serial_card() -> Iterator[str]:
    server = TcpLinkServer(open_card("visa"))
    server.open()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    host, port = server.address
    yield f"serial:socket://{host}:{port}"
    server.close()
    thread.join(10)


def test_a_real_reader_stops_at_the_online_request(serial_card: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tap", "--reader", serial_card, "--amount", "40.00", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["outcome"] == "Online Request"
    assert captured.err.count("\n") == 1 and "--host none" in captured.err
    assert main(["tap", "--reader", serial_card, "--amount", "40.00", "--json", "--host", "builtin"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["outcome"] == "Approved" and captured.err == ""


def test_emulated_cards_keep_the_built_in_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tap", "--reader", "emu:visa", "--amount", "40.00", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["outcome"] == "Approved" and captured.err == ""
