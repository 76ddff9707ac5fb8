"""Recording exchanges: the ``TraceTransport`` wrapper and the trace file.

A trace is the ordered list of exchanges with monotonic timestamps. It is
saved as JSON (``{"format": "emvkit-trace", "version": 1, "atr": hex,
"exchanges": [{"command": hex, "response": hex, "t_start": s, "t_end": s,
"error": str|null}]}``) and replayed by the ``scripted`` transport. Trace
files hold card data, so they are written with mode 0600. ``meta`` records
what the transaction was asked for (amount, date, unpredictable number), so a
replay can ask for exactly the same.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emvkit.terminal.errors import ConfigError, TransportError
from emvkit.terminal.jsonfile import read_json
from emvkit.terminal.secretfile import write_private
from emvkit.terminal.transport.base import BaseTransport, Transport

__all__ = ["Exchange", "Trace", "TraceTransport", "load_trace"]

FORMAT = "emvkit-trace"


@dataclass
class Exchange:
    command: bytes
    response: bytes | None
    t_start: float
    t_end: float
    error: str | None = None

    @property
    def elapsed_ms(self) -> float:
        return (self.t_end - self.t_start) * 1000.0

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command.hex().upper(),
            "response": None if self.response is None else self.response.hex().upper(),
            "t_start": round(self.t_start, 6),
            "t_end": round(self.t_end, 6),
            "error": self.error,
        }


@dataclass
class Trace:
    atr: bytes = b""
    exchanges: list[Exchange] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # what was asked for: amount, date, UN, ...

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": 1,
            "atr": self.atr.hex().upper(),
            "meta": self.meta,
            "exchanges": [e.to_json() for e in self.exchanges],
        }

    def save(self, path: str | Path) -> None:
        write_private(path, json.dumps(self.to_json(), indent=1) + "\n")  # it holds the card's data


def _hex(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: not hex: {value[:40]!r}") from exc


def trace_from_json(doc: object, where: str = "trace") -> Trace:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(f"{where}: not an {FORMAT} file")
    items = doc.get("exchanges")
    if not isinstance(items, list):
        raise ConfigError(f"{where}: 'exchanges' must be a list")
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        raise ConfigError(f"{where}: 'meta' must be an object")
    trace = Trace(atr=_hex(doc.get("atr", ""), f"{where}: atr"), meta=meta)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: exchange {i} is not an object")
        response = item.get("response")
        trace.exchanges.append(
            Exchange(
                command=_hex(item.get("command"), f"{where}: exchange {i} command"),
                response=None if response is None else _hex(response, f"{where}: exchange {i} response"),
                t_start=float(item.get("t_start", 0.0)),
                t_end=float(item.get("t_end", 0.0)),
                error=item.get("error"),
            )
        )
    return trace


def load_trace(path: str | Path) -> Trace:
    return trace_from_json(read_json(path, "trace"), str(path))


class TraceTransport(BaseTransport):
    """Wraps another transport and records every exchange, errors included."""

    def __init__(self, inner: Transport, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.inner = inner
        self.url = inner.url
        self.trace = Trace(atr=inner.atr)
        self._clock = clock
        self._open = bool(getattr(inner, "is_open", False))  # wrapping an open transport

    @property
    def exchanges(self) -> list[Exchange]:
        return self.trace.exchanges

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def open(self) -> None:
        self.inner.open()
        self.trace.atr = self.inner.atr
        super().open()

    def close(self) -> None:
        self.inner.close()
        super().close()

    def card_present(self) -> bool:
        return self.inner.card_present()

    def _transmit(self, command: bytes) -> bytes:
        start = self._clock()
        try:
            response = self.inner.transmit(command)
        except TransportError as exc:
            self.trace.exchanges.append(Exchange(command, None, start, self._clock(), str(exc)))
            raise
        self.trace.exchanges.append(Exchange(command, response, start, self._clock()))
        return response
