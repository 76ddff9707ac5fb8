"""The NCI chain on CPython: the firmware's PN7150/PN7160 driver against the strict NCI controller simulator.

Three layers: the simulator's host link alone (packets in, exact packets out); the driver against it
over the in-memory I2C link, the test playing the reader (C-APDUs injected, one thread, the driver
polled until the chip has the answer), with malformed packets from the chip's side; and a whole
transaction over nfcpy's udp RF link, ``nfc:udp`` reader -> simulator -> driver -> card application.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emvkit.firmware.nfc import nci
from emvkit.firmware.nfc.nci import NciTarget
from emvkit.firmware.payapp.rng import CountingRandom
from emvkit.terminal.chipsim.nci import PN7150, PN7160, Flavour, MemoryLink, NciChip, NciSimulator
from emvkit.terminal.config_files import load_config
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.base import BaseTransport
from tests.front_end_chain import DriverChain, started

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
ACTIVATED = bytes.fromhex("61050C0102048020010080000001 80".replace(" ", ""))  # max data 0x20, 1 credit


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- the simulator's host link alone ---------------------------------------------------------------


class Wire:
    def __init__(self, flavour: Flavour = PN7150, **options: Any) -> None:
        self.out: list[bytes] = []
        self.chip = NciChip(self.out.append, flavour, **options)

    def send(self, hex_packet: str) -> list[str]:
        """One host write; the packets the chip answered at once, as hex."""
        start = len(self.out)
        self.chip.receive(h(hex_packet))
        return [p.hex().upper() for p in self.out[start:]]


def ready(flavour: Flavour = PN7150, **options: Any) -> Wire:
    wire = Wire(flavour, **options)
    wire.send("20 00 01 01")
    wire.send("20 01 00" if flavour.version < 0x20 else "20 01 02 00 00")
    return wire


def listening(flavour: Flavour = PN7150, **options: Any) -> Wire:
    wire = ready(flavour, **options)
    for packet in ("21 00 04 01 04 02 02", "21 01 07 00 01 01 03 00 01 04", "20 02 04 01 32 01 20",
                   "21 03 03 01 80 01"):
        assert wire.send(packet)[0][-2:] == "00", packet
    return wire


def test_after_power_up_only_core_reset_is_taken() -> None:
    wire = Wire()
    assert wire.send("20 01 00") == []
    assert wire.send("21 03 03 01 80 01") == []
    assert wire.send("20 00 01 01") == ["4000030010" + "01"]


def test_core_reset_nci_2_answers_then_notifies() -> None:
    wire = Wire(PN7160)
    assert wire.send("20 00 01 00") == ["40000100", "6000090200200404" + "50120001"]


def test_core_init_takes_its_versions_form_only() -> None:
    wire = Wire(PN7150)
    wire.send("20 00 01 01")
    assert wire.send("20 01 02 00 00") == ["40010105"]  # NCI 1.0: no payload
    assert wire.send("20 01 00")[0].startswith("400115" + "00")
    wire = Wire(PN7160)
    wire.send("20 00 01 01")
    assert wire.send("20 01 00") == ["40010105"]  # NCI 2.0: two feature bytes
    assert wire.send("20 01 02 00 00")[0].startswith("400112" + "00")


def test_commands_before_core_init_are_not_initialised() -> None:
    wire = Wire()
    wire.send("20 00 01 01")
    assert wire.send("21 03 03 01 80 01") == ["41030104"]
    assert wire.send("2F 02 00") == ["4F020104"]


def test_unknown_gid_and_oid() -> None:
    wire = ready()
    assert wire.send("23 01 00") == ["43010107"]
    assert wire.send("20 3F 00") == ["403F0108"]
    assert wire.send("21 3A 00") == ["413A0108"]


def test_wrong_lengths_are_syntax_errors() -> None:
    wire = ready()
    assert wire.send("20 00 02 01 00") == ["40000105"]  # CORE_RESET takes one byte
    assert wire.send("21 00 05 02 04 02 02 00") == ["41000105"]  # two mappings announced, one given
    assert wire.send("21 03 02 01 80") == ["41030105"]  # a configuration without its frequency
    assert wire.send("20 02 04 02 32 01 20") == ["40020105"]  # two parameters announced, one given
    assert wire.send("20 02") == ["60070105"]  # a truncated header: CORE_GENERIC_ERROR_NTF
    assert wire.send("20 02 05 01 32 01 20") == ["60070105"]  # the length byte says more than was written
    assert wire.send("60 07 01 00") == ["60070105"]  # a notification from the host


def test_set_config_names_the_invalid_parameters() -> None:
    wire = ready()
    assert wire.send("20 02 08 02 32 02 20 00 33 01 08") == ["40020409023233"]  # SEL_INFO 2 bytes, NFCID1 1
    assert wire.send("20 02 06 02 32 01 20 7E 00") == ["400203" + "09017E"]  # an id this chip does not know
    assert wire.send("20 02 04 01 32 01 20") == ["40020200" + "00"]


def test_rf_commands_in_the_wrong_state() -> None:
    wire = listening()
    assert wire.send("21 03 03 01 80 01") == ["410301A0"]  # discovery already started
    assert wire.send("21 00 04 01 04 02 02") == ["41000106"]  # semantic error
    assert wire.send("21 01 07 00 01 01 03 00 01 04") == ["41010106"]
    assert wire.send("21 06 01 00") == ["41060100"]  # to idle: response only
    assert wire.send("21 06 01 00") == ["41060106"]  # already idle


def test_listens_only_when_mapped_routed_and_discovering() -> None:
    wire = ready()
    wire.send("20 02 04 01 32 01 20")
    wire.send("21 03 03 01 80 01")
    assert wire.chip.listening() is None  # ISO-DEP neither mapped nor routed to the DH
    assert not wire.chip.rf_activate(b"\xe0\x80")
    wire = listening()
    found = wire.chip.listening()
    assert found is not None and found.sens_res == b"\x04\x00" and found.sel_res == 0x20
    assert wire.chip.rf_activate(b"\xe0\x80")
    assert wire.out[-1] == h("61 05 0C 01 02 04 80 FF 01 00 80 00 00 01 80")


def test_data_needs_a_credit_and_a_command_to_answer() -> None:
    wire = listening(max_data=8)
    wire.chip.rf_activate(b"\xe0\x80")
    assert wire.send("00 00 02 90 00") == ["60080201" + "00"]  # no C-APDU to answer: rejected
    wire.chip.withhold_credits = True
    wire.chip.rf_command_begin(b"\x00\xb2\x01\x0c\x00")
    assert wire.out[-1] == h("00 00 05 00 B2 01 0C 00")
    assert wire.send("00 00 09 " + "00" * 9) == ["6008020A00"]  # longer than the largest data payload
    assert wire.send("01 00 02 90 00") == ["60080206" + "01"]  # connection 1 is not open
    assert wire.send("10 00 02 6A 82") == []  # the one credit, kept
    assert wire.send("00 00 02 90 00") == ["60080201" + "00"]  # a data packet without credit
    wire.chip.give_credit()
    assert wire.send("00 00 02 90 00") == []
    assert wire.chip.rf_response() == h("6A 82 90 00")


def test_deactivation_from_the_reader() -> None:
    wire = listening()
    wire.chip.rf_activate(b"\xe0\x80")
    wire.chip.rf_deactivate(sleep=True)
    assert wire.out[-1] == h("61 06 02 01 01")
    wire.chip.rf_deactivate()
    assert wire.out[-1] == h("61 06 02 03 02")
    assert wire.chip.listening() is not None


def test_the_simulator_rejects_a_driver_that_sends_the_wrong_core_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nci, "CORE_INIT_CMD_2", nci.CORE_INIT_CMD_1)  # the NCI 1.0 form to an NCI 2.0 chip
    bench = Bench(open_card("visa"), PN7160)
    bench.settle()
    assert "status 05 to 0/01: CORE_INIT_CMD of 0 bytes (NCI 2: 2)" in bench.link.chip.log
    assert bench.driver.state == nci.ST_OFF and bench.driver.last_status == 0x05
    assert bench.driver.rearms == bench.driver.resets == 3 and bench.driver.errors == 0  # then it pauses
    bench.now += 1000
    bench.settle()
    assert bench.driver.resets == 4


# --- the driver against the simulator, in memory -------------------------------------------------


class Bench:
    """Driver and simulator on the in-memory link, one thread; the test plays the reader."""

    def __init__(self, card: Any, flavour: Flavour = PN7150, **options: Any) -> None:
        self.link = MemoryLink(flavour, **options)
        self.card = card
        self.now = 0
        self.driver = NciTarget(self.link.firmware_bus, lambda: self.card, ven=self.link.ven,
                                ticks_ms=lambda: self.now, ticks_diff=lambda a, b: a - b)

    def settle(self, limit: int = 200) -> int:
        """Poll until the driver has nothing to do; how many polls did something."""
        for n in range(limit):
            if not self.driver.poll():
                return n
        raise AssertionError(f"the driver never settled (state {self.driver.state}, {self.driver.last_fault})")

    def activate(self) -> None:
        self.settle()
        assert self.link.chip.rf_activate(b"\xe0\x80"), self.link.chip.log[-5:]
        self.settle()
        assert self.driver.state == nci.ST_ACTIVE, self.driver.last_fault

    def exchange(self, apdu: bytes, limit: int = 200) -> bytes:
        self.link.chip.rf_command_begin(apdu)
        for _ in range(limit):
            self.driver.poll()
            response = self.link.chip.rf_response()
            if response is not None:
                return response
        raise AssertionError(f"no R-APDU (driver: {self.driver.last_fault}; chip: {self.link.chip.log[-3:]})")

    def field_off(self) -> None:
        self.link.chip.rf_deactivate()
        self.settle()


class BenchTransport(BaseTransport):
    """The reader's side of a Bench as a transport (one tap: activated on open, field off on close)."""

    url = "nci-bench:"

    def __init__(self, bench: Bench) -> None:
        super().__init__()
        self.bench = bench

    def open(self) -> None:
        self.bench.activate()
        super().open()

    def close(self) -> None:
        self.bench.field_off()
        super().close()

    def _transmit(self, command: bytes) -> bytes:
        return self.bench.exchange(command)


def pinned_card(name: str) -> Any:
    return open_card(name, rng=CountingRandom(), clock=lambda: 1_700_000_000.0)


@pytest.mark.parametrize("flavour", [PN7150, PN7160], ids=lambda f: f.name)
@pytest.mark.parametrize(("profile", "oda"), [("visa", "fDDA"), ("mastercard", "CDA"), ("unionpay", "fDDA"),
                                              ("wearable", "fDDA")])
def test_a_transaction_through_driver_and_simulator_matches_the_emulator(profile: str, oda: str,
                                                                          flavour: Flavour) -> None:
    bench = Bench(pinned_card(profile), flavour, max_data=32, segment=16)  # both ways in several packets
    with BenchTransport(bench) as transport:
        tap = run_transaction(transport, load_config(), TransactionRequest(amount=1234))
    assert tap.result.outcome.outcome is Outcome.APPROVED, tap.result.error
    assert (tap.result.oda, tap.result.oda_result) == (oda, "successful")
    assert bench.driver.apdus == tap.apdus and bench.driver.rearms == 0 and bench.driver.errors == 0
    emulator = pinned_card(profile)
    for exchange in tap.trace.exchanges:
        assert exchange.response == emulator.process(exchange.command), exchange.command.hex()
    assert any(len(e.response or b"") > 32 for e in tap.trace.exchanges)  # segmented R-APDUs were in it


def tapped_once(bench: Bench) -> None:
    bench.activate()
    assert bench.exchange(SELECT_PPSE)[-2:] == b"\x90\x00"
    bench.field_off()
    assert bench.driver.state == nci.ST_LISTEN


MALFORMED = {
    "length says more than follows": h("61 06 05 03 02"),
    "length says less than follows": h("61 06 01 03 02"),
    "unknown GID/OID": h("63 21 01 00"),
    "truncated header": h("61 05"),
    "data outside a tap": h("00 00 02 90 00"),
    "response to no command": h("41 03 01 00"),
    "generic error": h("60 07 01 03"),
}


@pytest.mark.parametrize("packet", MALFORMED.values(), ids=MALFORMED.keys())
def test_driver_recovers_from_a_malformed_packet_and_the_next_tap_works(packet: bytes) -> None:
    bench = Bench(open_card("visa"))
    tapped_once(bench)
    resets = bench.driver.resets
    bench.link.chip.inject(packet)
    bench.settle()
    assert bench.driver.resets == resets + 1 and bench.driver.rearms == 1, bench.driver.last_fault
    assert bench.driver.state == nci.ST_LISTEN and "power on" in bench.link.chip.log[-12:]
    tapped_once(bench)
    assert bench.driver.errors == 0


def test_malformed_packet_in_a_tap_powers_the_card_off_and_rearms() -> None:
    card = open_card("visa")
    events: list[str] = []
    card.power_off = lambda: events.append("off")  # type: ignore[method-assign]
    bench = Bench(card)
    bench.activate()
    bench.link.chip.inject(h("61 05 0C 01"))  # an activation notification cut short
    bench.settle()
    assert events == ["off"] and bench.driver.state == nci.ST_LISTEN and bench.driver.rearms == 1
    tapped_once(bench)


def test_no_credit_the_driver_waits_then_starts_over() -> None:
    bench = Bench(open_card("visa"), max_data=16)
    bench.link.chip.withhold_credits = True
    bench.activate()
    bench.link.chip.rf_command_begin(SELECT_PPSE)
    bench.settle()
    assert bench.link.chip.rf_response() is None  # one packet sent, the rest waits for a credit
    assert not any("without credit" in line for line in bench.link.chip.log)
    bench.now += 1000
    bench.settle()
    assert bench.driver.last_fault == "no credit" and bench.driver.state == nci.ST_LISTEN
    bench.link.chip.withhold_credits = False
    tapped_once(bench)


def test_rf_error_in_a_tap_does_not_restart() -> None:
    bench = Bench(open_card("visa"))
    bench.activate()
    bench.link.chip.inject(h("60 08 02 B1 00"))  # RF_PROTOCOL_ERROR on connection 0
    bench.settle()
    assert bench.driver.state == nci.ST_ACTIVE and bench.driver.resets == 1
    assert bench.exchange(SELECT_PPSE)[-2:] == b"\x90\x00"


def test_a_new_card_is_configured_before_the_next_tap() -> None:
    bench = Bench(None)
    bench.settle()
    assert bench.driver.state == nci.ST_IDLE and bench.link.chip.listening() is None
    bench.card = open_card("visa")
    bench.settle()
    assert bench.link.chip.listening() is not None
    bench.card = open_card("mastercard")
    bench.settle()
    assert bench.driver.card is bench.card and bench.driver.state == nci.ST_LISTEN
    assert bench.link.chip.log.count("discovery") == 2
    bench.activate()
    assert b"\xa0\x00\x00\x00\x04" in bench.exchange(SELECT_PPSE)


def test_driver_with_no_chip_never_hangs() -> None:
    class Silent:
        written = 0

        def write(self, buf: Any) -> None:
            self.written += 1

        def readinto(self, buf: Any, timeout_ms: int = 0) -> int:
            return 0

    now = [0]
    bus = Silent()
    driver = NciTarget(bus, lambda: None, ticks_ms=lambda: now[0], ticks_diff=lambda a, b: a - b)
    for _ in range(40):
        driver.poll()
        now[0] += 300
    assert driver.resets >= 3 and bus.written == driver.resets and driver.errors == 0


# --- over nfcpy's udp RF link ------------------------------------------------------------------------


def nci_chain(card: Any, flavour: Flavour) -> DriverChain:
    """The NCI driver against the simulated controller of ``flavour``."""
    link = MemoryLink(flavour, max_data=64)
    return DriverChain(link, card, lambda card_of: NciTarget(link.firmware_bus, card_of, ven=link.ven),
                       NciSimulator, "nci-driver")


@pytest.fixture
def chain() -> Iterator[Callable[[Any, Flavour], DriverChain]]:
    yield from started(nci_chain)


@pytest.mark.parametrize("flavour", [PN7150, PN7160], ids=lambda f: f.name)
def test_visa_approved_over_nfc_udp_behind_the_simulated_controller(chain: Callable[[Any, Flavour], DriverChain],
                                                                    flavour: Flavour) -> None:
    c = chain(open_card("visa"), flavour)
    for _ in range(2):  # the chip listens again after each tap
        with open_transport(f"{c.url}?timeout=5") as transport:
            tap = run_transaction(transport, load_config(), TransactionRequest(amount=1234))
        assert tap.result.outcome.outcome is Outcome.APPROVED, tap.result.error
        assert (tap.result.oda, tap.result.oda_result) == ("fDDA", "successful")
    assert c.driver.activations == 2 and c.driver.apdus == 2 * tap.apdus and c.driver.rearms == 0


# --- the firmware's choice of front end ------------------------------------------------------------


@pytest.mark.parametrize("name", ["pn7150", "pn7160"])
def test_main_picks_the_nci_driver_for_an_nci_board(name: str) -> None:
    from types import SimpleNamespace

    from emvkit.firmware.main import front_end_driver

    link = MemoryLink(PN7160 if name == "pn7160" else PN7150)
    board = SimpleNamespace(front_end=lambda: name, nfc_bus=lambda: link.firmware_bus, nfc_reset=link.ven,
                            random_bytes=lambda n: b"\xa1\xb2\xc3"[:n], ticks_ms=lambda: 0,
                            ticks_diff=lambda a, b: a - b)
    token = SimpleNamespace(card=open_card("visa"))
    driver = front_end_driver(board, token)
    assert isinstance(driver, NciTarget) and driver.nfcid1 == b"\x08\xa1\xb2\xc3"
    for _ in range(20):
        driver.poll()
    found = link.chip.listening()
    assert driver.state == nci.ST_LISTEN and found is not None and found.uid == b"\x08\xa1\xb2\xc3"
