"""The session: what the sans-IO kernel leaves to its driver (the clock, the
random source, the card, the issuer, the files), and a check that the kernel
package keeps to that.

Expected values are written by hand: the PDOL data offsets are those of the
built-in Visa card's GET PROCESSING OPTIONS (see tests/test_cli_tap.py).
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import os
from pathlib import Path

import pytest

from emvkit.terminal.apdu import Channel, CommandAPDU
from emvkit.terminal.config_files import load_config
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.kernel.authorisation import AuthorisationResponse
from emvkit.terminal.kernel.config import config_from_toml
from emvkit.terminal.kernel.context import TransactionRequest, transmit
from emvkit.terminal.kernel.entry_point import transaction
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import (
    Order,
    RecordingRandom,
    TapSession,
    drive,
    make_authoriser,
    replaying,
    run_transaction,
    stamp,
    watch,
)
from emvkit.terminal.transport import open_transport

KERNEL = Path(__file__).resolve().parent.parent / "terminal" / "kernel"
# GET PROCESSING OPTIONS of the built-in Visa card: CLA INS P1 P2 Lc 83 21, then TTQ 4, 9F02 6, 9F03 6,
# 9F1A 2, 95 5, 5F2A 2, 9A 3, 9C 1, 9F37 4.
GPO_DATE = slice(7 + 4 + 6 + 6 + 2 + 5 + 2, 7 + 4 + 6 + 6 + 2 + 5 + 2 + 3)
GPO_UN = slice(GPO_DATE.stop + 1, GPO_DATE.stop + 5)


# --- the kernel package does no I/O ------------------------------------------------------------------

# Modules that reach a clock, a file, randomness, a process, the network, or the layers that do.
_IO_MODULES = ("os", "time", "pathlib", "random", "secrets", "socket", "subprocess", "shutil", "io", "sys",
               "emvkit.terminal.transport", "emvkit.terminal.perso", "emvkit.terminal.host",
               "emvkit.terminal.emulator", "emvkit.terminal.session", "emvkit.terminal.config_files",
               "emvkit.terminal.cli", "emvkit.terminal.jsonfile")
_CLOCK_CALLS = ("now", "today", "utcnow", "urandom", "read_text", "read_bytes", "perf_counter", "monotonic")


def kernel_modules() -> list[Path]:
    return sorted(KERNEL.glob("*.py"))


@pytest.mark.parametrize("path", kernel_modules(), ids=lambda p: p.name)
def test_the_kernel_does_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert not any(name == m or name.startswith(m + ".") for m in _IO_MODULES), \
                f"{path.name}:{node.lineno} imports {name}"
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            assert called != "open" and called not in _CLOCK_CALLS, f"{path.name}:{node.lineno} calls {called}()"


def test_the_kernel_refuses_a_request_without_date_time_or_random() -> None:
    kernel = transaction(load_config(), TransactionRequest(amount=1234, date=datetime.date(2026, 1, 15)))
    with pytest.raises(ValueError, match=r"no time, random: .* the driver supplies them"):
        next(kernel)  # before the first command


def test_the_request_brings_date_time_and_random() -> None:
    draws = [bytes.fromhex("0A0B0C0D")]
    request = TransactionRequest(amount=1234, date=datetime.date(2030, 7, 9), time=datetime.time(23, 59, 58),
                                 random=lambda n: draws.pop(0))
    with open_transport("emu:visa") as card:
        tap = run_transaction(card, load_config(), request)
    assert tap.result.outcome.outcome is Outcome.APPROVED
    gpo = tap.trace.exchanges[2].command
    assert gpo[GPO_DATE] == bytes.fromhex("300709")
    assert gpo[GPO_UN] == bytes.fromhex("0A0B0C0D")
    assert tap.result.data[0x9F21] == bytes.fromhex("235958")
    assert draws == []  # the unpredictable number, and nothing else


# --- stamping ----------------------------------------------------------------------------------------


def test_stamp_fills_in_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    class Clock(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> Clock:
            return cls(2026, 3, 1, 8, 30, 15, 999999)

    monkeypatch.setattr(datetime, "datetime", Clock)
    stamped = stamp(TransactionRequest(amount=1))
    assert (stamped.date, stamped.time, stamped.random) == (datetime.date(2026, 3, 1), datetime.time(8, 30, 15),
                                                           os.urandom)

    def pinned(n: int) -> bytes:
        return bytes(n)

    given = TransactionRequest(amount=1, date=datetime.date(2020, 2, 29), time=datetime.time(1, 2, 3), random=pinned)
    assert stamp(given) == given
    assert stamp(TransactionRequest(amount=1), random=pinned).random is pinned


# --- the driver ----------------------------------------------------------------------------------------


def test_the_driver_answers_an_online_request_with_none_without_an_authoriser() -> None:
    request = stamp(TransactionRequest(amount=4000))  # above the floor limit: the card asks for an ARQC
    with open_transport("emu:visa") as card:
        result = drive(transaction(load_config(), request, online=True), Channel(card))
    assert result.outcome.outcome is Outcome.DECLINED
    assert result.error == "unable to go online"
    assert result.authorisation is None


def test_a_command_answered_with_something_else_is_a_driver_bug() -> None:
    step = transmit(CommandAPDU(0x00, 0xB2, 1, 0x0C, le=256))
    next(step)
    with pytest.raises(TypeError, match="not a ResponseAPDU"):
        step.send(AuthorisationResponse(approved=True, response_code="00", arc=b"00"))


# --- the order and the trace ---------------------------------------------------------------------------


def test_order_in_the_terminals_currency() -> None:
    config = load_config()
    request = Order(amount="40.00", other_amount="1.50", type="cashback", date="2026-01-15",
                    time="09:00:07").request(config)
    assert (request.amount, request.amount_other, request.transaction_type) == (4000, 150, 0x09)
    assert request.currency == bytes.fromhex("0978")  # the default terminal's EUR
    assert (request.date, request.time) == (datetime.date(2026, 1, 15), datetime.time(9, 0, 7))
    assert Order(amount="1234", currency="JPY").request(config).amount == 1234  # no minor unit


@pytest.mark.parametrize(("order", "message"), [
    (Order(date="2026-02-30"), r"^--date: "),
    (Order(time="25:00:00"), r"^time: "),
    (Order(type="sale"), r"^type: one of cash, cashback, purchase, refund, not 'sale'"),
])
def test_order_that_cannot_be_used(order: Order, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        order.request(load_config())


def test_recording_and_replaying_random() -> None:
    recording = RecordingRandom(lambda n: bytes(range(n)))
    assert recording(3) + recording(2) == bytes.fromhex("0001020001")
    replay = replaying(bytes(recording.drawn))
    assert replay(3) == bytes.fromhex("000102")
    with pytest.raises(ConfigError, match="ran out"):
        replay(3)


def test_a_trace_replays_with_its_order_random_bytes_and_issuer(tmp_path: Path) -> None:
    config = load_config()
    first = TapSession.prepare("emu:mastercard", config, Order(amount="40.00", date="2026-01-15"), host="none")
    with open_transport("emu:mastercard") as card:
        tap = first.run(card)
    trace = tmp_path / "t.json"
    first.save_trace(tap, trace, reader="emu:mastercard")
    again = TapSession.prepare(f"scripted:{trace}", config, Order())  # another order, no host: the trace's
    assert first.request.time is not None
    assert again.order == dataclasses.replace(first.order, time=first.request.time.isoformat())
    assert (again.request.date, again.request.time) == (datetime.date(2026, 1, 15), first.request.time)
    assert (again.host, again.authoriser, again.recording) == ("none", None, None)
    with open_transport(f"scripted:{trace}") as card:
        replayed = again.run(card)
    assert replayed.result.cryptogram == tap.result.cryptogram
    assert replayed.result.outcome.outcome is Outcome.ONLINE_REQUEST


def test_watch_taps_an_always_present_card_count_times() -> None:
    said: list[str] = []
    taps = list(watch("emu:visa", load_config(), Order(), None, count=2, say=said.append))
    assert [name for _, name in taps] == ["emu:visa", "emu:visa"]
    assert [tap.result.outcome.outcome for tap, _ in taps] == [Outcome.APPROVED, Outcome.APPROVED]
    assert said == []  # no card to present or remove: the prompts are for pcsc: readers


# --- the issuer -------------------------------------------------------------------------------------------


def test_make_authoriser() -> None:
    assert make_authoriser("none", "emu:visa") is None
    assert isinstance(make_authoriser(None, "emu:visa"), IssuerHost)
    with pytest.raises(ConfigError, match=r"^--host: builtin, tcp://HOST:PORT or none, not 'foo'"):
        make_authoriser("foo", "emu:visa")


# --- configuration files are the loader's ---------------------------------------------------------------


def test_parsing_a_configuration_reads_no_file() -> None:
    doc: dict[str, object] = {"capk_files": ["builtin", "/no/such/keys.json"], "revocation_files": ["crl.json"],
                              "application": [{"aid": "A0000000031010", "kernel": 3}]}
    config = config_from_toml(doc, "doc")
    assert config.capk_files == ("builtin", "/no/such/keys.json")
    assert config.revocation_files == ("crl.json",)
    assert len(config.capks) == 0 and len(config.revocations) == 0  # named, not read
    assert len(load_config().capks) > 0  # the loader reads "builtin"
