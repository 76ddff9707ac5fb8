"""Read-only card inspection (``emvkit info``): what a terminal can read without changing the card.

Commands sent: SELECT PPSE (EMV Book B §3.3), SELECT of every application the
PPSE directory lists (Book 1 §12.2.3), GET DATA of the ATC (9F36, Book 3
§6.5.7) and READ RECORD (Book 3 §6.5.11). None of them moves the card's
state: no GENERATE AC ever, and GET PROCESSING OPTIONS (which increments the
ATC on most cards) only with ``gpo=True``.

Which records to read: the AFL names them, but it comes in the GPO response.
Without GPO every SFI 1–10 is probed for records 1–16, stopping per SFI at
the first status other than 9000 (6A83 "record not found" on a conforming
card). With GPO the AFL's records are read, as a kernel reads them.

ODA (Book 2 §5.3, §6.3, §6.4): where the terminal holds the CA key the card's
index (8F) names, the issuer certificate (90) is opened and checked, and the
ICC certificate (9F46) with the recovered issuer key. The ICC certificate's
hash covers the records the AFL marks for ODA and the AIP, both from GPO:
without GPO its fields are recovered and shown, and its hash is not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from emvkit.firmware import tlv
from emvkit.terminal.apdu import Channel, CommandAPDU, ResponseAPDU
from emvkit.terminal.iso7816 import INS_GET_DATA, INS_GET_PROCESSING_OPTIONS, INS_READ_RECORD, INS_SELECT, PPSE
from emvkit.terminal.kernel import oda
from emvkit.terminal.kernel.common import parse_afl
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import KernelContext, KernelStop, TransactionRequest
from emvkit.terminal.kernel.entry_point import preprocess

__all__ = ["Application", "CertificateCheck", "Inspection", "Record", "inspect_card"]

PROBED_SFIS = range(1, 11)
PROBED_RECORDS = range(1, 17)


@dataclass
class Record:
    sfi: int
    number: int
    data: bytes
    nodes: list[tlv.TLV] | None  # None: the record does not decode as BER-TLV
    oda: bool = False  # the AFL marks it for offline data authentication (known with GPO only)


@dataclass
class CertificateCheck:
    """One certificate of the chain: ``status`` is ``verified``, an :class:`~oda.OdaFailure` code, or
    ``not checked``; ``certificate`` the fields it recovered to (None before it could be opened)."""

    owner: str  # "issuer" or "icc"
    status: str
    reason: str = ""
    certificate: oda.RecoveredCertificate | None = None


@dataclass
class Application:
    aid: bytes
    label: str
    select_sw: int
    fci: list[tlv.TLV] | None
    gpo_sw: int | None = None  # None: GPO not sent
    gpo: list[tlv.TLV] | None = None
    records: list[Record] = field(default_factory=list)
    atc: bytes | None = None
    capk: str | None = None  # "A000000004/E1" when the terminal holds the key 8F names
    chain: list[CertificateCheck] = field(default_factory=list)


@dataclass
class Inspection:
    ppse_sw: int
    ppse: list[tlv.TLV] | None
    applications: list[Application]
    gpo: bool


def _select(name: bytes) -> CommandAPDU:
    return CommandAPDU(0x00, INS_SELECT, 0x04, 0x00, name, le=256)


def _read_record(sfi: int, number: int) -> CommandAPDU:
    return CommandAPDU(0x00, INS_READ_RECORD, number, (sfi << 3) | 0x04, le=256)


def _decode(response: ResponseAPDU) -> list[tlv.TLV] | None:
    if response.sw != 0x9000:
        return None
    try:
        return tlv.decode(response.data)
    except tlv.TLVError:
        return None


def _directory(ppse: list[tlv.TLV] | None) -> list[tuple[bytes, str]]:
    """(AID, label) of each PPSE directory entry (61 in BF0C, Book B §3.3.2)."""
    found = tlv.find_path(ppse or [], [0x6F, 0xA5, 0xBF0C])
    out = []
    for entry in (found.children or []) if found else []:
        if entry.tag == 0x61 and entry.children is not None:
            fields = tlv.flatten(entry.children)
            if fields.get(0x4F):
                out.append((fields[0x4F], fields.get(0x50, b"").decode("ascii", "replace")))
    return out


def inspect_card(channel: Channel, config: TerminalConfig, request: TransactionRequest, today: date,
                 gpo: bool = False) -> Inspection:
    """Read what the card shows a terminal; ``request`` fills the PDOL when ``gpo`` is true."""
    response = channel.transmit(_select(PPSE))
    ppse = _decode(response)
    apps = [_inspect_application(channel, config, request, today, aid, label, gpo)
            for aid, label in _directory(ppse)]
    return Inspection(response.sw, ppse, apps, gpo)


def _inspect_application(channel: Channel, config: TerminalConfig, request: TransactionRequest, today: date,
                         aid: bytes, label: str, gpo: bool) -> Application:
    response = channel.transmit(_select(aid))
    app = Application(aid, label, response.sw, _decode(response))
    if response.sw != 0x9000:
        return app
    fci = tlv.flatten(app.fci or [])
    afl: bytes | None = None
    if gpo:
        afl = _get_processing_options(channel, config, request, app, fci.get(0x9F38, b""))
    if afl is not None:
        _read_afl(channel, app, afl)
    elif not gpo:
        _probe_records(channel, app)
    atc = channel.transmit(CommandAPDU(0x80, INS_GET_DATA, 0x9F, 0x36, le=256))
    nodes = _decode(atc)
    app.atc = tlv.find_value(nodes, 0x9F36) if nodes else None
    _check_chain(app, config, today)
    return app


def _get_processing_options(channel: Channel, config: TerminalConfig, request: TransactionRequest,
                            app: Application, pdol: bytes) -> bytes | None:
    """GPO with the PDOL filled from the terminal configuration; the AFL, or None."""
    combination = next((a for a in config.applications if app.aid.startswith(a.aid)), None) \
        or config.applications[0]
    ctx = KernelContext(config=config, app=combination, request=request, pre=preprocess(config, request)[combination],
                        kernel=combination.kernel, aid=app.aid)
    try:
        pdol_data = ctx.dol(pdol, "PDOL") if pdol else b""
    except KernelStop:
        pdol_data = b""
    response = channel.transmit(CommandAPDU(0x80, INS_GET_PROCESSING_OPTIONS, 0x00, 0x00,
                                            tlv.encode_tlv(0x83, pdol_data), le=256))
    app.gpo_sw, app.gpo = response.sw, _decode(response)
    if app.gpo is None:
        return None
    if app.gpo and app.gpo[0].tag == 0x80 and len(app.gpo[0].value) >= 2:  # format 1: AIP || AFL
        return app.gpo[0].value[2:]
    return tlv.find_value(app.gpo, 0x94)


def _read_afl(channel: Channel, app: Application, afl: bytes) -> None:
    try:
        entries = parse_afl(afl)
    except KernelStop:
        return
    for sfi, first, last, n_oda in entries:
        for number in range(first, last + 1):
            response = channel.transmit(_read_record(sfi, number))
            if response.sw == 0x9000:
                app.records.append(Record(sfi, number, response.data, _decode(response), number < first + n_oda))


def _probe_records(channel: Channel, app: Application) -> None:
    for sfi in PROBED_SFIS:
        for number in PROBED_RECORDS:
            response = channel.transmit(_read_record(sfi, number))
            if response.sw != 0x9000:
                break  # 6A83: no more records in this file (6A82: no such file)
            app.records.append(Record(sfi, number, response.data, _decode(response)))


def card_data(app: Application) -> dict[int, bytes]:
    """Every primitive data object the card returned (FCI, GPO, records of SFI 1-10)."""
    data = tlv.flatten(app.fci or [])
    data.update(tlv.flatten(app.gpo or []))
    for record in app.records:
        if record.nodes is not None and record.sfi <= 10:
            data.update(tlv.flatten(record.nodes))
    return data


def _check_chain(app: Application, config: TerminalConfig, today: date) -> None:
    data = card_data(app)
    index = data.get(0x8F)
    if 0x90 not in data or not index or len(index) != 1:
        return
    capk = config.capks.get(app.aid[:5], index[0])
    app.capk = capk.name if capk else None
    pan = (data.get(0x5A) or b"").hex().upper().rstrip("F")
    issuer = oda.recover_issuer_key(capk, data.get(0x90), data.get(0x92), data.get(0x9F32), pan, today,
                                    config.revocations)
    if isinstance(issuer, oda.OdaFailure):
        app.chain.append(CertificateCheck("issuer", issuer.code, issuer.message, issuer.certificate))
        return
    app.chain.append(CertificateCheck("issuer", "verified", "", issuer.certificate))
    if 0x9F46 not in data:
        return
    if app.gpo is None:
        icc = oda.recover_icc_key(issuer, data[0x9F46], data.get(0x9F48), data.get(0x9F47), b"", pan, today)
        if isinstance(icc, oda.OdaFailure) and icc.code != "icc_certificate_hash":
            app.chain.append(CertificateCheck("icc", icc.code, icc.message, icc.certificate))
            return
        fields = icc.certificate
        if fields is not None:
            fields = replace(fields, hash_matched=None)
        app.chain.append(CertificateCheck("icc", "not checked", "its hash covers the records the AFL marks for "
                                          "ODA and the AIP, which only GET PROCESSING OPTIONS returns (--gpo)",
                                          fields))
        return
    signed = [(r.sfi, r.data) for r in app.records if r.oda]
    aip = data.get(0x82, b"")
    static = oda.static_data_to_authenticate(signed, data.get(0x9F4A), aip)
    if isinstance(static, oda.OdaFailure):
        app.chain.append(CertificateCheck("icc", static.code, static.message))
        return
    icc = oda.recover_icc_key(issuer, data[0x9F46], data.get(0x9F48), data.get(0x9F47), static, pan, today)
    if isinstance(icc, oda.OdaFailure):
        app.chain.append(CertificateCheck("icc", icc.code, icc.message, icc.certificate))
    else:
        app.chain.append(CertificateCheck("icc", "verified", "", icc.certificate))
