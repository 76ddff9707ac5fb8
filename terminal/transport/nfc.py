"""The ``nfc:`` transport: a contactless card on a reader driven by nfcpy.

Everything after ``nfc:`` is nfcpy's device path (``nfc.ContactlessFrontend``):
``nfc:usb`` (the first supported USB reader), ``nfc:usb:054c:06c3`` (by vendor
and product), ``nfc:usb:001:023`` (by bus and device), ``nfc:tty:USB0:pn532``
(a serial reader and its driver), or ``nfc:udp:127.0.0.1:54321`` (nfcpy's RF
link simulated over UDP, answered by ``emvkit emulate --nfc``). ``?timeout=5``
bounds the wait for a card in the field, in seconds (default 5).

:meth:`NfcTransport.open` polls for a Type A card at 106 kbit/s until one with
SAK bit 6 (ISO/IEC 14443-4 compliant) answers, which nfcpy activates as a
``Type4ATag`` (RATS/ATS, then ISO-DEP). The ATR is the PC/SC Part 3
pseudo-ATR made of the ATS historical bytes. :meth:`transmit` is
``tag.transceive`` (ISO-DEP chaining, R(ACK)/R(NAK) and retries are nfcpy's);
a card that stops answering is :class:`emvkit.terminal.errors.CardRemoved`, any other
failure :class:`emvkit.terminal.errors.TransportError`, never an nfcpy exception.
:meth:`close` sends S(DESELECT) (ISO/IEC 14443-4 §8) and releases the reader.

nfcpy is an optional extra (``pip install 'emvkit[nfc]'``); without it this
module raises :class:`emvkit.terminal.errors.UnknownScheme` on import.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from emvkit.terminal.endpoints import parse_udp_path
from emvkit.terminal.errors import CardRemoved, ConfigError, TransportError, UnknownScheme
from emvkit.terminal.iso7816 import contactless_atr
from emvkit.terminal.iso14443 import PCB_S_DESELECT, RATS, Ats
from emvkit.terminal.transport.base import BaseTransport

try:
    import nfc
    import nfc.clf
    import nfc.tag
    import nfc.tag.tt4
except ModuleNotFoundError as exc:
    raise UnknownScheme(
        f"the nfc: transport needs nfcpy (pip install 'emvkit[nfc]'): cannot import {exc.name}"
    ) from exc

__all__ = ["DEFAULT_TIMEOUT", "NfcTransport", "from_url"]

DEFAULT_TIMEOUT = 5.0
_S_DESELECT = bytes((PCB_S_DESELECT,))  # ISO/IEC 14443-4 §8, without CID (nfcpy's RATS assigns CID 0)
_DESELECT_TIMEOUT = 0.1  # generous beside the deactivation frame waiting time of 65536/fc (4.8 ms)
_POLL_PAUSE = 0.1  # between polls of a reader that answers "no card" at once

log = logging.getLogger("emvkit.nfc")


class NfcTransport(BaseTransport):
    """An ISO-DEP card on an nfcpy reader. No I/O before :meth:`open`."""

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT, url: str = "") -> None:
        super().__init__()
        self.path = path
        self.timeout = timeout
        self.url = url or f"nfc:{path}"
        self._clf: Any = None
        self._tag: Any = None
        self._ats = b""
        self._lost: str | None = None  # why the card is gone, once it is

    @property
    def tag(self) -> Any:
        """nfcpy's ``Type4ATag`` while the card is there (for raw ``transceive``), else None."""
        return self._tag

    @property
    def ats(self) -> bytes:
        """The card's ATS as received (TL first, no CRC_A)."""
        return self._ats

    def open(self) -> None:
        if self.is_open:
            return
        clf = _open_reader(self.path)
        try:
            self._tag, self._ats = self._wait_for_card(clf)
        except BaseException:
            clf.close()
            raise
        self._clf = clf
        self._lost = None
        try:
            historical = Ats.parse(self._ats).historical
        except ValueError as exc:
            log.warning("card's ATS %s is malformed (%s): ATR without historical bytes", self._ats.hex(), exc)
            historical = b""
        self._atr = contactless_atr(historical[:15])
        log.info("ISO-DEP card on %s: ATS %s", self.path, self._ats.hex().upper())
        super().open()

    def _wait_for_card(self, clf: Any) -> tuple[Any, bytes]:
        """Poll for a Type A card and activate it as ISO-DEP, for at most ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        seen = ""
        while True:
            try:
                target = clf.sense(nfc.clf.RemoteTarget("106A"), iterations=1)
            except nfc.clf.UnsupportedTargetError as exc:
                raise TransportError(f"{self.url}: the reader cannot poll for Type A cards: {exc}") from exc
            except nfc.clf.CommunicationError as exc:
                log.debug("poll: %s", exc)
                target = None
            except OSError as exc:
                raise TransportError(f"{self.url}: reader failed while polling: {exc}") from exc
            if target is not None:
                sak = target.sel_res[0] if target.sel_res else None
                if sak is not None and sak & 0x20:
                    tag, ats = _activate(clf, target)
                    if isinstance(tag, nfc.tag.tt4.Type4ATag) and ats:
                        return tag, ats
                    seen = "a card that did not answer RATS"
                else:
                    seen = f"a tag that is not ISO-DEP (SAK {sak:02X})" if sak is not None else "a non-Type A tag"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                found = f"; found only {seen}" if seen else ""
                raise TransportError(f"no ISO-DEP card presented to {self.path} within {self.timeout:g} s{found}")
            time.sleep(min(_POLL_PAUSE, remaining))

    def close(self) -> None:
        clf, tag = self._clf, self._tag
        self._clf = self._tag = None
        if clf is not None:
            if tag is not None:
                try:
                    clf.exchange(bytearray(_S_DESELECT), _DESELECT_TIMEOUT)
                except (nfc.clf.CommunicationError, OSError) as exc:
                    log.debug("S(DESELECT) not answered: %s", exc)
            try:
                clf.close()
            except OSError as exc:
                log.debug("closing %s: %s", self.path, exc)
        super().close()

    def card_present(self) -> bool:
        """A presence check: R(NAK), answered by R(ACK) while the card is in the field (§7.5.4 rule 12)."""
        tag = self._tag
        if not self.is_open or tag is None:
            return False
        try:
            present = bool(tag.is_present)
        except (nfc.clf.CommunicationError, nfc.tag.TagCommandError, OSError):
            present = False
        if not present:
            self._gone("card removed (no answer to the presence check)")
        return present

    def _transmit(self, command: bytes) -> bytes:
        tag = self._tag
        if tag is None:
            raise CardRemoved(f"{self.url}: {self._lost or 'card removed'}")
        try:
            response = tag.transceive(command)
        except nfc.tag.TagCommandError as exc:
            if exc.errno in (nfc.tag.TIMEOUT_ERROR, nfc.tag.RECEIVE_ERROR):
                raise self._gone(f"card removed: {exc}", CardRemoved) from exc
            raise self._gone(f"ISO-DEP link broken: {exc}", TransportError) from exc
        except (nfc.clf.TimeoutError, nfc.clf.BrokenLinkError) as exc:
            raise self._gone(f"card removed: {exc}", CardRemoved) from exc
        except nfc.clf.CommunicationError as exc:
            raise self._gone(f"ISO-DEP link broken: {exc}", TransportError) from exc
        except OSError as exc:
            raise self._gone(f"reader failed: {exc}", TransportError) from exc
        if response is None:
            raise self._gone("no response from the card", CardRemoved)
        return bytes(response)

    def _gone(self, why: str, kind: type[TransportError] = CardRemoved) -> TransportError:
        """Forget the card (a later transmit fails at once); the error to raise."""
        self._tag = None
        self._lost = why
        return kind(f"{self.url}: {why}")


def _open_reader(path: str) -> Any:
    try:
        clf = nfc.ContactlessFrontend()
        found = clf.open(path)
    except OSError as exc:
        if exc.errno == errno.EACCES:
            raise TransportError(f"NFC reader at {path}: permission denied (`python -m nfc` explains)") from exc
        if exc.errno == errno.EBUSY:
            raise TransportError(f"NFC reader at {path} is busy (another program or a kernel driver has it)") from exc
        raise TransportError(f"cannot open NFC reader at {path}: {exc}") from exc
    except ValueError as exc:
        raise TransportError(f"bad nfcpy device path {path!r}: {exc}") from exc
    if not found:
        raise TransportError(
            f"no NFC reader at {path}: is one plugged in, supported by nfcpy and free "
            "(`python -m nfc` lists what nfcpy finds)?"
        )
    return clf


def _activate(clf: Any, target: Any) -> tuple[Any, bytes]:
    """nfcpy's activation (RATS for a Type 4A tag), keeping the ATS it does not store."""
    answers: list[bytes] = []
    exchange: Callable[[Any, float], Any] = clf.exchange

    def exchange_keeping_ats(data: Any, timeout: float) -> Any:
        response = exchange(data, timeout)
        if data is not None and len(data) == 2 and data[0] == RATS and response is not None:
            answers.append(bytes(response))
        return response

    clf.exchange = exchange_keeping_ats
    try:
        tag = nfc.tag.activate(clf, target)
    except IndexError:  # an ATS too short for nfcpy to read FSCI and FWI from
        tag = None
    finally:
        del clf.exchange
    return tag, (answers[-1] if answers else b"")


def from_url(url: str) -> NfcTransport:
    rest = url.split(":", 1)[1] if ":" in url else ""
    path, _, query = rest.partition("?")
    if not path:
        raise ConfigError(f"{url!r}: expected nfc:<nfcpy device path>, e.g. nfc:usb or nfc:udp:127.0.0.1:54321")
    if path.startswith("udp"):
        parse_udp_path(path, url, 54321)  # nfcpy's udp driver's default port
    timeout = DEFAULT_TIMEOUT
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key != "timeout":
            raise ConfigError(f"{url!r}: unknown option {key!r} (timeout)")
        try:
            timeout = float(value)
        except ValueError as exc:
            raise ConfigError(f"{url!r}: timeout={value!r} is not a number of seconds") from exc
        if not 0 < timeout <= 3600:
            raise ConfigError(f"{url!r}: timeout={value} is outside (0, 3600] seconds")
    return NfcTransport(path, timeout=timeout, url=url)
