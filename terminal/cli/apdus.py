"""``--apdu``: each C-APDU and R-APDU in hex as it happens, and the per-APDU times of ``--json``.

Raw R-APDUs carry cardholder data, so unless ``--reveal`` a response's data is
decoded as BER-TLV and the value of every sensitive data object
(:data:`emvkit.terminal.tlvdump.SENSITIVE_TAGS`: the PAN 5A, track 1 and 2 data
56/57/9F6B, their discretionary data, PIN data) is replaced by ``*`` in the hex,
keeping its length: the PAN keeps its first 6 and last 4 digits (the PCI DSS
display rule), track 2 keeps its masked PAN. A response that is not BER-TLV shows
its length only. Tags, lengths and every other value stay as the card sent them.
C-APDUs carry no cardholder data and are shown as sent.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from emvkit.firmware import tlv
from emvkit.firmware.tlv import TLV
from emvkit.terminal.cli.report import _command_name as command_name
from emvkit.terminal.errors import TransportError
from emvkit.terminal.tlvdump import SENSITIVE_TAGS, mask_pan
from emvkit.terminal.transport.base import BaseTransport, Transport
from emvkit.terminal.transport.trace import Trace

__all__ = ["ApduPrinter", "exchanges_json", "masked_response", "watched"]

log = logging.getLogger("emvkit.apdu")


def _masked_value(tag: int, value: bytes) -> str:
    digits = value.hex().upper()
    if tag == 0x5A:
        return mask_pan(digits)
    if tag in (0x57, 0x9F6B):  # track 2 equivalent: PAN, D, then expiry, service code, discretionary data
        pan, sep, rest = digits.partition("D")
        if sep and pan.isdigit():
            return mask_pan(pan) + "D" + "*" * len(rest)
    return "*" * len(digits)


def _masked_nodes(nodes: list[TLV]) -> str:
    """The nodes' encoding in hex (canonical: the response re-encodes to its own bytes), sensitive values masked."""
    out = []
    for node in nodes:
        if node.children is not None:
            raw, shown = tlv.encode(node.children), _masked_nodes(node.children)
        else:
            raw = node.value
            shown = _masked_value(node.tag, raw) if node.tag in SENSITIVE_TAGS else raw.hex().upper()
        out.append(tlv.tag_hex(node.tag) + tlv.encode_length(len(raw)).hex().upper() + shown)
    return "".join(out)


def masked_response(response: bytes, reveal: bool) -> str:
    """An R-APDU in hex, its sensitive data objects masked unless ``reveal``."""
    data, sw = response[:-2], response[-2:]
    if reveal or not data:
        return response.hex().upper()
    try:
        nodes = tlv.decode(data)
    except tlv.TLVError:
        nodes = None
    if nodes is None or tlv.encode(nodes) != data:  # not (canonical) BER-TLV: its bytes cannot be sorted out
        return f"<{len(data)} bytes, not BER-TLV, masked>{sw.hex().upper()}"
    return _masked_nodes(nodes) + sw.hex().upper()


class ApduPrinter(BaseTransport):
    """Wraps a transport and writes each exchange to ``out`` as it happens: ``>> C-APDU`` before it is sent,
    ``<< R-APDU`` with its time when it comes back (or the error); also logged at DEBUG (``-vv``), and only
    logged when ``out`` is None."""

    def __init__(self, inner: Transport, out: TextIO | None, reveal: bool) -> None:
        super().__init__()
        self.inner, self.out, self.reveal = inner, out, reveal
        self.url = inner.url

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
