# The contactless card application: process(C-APDU) -> R-APDU.
#
# Pure and portable: no I/O, no CPython-only modules. Handlers are looked up
# by INS; any of them raises SwError(sw) to end the command with a status
# word, turned into bytes in one place (process). Command references are to
# EMV Book 3 §6.5 unless noted; scheme behaviour to EMV Contactless Books
# C-2 (Mastercard), C-3 (Visa qVSDC) and C-7 (UnionPay qPBOC).

import time

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

from .. import tlv
from ..crypto import provider
from ..crypto import secure_messaging as sm
from ..iso7816 import (
    INS_GENERATE_AC,
    INS_GET_DATA,
    INS_GET_PROCESSING_OPTIONS,
    INS_INTERNAL_AUTHENTICATE,
    INS_READ_RECORD,
    INS_SELECT,
    PPSE,
    SW_CLA_NOT_SUPPORTED,
    SW_CONDITIONS_NOT_SATISFIED,
    SW_DATA_NOT_FOUND,
    SW_FILE_NOT_FOUND,
    SW_INS_NOT_SUPPORTED,
    SW_NO_PRECISE_DIAGNOSIS,
    SW_RECORD_NOT_FOUND,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    sw_bytes,
)
from . import cryptogram as ac
from . import dda
from .profile import Application, Profile, ProfileError
from .state import CardState, MemoryStore
from .sw import SwError

# Instructions the iso7816 module does not name (Book 3 §6.5).
_INS_EXTERNAL_AUTHENTICATE = const(0x82)
_INS_APPLICATION_BLOCK = const(0x1E)
_INS_APPLICATION_UNBLOCK = const(0x18)
_INS_PUT_DATA = const(0xDA)
_SW_WARNING_SELECTED_FILE_INVALIDATED = const(0x6283)
_SW_ISSUER_AUTHENTICATION_FAILED = const(0x6300)
_SW_INCORRECT_SM_DATA = const(0x6988)

# The card's offline counters as PUT DATA names them (P1 P2): the schemes'
# own counter data objects are not public, so these are emvkit's, in the
# private class (docs/card-application.md).
TAG_CONSECUTIVE_OFFLINE = const(0xDF50)  # binary, 1..4 bytes
TAG_OFFLINE_AMOUNT = const(0xDF51)  # n 12 (6 bytes BCD), as 9F02

# CLA each instruction takes (Book 3 Table 13): 00 interindustry, 80 EMV,
# 84 EMV with secure messaging, 04 interindustry with secure messaging.
_CLA = {
    INS_SELECT: 0x00,
    INS_READ_RECORD: 0x00,
    INS_INTERNAL_AUTHENTICATE: 0x00,
    INS_GET_PROCESSING_OPTIONS: 0x80,
    INS_GENERATE_AC: 0x80,
    INS_GET_DATA: 0x80,
    _INS_EXTERNAL_AUTHENTICATE: 0x00,
    _INS_APPLICATION_BLOCK: 0x84,
    _INS_APPLICATION_UNBLOCK: 0x84,
    _INS_PUT_DATA: 0x04,
}

# The card's transaction state: one value, changed only at the transitions
# named in the handlers (Card.state).
IDLE = const(0)  # nothing selected: after reset, SELECT PPSE or a failed SELECT
SELECTED = const(1)  # an application is selected, no GPO yet
INITIATED = const(2)  # GPO answered without a cryptogram: waiting for GENERATE AC
ONLINE = const(3)  # the first GENERATE AC returned an ARQC: waiting for the second
DONE = const(4)  # the card's part is over (TC/AAC, the GPO cryptogram, the second GENERATE AC)

# The commands each state takes; any other is "conditions of use not
# satisfied" (6985), checked once in process() after the P1/P2 check.
_ALLOWED = {
    IDLE: (INS_SELECT, INS_GET_DATA),
    SELECTED: (INS_SELECT, INS_GET_DATA, INS_GET_PROCESSING_OPTIONS, INS_READ_RECORD, INS_INTERNAL_AUTHENTICATE),
    INITIATED: (INS_SELECT, INS_GET_DATA, INS_READ_RECORD, INS_INTERNAL_AUTHENTICATE, INS_GENERATE_AC),
    # The issuer's script commands come while the card waits for the
    # second GENERATE AC (template 71) or after the end (72, qVSDC/qPBOC).
    ONLINE: (INS_SELECT, INS_GET_DATA, INS_READ_RECORD, INS_INTERNAL_AUTHENTICATE, INS_GENERATE_AC,
             _INS_APPLICATION_BLOCK, _INS_APPLICATION_UNBLOCK, _INS_PUT_DATA),
    DONE: (INS_SELECT, INS_GET_DATA, INS_READ_RECORD, INS_INTERNAL_AUTHENTICATE, _INS_EXTERNAL_AUTHENTICATE,
           _INS_APPLICATION_BLOCK, _INS_APPLICATION_UNBLOCK, _INS_PUT_DATA),
}

_DYNAMIC_NUMBER_LEN = const(8)
_ATC_MAX = const(0xFFFF)


def _p1p2_valid(ins: int, p1: int, p2: int) -> bool:
    # The parameters each command takes (else 6A86), checked before the state.
    if ins == INS_SELECT:
        return p1 == 0x04 and p2 in (0x00, 0x02)  # by name, first or next occurrence
    if ins == INS_READ_RECORD:
        return p2 & 0x07 == 0x04 and p2 >> 3 != 0 and p1 != 0  # SFI in P2, record number in P1
    if ins == INS_GENERATE_AC:
        return p2 == 0 and not p1 & 0x2F and p1 & 0xC0 != 0xC0  # type AAC/TC/ARQC, CDA bit
    if ins in (INS_GET_DATA, _INS_PUT_DATA):
        return True  # P1 P2 is the tag
    return p1 == 0 and p2 == 0  # GPO, INTERNAL AUTHENTICATE


def parse_command(apdu: bytes) -> tuple:
    # (cla, ins, p1, p2, data) of a short APDU, cases 1-4 (ISO 7816-4
    # §5.1); anything else is a wrong length. Contactless cards take short
    # APDUs only.
    n = len(apdu)
    if n < 4:
        raise SwError(SW_WRONG_LENGTH)
    if n <= 5:
        return apdu[0], apdu[1], apdu[2], apdu[3], b""
    lc = apdu[4]
    if lc == 0 or n not in (5 + lc, 6 + lc):
        raise SwError(SW_WRONG_LENGTH)
    return apdu[0], apdu[1], apdu[2], apdu[3], bytes(apdu[5:5 + lc])


class Transaction:
    # What the card remembers between the commands of one transaction.
    def __init__(self) -> None:
        self.quick = False  # cryptogram already returned in the GPO response
        self.pdol_data = b""
        self.cdol1_data = b""
        self.terminal = {}  # type: dict
        self.arqc = b""
        self.atc = b""
        self.card_auth_data = None  # type: bytes | None  # 9F69 of this transaction
        self.issuer_auth = None  # type: bool | None  # EXTERNAL AUTHENTICATE's verdict
        self.scripts = False  # a script command arrived in this transaction


class Card:
    def __init__(self, profile, store=None, rng=None, clock=None) -> None:
        self.profile = profile if isinstance(profile, Profile) else Profile(profile)
        if self.profile.secrets is None:
            raise ProfileError("the profile has no secrets: a card cannot run without its keys")
        self.secrets = self.profile.secrets
        self.store = store if store is not None else MemoryStore(CardState.from_dict(self.profile.initial_state))
        self.rng = rng if rng is not None else provider.random_bytes
        self.clock = clock if clock is not None else time.time
        self._cdcvm_at = None  # type: float | None
        self._handlers = {
            INS_SELECT: self._select,
            INS_GET_PROCESSING_OPTIONS: self._get_processing_options,
            INS_READ_RECORD: self._read_record,
            INS_GENERATE_AC: self._generate_ac,
            INS_INTERNAL_AUTHENTICATE: self._internal_authenticate,
            INS_GET_DATA: self._get_data,
            _INS_EXTERNAL_AUTHENTICATE: self._external_authenticate,
            _INS_APPLICATION_BLOCK: self._application_block,
            _INS_APPLICATION_UNBLOCK: self._application_unblock,
            _INS_PUT_DATA: self._put_data,
        }
        self._sw = b"\x90\x00"  # a handler's warning status word (SELECT of a blocked application)
        self.app = None  # type: Application | None
        self.tx = Transaction()
        self.state = IDLE

    # --- life cycle ---

    def reset(self) -> None:
        # Power-on, reset or field reset: nothing selected, no transaction.
        self.app = None
        self.tx = Transaction()
        self.state = IDLE

    power_on = reset
    power_off = reset

    def verify_cdcvm(self, when: "float | None" = None) -> None:
        # The token's on-device verification (fingerprint, passcode) has
        # just succeeded; it counts for the profile's cdcvm window.
        self._cdcvm_at = self.clock() if when is None else when

    def _cdcvm_valid(self) -> bool:
        window = self.app.cdcvm_window if self.app is not None else None
        if window is None or self._cdcvm_at is None:
            return False
        age = self.clock() - self._cdcvm_at
        return 0 <= age <= window

    def _selected_app(self) -> Application:
        # The application of every state but IDLE: the state table keeps the
        # commands that need one out of IDLE, so this is never None here.
        app = self.app
        assert app is not None
        return app

    # --- dispatch: the one place a status word is made ---

    def process(self, command_apdu: bytes) -> bytes:
        try:
            cla, ins, p1, p2, data = parse_command(bytes(command_apdu))
            if cla not in (0x00, 0x80, 0x04, 0x84):
                raise SwError(SW_CLA_NOT_SUPPORTED)
            handler = self._handlers.get(ins)
            if handler is None:
                raise SwError(SW_INS_NOT_SUPPORTED)
            if _CLA[ins] != cla:
                raise SwError(SW_CLA_NOT_SUPPORTED)
            if not _p1p2_valid(ins, p1, p2):
                raise SwError(SW_WRONG_P1P2)
            if ins not in _ALLOWED[self.state]:
                raise SwError(SW_CONDITIONS_NOT_SATISFIED)
            body = handler(p1, p2, data)
            sw, self._sw = self._sw, b"\x90\x00"
            return body + sw
        except SwError as exc:
            return sw_bytes(exc.sw)
        except (ValueError, KeyError, IndexError):
            # Never a traceback on the wire: an unforeseen fault in the
            # card logic is "no precise diagnosis".
            return sw_bytes(SW_NO_PRECISE_DIAGNOSIS)

    # --- SELECT (§6.5.12, Book B §3.3 for the PPSE) ---

    def _select(self, p1: int, p2: int, data: bytes) -> bytes:
        previous = self.app
        self.reset()
        if data == PPSE:
            return self._ppse_fci()
        # Partial names select the first (P2 00) or next (P2 02) AID that
        # starts with them (ISO 7816-4 §7.1.1).
        matches = [a for a in self.profile.applications if data and a.aid[:len(data)] == data]
        if p2 == 0x02 and previous in matches:
            matches = matches[matches.index(previous) + 1:]
        if not matches:
            raise SwError(SW_FILE_NOT_FOUND)
        self.app = matches[0]
        self.state = SELECTED
        if self.store.load().blocked:
            # A blocked application still answers SELECT with its FCI,
            # with "selected file invalidated" (Book 1 §12.3.1); GPO then
            # answers 6985.
            self._sw = sw_bytes(_SW_WARNING_SELECTED_FILE_INVALIDATED)
        return self._application_fci(self.app)

    def _ppse_fci(self) -> bytes:
        entries = []
        for app in self.profile.applications:
            label = tlv.encode_tlv(0x50, app.label.encode()) if app.label else b""
            entry = b"".join((tlv.encode_tlv(0x4F, app.aid), label, tlv.encode_tlv(0x87, bytes((app.priority,))),
                              tlv.encode_tlv(0x9F2A, bytes((app.kernel,)))))
            entries.append(tlv.encode_tlv(0x61, entry))
        proprietary = tlv.encode_tlv(0xBF0C, b"".join(entries))
        return tlv.encode_tlv(0x6F, tlv.encode_tlv(0x84, PPSE) + tlv.encode_tlv(0xA5, proprietary))

    def _application_fci(self, app) -> bytes:
        body = b""
        if app.label:
            body += tlv.encode_tlv(0x50, app.label.encode())
        body += tlv.encode_tlv(0x87, bytes((app.priority,)))
        if app.pdol:
            body += tlv.encode_tlv(0x9F38, app.pdol)
        body += b"".join([tlv.encode_tlv(tag, value) for tag, value in app.fci])
        discretionary = b"".join([tlv.encode_tlv(t, v) for t, v in app.fci_discretionary])
        if app.log_sfi:
            discretionary += tlv.encode_tlv(0x9F4D, bytes((app.log_sfi, app.log_records)))
        if discretionary:
            body += tlv.encode_tlv(0xBF0C, discretionary)
        return tlv.encode_tlv(0x6F, tlv.encode_tlv(0x84, app.aid) + tlv.encode_tlv(0xA5, body))

    # --- GET PROCESSING OPTIONS (§6.5.8) ---

    def _get_processing_options(self, p1: int, p2: int, data: bytes) -> bytes:
        app = self._selected_app()
        try:
            nodes = tlv.decode(data)
        except tlv.TLVError:
            raise SwError(SW_WRONG_DATA)
        if len(nodes) != 1 or nodes[0].tag != 0x83:
            raise SwError(SW_WRONG_DATA)
        pdol_data = nodes[0].value
        if self.store.load().blocked:
            raise SwError(SW_CONDITIONS_NOT_SATISFIED)
        if len(pdol_data) != tlv.dol_length(app.pdol):
            raise SwError(SW_WRONG_LENGTH)
        tx = self.tx
        self.state = INITIATED
        tx.pdol_data = pdol_data
        tx.terminal = tlv.split_dol(app.pdol, pdol_data) if app.pdol else {}
        ttq = tx.terminal.get(0x9F66)
        if app.sm and tx.terminal.get(0xDF69) != b"\x01":
            # An SM card (PBOC 3.0 SM suite only) with a terminal that did
            # not say it supports SM (SM Algorithm Support Indicator DF69
            # 01): nothing this card can do here (docs/card-application.md).
            self.state = SELECTED
            raise SwError(SW_CONDITIONS_NOT_SATISFIED)
        if app.scheme in ("visa", "unionpay") and ttq is not None and ttq[0] & 0x20:
            return self._quick_cryptogram(app, tx, ttq)
        body = tlv.encode_tlv(0x82, app.aip) + tlv.encode_tlv(0x94, app.afl)
        return tlv.encode_tlv(0x77, body)

    def _next_atc(self) -> bytes:
        # The ATC is incremented and made persistent before any cryptogram
        # leaves the card (Book 3 §6.5.5.4 note; tearing).
        state = self.store.load()
        if state.atc >= _ATC_MAX:
            raise SwError(SW_CONDITIONS_NOT_SATISFIED)
        state.atc += 1
        self.store.save(state)
        return state.atc.to_bytes(2, "big")

    def _quick_cryptogram(self, app, tx: Transaction, ttq: bytes) -> bytes:
        # qVSDC (C-3) / qPBOC (C-7): card risk management, the cryptogram
        # and fDDA in the GPO response.
        state = self.store.load()
        tx.quick = True
        self.state = DONE  # no GENERATE AC follows a cryptogram in the GPO response
        tx.atc = self._next_atc()
        amount = ac.amount_value(tx.terminal.get(0x9F02, b""))
        offline_only = bool(ttq[0] & 0x08)
        requested = ac.CID_ARQC if len(ttq) > 1 and ttq[1] & 0x80 else ac.CID_TC
        cvr = ac.Cvr(app.scheme)
        ctq = bytearray(app.data.get(0x9F6C, b"\x00\x00"))
        cdcvm = len(ttq) > 2 and bool(ttq[2] & 0x40) and self._cdcvm_valid()
        if cdcvm:
            ctq[1] |= 0x80  # Consumer Device CVM Performed
            ac.cvr_bit(cvr, "cdcvm_performed")
        elif len(ttq) > 1 and ttq[1] & 0x40 and ctq[0] & 0x80 and ttq[0] & 0x04:
            # CVM required, the card wants online PIN and the reader takes
            # it: online PIN is verified by the issuer, so the card goes online.
            requested = ac.CID_ARQC
        cid = ac.card_risk_decision(app, state, requested, amount, offline_only, cvr)
        cvr.set_ac_types(cid)
        oda_for_online = bool(ttq[0] & 0x01)
        signer = self.secrets.icc_sm2 if app.sm else self.secrets.icc_key
        fdda = signer is not None and bool(app.aip[0] & 0x20) and (
            cid == ac.CID_TC or (cid == ac.CID_ARQC and oda_for_online))
        if app.scheme == "visa":
            # CVR byte 2 b5 "new card": never online approved yet (Last Online
            # ATC Register 0); byte 3 b2 "offline dynamic data authentication
            # performed": the fDDA signature goes with this response.
            if state.last_online_atc == 0:
                ac.cvr_bit(cvr, "new_card")
            if fdda:
                ac.cvr_bit(cvr, "dda_performed")
        ac.script_cvr(cvr, state)
        iad = ac.issuer_application_data(app, cvr)
        cryptogram = ac.generate_ac(
            app, self.secrets.icc_mk_ac, tx.atc,
            ac.cryptogram_data(app, tx.terminal, app.aip, tx.atc, iad), tx.terminal.get(0x9F37, bytes(4)),
        )
        if cid == ac.CID_ARQC:
            tx.arqc = cryptogram  # EXTERNAL AUTHENTICATE and script MACs refer to it
        card_auth_data = bytes((app.fdda_version,)) + self.rng(4) + bytes(ctq)
        tx.card_auth_data = card_auth_data
        body = tlv.encode_tlv(0x82, app.aip) + tlv.encode_tlv(0x94, app.afl)
        for tag in (0x57, 0x5F20, 0x5F34):
            value = app.find(tag)
            if value is not None:
                body += tlv.encode_tlv(tag, value)
        body += tlv.encode_tlv(0x9F10, iad) + tlv.encode_tlv(0x9F26, cryptogram)
        body += tlv.encode_tlv(0x9F27, bytes((cid,))) + tlv.encode_tlv(0x9F36, tx.atc)
        body += tlv.encode_tlv(0x9F6C, bytes(ctq))
        ffi = app.find(0x9F6E)
        if ffi is not None:
            body += tlv.encode_tlv(0x9F6E, ffi)
        if fdda:
            dynamic = dda.dda_dynamic_data(self.rng(_DYNAMIC_NUMBER_LEN))
            extra = dda.fdda_extra(app.fdda_version, tx.terminal.get(0x9F37, bytes(4)),
                                   tx.terminal.get(0x9F02, bytes(6)), tx.terminal.get(0x5F2A, bytes(2)),
                                   card_auth_data)
            if app.sm:
                sdad = dda.sign_dynamic_data_sm(signer, dynamic, extra, self.rng)
            else:
                sdad = dda.sign_dynamic_data(signer, dynamic, extra)
            body += tlv.encode_tlv(0x9F4B, sdad)
        self._complete(app, tx, cid, amount)
        return tlv.encode_tlv(0x77, body)

    def _complete(self, app, tx: Transaction, cid: int, amount: int, online_approved: bool = False) -> None:
        # End of the card's part: offline counters, the log, persistence.
        state = self.store.load()
        if cid == ac.CID_TC and online_approved:
            state.consecutive_offline = 0
            state.offline_amount = 0
            state.last_online_atc = int.from_bytes(tx.atc, "big")
        elif cid == ac.CID_TC:
            state.consecutive_offline += 1
            state.offline_amount += amount
        if app.log_sfi and app.log_format and cid != ac.CID_ARQC:
            source = dict(tx.terminal)
            source[0x9F36] = tx.atc
            source[0x9F27] = bytes((cid,))
            state.log.insert(0, tlv.build_dol(app.log_format, source))
            del state.log[app.log_records:]
        self.store.save(state)

    # --- READ RECORD (§6.5.11) ---

    def _read_record(self, p1: int, p2: int, data: bytes) -> bytes:
        sfi = p2 >> 3
        app = self._selected_app()
        if app.log_sfi and sfi == app.log_sfi:
            log = self.store.load().log
            if p1 > len(log):
                raise SwError(SW_RECORD_NOT_FOUND)
            return log[p1 - 1]
        record = app.records.get((sfi, p1))
        if record is None:
            raise SwError(SW_RECORD_NOT_FOUND)
        content = record.content
        if self.tx.card_auth_data is not None and not record.oda:
            content = _substitute(content, 0x9F69, self.tx.card_auth_data)
        return tlv.encode_tlv(record.template, content) if record.template else content

    # --- GENERATE APPLICATION CRYPTOGRAM (§6.5.5) ---

    def _generate_ac(self, p1: int, p2: int, data: bytes) -> bytes:
        requested = p1 & 0xC0
        app = self._selected_app()
        tx = self.tx
        cda = bool(p1 & 0x10) and bool(app.aip[0] & 0x01) and self.secrets.icc_key is not None
        if self.state == INITIATED:
            return self._first_generate_ac(app, tx, requested, cda, data)
        return self._second_generate_ac(app, tx, requested, cda, data)

    def _first_generate_ac(self, app, tx: Transaction, requested: int, cda: bool, data: bytes) -> bytes:
        if len(data) != tlv.dol_length(app.cdol1):
            raise SwError(SW_WRONG_LENGTH)
        tx.cdol1_data = data
        tx.terminal.update(tlv.split_dol(app.cdol1, data))
        tx.atc = self._next_atc()
        state = self.store.load()
        amount = ac.amount_value(tx.terminal.get(0x9F02, b""))
        terminal_type = tx.terminal.get(0x9F35, b"\x22")[0]
        offline_only = terminal_type & 0x0F in (0x03, 0x06)
        cvr = ac.Cvr(app.scheme)
        cid = ac.card_risk_decision(app, state, requested, amount, offline_only, cvr)
        if cda and cid != ac.CID_AAC and app.scheme == "mastercard":
            ac.cvr_bit(cvr, "cda_first_genac")
        ac.script_cvr(cvr, state)
        cvr.set_ac_types(cid)
        # A TC or AAC ends the transaction; an ARQC waits for the second GENERATE AC.
        self.state = ONLINE if cid == ac.CID_ARQC else DONE
        response, cryptogram = self._ac_response(app, tx, cid, cvr, cda and cid != ac.CID_AAC, b"")
        if cid == ac.CID_ARQC:
            tx.arqc = cryptogram
        self._complete(app, tx, cid, amount)
        return response

    def _second_generate_ac(self, app, tx: Transaction, requested: int, cda: bool, data: bytes) -> bytes:
        if len(data) != tlv.dol_length(app.cdol2):
            raise SwError(SW_WRONG_LENGTH)
        cdol2 = tlv.split_dol(app.cdol2, data)
        arc = cdol2.get(0x8A, b"")
        iad91 = cdol2.get(0x91, b"")
        cvr = ac.Cvr(app.scheme)
        auth_ok = None  # issuer authentication not performed
        if iad91.strip(b"\x00"):
            # Issuer Authentication Data (91): ARPC method 1 is ARPC(8) ||
            # ARC(2); method 2 (CVN 18) is ARPC(4) || CSU(4) || proprietary
            # data (Book 2 §8.2).
            split = 4 if app.cryptogram_version == "visa_cvn18" else 8
            arpc, response = iad91[:split], iad91[split:]
            try:
                expected = ac.expected_arpc(app, self.secrets.icc_mk_ac, tx.atc, tx.arqc, response,
                                            tx.terminal.get(0x9F37, bytes(4)))
            except ValueError:
                expected = None
            auth_ok = expected == arpc
            if app.scheme == "mastercard":
                ac.cvr_bit(cvr, "issuer_auth_performed")
                if not auth_ok:
                    ac.cvr_bit(cvr, "issuer_auth_failed")
        approved = arc in (b"00", b"\x00\x00") and auth_ok is not False and not self.store.load().blocked
        cid = ac.CID_TC if requested == ac.CID_TC and approved else ac.CID_AAC
        cvr.set_ac_types(ac.CID_ARQC, cid, second_requested=True)
        if cda and cid == ac.CID_TC and app.scheme == "mastercard":
            ac.cvr_bit(cvr, "cda_second_genac")
        tx.terminal.update(cdol2)
        response = self._ac_response(app, tx, cid, cvr, cda and cid == ac.CID_TC, data)[0]
        self._complete(app, tx, cid, ac.amount_value(tx.terminal.get(0x9F02, b"")),
                       online_approved=bool(auth_ok) and cid == ac.CID_TC)
        self.state = DONE
        return response

    def _ac_response(self, app, tx: Transaction, cid: int, cvr, cda: bool, cdol2_data: bytes) -> tuple:
        # Response format 2 (§6.5.5.4): CID, ATC, AC (or the SDAD when CDA
        # is performed, Book 2 §6.6.1), IAD. Returns (response, AC).
        iad = ac.issuer_application_data(app, cvr)
        un = tx.terminal.get(0x9F37, bytes(4))
        cryptogram = ac.generate_ac(app, self.secrets.icc_mk_ac, tx.atc,
                                    ac.cryptogram_data(app, tx.terminal, app.aip, tx.atc, iad), un)
        head = tlv.encode_tlv(0x9F27, bytes((cid,))) + tlv.encode_tlv(0x9F36, tx.atc)
        if not cda:
            body = head + tlv.encode_tlv(0x9F26, cryptogram) + tlv.encode_tlv(0x9F10, iad)
            return tlv.encode_tlv(0x77, body), cryptogram
        body = head + tlv.encode_tlv(0x9F10, iad)
        tx_hash = dda.transaction_data_hash(tx.pdol_data, tx.cdol1_data, cdol2_data, body)
        dynamic = dda.cda_dynamic_data(self.rng(_DYNAMIC_NUMBER_LEN), cid, cryptogram, tx_hash)
        sdad = dda.sign_dynamic_data(self.secrets.icc_key, dynamic, un)
        return tlv.encode_tlv(0x77, body + tlv.encode_tlv(0x9F4B, sdad)), cryptogram

    # --- INTERNAL AUTHENTICATE (§6.5.9, Book 2 §6.5) ---

    def _internal_authenticate(self, p1: int, p2: int, data: bytes) -> bytes:
        app = self._selected_app()
        if not app.aip[0] & 0x20 or self.secrets.icc_key is None:
            raise SwError(SW_CONDITIONS_NOT_SATISFIED)
        if app.ddol and len(data) != tlv.dol_length(app.ddol):
            raise SwError(SW_WRONG_LENGTH)
        if not data:
            raise SwError(SW_WRONG_LENGTH)
        dynamic = dda.dda_dynamic_data(self.rng(_DYNAMIC_NUMBER_LEN))
        return tlv.encode_tlv(0x80, dda.sign_dynamic_data(self.secrets.icc_key, dynamic, data))

    # --- EXTERNAL AUTHENTICATE (§6.5.4): issuer authentication after a
    # qVSDC/qPBOC ARQC, the card still in the field (docs/card-application.md) ---

    def _external_authenticate(self, p1: int, p2: int, data: bytes) -> bytes:
        app = self._selected_app()
        tx = self.tx
        if not tx.quick or not tx.arqc or tx.issuer_auth is not None:
            raise SwError(SW_CONDITIONS_NOT_SATISFIED)  # once, after an ARQC in the GPO response
        split = 4 if app.cryptogram_version == "visa_cvn18" else 8
        if not split + 2 <= len(data) <= 16:
            raise SwError(SW_WRONG_LENGTH)
        arpc, response = data[:split], data[split:]
        try:
            expected = ac.expected_arpc(app, self.secrets.icc_mk_ac, tx.atc, tx.arqc, response,
                                        tx.terminal.get(0x9F37, bytes(4)))
        except ValueError:
            expected = None
        tx.issuer_auth = expected == arpc
        if not tx.issuer_auth:
            raise SwError(_SW_ISSUER_AUTHENTICATION_FAILED)
        approved, reset = ac.issuer_approves(app, response)
        if approved:
            state = self.store.load()
            state.last_online_atc = int.from_bytes(tx.atc, "big")
            if reset:
                state.consecutive_offline = 0
                state.offline_amount = 0
            self.store.save(state)
        return b""

    # --- issuer script commands with secure messaging (§6.5.1, §6.5.2,
    # Book 2 §9.2): APPLICATION BLOCK, APPLICATION UNBLOCK, PUT DATA ---

    def _script_data(self, cla: int, ins: int, p1: int, p2: int, data: bytes) -> bytes:
        # The command's plain data once its MAC verifies; 6988 when it does
        # not. The script record (CVR) counts every command that verifies.
        app = self._selected_app()
        tx = self.tx
        mk = self.secrets.icc_mk_smi
        if mk is None or not tx.arqc:
            raise SwError(SW_CONDITIONS_NOT_SATISFIED)  # no key, or no online transaction to bind to
        state = self.store.load()
        if not tx.scripts:
            tx.scripts = True
            state.script_failed = 0
            if app.scheme != "mastercard":
                state.script_commands = 0  # Visa/UnionPay count per online transaction
        if len(data) < sm.MAC_LENGTH:
            state.script_failed = 1
            self.store.save(state)
            raise SwError(SW_WRONG_LENGTH)
        body, mac = data[:-sm.MAC_LENGTH], data[-sm.MAC_LENGTH:]
        key = sm.mac_session_key(app.cryptogram_version, mk, tx.atc, tx.arqc)
        if sm.command_mac(key, bytes((cla, ins, p1, p2, len(data))), tx.atc, tx.arqc, body) != mac:
            state.script_failed = 1
            self.store.save(state)
            raise SwError(_SW_INCORRECT_SM_DATA)
        state.script_commands = (state.script_commands + 1) & 0x0F
        self.store.save(state)
        return body

    def _application_block(self, p1: int, p2: int, data: bytes) -> bytes:
        return self._set_blocked(_INS_APPLICATION_BLOCK, p1, p2, data, 1)

    def _application_unblock(self, p1: int, p2: int, data: bytes) -> bytes:
        return self._set_blocked(_INS_APPLICATION_UNBLOCK, p1, p2, data, 0)

    def _set_blocked(self, ins: int, p1: int, p2: int, data: bytes, blocked: int) -> bytes:
        # APPLICATION BLOCK / UNBLOCK: a MACed command with no data of its own.
        if self._script_data(0x84, ins, p1, p2, data):
            raise SwError(SW_WRONG_LENGTH)
        state = self.store.load()
        state.blocked = blocked
        self.store.save(state)
        return b""

    def _put_data(self, p1: int, p2: int, data: bytes) -> bytes:
        value = self._script_data(0x04, _INS_PUT_DATA, p1, p2, data)
        tag = (p1 << 8) | p2
        state = self.store.load()
        if tag == TAG_CONSECUTIVE_OFFLINE and 1 <= len(value) <= 4:
            state.consecutive_offline = int.from_bytes(value, "big")
        elif tag == TAG_OFFLINE_AMOUNT and len(value) == 6 and value.hex().isdigit():
            state.offline_amount = int(value.hex())
        elif tag in (TAG_CONSECUTIVE_OFFLINE, TAG_OFFLINE_AMOUNT):
            state.script_failed = 1
            self.store.save(state)
            raise SwError(SW_WRONG_DATA)
        else:
            state.script_failed = 1
            self.store.save(state)
            raise SwError(SW_DATA_NOT_FOUND)
        self.store.save(state)
        return b""

    # --- GET DATA (§6.5.7) ---

    def _get_data(self, p1: int, p2: int, data: bytes) -> bytes:
        tag = (p1 << 8) | p2
        app = self.app
        state = self.store.load()
        if tag == 0x9F36:
            value = state.atc.to_bytes(2, "big")
        elif tag == 0x9F13:
            value = state.last_online_atc.to_bytes(2, "big")
        elif tag == 0x9F17:
            value = bytes((state.pin_try_counter,))
        elif tag == TAG_CONSECUTIVE_OFFLINE:
            value = state.consecutive_offline.to_bytes(4, "big")
        elif tag == TAG_OFFLINE_AMOUNT:
            value = bytes.fromhex("%012d" % state.offline_amount)
        elif tag == 0x9F4F and app is not None and app.log_format:
            value = app.log_format
        else:
            raise SwError(SW_DATA_NOT_FOUND)
        return tlv.encode_tlv(tag, value)


def _substitute(content: bytes, tag: int, value: bytes) -> bytes:
    # Replace one data object's value in a record (9F69 changes per
    # transaction, so it lives in a record outside the signed ones).
    return b"".join([node.encode() if node.children else
                     tlv.encode_tlv(node.tag, value if node.tag == tag else node.value)
                     for node in tlv.decode(content)])
