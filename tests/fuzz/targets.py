"""The fuzz targets: one function per parser, taking any bytes, failing only on a broken property.

Each target takes one input, runs the unit on it and checks what must hold for every input: the
unit raises nothing but its documented typed error, and what it accepts round-trips where a round
trip exists. An AssertionError (or any other exception) is a finding. tests/test_fuzz.py runs them
as bounded Hypothesis properties in `make test`; tests/fuzz/<target>.py runs one under atheris
for long, coverage-guided runs (`make fuzz`), starting from the corpus in tests/fuzz/corpus/.

Inputs that hold several messages (the card's commands, the card's responses to the kernel) are
records: a 2-byte big-endian length, then that many bytes (:func:`records`).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from functools import cache

from emvkit.firmware import link, tlv
from emvkit.firmware.payapp.card import Card
from emvkit.firmware.payapp.rng import CountingRandom
from emvkit.terminal.apdu import APDUError, Channel, CommandAPDU, ResponseAPDU
from emvkit.terminal.config_files import load_config
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.errors import CardRemoved
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.host.server import answer
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.entry_point import transaction
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import drive
from emvkit.terminal.transport.base import BaseTransport

__all__ = ["CARDS", "TARGETS", "join_records", "records"]


# --- inputs of several messages ---


def records(data: bytes) -> list[bytes]:
    """The messages in ``data``: each a 2-byte big-endian length and its bytes; a short tail is the last."""
    out = []
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 2], "big")
        out.append(data[pos + 2:pos + 2 + size])
        pos += 2 + size
    return out


def join_records(messages: list[bytes]) -> bytes:
    return b"".join(len(m).to_bytes(2, "big") + m for m in messages)


# --- BER-TLV (EMV Book 3 Annex B) ---


def tlv_decode(data: bytes) -> None:
    try:
        nodes = tlv.decode(data)
    except tlv.TLVError as exc:
        assert 0 <= exc.offset <= len(data), exc
        return
    encoded = tlv.encode(nodes)
    assert tlv.decode(encoded) == nodes
    assert tlv.encode(tlv.decode(encoded)) == encoded
    tlv.flatten(nodes)


# --- Data Object Lists (EMV Book 3 §5.4) ---


def dol(data: bytes) -> None:
    """``data``: a DOL, then (after the first 00, if any) the bytes the values are taken from."""
    dol_bytes, _, values = data.partition(b"\x00")
    try:
        entries = tlv.parse_dol(dol_bytes)
    except tlv.TLVError:
        return
    assert all(0 <= length <= 0x7F for _tag, length in entries), entries  # one-byte lengths only
    source = {tag: values[i:i + 1 + (i % 9)] for i, (tag, _length) in enumerate(entries)}
    try:
        built = tlv.build_dol(entries, source, {tag: ("n", "cn", "b")[tag % 3] for tag, _ in entries})
    except tlv.TLVError:
        assert tlv.dol_length(entries) > tlv.MAX_DOL_DATA  # the one refusal: more than a command carries
        return
    assert len(built) == tlv.dol_length(entries)
    split = tlv.split_dol(entries, built)
    assert set(split) == {tag for tag, _ in entries}
    if len(split) == len(entries):  # no tag twice: the values cut out build the same bytes again
        assert tlv.build_dol(entries, split) == built


# --- command and response APDUs (ISO/IEC 7816-4 §5.1) ---


def apdu(data: bytes) -> None:
    try:
        command = CommandAPDU.from_bytes(data)
    except APDUError:
        pass
    else:
        assert CommandAPDU.from_bytes(command.to_bytes()) == command
        str(command)
    try:
        response = ResponseAPDU.from_bytes(data)
    except APDUError:
        assert len(data) < 2
        return
    assert response.to_bytes() == data
    str(response)


# --- the card application's command handler (firmware/payapp) ---


CARDS = ("visa", "mastercard", "unionpay", "wearable", "unionpay-sm")  # the built-in profiles, by index


@cache
def _profiles() -> tuple[object, ...]:
    return tuple(open_card(name).profile for name in CARDS)


def card(data: bytes) -> None:
    """``data``: one byte choosing the built-in profile (its value modulo the number of :data:`CARDS`),
    then C-APDU records, processed in order by a fresh card; each answer ends in a status word."""
    profiles = _profiles()
    fresh = Card(profiles[data[0] % len(profiles) if data else 0], rng=CountingRandom(), clock=lambda: 0.0)
    for command in records(data[1:]):
        response = fresh.process(command)
        assert isinstance(response, bytes) and len(response) >= 2, response


# --- the kernel on arbitrary card responses ---


class _Responses(BaseTransport):
    """A card that answers the n-th command with the n-th response, whatever the command; then leaves."""

    def __init__(self, responses: list[bytes]) -> None:
        super().__init__()
        self.url = "scripted:fuzz"
        self._responses: Iterator[bytes] = iter(responses)
        self._open = True

    def _transmit(self, command: bytes) -> bytes:
        for response in self._responses:
            return response
        raise CardRemoved("the script ended")


@cache
def _config() -> TerminalConfig:
    return load_config()


def _request(amount: int) -> TransactionRequest:
    counter = iter(range(1 << 30))
    return TransactionRequest(amount=amount, date=datetime.date(2026, 11, 27), time=datetime.time(12, 0),
                              random=lambda n: bytes((next(counter) & 0xFF,)) * n)


def kernel(data: bytes) -> None:
    """``data``: one byte choosing the amount and whether the terminal goes online, then R-APDU records."""
    flags = data[0] if data else 0
    amount = (100, 1234, 5000, 100_000)[flags & 3]
    result = drive(transaction(_config(), _request(amount), online=bool(flags & 4)),
                   Channel(_Responses(records(data[1:]))), None)
    assert isinstance(result.outcome.outcome, Outcome), result


# --- the serial link's frame decoder (firmware/link.py) ---


def link_decoder(data: bytes) -> None:
    """``data``: wire bytes, fed whole and in chunks cut at every byte below 0x10: the same events."""
    whole = link.Decoder().feed(data)
    chunked = link.Decoder()
    events: list[object] = []
    start = 0
    for i, byte in enumerate(data):
        if byte < 0x10:
            events += chunked.feed(data[start:i + 1])
            assert chunked.want() >= 1
            start = i + 1
    events += chunked.feed(data[start:])
    assert events == whole, (events, whole)
    for event in whole:
        assert isinstance(event, (link.Frame, link.Fault)), event
        if isinstance(event, link.Frame):
            again = link.Decoder().feed(link.encode_frame(event.type, event.seq, event.payload))
            assert again == [event], (again, event)


# --- the issuer host's ISO 8583 front end ---


@cache
def _host() -> IssuerHost:
    return IssuerHost.builtin()


def iso8583_answer(data: bytes) -> None:
    reply = answer(_host(), data)
    assert reply is None or (isinstance(reply, bytes) and len(reply) >= 4), reply


TARGETS: dict[str, Callable[[bytes], None]] = {
    "tlv": tlv_decode,
    "dol": dol,
    "apdu": apdu,
    "card": card,
    "kernel": kernel,
    "link": link_decoder,
    "iso8583": iso8583_answer,
}
