"""``emvkit info``: a read-only look at the emulated cards, with their state kept in a file between runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emvkit.terminal.cli import main
from emvkit.terminal.iso7816 import INS_GENERATE_AC, INS_GET_PROCESSING_OPTIONS
from emvkit.terminal.perso.builtin import load_builtin


def _info(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["info", "--json", *args]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def _tags(tree: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for node in tree:
        out[node["tag"]] = node
        out.update(_tags(node.get("children", [])))
    return out


def test_mastercard_every_record_named_icc_key_recovered_atc_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "mc.state"
    reader = f"emu:mastercard?state={state}"
    first = _info(capsys, "--reader", reader)
    assert first["gpo_sent"] is False and first["ppse"]["sw"] == "9000"
    [app] = first["applications"]
    assert app["aid"] == "A0000000041010" and app["gpo"] is None
    # every record the built-in profile holds, each data object with its name
    profile = load_builtin("mastercard")
    expected = sorted((int(r["sfi"]), int(r["record"])) for r in profile["applications"][0]["records"])
    assert sorted((r["sfi"], r["record"]) for r in app["records"]) == expected
    for record in app["records"]:
        for node in _tags(record["data"]).values():
            assert node["name"] and node["name"] != "Unknown tag", node
    objects: dict[str, Any] = {}
    for record in app["records"]:
        objects.update(_tags(record["data"]))
    assert objects["5A"]["masked"] == "541333******0012"  # masked by default
    chain = {c["certificate"]: c for c in app["oda"]["chain"]}
    assert app["oda"]["capk"] == "A000000004/E1"
    assert chain["issuer"]["status"] == "verified" and chain["issuer"]["fields"]["hash_matched"] is True
    icc = chain["icc"]["fields"]
    assert (icc["format"], icc["identifier"], icc["key_length"]) == ("04", "541333******0012", 128)
    assert chain["icc"]["status"] == "not checked"  # its hash needs the AFL and AIP from GPO
    second = _info(capsys, "--reader", reader)
    assert second["applications"][0]["atc"] == app["atc"] == "0000"
    assert second["applications"][0]["records"] == app["records"]


def test_trace_holds_no_state_changing_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "info.json"
    _info(capsys, "--reader", "emu:visa", "--trace", str(trace))
    exchanges = json.loads(trace.read_text())["exchanges"]
    instructions = {bytes.fromhex(e["command"])[1] for e in exchanges}
    assert INS_GENERATE_AC not in instructions and INS_GET_PROCESSING_OPTIONS not in instructions
    assert len(exchanges) > 10  # PPSE, SELECT, probes, GET DATA


def test_gpo_moves_the_atc_and_checks_the_icc_certificate(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    reader = f"emu:visa?state={tmp_path / 'visa.state'}"
    before = _info(capsys, "--reader", reader)["applications"][0]["atc"]
    capsys.readouterr()
    assert main(["info", "--json", "--gpo", "--reader", reader]) == 0
    captured = capsys.readouterr()
    assert "moves the card's ATC" in captured.err
    app = json.loads(captured.out)["applications"][0]
    assert app["gpo"]["sw"] == "9000" and any(r["oda"] for r in app["records"])
    assert [c["status"] for c in app["oda"]["chain"]] == ["verified", "verified"]
    after = _info(capsys, "--reader", reader)["applications"][0]["atc"]
    assert (before, after) == ("0000", "0001")


def test_reveal_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--reader", "emu:mastercard"]) == 0
    text = capsys.readouterr().out
    assert "541333******0012" in text and "5413330089010012" not in text
    assert "Application Interchange Profile" not in text  # no GPO: no AIP
    assert "icc certificate: not checked" in text and "READ RECORD Response Message Template" in text
    doc = _info(capsys, "--reader", "emu:mastercard", "--reveal")
    objects: dict[str, Any] = {}
    for record in doc["applications"][0]["records"]:
        objects.update(_tags(record["data"]))
    assert objects["5A"]["value"] == "5413330089010012"


def test_json_schema_keys(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _info(capsys, "--reader", "emu:unionpay")
    assert set(doc) == {"reader", "gpo_sent", "records_from", "ppse", "applications"}
    assert set(doc["applications"][0]) == {"aid", "label", "select_sw", "fci", "gpo", "records", "atc", "oda"}


def test_a_trace_in_a_missing_directory_is_refused_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--reader", "emu:visa", "--trace", str(tmp_path / "no" / "t.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
