"""The CLI for CI and people: --expect, -v/-vv, --apdu, per-APDU times in --json, shell completion, colour,
ISO 4217 currencies, host serve --listen, a replay that overrides options, emulate --vpcd without vpcd.

Expected values come from the built-in cards' profiles and the default terminal (see tests/test_cli_tap.py):
emu:visa approves 12.34 EUR offline, goes online above the 30.00 floor limit, and the 150.00 contactless
transaction limit sends 999.99 to another interface; its PAN is 4761739001010119.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from emvkit.terminal.cli import main
from emvkit.terminal.cli.style import colour_outcome, use_colour
from emvkit.terminal.currency import CurrencyError, lookup
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.tlvdump import masked_response
from tests.conftest import HANG_S, venv_tool, within

VISA_PAN = "4761739001010119"
VISA_PAN_MASKED = "476173******0119"
SELECT_PPSE = "00A404000E325041592E5359532E444446303100"  # SELECT by name '2PAY.SYS.DDF01', Le 00


def emvkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([venv_tool("emvkit"), *args], capture_output=True, text=True, timeout=HANG_S,
                          stdin=subprocess.DEVNULL, env=env)


def read_until(stream: Any, needle: str, what: str) -> str:
    """What ``stream`` (a pipe) says up to ``needle``, read unbuffered; AssertionError on a hang or EOF."""
    seen = b""
    bound = within(HANG_S, what)
    while needle.encode() not in seen:
        ready, _, _ = select.select([stream], [], [], bound.left())
        chunk = os.read(stream.fileno(), 4096) if ready else b""
        assert chunk, f"{what}: not seen; got {seen!r}"
        seen += chunk
    return seen.decode()


# --- --expect ----------------------------------------------------------------------------------------


def test_expect_fails_ci_on_another_outcome() -> None:
    run = emvkit("tap", "--reader", "emu:visa", "--amount", "99999", "--expect", "approved")
    assert run.returncode == 1, run.stderr
    assert "OUTCOME:     TRY ANOTHER INTERFACE" in run.stdout


@pytest.mark.parametrize("names", ["approved", "Approved", "declined,approved", "APPROVED , online request"])
def test_expect_passes_on_one_of_its_outcomes(capsys: pytest.CaptureFixture[str], names: str) -> None:
    assert main(["tap", "--reader", "emu:visa", "--expect", names]) == 0


@pytest.mark.parametrize("names", ["try-another-interface", "Try Another Interface", "try_another-INTERFACE"])
def test_expect_names_any_case_spaces_or_hyphens(capsys: pytest.CaptureFixture[str], names: str) -> None:
    assert main(["tap", "--reader", "emu:visa", "--amount", "999.99", "--expect", names]) == 0


def test_expect_unknown_name_is_one_line_listing_the_names() -> None:
    run = emvkit("tap", "--reader", "emu:visa", "--expect", "aproved")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("emvkit tap: error: --expect: unknown outcome 'aproved'")
    for name in ("approved", "declined", "online-request", "try-another-interface", "end-application",
                 "select-next", "try-again"):
        assert name in run.stderr


def test_watch_expect_fails_when_any_tap_is_outside(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "--reader", "emu:visa", "--count", "2", "--json", "--expect", "approved"]) == 0
    capsys.readouterr()
    status = main(["watch", "--reader", "emu:visa", "--count", "2", "--amount", "40.00", "--host", "none",
                   "--json", "--expect", "approved"])
    out, err = capsys.readouterr()
    assert status == 1
    assert err == "2 of 2 transaction(s) ended outside --expect approved\n"
    assert [json.loads(line)["outcome"] for line in out.splitlines()] == ["Online Request", "Online Request"]


# --- -v / -vv ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_logs_on_stderr_before_or_after_the_command(where: str) -> None:
    args = ["-v", "tap", "--reader", "emu:visa"] if where == "before" else ["tap", "-v", "--reader", "emu:visa"]
    run = emvkit(*args)
    assert run.returncode == 0, run.stderr
    assert "emvkit.tap: tap on emu:visa: purchase 12.34 EUR" in run.stderr
    assert "emvkit.apdu" not in run.stderr  # APDUs only with -vv


def test_very_verbose_logs_apdus_masked() -> None:
    run = emvkit("tap", "-vv", "--reader", "emu:visa")
    assert run.returncode == 0, run.stderr
    assert f"emvkit.apdu: >> {SELECT_PPSE}" in run.stderr
    assert VISA_PAN_MASKED in run.stderr and VISA_PAN not in run.stderr


def test_quiet_by_default() -> None:
    run = emvkit("tap", "--reader", "emu:visa")
    assert run.returncode == 0 and run.stderr == ""


def test_every_command_takes_verbose() -> None:
    for command in (["decode", "9F0206000000001234"], ["capk", "list"], ["readers"]):
        run = emvkit(*command, "-v")
        assert run.returncode == 0, (command, run.stderr)


# --- --apdu and per-APDU times ---------------------------------------------------------------------


def test_apdu_prints_each_exchange_masked() -> None:
    run = emvkit("tap", "--reader", "emu:visa", "--apdu")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f">> {SELECT_PPSE}  SELECT PPSE"
    assert lines[1].startswith("<< 6F") and lines[1].split()[1].endswith("9000")
    assert sum(line.startswith(">> ") for line in lines) == 7  # PPSE, SELECT, GPO, 4 records
    assert VISA_PAN not in run.stdout
    assert f"5A08{VISA_PAN_MASKED}" in run.stdout  # the PAN object's tag and length kept, its digits masked


def test_apdu_reveal_shows_the_pan() -> None:
    run = emvkit("tap", "--reader", "emu:visa", "--apdu", "--reveal")
    assert f"5A08{VISA_PAN}" in run.stdout


def test_info_takes_apdu() -> None:
    run = emvkit("info", "--reader", "emu:visa", "--apdu")
    assert run.returncode == 0, run.stderr
    assert f">> {SELECT_PPSE}  SELECT PPSE" in run.stdout and VISA_PAN not in run.stdout


def test_json_has_per_apdu_times_and_apdu_puts_hex_in_it() -> None:
    run = emvkit("tap", "--reader", "emu:visa", "--json", "--apdu")
    doc = json.loads(run.stdout)  # the live lines went to stderr
    assert f">> {SELECT_PPSE}" in run.stderr
    exchanges = doc["exchanges"]
    assert len(exchanges) == doc["apdus"] == 7
    assert exchanges[0]["command"] == "SELECT PPSE" and exchanges[0]["c_apdu"] == SELECT_PPSE
    assert exchanges[0]["start_ms"] == 0.0
    starts = [e["start_ms"] for e in exchanges]
    assert starts == sorted(starts)
    assert all(e["elapsed_ms"] >= 0 and e["sw"] == "9000" for e in exchanges)
    assert VISA_PAN not in run.stdout
    plain = json.loads(emvkit("tap", "--reader", "emu:visa", "--json").stdout)["exchanges"][0]
    assert "c_apdu" not in plain and plain["c_apdu_bytes"] == 20


def test_masked_response_by_tag() -> None:
    record = bytes.fromhex("7016" "5A084761739001010119" "5F2403301231" "9F6B03123456" "9000")
    assert masked_response(record, reveal=False) == "7016" "5A08476173******0119" "5F2403301231" "9F6B03******" "9000"
    assert masked_response(record, reveal=True) == record.hex().upper()
    track2 = bytes.fromhex("700E" "570C" "4761739001010119D3012201" "9000")
    assert masked_response(track2, reveal=False) == "700E" "570C" "476173******0119D*******" "9000"
    assert masked_response(bytes.fromhex("0102039000"), reveal=False) == "<3 bytes, not BER-TLV, masked>9000"
    assert masked_response(bytes.fromhex("6A82"), reveal=False) == "6A82"


# --- completion and colour ------------------------------------------------------------------------------


def test_completion_hook_lists_the_commands(tmp_path: Path) -> None:
    out = tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": "emvkit ", "COMP_POINT": "7",
           "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "_ARGCOMPLETE_IFS": "\n"}
    run = emvkit(env=env)
    assert run.returncode == 0, run.stderr
    words = set(out.read_text().split("\n"))
    assert {"tap", "watch", "info", "trace", "capk", "host", "token"} <= words


def test_completion_prints_the_shell_code() -> None:
    run = emvkit("--completion", "bash")
    assert run.returncode == 0 and "complete " in run.stdout and "emvkit" in run.stdout


class _Tty:
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_tty_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(_Tty())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(_Tty())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: set but empty does not count
    assert use_colour(_Tty())  # type: ignore[arg-type]
    coloured = colour_outcome("x\nOUTCOME:     APPROVED\ny", Outcome.APPROVED)
    assert coloured == "x\n\x1b[32mOUTCOME:     APPROVED\x1b[0m\ny"
    assert colour_outcome("OUTCOME:     DECLINED", Outcome.DECLINED).startswith("\x1b[31m")


def test_no_colour_when_piped() -> None:
    run = emvkit("tap", "--reader", "emu:visa", env={k: v for k, v in os.environ.items() if k != "NO_COLOR"})
    assert "\x1b[" not in run.stdout and "OUTCOME:     APPROVED" in run.stdout


# --- ISO 4217 --------------------------------------------------------------------------------------------


def test_currency_by_code_or_number_printed_as_code(capsys: pytest.CaptureFixture[str]) -> None:
    amounts = []
    for currency in ("MXN", "484", "mxn"):
        assert main(["tap", "--reader", "emu:visa", "--json", "--currency", currency]) == 0
        amounts.append(json.loads(capsys.readouterr().out)["amount"])
    assert amounts == ["12.34 MXN"] * 3
    assert (lookup("MXN").number, lookup("MXN").exponent) == (484, 2)
    assert (lookup("392").code, lookup("392").exponent) == ("JPY", 0)
    assert (lookup("048").code, lookup("048").exponent) == ("BHD", 3)


@pytest.mark.parametrize("text", ["XYZ", "1000", "", "E1", "XAU"])
def test_unknown_currency(text: str) -> None:
    with pytest.raises(CurrencyError, match="currency"):
        lookup(text)


# --- host serve --listen -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--listen", "--host"])
def test_host_serve_listens_where_told(tmp_path: Path, option: str) -> None:
    proc = subprocess.Popen([venv_tool("emvkit"), "host", "serve", option, "127.0.0.1", "--port", "0",
                             "--db", str(tmp_path / "h.sqlite"), "--secret", str(tmp_path / "h.secret")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        banner = read_until(proc.stdout, "listening on", "host serve's banner")
        assert "tcp://127.0.0.1:" in banner
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=HANG_S)
    deprecated = "--host is deprecated here" in err
    assert deprecated == (option == "--host"), err


# --- replays ------------------------------------------------------------------------------------------


def test_replay_that_overrides_an_option_says_so(tmp_path: Path) -> None:
    trace = tmp_path / "t.json"
    assert emvkit("tap", "--reader", "emu:visa", "--amount", "40.00", "--trace", str(trace)).returncode == 0
    same = emvkit("tap", "--reader", f"scripted:{trace}", "--amount", "40.00")
    assert same.returncode == 0 and same.stderr == ""
    other = emvkit("tap", "--reader", f"scripted:{trace}", "--amount", "5.00", "--type", "refund")
    assert other.returncode == 0, other.stderr
    assert "Transaction: purchase of 40.00 EUR" in other.stdout  # the recorded order, replayed
    lines = other.stderr.splitlines()
    assert len(lines) == 2
    assert "amount 40.00, not --amount 5.00" in lines[0] and "type purchase, not --type refund" in lines[1]


# --- emulate --vpcd with nothing listening ----------------------------------------------------------------


@pytest.mark.slow
def test_emulate_vpcd_without_vpcd_says_it_keeps_trying() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    proc = subprocess.Popen([venv_tool("emvkit"), "emulate", "--profile", "visa", "--state", "none",
                             "--vpcd", f"127.0.0.1:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    try:
        seen = read_until(proc.stderr, "retrying", "the waiting-for-vpcd line")
        assert f"waiting for vpcd at 127.0.0.1:{port}" in seen
        assert proc.poll() is None  # still trying
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=HANG_S)
    assert proc.returncode == 0


def test_subcommand_usage_on_a_bad_option() -> None:
    run = emvkit("tap", "--bogus")
    assert run.returncode == 2
    assert run.stderr.startswith("usage: emvkit tap ") and "unrecognized arguments: --bogus" in run.stderr


# --- one date format: perso's expiries are all YYMM ---------------------------------------------------------


def test_perso_certificate_expiries_are_yymm(tmp_path: Path) -> None:
    card = tmp_path / "card.json"
    made = emvkit("perso", "--scheme", "visa", "--out", str(card), "--issuer-cert-expiry", "3106",
                  "--icc-cert-expiry", "2911")
    assert made.returncode == 0, made.stderr
    config = tmp_path / "term.toml"
    default = (Path(__file__).resolve().parent.parent / "terminal" / "kernel" / "default_terminal.toml").read_text()
    config.write_text(default.replace('capk_files = ["builtin"]', f'capk_files = ["builtin", "{card.stem}.capk.json"]'))
    run = emvkit("info", "--reader", f"emu:{card}", "--config", str(config), "--json")
    assert run.returncode == 0, run.stderr
    chain = json.loads(run.stdout)["applications"][0]["oda"]["chain"]
    expiries = {c["certificate"]: c["fields"]["expiry"] for c in chain if c["fields"]}
    assert expiries == {"issuer": "0631", "icc": "1129"}  # the certificates hold MMYY (EMV Book 2 §5.3, §6.4)
    wrong = emvkit("perso", "--scheme", "visa", "--out", str(tmp_path / "x.json"), "--issuer-cert-expiry", "0631")
    assert wrong.returncode == 2 and "'0631' is not a date YYMM" in wrong.stderr


def test_the_serial_servers_apdu_log_masks_the_pan(caplog: pytest.LogCaptureFixture) -> None:
    from emvkit.terminal.emulator.cards import open_card
    from emvkit.terminal.emulator.serial_server import _LoggedCard

    caplog.set_level("DEBUG", logger="emvkit.serial_server")
    card = _LoggedCard(open_card("visa"))
    card.process(bytes.fromhex(SELECT_PPSE))
    card.process(bytes.fromhex("00A4040007A000000003101000"))
    card.process(bytes.fromhex("00B2010C00"))  # record 1.1 of SFI 1: holds 5A, the PAN
    assert "R-APDU 704A5A08" + VISA_PAN_MASKED in caplog.text
    assert VISA_PAN not in caplog.text


@pytest.mark.parametrize("content", ["garbage", '{"exchanges": [{"command": "zz"}]}', '{"format": "emvkit-trace"}'])
def test_a_malformed_trace_is_one_line_exit_2(tmp_path: Path, content: str) -> None:
    trace = tmp_path / "bad.json"
    trace.write_text(content)
    run = emvkit("tap", "--reader", f"scripted:{trace}")
    assert run.returncode == 2 and run.stdout == "", run
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("emvkit tap: error: "), run.stderr


def test_watch_apdu_prints_each_taps_exchanges_as_they_happen() -> None:
    run = emvkit("watch", "--reader", "emu:visa", "--count", "2", "--apdu")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines.count(f">> {SELECT_PPSE}  SELECT PPSE") == 2
    first_report = next(i for i, line in enumerate(lines) if line.startswith("=== tap 1"))
    assert lines.index(f">> {SELECT_PPSE}  SELECT PPSE") < first_report
    assert VISA_PAN not in run.stdout


def test_the_nfc_listeners_frame_log_masks_the_pan() -> None:
    from emvkit.terminal.emulator.nfc_listener import _shown

    record = "700A" "5A084761739001010119" "9000"
    assert _shown(bytes.fromhex("02" + record)) == "02 700A5A08" + VISA_PAN_MASKED + "9000"  # I-block, block 0
    assert _shown(bytes.fromhex("0B01" + record)) == "0B01 700A5A08" + VISA_PAN_MASKED + "9000"  # with a CID
    assert _shown(bytes.fromhex("A3")) == "A3"  # R(ACK): no data
