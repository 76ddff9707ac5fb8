"""``emvkit tap`` end to end: in-process through ``emvkit.terminal.cli.main`` and as a subprocess.

The built-in emulated Visa card (``emu:visa``) is the default reader; its
profile (terminal/perso/profiles/visa.json: PAN 4761739001010119, AIP 2000,
fDDA, offline approval below the floor limit) and the default terminal
(floor limit 30.00, transaction limit 150.00) give the expected values.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from emvkit.terminal.cli import main
from emvkit.terminal.config_files import load_config
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.scripted import ScriptedTransport
from tests.conftest import venv_tool

CARDS = Path(__file__).resolve().parent / "vectors" / "cards"
# Offsets in the qVSDC GET PROCESSING OPTIONS command (CLA INS P1 P2 Lc 83 21, then the PDOL data
# TTQ 4, 9F02 6, 9F03 6, 9F1A 2, 95 5, 5F2A 2, 9A 3, 9C 1, 9F37 4).
GPO_CURRENCY = slice(7 + 4 + 6 + 6 + 2 + 5, 7 + 4 + 6 + 6 + 2 + 5 + 2)
GPO_DATE = slice(GPO_CURRENCY.stop, GPO_CURRENCY.stop + 3)
GPO_TYPE = GPO_DATE.stop
GPO_AMOUNT = slice(7 + 4, 7 + 4 + 6)


def tap_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    status = main(["tap", "--json", *args])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert err == ""
    doc: dict[str, Any] = json.loads(out)
    return doc


def tap_text(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    status = main(["tap", *args])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def trace_commands(path: Path) -> list[bytes]:
    doc = json.loads(path.read_text())
    return [bytes.fromhex(e["command"]) for e in doc["exchanges"]]


# --- JSON ------------------------------------------------------------------------------------------


def test_json_fields(capsys: pytest.CaptureFixture[str]) -> None:
    doc = tap_json(capsys)
    for key in ("outcome", "kernel", "aid", "pan", "tvr", "tsi", "cid", "cryptogram", "atc", "cvm", "oda",
                "apdus", "elapsed_ms"):
        assert key in doc, key
    assert doc["reader"] == "emu:visa"
    assert doc["amount"] == "12.34 EUR"
    assert doc["outcome"] == "Approved"  # 12.34 <= floor limit: the card approves offline (TC)
    assert doc["kernel"] == 3
    assert doc["aid"] == "A0000000031010"
    assert doc["pan"] == "476173******0119"
    assert doc["cid"] == "40"
    assert len(doc["cryptogram"]) == 16 and int(doc["cryptogram"], 16) >= 0
    assert len(doc["atc"]) == 4
    assert doc["tvr"] == "0000000000"
    assert doc["tsi"] == "8000"  # TSI byte 1 bit 8: ODA performed
    assert doc["oda"] == "fDDA" and doc["oda_result"] == "successful"
    assert doc["cvm"] == "No CVM"
    assert doc["apdus"] == 7  # PPSE, SELECT, GPO, 4 records
    assert isinstance(doc["elapsed_ms"], float) and doc["elapsed_ms"] >= 0


def test_reveal_shows_the_full_pan(capsys: pytest.CaptureFixture[str]) -> None:
    assert tap_json(capsys, "--reveal")["pan"] == "4761739001010119"
    assert "4761739001010119" in tap_text(capsys, "--reveal")
    assert "4761739001010119" not in tap_text(capsys)


def test_json_shows_why_oda_failed_and_what_the_certificates_recovered_to(capsys: pytest.CaptureFixture[str]) -> None:
    # A signed record's 5F24 altered: the ICC certificate opens, but its hash no longer matches.
    doc = tap_json(capsys, "--reader", "emu:visa?corrupt=5F24", "--host", "none")
    assert doc["oda"] == "fDDA" and doc["oda_result"] == "icc_certificate_hash"
    assert doc["oda_failure"]["code"] == "icc_certificate_hash"
    assert "hash" in doc["oda_failure"]["reason"] and "\n" not in doc["oda_failure"]["reason"]
    issuer, icc = doc["oda_certificates"]
    assert (issuer["certificate"], issuer["format"], issuer["hash_matched"]) == ("issuer", "02", True)
    assert "4761739001010119".startswith(issuer["identifier"])
    assert (icc["certificate"], icc["format"], icc["hash_matched"]) == ("icc", "04", False)
    assert icc["identifier"] == "476173******0119"  # the certificate's PAN is masked like the card's
    assert (icc["key_length"], icc["exponent_length"], icc["hash_algorithm"]) == (128, 1, "01")
    assert len(icc["hash_result"]) == 40
    assert tap_json(capsys, "--reader", "emu:visa?corrupt=5F24", "--host", "none",
                    "--reveal")["oda_certificates"][1]["identifier"] == "4761739001010119"
    text = tap_text(capsys, "--reader", "emu:visa?corrupt=5F24", "--host", "none")
    assert "does not match the data it signs" in text and "icc certificate: format 04" in text
    assert "4761739001010119" not in text


def test_json_without_an_oda_failure(capsys: pytest.CaptureFixture[str]) -> None:
    doc = tap_json(capsys)
    assert doc["oda_failure"] is None and [c["certificate"] for c in doc["oda_certificates"]] == ["issuer", "icc"]


# --- text ------------------------------------------------------------------------------------------


def test_text_report_of_the_default_reader(tmp_path: Path) -> None:
    # No PC/SC service for this process (libpcsclite reads the socket path at
    # its first call, so it runs in a subprocess): the built-in card is tapped.
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")}
    run = subprocess.run([venv_tool("emvkit"), "tap"], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.startswith("No --reader given and no PC/SC reader: tapping the built-in emulated card emu:visa.")
    assert "Card:        emu:visa" in out
    assert "Transaction: purchase of 12.34 EUR" in out
    for step in ("SELECT PPSE", "SELECT A0000000031010", "GET PROCESSING OPTIONS", "read application data",
                 "processing restrictions", "fDDA successful", "cardholder verification"):
        assert step in out, step
    assert "PAN:         476173******0119" in out
    assert "TVR:         0000000000" in out
    assert "OUTCOME:     APPROVED" in out
    assert "7 APDUs" in out


def test_text_explains_the_tvr_bits(capsys: pytest.CaptureFixture[str]) -> None:
    out = tap_text(capsys, "--reader", "emu:mastercard", "--amount", "40.00", "--host", "none")
    assert "No --reader given" not in out
    assert "kernel C-2 Mastercard" in out
    assert "byte 4 bit 8: Transaction exceeds floor limit" in out  # 40.00 > 30.00 (Book 3 §10.6.1)
    assert "OUTCOME:     ONLINE REQUEST" in out
    assert "terminal action analysis: ARQC" in out


# --- the request -------------------------------------------------------------------------------------


def test_at_the_contactless_limit_try_another_interface(capsys: pytest.CaptureFixture[str]) -> None:
    doc = tap_json(capsys, "--amount", "150.00")
    assert doc["outcome"] == "Try Another Interface"
    assert doc["apdus"] == 0
    assert doc["kernel"] is None
    assert doc["ui_message"] == "Insert or swipe card"


def test_currency_by_code_or_number(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    by_code = tap_json(capsys, "--currency", "USD", "--trace", str(tmp_path / "code.json"))
    by_number = tap_json(capsys, "--currency", "840", "--trace", str(tmp_path / "number.json"))
    assert by_code["amount"] == by_number["amount"] == "12.34 USD"
    for key in ("outcome", "kernel", "aid", "tvr", "apdus"):
        assert by_code[key] == by_number[key], key
    for name in ("code.json", "number.json"):
        gpo = trace_commands(tmp_path / name)[2]
        assert gpo[GPO_CURRENCY] == bytes.fromhex("0840")  # 5F2A in the PDOL data
        assert gpo[GPO_AMOUNT] == bytes.fromhex("000000001234")


def test_refund_is_accepted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "refund.json"
    doc = tap_json(capsys, "--type", "refund", "--trace", str(trace))
    assert doc["kernel"] == 3
    assert trace_commands(trace)[2][GPO_TYPE] == 0x20  # 9C: refund


def test_date_goes_into_the_pdol(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "dated.json"
    tap_json(capsys, "--date", "2027-02-28", "--trace", str(trace))
    assert trace_commands(trace)[2][GPO_DATE] == bytes.fromhex("270228")


def test_torn_card_is_try_again(capsys: pytest.CaptureFixture[str]) -> None:
    doc = tap_json(capsys, "--reader", "emu:visa?tear=3")
    assert doc["outcome"] == "Try Again"
    assert doc["ui_message"] == "Present card again"
    assert doc["apdus"] == 4  # three answered, the fourth met an empty field


# --- bad input: status 2, one line on stderr -------------------------------------------------------------


def broken_toml(tmp_path: Path) -> str:
    path = tmp_path / "broken.toml"
    path.write_text('[terminal\ntype = "22"\n')
    return str(path)


BAD_INPUTS: list[tuple[list[str], str]] = [
    (["--amount", "abc"], "abc"),
    (["--amount", "1.234"], "1.234"),
    (["--amount", "-1"], "-1"),
    (["--currency", "XYZ"], "XYZ"),
    (["--reader", "bogus:x"], "bogus"),
    (["--reader", "emu:/no/such.json"], "/no/such.json"),
    (["--reader", "scripted:/no/such.apdu"], "/no/such.apdu"),
    (["--config", "BROKEN"], "broken.toml"),
    (["--config", "/no/such.toml"], "/no/such.toml"),
    (["--date", "2026-13-01"], "--date"),
    (["--date", "yesterday"], "--date"),
]


@pytest.mark.parametrize(("args", "mention"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str],
                              mention: str) -> None:
    args = [broken_toml(tmp_path) if a == "BROKEN" else a for a in args]
    status = main(["tap", *args])
    _, err = capsys.readouterr()
    assert status == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("emvkit tap: error: ")
    assert mention in lines[0]


@pytest.mark.parametrize(("args", "mention"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_exit_status(tmp_path: Path, args: list[str], mention: str) -> None:
    args = [broken_toml(tmp_path) if a == "BROKEN" else a for a in args]
    run = subprocess.run([venv_tool("emvkit"), "tap", *args], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("emvkit tap: error: ")
    assert mention in lines[0]


def test_exit_status_zero(tmp_path: Path) -> None:
    for args in ([], ["--reader", "emu:visa?tear=3", "--json"], ["--amount", "150.00"]):
        run = subprocess.run([venv_tool("emvkit"), "tap", *args], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stderr == ""


# --- trace and replay -------------------------------------------------------------------------------------


def test_trace_and_replay(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    first = tap_json(capsys, "--amount", "40.00", "--date", "2026-01-15", "--trace", str(trace), "--host", "none")
    assert stat.S_IMODE(trace.stat().st_mode) == 0o600
    doc = json.loads(trace.read_text())
    meta = doc["meta"]
    assert meta["amount"] == "40.00"
    assert meta["date"] == "2026-01-15"
    assert len(bytes.fromhex(meta["random"])) >= 4  # at least the unpredictable number
    assert len(doc["exchanges"]) == first["apdus"]
    gpo = bytes.fromhex(doc["exchanges"][2]["command"])
    assert gpo[GPO_DATE] == bytes.fromhex("260115")
    assert gpo[-5:-1] == bytes.fromhex(meta["random"])[:4]  # 9F37, the last PDOL element

    replay = tap_json(capsys, "--reader", f"scripted:{trace}", "--host", "none")
    assert replay["outcome"] == first["outcome"] == "Online Request"  # 40.00 > floor limit
    assert replay["cryptogram"] == first["cryptogram"]
    assert replay["cid"] == first["cid"] == "80"
    assert replay["atc"] == first["atc"]
    assert replay["apdus"] == len(doc["exchanges"])  # nothing left over, nothing extra


def test_replayed_trace_is_consumed_exactly(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    first = tap_json(capsys, "--date", "2026-01-15", "--trace", str(trace))
    meta = json.loads(trace.read_text())["meta"]
    drawn = bytearray(bytes.fromhex(meta["random"]))

    def recorded(n: int) -> bytes:
        out = bytes(drawn[:n])
        del drawn[:n]
        return out

    transport = open_transport(f"scripted:{trace}")
    assert isinstance(transport, ScriptedTransport)
    request = TransactionRequest(amount=1234, date=datetime.date(2026, 1, 15), random=recorded)
    with transport:
        again = run_transaction(transport, load_config(), request)
    assert transport.finished
    assert again.result.cryptogram.hex().upper() == first["cryptogram"]


def test_replay_with_another_amount_does_not_match(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    tap_json(capsys, "--trace", str(trace))
    doc = json.loads(trace.read_text())
    doc["meta"]["amount"] = "12.35"
    trace.write_text(json.dumps(doc))
    replay = tap_json(capsys, "--reader", f"scripted:{trace}")
    assert replay["outcome"] == "Try Again"
    assert "expected" in replay["error"]


def test_scripted_text_card_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    doc = tap_json(capsys, "--reader", f"scripted:{CARDS / 'unionpay_qpboc_arqc.apdu'}", "--amount", "60.00",
                   "--reveal", "--host", "none")
    assert doc["outcome"] == "Online Request"
    assert doc["kernel"] == 7
    assert doc["pan"] == "6250946000000016"
    assert doc["cvm"] == "Online PIN"


def test_replay_of_a_card_that_asks_for_the_time(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The Mastercard session with the date, UN and time as wildcards, so that the CLI can run it.
    text = (CARDS / "mastercard_mchip_arqc.apdu").read_text()
    text = text.replace("250314", "?? ?? ??").replace("5E6F7081", "?? ?? ?? ??").replace("123045", "?? ?? ??")
    card = tmp_path / "mc.apdu"
    card.write_text(text)
    trace = tmp_path / "mc.json"
    now = [datetime.datetime(2026, 1, 15, 9, 0, 0)]

    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> Clock:
            return cls.fromtimestamp(now[0].timestamp())

    monkeypatch.setattr(datetime, "datetime", Clock)
    first = tap_json(capsys, "--reader", f"scripted:{card}", "--amount", "40.00", "--trace", str(trace),
                     "--host", "none")
    assert first["outcome"] == "Online Request"
    now[0] = datetime.datetime(2026, 1, 15, 9, 0, 7)  # seven seconds later
    replay = tap_json(capsys, "--reader", f"scripted:{trace}", "--host", "none")
    assert replay["outcome"] == "Online Request", replay["error"]


@pytest.mark.parametrize(("reader", "second_generate_ac"), [("emu:visa", False), ("emu:mastercard", True),
                                                           ("emu:unionpay", False)])
def test_online_request_is_authorised_by_the_builtin_host(capsys: pytest.CaptureFixture[str], reader: str,
                                                          second_generate_ac: bool) -> None:
    doc = tap_json(capsys, "--reader", reader, "--amount", "40.00")
    assert doc["outcome"] == "Approved"
    assert doc["authorisation"]["approved"] is True and doc["authorisation"]["response_code"] == "00"
    assert len(bytes.fromhex(doc["authorisation"]["issuer_authentication_data"])) == 10
    steps = [s["step"] for s in doc["steps"]]
    assert "online authorisation" in steps
    assert ("second GENERATE AC" in steps) == second_generate_ac


def test_perso_card_is_known_to_the_builtin_host(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    card = tmp_path / "card.json"
    assert main(["perso", "--scheme", "mastercard", "--out", str(card)]) == 0
    capk = tmp_path / "card.capk.json"
    config = tmp_path / "terminal.toml"
    default = Path(__file__).resolve().parent.parent / "terminal" / "kernel" / "default_terminal.toml"
    config.write_text(default.read_text().replace('capk_files = ["builtin"]', f'capk_files = ["builtin", "{capk}"]'))
    capsys.readouterr()
    doc = tap_json(capsys, "--reader", f"emu:{card}", "--amount", "40.00", "--config", str(config))
    assert (doc["outcome"], doc["oda"], doc["oda_result"]) == ("Approved", "CDA", "successful")
    assert doc["authorisation"]["response_code"] == "00"


def test_unreachable_host_declines(capsys: pytest.CaptureFixture[str]) -> None:
    doc = tap_json(capsys, "--reader", "emu:visa", "--amount", "40.00", "--host", "tcp://127.0.0.1:9")
    assert doc["outcome"] == "Declined"
    assert doc["error"] == "unable to go online"
