"""Recording exchanges: the ``TraceTransport`` wrapper and the trace file.

A trace is the ordered list of exchanges with monotonic timestamps. It is
saved as JSON (``{"format": "emvkit-trace", "version": 1, "atr": hex,
"exchanges": [{"command": hex, "response": hex, "t_start": s, "t_end": s,
"error": str|null}]}``) and replayed by the ``scripted`` transport. Trace
files hold card data, so they are written with mode 0600. ``meta`` records
what the transaction was asked for (amount, date, unpredictable number), so a
replay can ask for exactly the same.

The same trace is also written and read as a packet capture for Wireshark
(:mod:`emvkit.terminal.pcap`): the format follows the file's extension
(:data:`TRACE_FORMATS`: ``.json``, ``.pcap``, ``.pcapng``) in
:meth:`Trace.save`, :func:`read_trace_file` and :func:`open_trace_sink`, the
trace file opened before the card is touched and written at the end.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emvkit.terminal.errors import ConfigError, TransportError
from emvkit.terminal.jsonfile import parse_json, read_json, read_user_file
from emvkit.terminal.secretfile import write_private
from emvkit.terminal.transport.base import BaseTransport, Transport

__all__ = [
    "TRACE_FORMATS", "Exchange", "Trace", "TraceSink", "TraceTransport", "encode_trace", "load_trace",
    "open_trace_sink", "read_trace_file", "trace_format",
]

FORMAT = "emvkit-trace"
TRACE_FORMATS = (".json", ".pcap", ".pcapng")


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
        """Write the trace (mode 0600: it holds the card's data) in the format of the path's extension."""
        write_private(path, encode_trace(self, trace_format(path)))


def trace_format(path: str | Path) -> str:
    """The trace format a file name asks for: ``.json``, ``.pcap`` or ``.pcapng``; a ConfigError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in TRACE_FORMATS:
        raise ConfigError(f"{path}: a trace file name ends in {', '.join(TRACE_FORMATS)}, not {suffix or 'nothing'}")
    return suffix


def encode_trace(trace: Trace, fmt: str) -> bytes:
    """The bytes of a trace file in ``fmt`` (one of :data:`TRACE_FORMATS`)."""
    from emvkit.terminal import pcap  # it builds on this module

    if fmt == ".pcapng":
        return pcap.to_pcapng(trace)
    if fmt == ".pcap":
        return pcap.to_pcap(trace)
    return (json.dumps(trace.to_json(), indent=1) + "\n").encode()


def read_trace_file(path: str | Path) -> Trace:
    """A trace from a file in the format of its extension; every fault is one ConfigError line."""
    from emvkit.terminal import pcap

    fmt = trace_format(path)
    data = read_user_file(path, "trace").data
    if fmt == ".pcapng":
        return pcap.from_pcapng(data, str(path))
    if fmt == ".pcap":
        return pcap.from_pcap(data, str(path))
    return trace_from_json(parse_json(data, str(path)), str(path))


class TraceSink:
    """A trace file opened before the card is touched (:func:`open_trace_sink`), written once at the end."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.format = fmt

    def write(self, trace: Trace) -> None:
        """Write the whole trace (replacing the placeholder atomically, mode 0600)."""
        try:
            write_private(self.path, encode_trace(trace, self.format))
        except OSError as exc:
            raise ConfigError(f"cannot write trace {self.path}: {exc.strerror or exc}") from None


def open_trace_sink(path: str | Path) -> TraceSink:
    """Check and create a trace file now, before any card is touched: the format from its extension, its
    directory there, the file created (or truncated, as a later save would replace it) with mode 0600.
    A symbolic link at ``path`` is refused. ConfigError, one line, when any of that fails."""
    target = Path(path)
    fmt = trace_format(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(target, flags, 0o600)
    except OSError as exc:
        if not target.parent.is_dir():
            raise ConfigError(f"cannot write trace {target}: no directory {target.parent}") from None
        raise ConfigError(f"cannot write trace {target}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return TraceSink(target, fmt)


def _hex(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: not hex: {value[:40]!r}") from exc


def _seconds(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(f"{where}: expected a number of seconds")
    return float(value)


def _error(value: object, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: expected text or null")
    return value


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
                t_start=_seconds(item.get("t_start", 0.0), f"{where}: exchange {i} t_start"),
                t_end=_seconds(item.get("t_end", 0.0), f"{where}: exchange {i} t_end"),
                error=_error(item.get("error"), f"{where}: exchange {i} error"),
            )
        )
    return trace


def load_trace(path: str | Path) -> Trace:
    """A JSON trace (what ``scripted:`` replays)."""
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
