"""The ``scripted`` transport: a card that replays (C-APDU, R-APDU) pairs.

Each command must match the next scripted one, or :class:`ScriptMismatch` is
raised naming the step and both APDUs. An expected command may contain ``??``
for a byte that is not compared (an unpredictable number, say). A response of
``None`` means the card is torn away at that step (:class:`CardRemoved`).

URL: ``scripted:PATH`` where PATH is an emvkit trace (JSON) or a text script::

    # comments and blank lines are ignored
    > 00A404000E325041592E5359532E444446303100
    < 6A82
    > 80A8000006 8304 ?? ?? ?? ?? 00
    < 77 0A 82 02 19 80 94 04 08 01 01 00 90 00
    > 00B2010C00
    < !removed
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from emvkit.terminal.errors import CardRemoved, ConfigError, ScriptMismatch
from emvkit.terminal.jsonfile import read_text
from emvkit.terminal.transport.base import BaseTransport
from emvkit.terminal.transport.trace import load_trace

__all__ = ["Pattern", "ScriptedTransport", "from_url", "parse_script"]

REMOVED = "!removed"


class Pattern:
    """A command with optional wildcard bytes."""

    def __init__(self, text: str | bytes) -> None:
        if isinstance(text, bytes):
            self.value, self.mask = text, b"\xff" * len(text)
            return
        compact = "".join(text.split())
        if len(compact) % 2:
            raise ConfigError(f"odd number of hex digits in {text!r}")
        value, mask = bytearray(), bytearray()
        for i in range(0, len(compact), 2):
            pair = compact[i : i + 2]
            if pair == "??":
                value.append(0)
                mask.append(0)
                continue
            try:
                value.append(int(pair, 16))
            except ValueError as exc:
                raise ConfigError(f"not hex: {pair!r} in {text!r}") from exc
            mask.append(0xFF)
        self.value, self.mask = bytes(value), bytes(mask)

    def matches(self, command: bytes) -> bool:
        if len(command) != len(self.value):
            return False
        return all((c & m) == (v & m) for c, v, m in zip(command, self.value, self.mask, strict=True))

    def __str__(self) -> str:
        return "".join("??" if m == 0 else f"{v:02X}" for v, m in zip(self.value, self.mask, strict=True))


Step = tuple[Pattern, bytes | None]


class ScriptedTransport(BaseTransport):
    def __init__(
        self, steps: Iterable[tuple[Pattern | str | bytes, bytes | None]], atr: bytes = b"", url: str = ""
    ) -> None:
        super().__init__()
        self.steps: list[Step] = [
            (c if isinstance(c, Pattern) else Pattern(c), r) for c, r in steps
        ]
        self.position = 0
        self.url = url or "scripted:"
        self._atr = atr

    @property
    def finished(self) -> bool:
        return self.position == len(self.steps)

    def card_present(self) -> bool:
        return self.is_open and self.position < len(self.steps)

    def _transmit(self, command: bytes) -> bytes:
        if self.position >= len(self.steps):
            raise ScriptMismatch(
                f"step {self.position + 1}: unexpected command {command.hex().upper()} after the script ended"
            )
        expected, response = self.steps[self.position]
        if not expected.matches(command):
            raise ScriptMismatch(
                f"step {self.position + 1}: expected {expected}, got {command.hex().upper()}"
            )
        self.position += 1
        if response is None:
            raise CardRemoved(f"step {self.position}: card removed (scripted)")
        return response


def parse_script(text: str, where: str = "script") -> list[tuple[Pattern, bytes | None]]:
    steps: list[tuple[Pattern, bytes | None]] = []
    pending: Pattern | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        marker, body = line[0], line[1:].strip()
        if marker == ">":
            if pending is not None:
                raise ConfigError(f"{where}:{lineno}: command without a response before it")
            pending = Pattern(body)
        elif marker == "<":
            if pending is None:
                raise ConfigError(f"{where}:{lineno}: response without a command")
            if body == REMOVED:
                steps.append((pending, None))
            else:
                try:
                    steps.append((pending, bytes.fromhex(body)))
                except ValueError as exc:
                    raise ConfigError(f"{where}:{lineno}: response is not hex") from exc
            pending = None
        else:
            raise ConfigError(f"{where}:{lineno}: lines start with '>' (command) or '<' (response)")
    if pending is not None:
        raise ConfigError(f"{where}: the last command has no response")
    return steps


def from_url(url: str) -> ScriptedTransport:
    path = Path(url.split(":", 1)[1])
    if not path.is_file():
        raise ConfigError(f"{url}: no such script file")
    if path.suffix == ".json":
        trace = load_trace(path)
        steps: list[tuple[Pattern | str | bytes, bytes | None]] = [
            (e.command, e.response) for e in trace.exchanges
        ]
        return ScriptedTransport(steps, atr=trace.atr, url=url)
    return ScriptedTransport(parse_script(read_text(path, "script"), str(path)), url=url)
