"""``--apdu``: each C-APDU and R-APDU in hex as it happens, and the per-APDU times of ``--json``.

Raw R-APDUs carry cardholder data, so unless ``--reveal`` they are shown by
:func:`emvkit.terminal.tlvdump.masked_response`: the value of every sensitive
data object replaced by ``*`` in the hex (the PAN keeping its first 6 and last 4
digits). C-APDUs carry no cardholder data and are shown as sent.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from emvkit.terminal.cli.report import command_name
from emvkit.terminal.errors import TransportError
from emvkit.terminal.tlvdump import masked_response
from emvkit.terminal.transport.base import BaseTransport, Transport
from emvkit.terminal.transport.trace import Trace

__all__ = ["ApduPrinter", "exchanges_json", "watched"]

log = logging.getLogger("emvkit.apdu")


class ApduPrinter(BaseTransport):
    """Wraps a transport and writes each exchange to ``out`` as it happens: ``>> C-APDU`` before it is sent,
    ``<< R-APDU`` with its time when it comes back (or the error); also logged at DEBUG (``-vv``), and only
    logged when ``out`` is None."""

    def __init__(self, inner: Transport, out: TextIO | None, reveal: bool) -> None:
        super().__init__()
        self.inner, self.out, self.reveal = inner, out, reveal
        self.url = inner.url
        self._open = bool(getattr(inner, "is_open", False))  # wrapping an open transport (watch)

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def open(self) -> None:
        self.inner.open()
        super().open()

    def close(self) -> None:
        self.inner.close()
        super().close()

    def card_present(self) -> bool:
        return self.inner.card_present()

    def _say(self, line: str) -> None:
        log.debug("%s", line)
        if self.out is not None:
            print(line, file=self.out, flush=True)

    def _transmit(self, command: bytes) -> bytes:
        self._say(f">> {command.hex().upper()}  {command_name(command)}")
        start = time.perf_counter()
        try:
            response = self.inner.transmit(command)
        except TransportError as exc:
            self._say(f"<< ({exc})  {(time.perf_counter() - start) * 1000:.3f} ms")
            raise
        self._say(f"<< {masked_response(response, self.reveal)}  {(time.perf_counter() - start) * 1000:.3f} ms")
        return response


def exchanges_json(trace: Trace, reveal: bool, with_hex: bool) -> list[dict[str, Any]]:
    """Each exchange's name, sizes, status word and times (ms from the first command's start); with
    ``with_hex`` (``--apdu``) the C-APDU and the R-APDU in hex, masked as :func:`masked_response`."""
    origin = trace.exchanges[0].t_start if trace.exchanges else 0.0
    out = []
    for e in trace.exchanges:
        entry: dict[str, Any] = {
            "command": command_name(e.command), "c_apdu_bytes": len(e.command),
            "r_apdu_bytes": None if e.response is None else len(e.response),
            "sw": e.response[-2:].hex().upper() if e.response and len(e.response) >= 2 else None,
            "start_ms": round((e.t_start - origin) * 1000.0, 3), "elapsed_ms": round(e.elapsed_ms, 3),
            "error": e.error,
        }
        if with_hex:
            entry["c_apdu"] = e.command.hex().upper()
            entry["r_apdu"] = None if e.response is None else masked_response(e.response, reveal)
        out.append(entry)
    return out


def watched(card: Transport, apdu: bool, json_out: bool, reveal: bool) -> Transport:
    """``card`` as ``tap``/``info`` use it: with ``--apdu`` its exchanges printed as they happen (on stderr with
    ``--json``, which keeps stdout one JSON object), with ``-vv`` logged; else unchanged."""
    if apdu:
        return ApduPrinter(card, sys.stderr if json_out else sys.stdout, reveal)
    if log.isEnabledFor(logging.DEBUG):
        return ApduPrinter(card, None, reveal)
    return card
