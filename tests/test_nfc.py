"""ISO-DEP card emulation and the ``nfc:`` transport, over nfcpy's udp RF link.

Three layers: the card-side ISO/IEC 14443-4 engine alone (frames in, frames
out, exact bytes); the engine against nfcpy's own reader-side ISO-DEP
(``IsoDepInitiator``) wired in-process, including lost frames; and end to end,
the listener in a thread (or ``emvkit emulate --nfc`` in a subprocess) on a
free UDP port, tapped by full kernel transactions over ``nfc:udp:...``.
"""

from __future__ import annotations

import importlib
import logging
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nfc.clf
import nfc.tag.tt4
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emvkit.terminal.config_files import load_config
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.emulator.faults import FaultPlan, FaultyCard
from emvkit.terminal.emulator.isodep import Command, Ignored, IsoDepCard, IsoDepConfig, Reply, State
from emvkit.terminal.emulator.nfc_listener import NfcListener, parse_target
from emvkit.terminal.endpoints import free_udp_port
from emvkit.terminal.errors import CardRemoved, ConfigError, TransportError, UnknownScheme
from emvkit.terminal.iso7816 import contactless_atr
from emvkit.terminal.iso14443 import Ats, crc_a, frame_size, historical_bytes_from_atr
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import Tap, run_transaction
from emvkit.terminal.transport import make_transport, open_transport
from emvkit.terminal.transport.nfc import NfcTransport
from tests.conftest import HANG_S, within

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
PPSE_FCI = bytes.fromhex("6F23840E325041592E5359532E4444463031A511BF0C0E610C4F07A0000000031010870101")
SW_OK = b"\x90\x00"
HISTORICAL = bytes.fromhex("8073C821")


@pytest.fixture(autouse=True, scope="module")
def no_leftover_listeners() -> Iterator[None]:
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("nfc-listener")]
    assert not left, f"listener threads still running: {left}"


def echo(apdu: bytes) -> bytes:
    """A card that answers every C-APDU with its own bytes and 9000."""
    return apdu + SW_OK


def activate(engine: IsoDepCard, rats: str = "E080") -> bytes:
    event = engine.receive(bytes.fromhex(rats))
    assert isinstance(event, Reply), event
    return event.frame


def reply(engine: IsoDepCard, frame: str) -> str:
    """Feed one frame (hex), answer a complete C-APDU with ``echo``; the reply in hex ('' when silent)."""
    out = engine.handle(bytes.fromhex(frame), echo)
    return "" if out is None else out.hex().upper()


# --- the engine: activation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        ("0000", "A01E"),  # ISO/IEC 14443-3 Annex B examples
        ("1234", "26CF"),
        ("E080", "3173"),  # RATS as every reader sends it
        ("5000", "57CD"),  # HLTA
    ],
)
def test_crc_a(data: str, crc: str) -> None:
    assert crc_a(bytes.fromhex(data)).hex().upper() == crc


def test_frame_sizes() -> None:
    assert [frame_size(i) for i in range(16)] == [16, 24, 32, 40, 48, 64, 96, 128] + [256] * 8


def test_rats_answered_with_ats_from_the_pseudo_atr() -> None:
    historical = historical_bytes_from_atr(contactless_atr(HISTORICAL))
    assert historical == HISTORICAL
    engine = IsoDepCard(IsoDepConfig(historical=historical))
    ats = activate(engine, "E080")
    # TL 09, T0 72 (TA TB TC follow, FSCI 2 = 32 bytes), TA 00 (106 kbit/s), TB 80 (FWI 8, SFGI 0), TC 02 (CID).
    assert ats.hex().upper() == "0972008002" + HISTORICAL.hex().upper()
    assert engine.state is State.ACTIVE and engine.fsd == 256 and engine.cid == 0
    # What nfcpy's Type4ATag reads from it: FSCI from byte 1, FWI from byte 3.
    assert (ats[1] & 0x0F, ats[3] >> 4) == (2, 8)
    parsed = Ats.parse(ats)
    assert (parsed.fsc, parsed.fwi, parsed.cid_supported, parsed.historical) == (32, 8, True, HISTORICAL)
    assert 0.077 < parsed.fwt < 0.078


def test_ats_configurable_and_cut_to_the_readers_fsd() -> None:
    engine = IsoDepCard(IsoDepConfig(fsci=5, fwi=4, sfgi=1, ta=0x77, cid_supported=False, historical=bytes(15)))
    ats = activate(engine, "E000")  # FSDI 0: the reader takes 16-byte frames, CRC_A included
    assert engine.fsd == 16
    assert ats[:5].hex().upper() == "0E75774100" and len(ats) == 14  # 9 of the 15 historical bytes fit
    assert Ats.parse(bytes.fromhex("0208")) == Ats(fsci=8, ta=None, tb=None, tc=None, historical=b"")
    with pytest.raises(ValueError, match="interface bytes"):
        Ats.parse(bytes.fromhex("0278"))
    with pytest.raises(ValueError, match="length byte"):
        Ats.parse(bytes.fromhex("0578"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"fsci": 9}, "FSCI"),
        ({"fwi": 15}, "FWI"),
        ({"ta": 0x08}, "TA"),
        ({"historical": bytes(16)}, "historical"),
        ({"max_frame": 8}, "max_frame"),
    ],
)
def test_config_rejects(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IsoDepConfig(**config)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("0200A4040000", "waiting for RATS"),  # an I-block before RATS
        ("E0", "waiting for RATS"),  # truncated RATS
        ("E08F", "CID 15"),  # CID 15 is RFU
        ("", "empty"),
    ],
)
def test_before_rats_only_rats_is_answered(frame: str, reason: str) -> None:
    engine = IsoDepCard()
    assert engine.state is State.IDLE
    event = engine.receive(bytes.fromhex(frame))
    assert isinstance(event, Ignored) and reason in event.reason
    assert engine.state is State.IDLE


def test_hlta_before_rats_halts() -> None:
    engine = IsoDepCard()
    assert isinstance(engine.receive(bytes.fromhex("5000")), Ignored)
    assert engine.state is State.HALT
    assert isinstance(engine.receive(bytes.fromhex("E080")), Ignored)


def test_pps_directly_after_ats() -> None:
    engine = IsoDepCard()
    activate(engine)
    assert reply(engine, "D01100") == "D0"  # PPS1: DSI 0, DRI 0 (106 kbit/s both ways)
    assert (engine.dsi, engine.dri) == (0, 0)
    # Once the first block is through, D0 is no longer a PPS: it is an invalid PCB.
    assert reply(engine, "0200B2010C00") == "0200B2010C009000"
    assert reply(engine, "D01100") == ""


def test_pps_for_a_bit_rate_not_offered_is_ignored_and_one_offered_is_taken() -> None:
    engine = IsoDepCard()
    activate(engine)
    assert reply(engine, "D0110A") == ""  # DSI 2, DRI 2 (424 kbit/s): TA(1) 00 offers none
    higher = IsoDepCard(IsoDepConfig(ta=0x22))  # 424 kbit/s both ways
    activate(higher)
    assert reply(higher, "D0110A") == "D0"
    assert (higher.dsi, higher.dri) == (2, 2)


def test_activation_by_the_reader_chip() -> None:
    engine = IsoDepCard()
    engine.activated_without_rats()
    assert engine.state is State.ACTIVE and engine.fsd == 256
    assert reply(engine, "0200B2010C00") == "0200B2010C009000"


# --- the engine: blocks -------------------------------------------------------------------------


def test_i_blocks_toggle_the_block_number() -> None:
    engine = IsoDepCard()
    activate(engine)
    assert engine.block_number == 1  # §7.5.3 rule C
    event = engine.receive(bytes.fromhex("02") + SELECT_PPSE)
    assert event == Command(SELECT_PPSE) and engine.awaiting_response
    assert engine.respond(PPSE_FCI + SW_OK) == Reply(b"\x02" + PPSE_FCI + SW_OK)
    assert reply(engine, "0300B2010C00") == "0300B2010C009000"
    assert reply(engine, "0200B2020C00") == "0200B2020C009000"
    # The reader repeating its last I-block (number not toggled) gets no answer (note to rule D).
    assert reply(engine, "0200B2020C00") == ""
    with pytest.raises(RuntimeError):
        engine.respond(SW_OK)


def test_reader_chains_a_long_command_to_a_small_fsc() -> None:
    engine = IsoDepCard(IsoDepConfig(fsci=0))  # FSC 16: 13 bytes of INF per block
    activate(engine)
    apdu = bytes.fromhex("80AE8000") + bytes([30]) + bytes(range(30)) + b"\x00"  # 36 bytes
    parts = [apdu[i : i + 13] for i in range(0, len(apdu), 13)]
    pcbs = [0x12, 0x13, 0x02]
    for n, (pcb, part) in enumerate(zip(pcbs, parts, strict=True)):
        event = engine.receive(bytes((pcb,)) + part)
        if n < len(parts) - 1:
            assert event == Reply(bytes((0xA2 | (pcb & 1),))), n  # R(ACK) with the block's number
        else:
            assert event == Command(apdu)
    assert engine.respond(SW_OK) == Reply(b"\x02\x90\x00")
    # A block longer than FSC is invalid: ignored (§7.5.4 rule 10).
    assert reply(engine, "03" + "00" * 14) == ""


def test_card_chains_a_long_response_to_a_small_fsd() -> None:
    engine = IsoDepCard()
    activate(engine, "E000")  # FSD 16: 13 bytes of INF per block
    response = bytes(range(40)) + SW_OK  # 42 bytes: 13 + 13 + 13 + 3
    assert engine.receive(bytes.fromhex("0200B2010C00")) == Command(bytes.fromhex("00B2010C00"))
    first = engine.respond(response).frame
    assert first == b"\x12" + response[:13]
    assert reply(engine, "A3") == "13" + response[13:26].hex().upper()  # R(ACK), other number: go on
    assert reply(engine, "A2") == "12" + response[26:39].hex().upper()
    assert reply(engine, "A2") == "12" + response[26:39].hex().upper()  # same number: send it again
    assert reply(engine, "A3") == "03" + response[39:].hex().upper()
    assert reply(engine, "A2") == ""  # R(ACK) with the other number while not chaining


def test_max_frame_makes_the_card_chain_below_the_readers_fsd() -> None:
    engine = IsoDepCard(IsoDepConfig(max_frame=64))
    activate(engine)  # FSD 256
    engine.receive(bytes.fromhex("0200B2010C00"))
    assert len(engine.respond(bytes(100) + SW_OK).frame) == 64 - 2


def test_r_nak_gets_the_last_block_again_or_an_r_ack() -> None:
    engine = IsoDepCard()
    activate(engine)
    assert reply(engine, "B2") == "A3"  # presence check before any I-block: rule 12
    assert reply(engine, "B3") == ""  # the card's own number, nothing sent yet
    assert reply(engine, "0200B2010C00") == "0200B2010C009000"
    assert reply(engine, "B2") == "0200B2010C009000"  # the reader missed it: rule 11
    assert reply(engine, "B3") == "A2"  # presence check: rule 12
    assert reply(engine, "A2") == "0200B2010C009000"  # R(ACK) with our number: rule 11 too
    assert reply(engine, "0300B2020C00") == "0300B2020C009000"


def test_r_nak_during_reader_chaining_repeats_the_r_ack() -> None:
    engine = IsoDepCard()
    activate(engine)
    assert reply(engine, "1200A4") == "A2"
    assert reply(engine, "B2") == "A2"  # the R(ACK) was lost
    assert reply(engine, "030400") == "0300A404009000"


def test_deselect_ends_the_session() -> None:
    engine = IsoDepCard()
    activate(engine)
    assert reply(engine, "0200B2010C00") == "0200B2010C009000"
    assert reply(engine, "C2") == "C2"
    assert engine.state is State.HALT
    assert reply(engine, "0300B2010C00") == ""
    assert reply(engine, "B3") == ""


def test_cid_assigned_by_rats() -> None:
    engine = IsoDepCard()
    activate(engine, "E083")  # CID 3
    assert engine.cid == 3
    assert reply(engine, "0200B2010C00") == ""  # no CID: not for us (§7.1.1.2)
    assert reply(engine, "0A0400B2010C00") == ""  # CID 4
    assert reply(engine, "0A0300B2010C00") == "0A0300B2010C009000"
    assert reply(engine, "BB03") == "AA03"  # presence check with CID
    assert reply(engine, "CA03") == "CA03"  # S(DESELECT) with CID
    assert engine.state is State.HALT


def test_card_without_cid_support() -> None:
    engine = IsoDepCard(IsoDepConfig(cid_supported=False))
    assert isinstance(engine.receive(bytes.fromhex("E081")), Ignored)
    activate(engine, "E080")
    assert reply(engine, "0A0000B2010C00") == ""


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("22", "invalid PCB"),  # I-block with b6 set
        ("00B2010C00", "invalid PCB"),  # I-block with b2 clear
        ("C3", "invalid PCB"),  # S-block with b1 set
        ("E2", "RFU"),  # S-block b6 b5 = 10 (S(PARAMETERS) in later editions)
        ("C200", "information field"),  # S(DESELECT) with INF
        ("A6", "invalid PCB"),  # R-block with b3 set
        ("0600B2010C00", "NAD"),  # NAD: not supported (§7.1.1.3)
        ("A200", "information field"),  # R-block with INF
        ("F201", "S(WTX) response"),  # the card never asked for more time
        ("D2", "RFU"),  # S-block b6 b5 = 01
    ],
)
def test_malformed_blocks_are_ignored(frame: str, reason: str) -> None:
    engine = IsoDepCard()
    activate(engine)
    engine.receive(bytes.fromhex("0200B2010C00"))
    engine.respond(SW_OK)
    event = engine.receive(bytes.fromhex(frame))
    assert isinstance(event, Ignored) and reason in event.reason, event
    # and the card still works
    assert reply(engine, "0300B2010C00") == "0300B2010C009000"


def test_frames_with_crc_a() -> None:
    engine = IsoDepCard(IsoDepConfig(edc=True))
    rats = bytes.fromhex("E0803173")
    ats = engine.receive(rats)
    assert isinstance(ats, Reply) and ats.frame[-2:] == crc_a(ats.frame[:-2])
    block = bytes.fromhex("0200B2010C00")
    assert isinstance(engine.receive(block + b"\x00\x00"), Ignored)  # bad CRC_A: rule 10
    out = engine.handle(block + crc_a(block), echo)
    assert out == bytes.fromhex("0200B2010C009000") + crc_a(bytes.fromhex("0200B2010C009000"))


# --- the engine against nfcpy's reader-side ISO-DEP, in-process ---------------------------------


class EngineLink:
    """``clf.exchange`` for nfcpy's ``IsoDepInitiator``, answered by the engine; frames can be lost.

    ``lose_command`` / ``lose_answer``: numbers (1-based) of exchanges whose
    command never reaches the card, or whose answer never reaches the reader.
    """

    def __init__(self, engine: IsoDepCard, process: Callable[[bytes], bytes],
                 lose_command: tuple[int, ...] = (), lose_answer: tuple[int, ...] = ()) -> None:
        self.engine = engine
        self.process = process
        self.lose_command = lose_command
        self.lose_answer = lose_answer
        self.frames: list[tuple[bytes, bytes | None]] = []

    def exchange(self, data: bytes, timeout: float) -> bytearray:
        n = len(self.frames) + 1
        answer = None if n in self.lose_command else self.engine.handle(bytes(data), self.process)
        self.frames.append((bytes(data), answer))
        if answer is None or n in self.lose_answer:
            raise nfc.clf.TimeoutError("no answer")
        return bytearray(answer)


def nfcpy_reader(link: EngineLink, fsdi: int = 8) -> Any:
    """nfcpy's ISO-DEP initiator as Type4ATag sets it up from our ATS."""
    ats = link.engine.receive(bytes((0xE0, fsdi << 4)))
    assert isinstance(ats, Reply)
    fsc = frame_size(ats.frame[1] & 0x0F)
    fwt = 4096 / 13.56e6 * 2 ** (ats.frame[3] >> 4)
    return nfc.tag.tt4.IsoDepInitiator(link, fsc, fwt)


@settings(max_examples=60, deadline=None)
@given(
    command=st.binary(min_size=4, max_size=300),
    response=st.binary(min_size=0, max_size=600),
    fsci=st.integers(0, 8),
    fsdi=st.integers(0, 8),
)
def test_nfcpy_initiator_round_trips_any_apdu(command: bytes, response: bytes, fsci: int, fsdi: int) -> None:
    engine = IsoDepCard(IsoDepConfig(fsci=fsci))
    seen: list[bytes] = []

    def card(apdu: bytes) -> bytes:
        seen.append(apdu)
        return response + SW_OK

    link = EngineLink(engine, card)
    reader = nfcpy_reader(link, fsdi)
    for _ in range(2):
        assert bytes(reader.exchange(command)) == response + SW_OK
    assert seen == [command, command]
    fsc, fsd = frame_size(fsci), frame_size(fsdi)
    for sent, answer in link.frames:
        assert len(sent) + 2 <= fsc and (answer is None or len(answer) + 2 <= fsd)


def test_nfcpy_presence_check_is_answered() -> None:
    link = EngineLink(IsoDepCard(), echo)
    reader = nfcpy_reader(link)
    reader.exchange(None)  # R(NAK): raises when nothing answers
    assert link.frames[-1] == (b"\xb2", b"\xa3")


@pytest.mark.parametrize(
    ("lose_command", "lose_answer", "expected"),
    [
        # The answer to the first block of the chained command is lost: R(NAK) -> the R(ACK) again.
        ((), (1,), ["12", "B2", "03"]),
        # The chained command's first block never arrives: R(NAK) -> R(ACK) with the other number -> resend.
        ((1,), (), ["12", "B2", "12", "03"]),
        # The first block of the chained response is lost: R(NAK) -> that block again.
        ((), (2,), ["12", "03", "B3", "A2", "A3"]),
        # A block of the chained response is lost: R(ACK) with the same number -> that block again.
        ((), (4,), ["12", "03", "A2", "A3", "A3"]),
    ],
)
def test_nfcpy_recovers_lost_frames(lose_command: tuple[int, ...], lose_answer: tuple[int, ...],
                                    expected: list[str]) -> None:
    # FSC 16: the 20-byte SELECT takes two blocks; frames of at most 16 bytes: the 41-byte answer takes four.
    engine = IsoDepCard(IsoDepConfig(fsci=0, max_frame=16))
    served: list[bytes] = []

    def card(apdu: bytes) -> bytes:
        served.append(apdu)
        return PPSE_FCI + SW_OK

    link = EngineLink(engine, card, lose_command, lose_answer)
    reader = nfcpy_reader(link, fsdi=8)
    assert bytes(reader.exchange(SELECT_PPSE)) == PPSE_FCI + SW_OK
    assert served == [SELECT_PPSE]  # the command ran once, whatever was lost
    assert [sent[:1].hex().upper() for sent, _ in link.frames][: len(expected)] == expected


# --- end to end over nfcpy's udp driver ---------------------------------------------------------


def udp_port_bound(port: int) -> bool:
    """Whether some socket is bound to UDP ``port`` (from /proc, without touching the port)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in lines):
            return True
    return False


class Listening:
    """A listener running in a thread, and how to tap it."""

    def __init__(self, listener: NfcListener, thread: threading.Thread, stop: threading.Event, port: int) -> None:
        self.listener = listener
        self.thread = thread
        self.stop_event = stop
        self.port = port
        self.url = f"nfc:udp:127.0.0.1:{port}"

    def stop(self) -> None:
        with within(HANG_S, "the listener stopping"):
            self.stop_event.set()
            self.thread.join(HANG_S)
        assert not self.thread.is_alive(), "listener did not stop"


@pytest.fixture
def serve() -> Iterator[Callable[..., Listening]]:
    running: list[Listening] = []

    def start(card: Any, query: str = "", **options: Any) -> Listening:
        port = free_udp_port()
        listener = NfcListener(card, f"udp:127.0.0.1:{port}{query}", **options)
        stop = threading.Event()
        thread = threading.Thread(target=listener.run, args=(stop,), name=f"nfc-listener-{port}")
        thread.start()
        serving = Listening(listener, thread, stop, port)
        running.append(serving)
        assert listener.wait_listening(HANG_S)
        return serving

    yield start
    for serving in running:
        serving.stop_event.set()
    for serving in running:
        serving.thread.join(HANG_S)
        assert not serving.thread.is_alive()


def tap(url: str, amount: int = 1234) -> Tap:
    with open_transport(url) as transport:
        return run_transaction(transport, load_config(), TransactionRequest(amount=amount))


def test_visa_transaction_over_nfc_udp(serve: Callable[..., Listening]) -> None:
    card = open_card("visa")
    serving = serve(card, atr=contactless_atr(HISTORICAL))
    with open_transport(serving.url) as transport:
        assert isinstance(transport, NfcTransport)
        assert transport.atr == contactless_atr(HISTORICAL)  # from the ATS historical bytes
        assert transport.ats[1] & 0x0F == 2
        assert transport.card_present()
        result = run_transaction(transport, load_config(), TransactionRequest(amount=1234))
    assert result.result.outcome.outcome is Outcome.APPROVED, result.result.error
    assert (result.result.oda, result.result.oda_result) == ("fDDA", "successful")
    assert result.apdus == 7
    assert serving.listener.activations == 1 and serving.listener.commands == 7


def test_mastercard_cda_with_chained_responses(serve: Callable[..., Listening],
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="emvkit.nfc")
    serving = serve(open_card("mastercard"), "?frame=64")  # the card sends at most 64-byte frames
    result = tap(serving.url)
    assert result.result.outcome.outcome is Outcome.APPROVED, result.result.error
    assert (result.result.oda, result.result.oda_result) == ("CDA", "successful")
    generate_ac = next(e for e in result.trace.exchanges if e.command[1] == 0xAE)
    assert len(generate_ac.command) > 29 and len(generate_ac.response or b"") > 150
    frames = [r.args for r in caplog.records if r.msg == "PCD %s -> PICC %s" and isinstance(r.args, tuple)]
    pcd, picc = [str(f[0]) for f in frames], [str(f[1]) for f in frames]

    def chained(frame: str) -> bool:  # an I-block with the chaining bit
        return frame[:2] in ("12", "13")

    assert any(chained(f) for f in picc)  # the card chained its R-APDUs
    assert any(chained(f) for f in pcd)  # and nfcpy its C-APDUs (FSC 32)
    assert pcd[-1] == "C2" and picc[-1] == "C2"  # the transport's S(DESELECT) on close


def test_card_torn_away_mid_transaction_is_try_again(serve: Callable[..., Listening]) -> None:
    serving = serve(FaultyCard(open_card("visa"), FaultPlan(tear_after=3)))
    with open_transport(serving.url) as transport:
        result = run_transaction(transport, load_config(), TransactionRequest(amount=1234))
        assert result.result.outcome.outcome is Outcome.TRY_AGAIN
        assert "card removed" in result.result.error
        assert result.apdus == 4
        listener_commands = serving.listener.commands
        with pytest.raises(CardRemoved):
            transport.transmit(SELECT_PPSE)  # the card is known to be gone: nothing goes on the air
        assert serving.listener.commands == listener_commands
        assert not transport.card_present()


def test_listener_stopping_under_an_open_session(serve: Callable[..., Listening]) -> None:
    serving = serve(open_card("visa"))
    with open_transport(f"{serving.url}?timeout=2") as transport:
        assert transport.transmit(SELECT_PPSE)[-2:] == SW_OK
        serving.stop()  # stops while the reader still holds the card
        with within(HANG_S, "the reader seeing the card gone"), pytest.raises(CardRemoved):
            transport.transmit(SELECT_PPSE)


class CountingCard:
    def __init__(self) -> None:
        self.events: list[str] = []

    def power_on(self) -> None:
        self.events.append("power_on")

    def power_off(self) -> None:
        self.events.append("power_off")

    def process(self, command_apdu: bytes) -> bytes:
        if command_apdu[1] == 0xEE:
            raise RuntimeError("card bug")
        return PPSE_FCI + SW_OK if command_apdu == SELECT_PPSE else b"\x6d\x00"


def test_power_on_at_each_activation_and_a_failing_card_answers_6f00(serve: Callable[..., Listening]) -> None:
    card = CountingCard()
    serving = serve(card, uid=bytes.fromhex("08A1B2C3"))
    for _ in range(2):
        with open_transport(serving.url) as transport:
            assert transport.transmit(SELECT_PPSE) == PPSE_FCI + SW_OK
            assert transport.transmit(bytes.fromhex("80EE000000")) == b"\x6f\x00"
    within(HANG_S, "the second power_off").until(lambda: card.events.count("power_off") >= 2)
    assert card.events == ["power_on", "power_off"] * 2
    assert serving.listener.activations == 2


def test_back_to_back_taps_are_answered_at_once(serve: Callable[..., Listening],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    polls: list[object] = []
    sense = nfc.clf.ContactlessFrontend.sense

    def counted(self: nfc.clf.ContactlessFrontend, *targets: Any, **options: Any) -> Any:
        found = sense(self, *targets, **options)
        polls.append(found)
        return found

    monkeypatch.setattr(nfc.clf.ContactlessFrontend, "sense", counted)
    serving = serve(CountingCard())
    for _ in range(8):
        with open_transport(serving.url) as transport:
            assert transport.transmit(SELECT_PPSE)[-2:] == SW_OK
    # The listener listens again as soon as a session ends: every tap found the card at its first poll
    # (an unanswered poll costs nfcpy's udp driver a second and shows here as a None).
    assert len(polls) == 8 and all(found is not None for found in polls), polls
    assert serving.listener.activations == 8
    serving.stop()


def test_no_card_in_the_field_times_out() -> None:
    with within(HANG_S, "polling an empty field"), pytest.raises(TransportError, match="no ISO-DEP card presented"):
        open_transport(f"nfc:udp:127.0.0.1:{free_udp_port()}?timeout=0.2")


def test_no_reader() -> None:
    with pytest.raises(TransportError, match=r"no NFC reader at usb:ffff:ffff"):
        open_transport("nfc:usb:ffff:ffff")
    with pytest.raises(ConfigError, match="port 'port' is not a number"):
        open_transport("nfc:udp:127.0.0.1:port")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nfc:", "nfcpy device path"),
        ("nfc:usb?timeout=abc", "not a number"),
        ("nfc:usb?timeout=0", "outside"),
        ("nfc:usb?speed=fast", "unknown option"),
    ],
)
def test_transport_url_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_transport(url)


def test_transport_url_parts() -> None:
    transport = make_transport("nfc:tty:USB0:pn532?timeout=2.5")
    assert isinstance(transport, NfcTransport)
    assert (transport.path, transport.timeout) == ("tty:USB0:pn532", 2.5)
    assert transport.url == "nfc:tty:USB0:pn532?timeout=2.5"
    with pytest.raises(TransportError, match="not open"):
        transport.transmit(SELECT_PPSE)


def test_listener_target_settings() -> None:
    assert parse_target("udp:127.0.0.1:5000?fsci=5&fwi=7&frame=64&uid=08010203") == (
        "udp:127.0.0.1:5000", {"fsci": 5, "fwi": 7, "max_frame": 64, "uid": bytes.fromhex("08010203")})
    listener = NfcListener(CountingCard(), "udp:127.0.0.1:5000?fsci=5&uid=08010203", contactless_atr(HISTORICAL))
    assert (listener.config.fsci, listener.config.historical, listener.uid) == (5, HISTORICAL, b"\x08\x01\x02\x03")
    assert listener.uid[0] == 0x08 and len(NfcListener(CountingCard()).uid) == 4
    for bad in ("udp:1.2.3.4:5?color=red", "udp:1.2.3.4:5?fsci=x", "?fsci=1"):
        with pytest.raises(ConfigError):
            parse_target(bad)
    with pytest.raises(ConfigError, match="UID"):
        NfcListener(CountingCard(), uid=b"\x08\x01")


def test_listener_reports_a_taken_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("0.0.0.0", 0))
        port = taken.getsockname()[1]
        with pytest.raises(TransportError, match="in use"):
            NfcListener(CountingCard(), f"udp:127.0.0.1:{port}").run(threading.Event())


def test_without_nfcpy_the_modules_say_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nfc", None)
    monkeypatch.delitem(sys.modules, "emvkit.terminal.transport.nfc")
    monkeypatch.delitem(sys.modules, "emvkit.terminal.emulator.nfc_listener")
    with pytest.raises(UnknownScheme, match=r"needs nfcpy \(pip install 'emvkit\[nfc\]'\)"):
        make_transport("nfc:usb")
    with pytest.raises(TransportError, match="--nfc needs nfcpy"):
        importlib.import_module("emvkit.terminal.emulator.nfc_listener")


def test_emulate_cli_serves_a_tap_and_stops_on_sigterm() -> None:
    port = free_udp_port()
    emvkit = Path(sys.executable).parent / "emvkit"
    proc = subprocess.Popen([str(emvkit), "emulate", "--profile", "visa", "--nfc", f"udp:127.0.0.1:{port}"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None and "emulating visa on nfc" in proc.stderr.readline()
        within(HANG_S, "the emulator binding its udp port").until(lambda: udp_port_bound(port))
        result = tap(f"nfc:udp:127.0.0.1:{port}")
        assert result.result.outcome.outcome is Outcome.APPROVED, result.result.error
        assert result.result.oda_result == "successful" and result.apdus == 7
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(HANG_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
