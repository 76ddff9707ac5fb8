"""The device under test (DUT): where a scenario's card comes from.

A scenario never builds a transport URL itself. It asks the :class:`Dut`
for a card and, when it needs them, faults::

    with dut.open(card="mastercard", faults="tear=3") as card:
        ...
    tap = dut.tap(1234, card="visa")              # open, transact, close

and the DUT either hands back an open transport or *skips* the scenario with
the reason it cannot provide that card or that fault. What each kind of DUT
can do is one table, :data:`CAPABILITIES`:

- ``emu:`` (the card application in-process) presents any built-in card or
  profile file and injects faults (``tear``, ``sw``, ``corrupt``,
  ``latency``), ``cdcvm=1`` and ``rng=counting``;
- ``mpy:`` (the firmware under the MicroPython unix port) presents any
  built-in card or profile file and takes ``rng=counting``, no faults;
- ``qemu:m3`` / ``qemu:m0plus`` (the token image booted under QEMU, see
  :mod:`emvkit.terminal.transport.qemu`) presents any built-in card or
  profile file by provisioning it over the dev link into a fresh store, and
  takes ``rng=counting``, no faults; its URL names the board, the card goes
  in its ``card=`` option;
- ``qemu:m3?front-end=pn532`` (the same token on the air: provisioned over
  its dev link, tapped through nfcpy's udp driver, the simulated PN532 and
  the firmware's PN532 driver) can do what ``qemu:`` does; its kind is
  ``qemu+pn532``, the name its skip reasons give;
- anything else (``pcsc:``, ``nfc:``, ``serial:`` ...) is a real reader: it
  presents whatever card lies on it (``--dut-card`` says which built-in
  profile that card was personalised with) and injects nothing.

Every transaction goes through :func:`transact`, which also checks the one
property all scenarios share: the transaction ends with a defined Outcome.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from emvkit.firmware import tlv
from emvkit.terminal.apdu import CommandAPDU
from emvkit.terminal.config_files import load_config
from emvkit.terminal.kernel.authorisation import Authoriser
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.perso.builtin import load_builtin
from emvkit.terminal.session import Tap, run_transaction
from emvkit.terminal.transport import Transport, open_transport
from emvkit.terminal.transport.scripted import Pattern, ScriptedTransport
from emvkit.terminal.transport.trace import Trace

__all__ = [
    "CAPABILITIES",
    "DEFAULT_DUT",
    "FAULT_KINDS",
    "KERNEL_CARDS",
    "TRANSACTION_DATE",
    "Capabilities",
    "Dut",
    "Script",
    "card_applications",
    "card_risk",
    "pinned_random",
    "primitive_tags",
    "replay",
    "select_command",
    "transact",
]

DEFAULT_DUT = "emu:"

# The transaction date of every scenario: fixed, so a run next year taps the
# same cards the same way (the built-in cards are valid until 12/2030).
TRANSACTION_DATE = datetime.date(2026, 6, 15)

# One built-in card per kernel: (card, kernel identifier).
KERNEL_CARDS = [
    pytest.param("visa", 3, id="visa-k3"),
    pytest.param("mastercard", 2, id="mastercard-k2"),
    pytest.param("unionpay", 7, id="unionpay-k7"),
]

FAULT_KINDS = frozenset({"tear", "sw", "corrupt", "latency"})
_OPTION_NAMES = {"tear": "tear the card away", "sw": "force a status word", "corrupt": "corrupt a data object",
                 "latency": "add latency", "cdcvm": "perform on-device CVM", "rng": "pin the card's random source"}

# A scenario's card: a built-in card by name, a profile file, or None for the DUT's own.
Card = str | Path | None


@dataclass(frozen=True)
class Capabilities:
    """What a kind of DUT can present and inject."""

    builtin_cards: bool  # presents any built-in card by name
    profile_files: bool  # presents a card from a profile JSON file
    fresh_card: bool  # every open() starts a card with its personalised counters
    options: frozenset[str]  # URL options it takes: faults, cdcvm, rng


CAPABILITIES: dict[str, Capabilities] = {
    "emu": Capabilities(True, True, True, FAULT_KINDS | {"cdcvm", "rng"}),
    "mpy": Capabilities(True, True, True, frozenset({"rng"})),
    "qemu": Capabilities(True, True, True, frozenset({"rng"})),
    "qemu+pn532": Capabilities(True, True, True, frozenset({"rng"})),  # qemu:BOARD?front-end=pn532
}
# Simulated DUTs whose URL names the board and take the card as an option (qemu:m3?card=visa).
_CARD_OPTION = frozenset({"qemu"})
REAL_READER = Capabilities(False, False, False, frozenset())


def pinned_random(n: int) -> bytes:
    """The terminal's "random" source in scenarios that replay: the same bytes every time."""
    return (b"\x11\x22\x33\x44" * (n // 4 + 1))[:n]


def transact(transport: Transport, amount: int, config: TerminalConfig | None = None,
             random: Callable[[int], bytes] | None = None, authoriser: Authoriser | None = None) -> Tap:
    """One transaction on an open transport; asserts it ends with a defined Outcome.

    With an ``authoriser`` (e.g. the issuer host in-process, ``IssuerHost``)
    an Online Request goes to it and the transaction completes: issuer
    authentication and issuer scripts reach the card."""
    request = TransactionRequest(amount=amount, date=TRANSACTION_DATE)
    if random is not None:
        request.random = random
    tap = run_transaction(transport, config or load_config(), request, authoriser)
    outcome = tap.result.outcome.outcome
    assert isinstance(outcome, Outcome), f"not an Outcome: {outcome!r}"
    assert outcome is not Outcome.SELECT_NEXT, "Select Next is Entry Point's business, never a final outcome"
    assert tap.result.steps, "a transaction always gives an account of its steps"
    return tap


@dataclass
class Dut:
    """The device under test, from ``--dut URL`` (see the module docstring)."""

    url: str = DEFAULT_DUT
    reader_card: str | None = None  # real reader: the built-in profile of the card on it
    card: Card = None  # the scenario's card when it names none (``@pytest.mark.card``)
    faults: str = ""  # the scenario's faults when it names none (``@pytest.mark.faults``)
    cdcvm: bool = False
    log: list[str] = field(default_factory=list)  # the last taps, shown when a scenario fails
    traces: list[Trace] = field(default_factory=list)  # and their traces, saved when it fails

    def __post_init__(self) -> None:
        scheme, sep, rest = self.url.partition(":")
        if not sep or not scheme:
            raise pytest.UsageError(f"--dut {self.url!r}: expected a transport URL such as emu:, mpy: or pcsc:0")
        self.scheme = scheme
        self.kind = scheme  # what CAPABILITIES is keyed by: the scheme, with its front end if it has one
        spec, _, query = rest.partition("?")
        simulated = scheme in CAPABILITIES
        self.target = ""  # the board of a DUT that names one
        if scheme in _CARD_OPTION:
            self.target = spec
            options = dict(parse_qsl(query))
            spec = options.pop("card", "")
            if options.get("front-end"):
                self.kind = f"{scheme}+{options['front-end']}"
            query = "&".join(f"{k}={v}" for k, v in options.items())
        self.caps = CAPABILITIES.get(self.kind, REAL_READER)
        self.base_card: str | None = (spec or None) if simulated else self.reader_card
        self.base_options = query if simulated else ""

    def describe(self) -> str:
        caps = self.caps
        cards = "any built-in card or profile file" if caps.builtin_cards else \
            f"the card on the reader ({self.reader_card or 'unknown: --dut-card'})"
        options = ", ".join(sorted(caps.options)) or "none"
        return f"DUT {self.url}: presents {cards}; options: {options}"

    # --- what the DUT can do -----------------------------------------------------------

    def unsupported(self, card: Card = None, faults: str = "", cdcvm: bool = False,
                    fresh_card: bool = False) -> str | None:
        """Why this DUT cannot run a scenario that needs these, or None."""
        if isinstance(card, Path) and not self.caps.profile_files:
            return f"{self.kind}: cannot present a card personalised by the scenario (a profile file)"
        if isinstance(card, str) and not self.caps.builtin_cards and card != self.reader_card:
            if self.reader_card is None:
                return (f"{self.scheme}: presents only the card on its reader, not the built-in {card!r} "
                        "(--dut-card says which one it is)")
            return f"{self.scheme}: presents only the card on its reader ({self.reader_card}), not {card!r}"
        wanted = [(key, f"{key}={value}") for key, value in parse_qsl(faults)]
        wanted += [(word, word) for word in faults.split("&") if word and "=" not in word]
        if cdcvm:
            wanted.append(("cdcvm", "cdcvm=1"))
        for key, text in wanted:
            if key not in self.caps.options:
                who = "only emu: injects faults" if key in FAULT_KINDS else f"only emu: takes {key}"
                return f"{self.kind}: cannot {_OPTION_NAMES.get(key, key)} ({text}); {who}"
        if fresh_card and not self.caps.fresh_card:
            return f"{self.scheme}: a real card keeps its counters between taps; the scenario needs a fresh one"
        return None

    def require(self, card: Card = None, faults: str = "", cdcvm: bool = False, fresh_card: bool = False) -> None:
        """Skip the running scenario unless the DUT provides all of these."""
        reason = self.unsupported(card, faults, cdcvm, fresh_card)
        if reason is not None:
            pytest.skip(reason)

    # --- cards ---------------------------------------------------------------------------

    def url_for(self, card: Card = None, faults: str = "", cdcvm: bool = False) -> str:
        if self.scheme not in CAPABILITIES:
            return self.url  # a real reader: its card is what it is
        spec = str(card) if card is not None else (self.base_card or "")
        options = "&".join(part for part in (self.base_options, faults, "cdcvm=1" if cdcvm else "") if part)
        if self.scheme in _CARD_OPTION:
            options = "&".join(part for part in (f"card={spec}" if spec else "", options) if part)
            spec = self.target
        return f"{self.scheme}:{spec}" + (f"?{options}" if options else "")

    def open(self, card: Card = None, faults: str | None = None, cdcvm: bool | None = None) -> Transport:
        """An open transport to the card asked for (the scenario's marker card by default); skips if impossible."""
        card = card if card is not None else self.card
        faults = faults if faults is not None else self.faults
        cdcvm = cdcvm if cdcvm is not None else self.cdcvm
        self.require(card, faults, cdcvm)
        return open_transport(self.url_for(card, faults, cdcvm))

    def tap(self, amount: int, *, card: Card = None, faults: str | None = None, cdcvm: bool | None = None,
            config: TerminalConfig | None = None, random: Callable[[int], bytes] | None = None,
            authoriser: Authoriser | None = None) -> Tap:
        """Open the card, run one transaction of ``amount`` (minor units), close it."""
        transport = self.open(card, faults, cdcvm)
        with transport:
            tap = transact(transport, amount, config, random, authoriser)
        self.note(transport.url, amount, tap)
        return tap

    def record(self, card: Card, amount: int) -> Script:
        """A complete transaction on the DUT with the pinned random source, as a script to replay."""
        tap = self.tap(amount, card=card, faults="", cdcvm=False, random=pinned_random)
        steps: list[tuple[Pattern | bytes, bytes | None]] = [(e.command, e.response) for e in tap.trace.exchanges]
        return Script(steps, tap)

    def note(self, url: str, amount: int, tap: Tap) -> None:
        r = tap.result
        lines = [f"{url} amount {amount}: {r.outcome.outcome.value}, CVM {r.outcome.cvm.value}, "
                 f"TVR {r.tvr.hex().upper()}, TSI {r.tsi.hex().upper()}, CID {r.cid.hex().upper() or '-'}, "
                 f"ODA {r.oda} {r.oda_result}, {tap.apdus} APDUs" + (f", error: {r.error}" if r.error else "")]
        lines += [f"    {s.name}: {s.detail}" for s in r.steps]
        self.log = [*self.log[-2:], "\n".join(lines)]
        self.traces = [*self.traces[-2:], tap.trace]


# --- Scripted cards derived from a recording ------------------------------------------


@dataclass
class Script:
    """A recorded transaction as (command, response) steps, to alter and replay."""

    steps: list[tuple[Pattern | bytes, bytes | None]]
    tap: Tap

    def command(self, index: int) -> bytes:
        return self.tap.trace.exchanges[index].command

    def response_data(self, index: int) -> bytes:
        response = self.tap.trace.exchanges[index].response
        assert response is not None and response[-2:] == b"\x90\x00", f"step {index} did not succeed"
        return response[:-2]


def replay(steps: list[tuple[Pattern | bytes, bytes | None]], amount: int, config: TerminalConfig | None = None,
           random: Callable[[int], bytes] = pinned_random) -> tuple[Tap, ScriptedTransport]:
    """Run a transaction against a scripted card."""
    card = ScriptedTransport(steps)
    with card:
        tap = transact(card, amount, config, random)
    return tap, card


def select_command(aid: bytes) -> bytes:
    """SELECT by name as the Entry Point sends it."""
    return CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid, le=256).to_bytes()


# --- What the built-in profiles say ------------------------------------------------------


def card_applications(card: str) -> list[bytes]:
    """The AIDs a built-in card offers, in the terminal's selection order (priority 87)."""
    apps = sorted(load_builtin(card)["applications"], key=lambda a: a.get("priority", 1))
    return [bytes.fromhex(a["aid"]) for a in apps]


def card_risk(card: str) -> dict[str, int]:
    """The card's own risk limits (the profile's "risk" of its first application)."""
    risk: dict[str, int] = load_builtin(card)["applications"][0]["risk"]
    return risk


def primitive_tags(responses: list[bytes]) -> set[int]:
    """Every primitive data object tag in these response APDUs (status words stripped)."""
    tags: set[int] = set()

    def walk(nodes: list[tlv.TLV]) -> None:
        for node in nodes:
            if node.children is None:
                tags.add(node.tag)
            else:
                walk(node.children)

    for response in responses:
        walk(tlv.decode(response[:-2]))
    return tags

