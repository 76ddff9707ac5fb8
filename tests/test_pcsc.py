"""The ``pcsc:`` transport, ``emvkit readers`` and ``emvkit watch``.

First what needs no pcscd (URL options, reader selection, error mapping, the
CLI without a PC/SC service, ``watch`` on emulated cards). Then end to end: a
private pcscd (emvkit.terminal.emulator.pcscd) with the vpcd reader, the real emvkit
card applications served by a VpcdBridge in a thread of this process, and the
terminal side in a subprocess whose environment points libpcsclite at the
private daemon (it reads PCSCLITE_CSOCK_NAME once per process). Inserting a
card is starting a bridge; removing it is closing the bridge.
The end-to-end tests fail when pcscd or vpcd is not installed (`make test` installs them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from emvkit.terminal import cli
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.emulator.faults import FaultPlan, FaultyCard
from emvkit.terminal.emulator.pcscd import PcscdUnavailable, PrivatePcscd
from emvkit.terminal.emulator.vpcd import Card, VpcdBridge
from emvkit.terminal.errors import CardRemoved, ConfigError, TransportError
from emvkit.terminal.iso7816 import contactless_atr
from emvkit.terminal.transport import pcsc
from emvkit.terminal.transport.pcsc import PcscdNotRunning, PcscOptions, parse_url
from tests.conftest import HANG_S

READER = "Virtual PCD 00 00"
SECOND_READER = "Virtual PCD 00 01"
HISTORICAL = bytes.fromhex("8031C073D621C0")  # any ATS historical bytes will do
SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")

# `emvkit` through emvkit.terminal.cli.main, in a subprocess with the private pcscd's environment.
RUN_CLI = textwrap.dedent(
    """
    import sys
    from emvkit.terminal import cli
    sys.exit(cli.main(sys.argv[1:]))
    """
)


# --- without pcscd ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("pcsc:", PcscOptions()),
        ("pcsc:0", PcscOptions(reader="0")),
        ("pcsc:Virtual%20PCD?timeout=2.5", PcscOptions(reader="Virtual PCD", timeout=2.5)),
        ("pcsc:ACS ACR122U?protocol=T1", PcscOptions(reader="ACS ACR122U", protocol="t1")),
        ("pcsc:?protocol=T=0&timeout=0", PcscOptions(protocol="t0")),
    ],
)
def test_parse_url(url: str, expected: PcscOptions) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["pcsc:?timeout=soon", "pcsc:?timeout=-1", "pcsc:?protocol=T2", "pcsc:?speed=1"])
def test_parse_url_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_url(url)


def test_reader_selection() -> None:
    names = [READER, SECOND_READER, "ACS ACR122U PICC Interface 00 00"]
    assert pcsc._select(names, "") == names
    assert pcsc._select(names, "1") == [SECOND_READER]
    assert pcsc._select(names, READER) == [READER]
    assert pcsc._select(names, "virtual") == [READER, SECOND_READER]
    assert pcsc._select(names, "picc") == [names[2]]
    for missing in ("7", "Omnikey"):
        with pytest.raises(TransportError, match="readers: 0: Virtual PCD 00 00, 1: Virtual PCD 00 01"):
            pcsc._select(names, missing)
    with pytest.raises(TransportError, match="no reader"):
        pcsc._select([], "")


def test_error_mapping() -> None:
    from smartcard import scard as s

    for code in (s.SCARD_W_REMOVED_CARD, s.SCARD_E_NO_SMARTCARD, s.SCARD_W_RESET_CARD):
        assert isinstance(pcsc._error(code, "r"), CardRemoved)
    for code in (s.SCARD_E_READER_UNAVAILABLE, s.SCARD_E_NO_READERS_AVAILABLE, s.SCARD_E_UNKNOWN_READER):
        error = pcsc._error(code, "r")
        assert type(error) is TransportError and "reader gone" in str(error)
    assert "another program holds the card" in str(pcsc._error(s.SCARD_E_SHARING_VIOLATION, "r"))
    for code in (s.SCARD_E_NO_SERVICE, s.SCARD_E_SERVICE_STOPPED):
        error = pcsc._error(code, "r")
        assert isinstance(error, PcscdNotRunning) and "pcscd is not running" in str(error)
    other = pcsc._error(s.SCARD_E_INVALID_VALUE, "r")
    assert type(other) is TransportError and "0x80100011" in str(other)


def test_without_pyscard_the_scheme_says_how_to_install_it() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["smartcard"] = None  # as if pyscard were not installed
        from emvkit.terminal.errors import UnknownScheme
        from emvkit.terminal.transport import open_transport
        try:
            open_transport("pcsc:")
        except UnknownScheme as exc:
            print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=True)
    assert "needs pyscard" in done.stdout and "emvkit[pcsc]" in done.stdout


def no_service_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")}


def test_without_pcscd(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        from emvkit.terminal.transport import open_transport, pcsc
        for call in (pcsc.list_readers, lambda: open_transport("pcsc:")):
            try:
                call()
            except pcsc.PcscdNotRunning as exc:
                print(exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], env=no_service_env(tmp_path), capture_output=True,
                          text=True, timeout=20, check=True)
    assert done.stdout.count("pcscd is not running") == 2, done.stdout + done.stderr
    readers = run_cli(no_service_env(tmp_path), "readers", "--json")
    assert readers.returncode == 0, readers.stderr
    found = json.loads(readers.stdout)["pcsc"]
    assert found["status"] == "pcscd not running" and found["readers"] == []
    assert "pcscd is not running" in found["message"]
    text = run_cli(no_service_env(tmp_path), "readers")
    assert text.returncode == 0 and "pcscd is not running" in text.stdout and "Serial ports" in text.stdout


def test_watch_requires_count_for_cards_always_present(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["watch", "--reader", "emu:visa"]) == 2
    err = capsys.readouterr().err
    assert "--count" in err and "always present" in err and "Traceback" not in err
    assert cli.main(["watch", "--reader", "emu:visa", "--count", "0"]) == 2


def test_watch_on_emulated_cards(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["watch", "--reader", "emu:mastercard", "--count", "2", "--json"]) == 0
    taps = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [t["tap"] for t in taps] == [1, 2]
    assert {t["outcome"] for t in taps} == {"Approved"} and {t["oda"] for t in taps} == {"CDA"}
    assert all("*" in t["pan"] for t in taps)
    assert cli.main(["watch", "--reader", "emu:visa", "--count", "1"]) == 0
    out = capsys.readouterr().out
    assert "=== tap 1" in out and "OUTCOME:     APPROVED" in out and "4761739001010119" not in out


# --- end to end through a private pcscd -------------------------------------------------------


@pytest.fixture(scope="module")
def pcscd() -> Iterator[PrivatePcscd]:
    try:
        with PrivatePcscd() as daemon:
            yield daemon
    except PcscdUnavailable as exc:
        # `make test` installs pcscd and vsmartcard-vpcd: their absence is a failure, not a skip.
        pytest.fail(str(exc))


class Powered:
    """A card behind the bridge that says when pcscd has powered it (it saw the insertion)."""

    def __init__(self, card: Card) -> None:
        self.card = card
        self.powered_on = threading.Event()

    def power_on(self) -> None:
        self.powered_on.set()

    def process(self, command_apdu: bytes) -> bytes:
        return self.card.process(command_apdu)


class Tearing(Powered):
    """A card wrapped in FaultyCard(tear_after): at the torn command it holds the exchange until
    the test has pulled the card (closed the bridge), so the command never gets an answer."""

    def __init__(self, card: Card, tear_after: int) -> None:
        super().__init__(FaultyCard(card, FaultPlan(tear_after=tear_after)))
        self.torn = threading.Event()
        self.pulled = threading.Event()

    def process(self, command_apdu: bytes) -> bytes:
        try:
            return self.card.process(command_apdu)
        except CardRemoved:
            self.torn.set()
            self.pulled.wait(HANG_S)
            raise


# Exits 0 once pcscd tells its clients that a reader holds a usable card ("card") or no reader holds one.
PCSCD_SEES = textwrap.dedent(
    """
    import sys
    from emvkit.terminal.transport import pcsc
    wait = pcsc.wait_for_card if sys.argv[1] == "card" else pcsc.wait_for_removal
    sys.exit(0 if wait("", float(sys.argv[2])) else 1)
    """
)


def pcscd_sees(pcscd: PrivatePcscd, what: str) -> None:
    """Wait until pcscd reports ``what`` ("card" or "no card") to its clients."""
    seen = subprocess.run([sys.executable, "-c", PCSCD_SEES, what, str(HANG_S)], env=client_env(pcscd),
                          timeout=2 * HANG_S, check=False)
    assert seen.returncode == 0, f"pcscd never reported {what}\n" + pcscd.log_path.read_text()


@contextmanager
def inserted(pcscd: PrivatePcscd, card: Powered, atr: bytes = contactless_atr()) -> Iterator[VpcdBridge]:
    """The card in the reader while inside (pcscd reports it to clients); removed on the way out (pcscd
    reports the reader empty, so that the next card is a new insertion, not a swap between two polls)."""
    bridge = VpcdBridge(card, port=pcscd.vpcd_port, atr=atr)
    thread = threading.Thread(target=bridge.run, name="vpcd-bridge", daemon=True)
    thread.start()
    try:
        if not card.powered_on.wait(HANG_S):
            raise AssertionError(f"pcscd did not power the card within {HANG_S:g} s\n" + pcscd.log_path.read_text())
        pcscd_sees(pcscd, "card")  # pcscd powers a card first and tells its clients after
        yield bridge
    finally:
        bridge.close()
        thread.join(HANG_S)
        assert not thread.is_alive(), "the bridge did not stop"
        pcscd_sees(pcscd, "no card")


def client_env(pcscd: PrivatePcscd) -> dict[str, str]:
    return {**os.environ, **pcscd.env}


def run_cli(env: dict[str, str], *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUN_CLI, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


# The terminal side, in a subprocess. Argument: JSON {"urls": [...], "transaction": bool,
# "exclusive": reader name to hold exclusively first}. Prints a JSON list, one entry per URL.
CLIENT = textwrap.dedent(
    """
    import json, sys
    from emvkit.terminal.errors import TransportError
    from emvkit.terminal.config_files import load_config
    from emvkit.terminal.kernel.context import TransactionRequest
    from emvkit.terminal.session import run_transaction
    from emvkit.terminal.transport import open_transport

    args = json.loads(sys.argv[1])
    if args.get("exclusive"):
        from smartcard import scard as s
        rv, ctx = s.SCardEstablishContext(s.SCARD_SCOPE_USER)
        rv, held, _ = s.SCardConnect(ctx, args["exclusive"], s.SCARD_SHARE_EXCLUSIVE, s.SCARD_PROTOCOL_T1)
        assert rv == 0, s.SCardGetErrorMessage(rv)
    results = []
    for url in args["urls"]:
        print("opening", url, file=sys.stderr, flush=True)
        try:
            with open_transport(url) as transport:
                entry = {"url": url, "reader": transport.reader_name, "atr": transport.atr.hex(),
                         "historical": transport.historical_bytes.hex(), "present": transport.card_present()}
                if args.get("transaction"):
                    tap = run_transaction(transport, load_config(None), TransactionRequest(amount=1234))
                    r = tap.result
                    entry.update(outcome=r.outcome.outcome.value, oda=r.oda, oda_result=r.oda_result,
                                 error=r.error, apdus=tap.apdus, steps=[step.name for step in r.steps])
                else:
                    entry["ppse_sw"] = transport.transmit(bytes.fromhex(args["select"]))[-2:].hex()
        except TransportError as exc:
            entry = {"url": url, "raised": type(exc).__name__, "message": str(exc)}
        results.append(entry)
    if args.get("exclusive"):
        s.SCardDisconnect(held, s.SCARD_LEAVE_CARD)
        s.SCardReleaseContext(ctx)
    print(json.dumps(results))
    """
)


def client_args(*urls: str, transaction: bool = False, exclusive: str = "") -> list[str]:
    doc = {"urls": list(urls), "transaction": transaction, "exclusive": exclusive, "select": SELECT_PPSE.hex()}
    return [sys.executable, "-c", CLIENT, json.dumps(doc)]


def run_client(pcscd: PrivatePcscd, *urls: str, transaction: bool = False, exclusive: str = "") -> list[Any]:
    done = subprocess.run(client_args(*urls, transaction=transaction, exclusive=exclusive), env=client_env(pcscd),
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr + "\n" + pcscd.log_path.read_text()
    results: list[Any] = json.loads(done.stdout)
    return results


@pytest.mark.parametrize(("profile", "oda"), [("visa", "fDDA"), ("mastercard", "CDA")])
def test_transaction_over_pcsc(pcscd: PrivatePcscd, profile: str, oda: str) -> None:
    with inserted(pcscd, Powered(open_card(profile))):
        (result,) = run_client(pcscd, "pcsc:", transaction=True)
    assert "raised" not in result and result["reader"] == READER, result
    assert result["atr"] == contactless_atr().hex() and result["present"]
    assert (result["outcome"], result["oda"], result["oda_result"]) == ("Approved", oda, "successful"), result


def test_reader_by_index_and_name(pcscd: PrivatePcscd) -> None:
    atr = contactless_atr(HISTORICAL)
    with inserted(pcscd, Powered(open_card("visa")), atr=atr):
        by_index, by_name, by_exact, unknown, empty_slot = run_client(
            pcscd, "pcsc:0", "pcsc:Virtual", f"pcsc:{SECOND_READER.replace(' ', '%20')}", "pcsc:Omnikey", "pcsc:1")
    for result in (by_index, by_name):
        assert result["reader"] == READER and result["ppse_sw"] == "9000", result
        assert result["atr"] == atr.hex() and result["historical"] == HISTORICAL.hex()
    assert by_exact["raised"] == "NoCardPresent" and SECOND_READER in by_exact["message"]
    assert unknown["raised"] == "TransportError"
    assert f"0: {READER}" in unknown["message"] and f"1: {SECOND_READER}" in unknown["message"]
    assert empty_slot["raised"] == "NoCardPresent" and "?timeout=" in empty_slot["message"]


def test_waiting_for_a_card_is_bounded(pcscd: PrivatePcscd) -> None:
    # Both return (run_client bounds the process as a hang detector); how each ended tells that one
    # looked once and the other waited: that a wait sees a card arrive is the next test.
    now, waited = run_client(pcscd, "pcsc:", "pcsc:?timeout=0.7")
    assert now["raised"] == "NoCardPresent" and "add ?timeout=SECONDS" in now["message"], now
    assert waited["raised"] == "NoCardPresent" and "within 0.7 s" in waited["message"], waited


def test_card_arriving_while_the_transport_waits(pcscd: PrivatePcscd) -> None:
    client = subprocess.Popen(client_args(f"pcsc:?timeout={HANG_S:g}"), env=client_env(pcscd),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stderr is not None and client.stderr.readline().startswith("opening")
        with inserted(pcscd, Powered(open_card("visa"))):
            out, _ = client.communicate(timeout=HANG_S)
        (result,) = json.loads(out)
        assert result["ppse_sw"] == "9000", result
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()


def test_card_held_exclusively_by_another_program(pcscd: PrivatePcscd) -> None:
    with inserted(pcscd, Powered(open_card("visa"))):
        (result,) = run_client(pcscd, "pcsc:0", exclusive=READER)
    assert result["raised"] == "TransportError" and "another program holds the card" in result["message"]


def test_card_removed_mid_transaction_is_try_again(pcscd: PrivatePcscd) -> None:
    card = Tearing(open_card("visa"), tear_after=3)
    bridge = VpcdBridge(card, port=pcscd.vpcd_port)
    thread = threading.Thread(target=bridge.run, name="vpcd-bridge", daemon=True)
    thread.start()
    client: subprocess.Popen[str] | None = None
    try:
        assert card.powered_on.wait(HANG_S), pcscd.log_path.read_text()
        client = subprocess.Popen(client_args("pcsc:", transaction=True), env=client_env(pcscd),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert card.torn.wait(HANG_S), "the fourth command never reached the card"
        bridge.close()  # pull the card while its answer is pending
        card.pulled.set()
        out, err = client.communicate(timeout=HANG_S)
        assert client.returncode == 0, err
        (result,) = json.loads(out)
    finally:
        card.pulled.set()
        bridge.close()
        thread.join(HANG_S)
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        pcscd_sees(pcscd, "no card")
    assert result["outcome"] == "Try Again", result
    assert result["apdus"] == 4 and "card removed" in result["steps"], result
    assert "removed" in result["error"]


def test_readers_json_lists_the_card(pcscd: PrivatePcscd) -> None:
    atr = contactless_atr(HISTORICAL)
    with inserted(pcscd, Powered(open_card("visa")), atr=atr):
        done = run_cli(client_env(pcscd), "readers", "--json")
        text = run_cli(client_env(pcscd), "readers")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["pcsc"]["status"] == "ok"
    first, second = found["pcsc"]["readers"]
    assert (first["name"], first["index"], first["url"]) == (READER, 0, "pcsc:0")
    assert first["card_present"] and first["atr"] == atr.hex().upper()
    assert first["historical_bytes"] == HISTORICAL.hex().upper() and first["protocols"] == ["T=0", "T=1"]
    assert second["name"] == SECOND_READER and not second["card_present"] and second["atr"] is None
    assert {"nfc", "serial"} <= set(found)
    assert text.returncode == 0 and f"{READER}: card present" in text.stdout
    assert "historical bytes: " + HISTORICAL.hex(" ").upper() in text.stdout


def test_watch_two_taps(pcscd: PrivatePcscd) -> None:
    watch = subprocess.Popen([sys.executable, "-c", RUN_CLI, "watch", "--reader", "pcsc:", "--count", "2", "--json"],
                             env=client_env(pcscd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None
        with inserted(pcscd, Powered(open_card("visa"))):
            first = json.loads(watch.stdout.readline())
        with inserted(pcscd, Powered(open_card("mastercard"))):
            second = json.loads(watch.stdout.readline())
            assert watch.wait(HANG_S) == 0
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert (first["tap"], first["outcome"], first["oda"], first["reader_name"]) == (1, "Approved", "fDDA", READER)
    assert (second["tap"], second["outcome"], second["oda"]) == (2, "Approved", "CDA")
    assert "*" in first["pan"] and "*" in second["pan"]


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_watch_stops_cleanly_on_ctrl_c(pcscd: PrivatePcscd, inherited: str) -> None:
    # "ignored": started as a job with `&` from a script, which starts programs with SIGINT ignored.
    ignore = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)\n" if inherited == "ignored" else ""
    watch = subprocess.Popen([sys.executable, "-c", ignore + RUN_CLI, "watch"], env=client_env(pcscd),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The prompt comes once the handlers are in place; the signal may come before the wait for a card
        # begins or during it, the same either way.
        assert watch.stderr is not None
        lines = []
        for line in watch.stderr:  # a line about --host none, then the prompt
            lines.append(line)
            if "Present card" in line:
                break
        assert lines and "Present card" in lines[-1], lines
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=HANG_S)  # waits in slices of 0.2 s: a hang otherwise
        assert watch.returncode == 0
        assert "Traceback" not in err and "stopped after 0 transaction(s)" in err
        assert out == ""
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()


def test_tap_over_pcsc(pcscd: PrivatePcscd) -> None:
    with inserted(pcscd, Powered(open_card("visa"))):
        done = run_cli(client_env(pcscd), "tap", "--reader", "pcsc:", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["reader"], doc["outcome"], doc["oda"]) == ("pcsc:", "Approved", "fDDA")
    assert doc["pan"] == "476173******0119"


def test_tap_without_reader_uses_the_connected_pcsc_reader(pcscd: PrivatePcscd) -> None:
    with inserted(pcscd, Powered(open_card("mastercard"))):
        done = run_cli(client_env(pcscd), "tap")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("No --reader given: waiting up to 15 s for a card on the first PC/SC reader "
                                  f"({READER}).")
    assert "Card:        pcsc:?timeout=15" in done.stdout
    assert "kernel C-2 Mastercard" in done.stdout and "OUTCOME:     APPROVED" in done.stdout
