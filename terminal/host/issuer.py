"""The issuer host simulator: ARQC verification, approval rules, ARPC.

:class:`IssuerHost` implements :class:`emvkit.terminal.host.api.Authoriser`. For
each request it

1. checks the request's form (PAN, the DE 55 tags the cryptogram covers);
2. finds the issuer key by PAN (:class:`~emvkit.terminal.host.keys.IssuerKeys`) and
   derives the ICC master key (EMV Book 2 Annex A1.4, option A or B);
3. checks the card's cryptogram is an ARQC, or a TC sent online by a contactless reader
   (Book 3 §6.5.5.4, Book C-3), not an AAC;
4. verifies the ARQC (9F26) with pyemv, over the data the card's cryptogram
   version covers, in the card's order (``firmware/payapp/cryptogram.py``);
5. checks the ATC (9F36) against the replay window of the card; the log's
   unique index on (card, ATC) has the last word: a row that would spend
   an ATC the card already spent is not written and the answer is 63
   (:meth:`~emvkit.terminal.host.authlog.AuthLog.record`);
6. checks DE 4 / DE 49 against the signed 9F02 / 5F2A, then the approval
   rules (:class:`~emvkit.terminal.host.rules.Rules`);
7. answers with the Authorisation Response Code and, whenever the ARQC
   verified and was fresh, the Issuer Authentication Data (tag 91,
   Book 2 §8.2) for the card's second GENERATE AC:

   - ARPC method 1 (Mastercard CVN 16/17, Visa CVN 10, UnionPay):
     91 = ARPC(8) || ARC(2), ARPC = DES3(key)[ARQC xor (ARC || 00..00)];
   - ARPC method 2 (Visa CVN 18): 91 = ARPC(4) || CSU(4) || 00 00, the MAC
     covering ARQC || CSU || the 2 bytes of proprietary authentication
     data, so the 10 bytes sent are what the card's CDOL2 asks for and MACs.

   CSU (the CCD / VIS coding): byte 1 = 80 (proprietary authentication data
   included, PIN try counter 0); byte 2 = 82 when approved (b8 issuer
   approves online transaction, b2-b1 = 10 reset the velocity-checking
   counters), 00 when declined; bytes 3 and 4 = 00.

8. attaches the issuer scripts its rules name for the card
   (:class:`~emvkit.terminal.host.rules.ScriptRule`) whenever the ARQC
   verified, when the issuer key has an IMK-SMI: each script a template 71
   or 72 holding its Issuer Script Identifier (9F18, the script's number in
   the answer) and its commands (86), each command MACed under the card's
   MAC session key (EMV Book 2 §9.2, :mod:`emvkit.firmware.crypto.secure_messaging`:
   Visa's session key for Visa, the EMV common session key with R = ARQC
   for Mastercard and UnionPay):

   - ``reset-counters`` (72): PUT DATA (04 DA) of the card's consecutive
     offline counter (DF50) to 00 and cumulative offline amount (DF51) to 0;
   - ``block`` (71): APPLICATION BLOCK (84 1E);
   - ``unblock`` (72): APPLICATION UNBLOCK (84 18).

Reversals (0400/0420, :mod:`emvkit.terminal.host.reversal`) mark an approval
reversed (:meth:`IssuerHost.apply_reversal`). Every request leaves one row in the
:class:`~emvkit.terminal.host.authlog.AuthLog`; the response codes are tabled in :mod:`emvkit.terminal.host.rules`.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.utils import CryptographyDeprecationWarning
from pyemv import ac as pyemv_ac
from pyemv import cvn as pyemv_cvn
from pyemv import kd as pyemv_kd

from emvkit.firmware import tlv
from emvkit.firmware.crypto import emv as emvcrypto
from emvkit.firmware.crypto import secure_messaging as sm
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.api import AuthorisationRequest, AuthorisationResponse
from emvkit.terminal.host.authlog import PENDING, AuthLog, CardHistory, LogEntry
from emvkit.terminal.host.iso8583 import transmission_time
from emvkit.terminal.host.keys import IssuerKey, IssuerKeys
from emvkit.terminal.host.reversal import Reversal
from emvkit.terminal.host.rules import (
    APPROVED,
    DO_NOT_HONOUR,
    FORMAT_ERROR,
    INVALID_AMOUNT,
    INVALID_TRANSACTION,
    NO_SUCH_ISSUER,
    SECURITY_VIOLATION,
    SYSTEM_MALFUNCTION,
    UNABLE_TO_LOCATE,
    Decision,
    Rules,
)
from emvkit.terminal.host.secret import HostSecret
from emvkit.terminal.tlvdump import mask_pan

__all__ = ["CSU_APPROVED", "CSU_DECLINED", "PROPRIETARY_AUTH_DATA", "REQUIRED_TAGS", "Decided", "IssuerHost"]

log = logging.getLogger("emvkit.host")

# pyemv 1.5.0 builds TripleDES from the place cryptography has deprecated;
# that is pyemv's to fix, and `emvkit host serve` users should not see it.
warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module="pyemv")

# Terminal data every cryptogram version covers, in the card's order, then
# the card's AIP and ATC (EMV Book 2 §8.1.1, Table 26).
_AC_TERMINAL_TAGS = (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37)
# DE 55 tags the host needs to verify an ARQC (every cryptogram version).
REQUIRED_TAGS = (0x9F26, 0x9F27, 0x9F10, 0x82, 0x9F36, *_AC_TERMINAL_TAGS)
_LENGTHS = {0x9F02: 6, 0x9F03: 6, 0x9F1A: 2, 0x95: 5, 0x5F2A: 2, 0x9A: 3, 0x9C: 1, 0x9F37: 4,
            0x82: 2, 0x9F36: 2, 0x9F26: 8, 0x9F27: 1}
# Shortest Issuer Application Data each version can take its CVR (and counters) from.
_IAD_MIN = {"visa_cvn10": 7, "visa_cvn18": 7, "mc_cvn16": 8, "mc_cvn17": 18, "upi": 7, "upi_sm4": 7}

CSU_APPROVED = bytes.fromhex("80820000")
CSU_DECLINED = bytes.fromhex("80000000")
PROPRIETARY_AUTH_DATA = bytes(2)

_CACHE_MAX = 4096

# The card's offline counters as its PUT DATA names them (firmware/payapp/card.py).
TAG_CONSECUTIVE_OFFLINE = 0xDF50
TAG_OFFLINE_AMOUNT = 0xDF51
# Script action -> (template, [(CLA, INS, P1, P2, data)]).
_SCRIPTS: dict[str, tuple[int, list[tuple[int, int, int, int, bytes]]]] = {
    "reset-counters": (0x72, [(0x04, 0xDA, TAG_CONSECUTIVE_OFFLINE >> 8, TAG_CONSECUTIVE_OFFLINE & 0xFF, b"\x00"),
                              (0x04, 0xDA, TAG_OFFLINE_AMOUNT >> 8, TAG_OFFLINE_AMOUNT & 0xFF, bytes(6))]),
    "block": (0x71, [(0x84, 0x1E, 0x00, 0x00, b"")]),
    "unblock": (0x72, [(0x84, 0x18, 0x00, 0x00, b"")]),
}


class _Card:
    """One card's cryptography, built once per (key, PAN, PSN) and cached:
    pyemv's CVN object (or, for UnionPay, the ICC master key)."""

    def __init__(self, key: IssuerKey, pan: str, psn: str) -> None:
        derive = pyemv_kd.derive_icc_mk_b if key.derivation == "B" else pyemv_kd.derive_icc_mk_a
        self.version = key.cryptogram_version
        if self.version == "upi_sm4":
            # The SM suite: SM4 master key derivation (firmware/crypto/emv.py, EMV
            # Book 2 Annex A1.4.1 with SM4 as the 16-byte block cipher).
            self.icc_mk = emvcrypto.derive_icc_mk(key.imk_ac, pan, psn, "SM4")
        else:
            self.icc_mk = bytes(derive(key.imk_ac, pan, psn))
        cls = {"visa_cvn10": pyemv_cvn.VisaCVN10, "visa_cvn18": pyemv_cvn.VisaCVN18,
               "mc_cvn16": pyemv_cvn.MasterCardCVN16, "mc_cvn17": pyemv_cvn.MasterCardCVN17}.get(self.version)
        self.icc_mk_smi: bytes | None = None
        if key.imk_smi is not None:
            self.icc_mk_smi = emvcrypto.derive_icc_mk(key.imk_smi, pan, psn, key.derivation)
        self.scheme: Any = None
        if cls is not None:
            self.scheme = cls(iss_mk_ac=key.imk_ac, iss_mk_smi=key.imk_ac, iss_mk_smc=key.imk_ac, pan=pan, psn=psn)
            # pyemv's classes derive with their CVN's usual option; the key
            # entry says which one this issuer uses.
            self.scheme.icc_mk_ac = self.icc_mk

    def arqc(self, icc: dict[int, bytes]) -> bytes:
        """The cryptogram the card should have computed (EMV Book 2 §8.1.2)."""
        terminal = {f"tag_{t:x}": icc[t] for t in _AC_TERMINAL_TAGS}
        aip, atc, iad = icc[0x82], icc[0x9F36], icc[0x9F10]
        v = self.version
        if v == "visa_cvn10":
            return bytes(self.scheme.generate_ac(**terminal, tag_82=aip, tag_9f36=atc, cvr=iad[3:7]))
        if v == "visa_cvn18":
            return bytes(self.scheme.generate_ac(**terminal, tag_82=aip, tag_9f36=atc, tag_9f10=iad))
        if v == "mc_cvn16":
            return bytes(self.scheme.generate_ac(**terminal, tag_82=aip, tag_9f36=atc, cvr=iad[2:8]))
        if v == "mc_cvn17":
            return bytes(self.scheme.generate_ac(**terminal, tag_82=aip, tag_9f36=atc, cvr=iad[2:8],
                                                 counters=iad[10:18]))
        # upi: EMV common session key (A1.3.1, R = ATC || 00..00), MAC with padding method 2.
        data = b"".join(icc[t] for t in _AC_TERMINAL_TAGS) + aip + atc + iad
        if v == "upi_sm4":
            return emvcrypto.generate_ac_upi_sm4(self.icc_mk, atc, data)
        return bytes(pyemv_ac.generate_ac(self._upi_session_key(atc), data, pyemv_ac.PaddingType.EMV))

    def issuer_authentication_data(self, arqc: bytes, atc: bytes, arc: bytes, approved: bool) -> bytes:
        """Tag 91 for the card's second GENERATE AC (EMV Book 2 §8.2)."""
        v = self.version
        if v == "visa_cvn18":
            csu = CSU_APPROVED if approved else CSU_DECLINED
            arpc = bytes(self.scheme.generate_arpc(arqc, atc, csu, PROPRIETARY_AUTH_DATA))
            return arpc + csu + PROPRIETARY_AUTH_DATA
        if v == "upi":
            return bytes(pyemv_ac.generate_arpc_1(self._upi_session_key(atc), arqc, arc)) + arc
        if v == "upi_sm4":
            return emvcrypto.generate_arpc_upi_sm4(self.icc_mk, atc, arqc, arc) + arc
        return bytes(self.scheme.generate_arpc(arqc, arc)) + arc

    def issuer_scripts(self, actions: list[str], atc: bytes, arqc: bytes) -> bytes:
        """The 71/72 templates of ``actions`` for the transaction with this ATC
        and ARQC, each command MACed (EMV Book 2 §9.2); empty without an IMK-SMI."""
        if not actions or self.icc_mk_smi is None:
            return b""
        key = sm.mac_session_key(self.version, self.icc_mk_smi, atc, arqc)
        out = b""
        for number, action in enumerate(actions, 1):
            template, commands = _SCRIPTS[action]
            body = tlv.encode_tlv(0x9F18, number.to_bytes(4, "big"))
            for cla, ins, p1, p2, data in commands:
                body += tlv.encode_tlv(0x86, sm.script_command(key, cla, ins, p1, p2, atc, arqc, data))
            out += tlv.encode_tlv(template, body)
        return out

    def _upi_session_key(self, atc: bytes) -> bytes:
        return bytes(pyemv_kd.derive_common_sk(self.icc_mk, atc + bytes(6)))


@dataclass
class Decided:
    """A decision of :meth:`IssuerHost.decide` waiting for its row to be
    written (:meth:`IssuerHost.record`); then ``final`` is the answer and
    ``row_id`` its row."""

    request: AuthorisationRequest
    response: AuthorisationResponse
    entry: dict[str, Any]
    final: AuthorisationResponse | None = None
    row_id: int | None = None
    sent: Any = field(default=None, repr=False)  # its row's INSERT, sent ahead (:meth:`IssuerHost.send`)

    @property
    def card_atc(self) -> tuple[str, str, int]:
        """The unique-index key it may spend (writers take batches in this order)."""
        return (self.entry.get("pan_hmac") or "", self.entry.get("psn") or "", self.entry.get("atc") or 0)

    @property
    def pending(self) -> bool:
        """An approval whose delivery the terminal has yet to confirm."""
        return self.final is not None and self.final.approved and self.entry.get("delivery") == PENDING


class _Refusal(Exception):
    """Internal: ends :meth:`IssuerHost._decide` with a response code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class IssuerHost:
    """The issuer: ``authorise(request) -> response``, thread-safe. Cards are
    found by their keyed PAN hash under the log's host secret."""

    def __init__(self, keys: IssuerKeys, rules: Rules | None = None, log: AuthLog | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.rules = rules if rules is not None else Rules()
        self.log = log if log is not None else AuthLog()
        if self.log.secret is None:
            raise ConfigError("the issuer host needs a log opened with its host secret")
        self.secret: HostSecret = self.log.secret
        self.clock = clock
        self._lock = threading.Lock()
        self._cards: OrderedDict[tuple[str, str, str], _Card] = OrderedDict()
        self._refs: OrderedDict[str, tuple[list[str], str]] = OrderedDict()
        self._histories: OrderedDict[tuple[str, str], CardHistory] = OrderedDict()

    @classmethod
    def builtin(cls, db: str = ":memory:", rules: Rules | None = None) -> IssuerHost:
        """The default host: the built-in test cards' keys, default rules,
        a log in memory (or in the file ``db``, its secret beside it)."""
        return cls(IssuerKeys.builtin(), rules, AuthLog(db))

    def close(self) -> None:
        self.log.close()

    def __enter__(self) -> IssuerHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the Authoriser interface ---

    def authorise(self, request: AuthorisationRequest) -> AuthorisationResponse:
        return self.record(self.decide(request))

    def decide(self, request: AuthorisationRequest, delivered: bool = True) -> Decided:
        """The decision on ``request``, its row not yet written (the CPU part:
        checks, ARQC, rules, ARPC). :meth:`record` writes it and gives the
        answer. ``delivered=False``: the answer travels to a terminal that
        has yet to confirm it (an approval is logged ``pending``)."""
        with self._lock:
            now = self.clock()
            entry: dict[str, Any] = {"time": now, "amount": request.amount, "stan": request.stan,
                                     "terminal_id": request.terminal_id, "mti": request.mti,
                                     "currency": request.currency.hex()[-3:]}
            try:
                response = self._decide(request, now, entry)
            except _Refusal as refusal:
                response = _response(refusal.code, refusal.reason)
            except Exception as exc:  # a host fault answers 96, it never takes the host down
                log.exception("host fault while authorising (STAN %s)", request.stan)
                response = _response(SYSTEM_MALFUNCTION, f"host fault: {type(exc).__name__}")
                entry["atc_spent"] = False
            if response.response_code == APPROVED and not delivered:
                entry["delivery"] = PENDING
        return Decided(request, response, entry)

    def send(self, decided: Decided) -> None:
        """Send the INSERT of a decision's row ahead of :meth:`record`, so that
        a batch's rows travel together (:meth:`AuthLog.pipeline`)."""
        response = decided.response
        try:
            decided.sent = self.log.insert(LogEntry(response_code=response.response_code, reason=response.reason,
                                                    **decided.entry))
        except Exception:
            self._forget(decided.entry)
            raise

    def record(self, decided: Decided) -> AuthorisationResponse:
        """Write the row of a decision (or take the outcome of the INSERT
        :meth:`send` sent); the answer. The unique (card, ATC) index has the
        last word: when the row cannot go in, the answer is 63. Inside
        :meth:`AuthLog.batch` the row commits with the batch."""
        entry, response = dict(decided.entry), decided.response
        try:
            if decided.sent is None:
                self.send(decided)
            sent, decided.sent = decided.sent, None
            row_id = self.log.inserted(sent)
        except Exception:
            self._forget(entry)
            raise
        if row_id is None:
            # The database holds a row that spent this ATC of this card (another
            # host process, or a replay this process's cache had not seen).
            self._forget(entry)
            response = _response(SECURITY_VIOLATION, f"ATC {entry['atc']} was already used (replayed cryptogram)")
            entry.update(atc_spent=False, delivery=None)
            row_id = self.log.record(LogEntry(response_code=response.response_code, reason=response.reason, **entry))
        elif response.response_code == SYSTEM_MALFUNCTION:
            self._forget(entry)
        decided.row_id = row_id
        decided.final = response
        request = decided.request
        log.info("%s STAN %s card %s ATC %s: %s %s", request.mti, request.stan, entry.get("pan_masked"),
                 entry.get("atc"), response.response_code, response.reason)
        return response

    def reverse(self, request: AuthorisationRequest, reason: str) -> AuthorisationResponse:
        """Reverse an authorisation answered in-process (the driver calls this
        when the card declined after the approval)."""
        return self.apply_reversal(Reversal(request, transmission_time(self.clock()), reason))

    def apply_reversal(self, reversal: Reversal) -> AuthorisationResponse:
        """Mark the authorisation ``reversal`` names reversed; log the reversal
        (:mod:`emvkit.terminal.host.reversal`)."""
        original = reversal.original
        with self._lock:
            now = self.clock()
            entry: dict[str, Any] = {"time": now, "amount": original.amount, "stan": reversal.stan,
                                     "terminal_id": original.terminal_id, "mti": reversal.mti,
                                     "currency": original.currency.hex()[-3:], "atc": reversal.atc,
                                     "transmitted": reversal.transmitted}
            try:
                response = self._reverse(reversal, now, entry)
            except Exception as exc:
                log.exception("host fault while reversing (STAN %s)", reversal.stan)
                response = _response(SYSTEM_MALFUNCTION, f"host fault: {type(exc).__name__}")
            why = f"{response.reason}; {reversal.reason}" if reversal.reason else response.reason
            self.log.record(LogEntry(response_code=response.response_code, reason=why, **entry))
        log.info("%s STAN %s card %s ATC %s: %s %s", reversal.mti, reversal.stan, entry.get("pan_masked"),
                 reversal.atc, response.response_code, response.reason)
        return response

    def format_error(self, reason: str, mti: str | None = None, stan: int | None = None,
                     terminal_id: str | None = None) -> AuthorisationResponse:
        """Log a message the front end could not read; the "30" answer."""
        with self._lock:
            self.log.record(LogEntry(time=self.clock(), response_code=FORMAT_ERROR, reason=reason, mti=mti,
                                     stan=stan, terminal_id=terminal_id))
        log.warning("format error (MTI %s, STAN %s): %s", mti, stan, reason)
        return _response(FORMAT_ERROR, reason)

    # --- the decision ---

    def _decide(self, request: AuthorisationRequest, now: float, entry: dict[str, Any]) -> AuthorisationResponse:
        pan = request.pan
        if not pan.isdigit() or not 12 <= len(pan) <= 19:
            raise _Refusal(FORMAT_ERROR, "the PAN must be 12 to 19 digits")
        hashes, card_ref = self._card_ref(pan)
        entry.update(pan_masked=mask_pan(pan), pan_hmac=card_ref)
        key = self.keys.find(pan)
        if key is None:
            raise _Refusal(NO_SUCH_ISSUER, "no issuer key covers this PAN")
        icc = request.icc_data
        _check_icc_data(icc, key.cryptogram_version)
        atc_bytes = icc[0x9F36]
        atc = int.from_bytes(atc_bytes, "big")
        entry["atc"] = atc
        cid = icc[0x9F27][0] & 0xC0
        if cid not in (0x80, 0x40):
            kind = {0x00: "AAC"}.get(cid, "RFU")
            raise _Refusal(INVALID_TRANSACTION, f"the card declined (CID {kind}): nothing to authorise")
        # A TC comes online when a contactless reader sends an offline
        # approval for authorisation (Book C-3: fDDA failed and the CTQ says
        # "go online"); it is verified like an ARQC.
        psn = request.psn or (icc[0x5F34].hex() if 0x5F34 in icc else "00")
        if len(psn) != 2 or not psn.isdigit():
            raise _Refusal(FORMAT_ERROR, "the PAN sequence number must be 2 digits")
        entry["psn"] = psn
        card = self._card(key, pan, psn)
        arqc = icc[0x9F26]
        if card.arqc(icc) != arqc:
            raise _Refusal(DO_NOT_HONOUR, "ARQC verification failed")
        history = self._history(card_ref, psn, now)
        _check_atc(history, atc, self.rules.atc_window)
        entry["atc_spent"] = True
        decision = self._rules_decision(request, icc, hashes, history, now)
        code = APPROVED if decision is None else decision.response_code
        if decision is None:
            history.approvals.append(now)
        arc = code.encode("ascii")
        iad = card.issuer_authentication_data(arqc, atc_bytes, arc, decision is None)
        actions = self.rules.script_actions(hashes)
        scripts = card.issuer_scripts(actions, atc_bytes, arqc)
        if actions and not scripts:
            log.warning("no IMK-SMI for card %s: scripts %s not sent", entry.get("pan_masked"), ", ".join(actions))
        return _response(code, "" if decision is None else decision.reason, iad, scripts)

    def _reverse(self, reversal: Reversal, now: float, entry: dict[str, Any]) -> AuthorisationResponse:
        original = reversal.original
        if not original.pan.isdigit() or not 12 <= len(original.pan) <= 19:
            return _response(FORMAT_ERROR, "the PAN must be 12 to 19 digits")
        _, card_ref = self._card_ref(original.pan)
        psn = original.psn or "00"
        entry.update(pan_masked=mask_pan(original.pan), pan_hmac=card_ref, psn=psn)
        row = None if reversal.atc is None else self.log.spent(card_ref, psn, reversal.atc)
        if (row is None or row.stan != original.stan or (row.terminal_id or "") != original.terminal_id
                or row.mti != original.mti):
            return _response(UNABLE_TO_LOCATE, "no such authorisation (card, ATC, STAN and terminal id)")
        if row.response_code != APPROVED:
            return _response(APPROVED, f"the authorisation (STAN {row.stan}) was declined: nothing to reverse")
        if row.reversed is not None or not self.log.mark_reversed(int(row.id or 0), now):
            return _response(APPROVED, f"the authorisation (STAN {row.stan}) was already reversed")
        self._histories.pop((card_ref, psn), None)  # its approval no longer counts for velocity
        return _response(APPROVED, f"authorisation STAN {row.stan} reversed")

    def _rules_decision(self, request: AuthorisationRequest, icc: dict[int, bytes], pan_hashes: list[str],
                        history: CardHistory, now: float) -> Decision | None:
        signed_amount = icc[0x9F02].hex()
        if not signed_amount.isdigit() or int(signed_amount) != request.amount:
            return Decision(INVALID_AMOUNT, "the amount (DE 4) differs from the amount the card signed (9F02)")
        if request.currency != icc[0x5F2A]:
            return Decision(INVALID_AMOUNT, "the currency (DE 49) differs from the one the card signed (5F2A)")
        window_start = now - self.rules.velocity_window_s
        while history.approvals and history.approvals[0] < window_start:
            history.approvals.popleft()
        return self.rules.check(pan_hashes, request.amount, len(history.approvals))

    # --- caches (the log is the truth; these only save recomputing it) ---

    def _card(self, key: IssuerKey, pan: str, psn: str) -> _Card:
        ident = (key.bin_prefix, pan, psn)
        card = self._cards.get(ident)
        if card is None:
            card = _Card(key, pan, psn)
            self._cards[ident] = card
            if len(self._cards) > _CACHE_MAX:
                self._cards.popitem(last=False)
        else:
            self._cards.move_to_end(ident)
        return card

    def _card_ref(self, pan: str) -> tuple[list[str], str]:
        """The PAN's keyed hashes (newest key first) and the one its rows use."""
        found = self._refs.get(pan)
        if found is None:
            hashes = self.secret.pan_hashes(pan)
            found = (hashes, self.log.card_ref(hashes))
            self._refs[pan] = found
            if len(self._refs) > _CACHE_MAX:
                self._refs.popitem(last=False)
        else:
            self._refs.move_to_end(pan)
        return found

    def _history(self, card_ref: str, psn: str, now: float) -> CardHistory:
        since = now - self.rules.velocity_window_s
        if self.log.shared:  # other host processes write too: the database is read every time
            return self.log.card_history(card_ref, psn, self.rules.atc_window, since)
        ident = (card_ref, psn)
        history = self._histories.get(ident)
        if history is None:
            history = self.log.card_history(card_ref, psn, self.rules.atc_window, since)
            self._histories[ident] = history
            if len(self._histories) > _CACHE_MAX:
                self._histories.popitem(last=False)
        else:
            self._histories.move_to_end(ident)
        return history

    def _forget(self, entry: dict[str, Any]) -> None:
        """Drop a card's cached history: it is read back from the log next time."""
        with self._lock:
            self._histories.pop((entry.get("pan_hmac", ""), entry.get("psn", "")), None)


def _check_icc_data(icc: dict[int, bytes], version: str) -> None:
    missing = [t for t in REQUIRED_TAGS if t not in icc]
    if missing:
        raise _Refusal(FORMAT_ERROR, "DE 55 lacks " + ", ".join(f"{t:X}" for t in missing))
    for tag, size in _LENGTHS.items():
        if len(icc[tag]) != size:
            raise _Refusal(FORMAT_ERROR, f"DE 55 tag {tag:X} is {len(icc[tag])} bytes, not {size}")
    if len(icc[0x9F10]) < _IAD_MIN[version] or len(icc[0x9F10]) > 32:
        raise _Refusal(FORMAT_ERROR, f"DE 55 tag 9F10 is {len(icc[0x9F10])} bytes, too short or long for "
                       f"{version}")


def _check_atc(history: CardHistory, atc: int, window: int) -> None:
    """The replay window: each ATC once, and none more than ``window``
    below the highest seen. Marks ``atc`` spent."""
    if atc in history.spent_atcs:
        raise _Refusal(SECURITY_VIOLATION, f"ATC {atc} was already used (replayed cryptogram)")
    if atc < history.highest_atc - window:
        raise _Refusal(SECURITY_VIOLATION, f"ATC {atc} is more than {window} below the highest seen "
                       f"({history.highest_atc})")
    history.spent_atcs.add(atc)
    if atc > history.highest_atc:
        history.highest_atc = atc
        floor = atc - window
        history.spent_atcs = {a for a in history.spent_atcs if a >= floor}


def _response(code: str, reason: str, iad: bytes | None = None, scripts: bytes = b"") -> AuthorisationResponse:
    return AuthorisationResponse(
        approved=code == APPROVED, response_code=code, arc=code.encode("ascii"),
        issuer_authentication_data=iad, issuer_scripts=scripts, reason=reason,
        icc_data={0x91: iad} if iad else {},
    )
