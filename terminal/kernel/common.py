"""Steps the contactless kernels share, written once (EMV Book 3 §10, Book C-2/C-3).

Each command-sending step is a generator (``yield`` a command, receive the
response); the others are plain functions on the :class:`KernelContext`.
"""

from __future__ import annotations

from datetime import date

from emvkit.firmware import tlv
from emvkit.terminal.apdu import CommandAPDU
from emvkit.terminal.bitmaps import AIP_BITS, CTQ_BITS, TTQ_BITS, is_set
from emvkit.terminal.iso7816 import INS_GET_PROCESSING_OPTIONS, INS_READ_RECORD
from emvkit.terminal.kernel import oda
from emvkit.terminal.kernel.context import (
    Exchange,
    KernelContext,
    KernelStop,
    expect_ok,
    format1_value,
    parse_template,
    response_objects,
    transmit,
)
from emvkit.terminal.kernel.outcome import Cvm, Outcome

__all__ = [
    "get_processing_options",
    "oda_failed",
    "processing_restrictions",
    "read_application_data",
    "recover_icc_key",
    "terminal_action_analysis",
    "terminal_risk_management",
]

# --- GET PROCESSING OPTIONS (Book 3 §6.5.8, §10.1) ------------------------------------------


def get_processing_options(ctx: KernelContext, pdol: bytes) -> Exchange[list[tlv.TLV]]:
    """Send GPO with the PDOL data; return the response's data objects.

    6985 means the card cannot do this transaction here: Select Next (Book C-2
    §3.3, C-3 §5.2). Format 1 (80: AIP || AFL) is turned into the same shape
    as format 2.
    """
    pdol_data = ctx.dol(pdol, "PDOL") if pdol else b""
    ctx.pdol, ctx.pdol_data = pdol, pdol_data
    template = tlv.encode_tlv(0x83, pdol_data)
    if len(template) > tlv.MAX_DOL_DATA:
        raise KernelStop(Outcome.END_APPLICATION, f"the card's PDOL asks for {len(pdol_data)} bytes: with its "
                         f"83 template more than one command carries ({tlv.MAX_DOL_DATA})")
    command = CommandAPDU(0x80, INS_GET_PROCESSING_OPTIONS, 0x00, 0x00, template, le=256)
    response = yield from transmit(command)
    if response.sw == 0x6985:
        raise KernelStop(Outcome.SELECT_NEXT, "GET PROCESSING OPTIONS: conditions of use not satisfied (6985)")
    expect_ok(response, "GET PROCESSING OPTIONS")
    nodes = response_objects(response, "GET PROCESSING OPTIONS")
    value = format1_value(nodes)
    if value is not None:
        if len(value) < 2 or (len(value) - 2) % 4:
            raise KernelStop(Outcome.END_APPLICATION, "GET PROCESSING OPTIONS: bad format 1 response")
        children = [tlv.TLV(0x82, value[:2]), tlv.TLV(0x94, value[2:])]
    else:
        children = parse_template(response, "GET PROCESSING OPTIONS", (0x77,), nodes)
    ctx.store_card_data(children, "GET PROCESSING OPTIONS")
    if ctx.card(0x82) is None or len(ctx.card(0x82) or b"") != 2:
        raise KernelStop(Outcome.END_APPLICATION, "GET PROCESSING OPTIONS: no AIP (82)")
    return children


# --- READ RECORD (Book 3 §10.2) -------------------------------------------------------------


def parse_afl(afl: bytes) -> list[tuple[int, int, int, int]]:
    if len(afl) % 4:
        raise KernelStop(Outcome.END_APPLICATION, f"AFL of {len(afl)} bytes is not a multiple of 4")
    entries = []
    for i in range(0, len(afl), 4):
        sfi, first, last, n_oda = afl[i] >> 3, afl[i + 1], afl[i + 2], afl[i + 3]
        if not 1 <= sfi <= 30 or first == 0 or last < first or n_oda > last - first + 1 or afl[i] & 0x07:
            raise KernelStop(Outcome.END_APPLICATION, f"AFL entry {afl[i:i + 4].hex().upper()} is invalid")
        entries.append((sfi, first, last, n_oda))
    return entries


def read_application_data(ctx: KernelContext, afl: bytes) -> Exchange[list[tuple[int, bytes]]]:
    """Read every record the AFL names; return the records signed for ODA
    as (SFI, record) pairs for :func:`oda.static_data_to_authenticate`."""
    signed: list[tuple[int, bytes]] = []
    count = 0
    for sfi, first, last, n_oda in parse_afl(afl):
        for number in range(first, last + 1):
            response = yield from transmit(CommandAPDU(0x00, INS_READ_RECORD, number, (sfi << 3) | 0x04, le=256))
            expect_ok(response, f"READ RECORD SFI {sfi} record {number}")
            count += 1
            if sfi <= 10:
                children = parse_template(response, f"READ RECORD SFI {sfi} record {number}", (0x70,))
                ctx.store_card_data(children, f"SFI {sfi} record {number}")
            if number < first + n_oda:
                signed.append((sfi, response.data))
    ctx.step("read application data", f"{count} record(s), {len(signed)} signed for ODA")
    return signed


# --- Processing restrictions (Book 3 §10.4) -------------------------------------------------


def emv_date(value: bytes | None) -> date | None:
    """A YYMMDD date (n 6); YY 50-99 is 19YY, 00-49 is 20YY (Book 3 Annex A)."""
    text = value.hex() if value else ""
    if len(text) != 6 or not text.isdigit():
        return None
    year = int(text[:2])
    try:
        return date(1900 + year if year >= 50 else 2000 + year, int(text[2:4]), int(text[4:]))
    except ValueError:
        return None


def processing_restrictions(ctx: KernelContext) -> None:
    card_version = ctx.card(0x9F08)
    if card_version and ctx.app.application_version and card_version != ctx.app.application_version:
        ctx.set_tvr("ICC_AND_TERMINAL_VERSIONS_DIFFER")
    auc = ctx.card(0x9F07)
    if auc and len(auc) == 2:
        domestic = ctx.card(0x5F28) == ctx.data.get(0x9F1A)
        kind = ctx.request.transaction_type
        if kind in (0x01, 0x17):  # cash
            allowed = auc[0] & (0x80 if domestic else 0x40)
        elif kind == 0x09:  # purchase with cashback
            allowed = auc[1] & (0x80 if domestic else 0x40)
        else:  # goods and services
            allowed = auc[0] & (0x28 if domestic else 0x14)
        if not allowed or not auc[0] & 0x01:  # b1: valid at terminals other than ATMs
            ctx.set_tvr("SERVICE_NOT_ALLOWED")
    effective, expiry = emv_date(ctx.card(0x5F25)), emv_date(ctx.card(0x5F24))
    if effective is not None and effective > ctx.today:
        ctx.set_tvr("APPLICATION_NOT_YET_EFFECTIVE")
    if expiry is not None and expiry < ctx.today:
        ctx.set_tvr("EXPIRED_APPLICATION")
    ctx.step("processing restrictions", _tvr_note(ctx))


def _tvr_note(ctx: KernelContext) -> str:
    return "TVR " + bytes(ctx.tvr).hex().upper()


# --- Offline data authentication (Book 2 §5-§6) -----------------------------------------------


def recover_icc_key(ctx: KernelContext, signed: list[tuple[int, bytes]]) -> oda.IccPublicKey | oda.OdaFailure:
    """Issuer then ICC public key from the records read. The records signed for
    ODA are checked first (Book 3 §10.3: one not coded as a 70 template fails
    ODA before any certificate is opened); what each certificate recovered to
    is kept in ``ctx.oda_certificates``."""
    static = oda.static_data_to_authenticate(signed, ctx.card(0x9F4A), ctx.card(0x82) or b"")
    if isinstance(static, oda.OdaFailure):
        return static
    index = ctx.card(0x8F)
    capk = ctx.config.capks.get(ctx.aid[:5], index[0]) if index and len(index) == 1 else None
    pan = (ctx.card(0x5A) or b"").hex().upper().rstrip("F")
    issuer = oda.recover_issuer_key(capk, ctx.card(0x90), ctx.card(0x92), ctx.card(0x9F32), pan, ctx.today,
                                    ctx.config.revocations)
    if isinstance(issuer, oda.OdaFailure):
        return issuer
    if issuer.certificate is not None:
        ctx.oda_certificates.append(issuer.certificate)
    icc = oda.recover_icc_key(issuer, ctx.card(0x9F46), ctx.card(0x9F48), ctx.card(0x9F47), static, pan, ctx.today)
    if isinstance(icc, oda.IccPublicKey) and icc.certificate is not None:
        ctx.oda_certificates.append(icc.certificate)
    return icc


# TVR byte 1 (Book 3 Annex C5): SDA failed b7, DDA failed b4, CDA failed b3; fDDA is a DDA.
_FAILED_BIT = {"SDA": "SDA_FAILED", "DDA": "DDA_FAILED", "fDDA": "DDA_FAILED", "CDA": "CDA_FAILED"}


def oda_failed(ctx: KernelContext, method: str, failure: oda.OdaFailure) -> None:
    """ODA performed and failed (Book 3 §10.3): TSI "ODA performed", the TVR
    bit of the method, "ICC data missing" when data was absent."""
    ctx.oda, ctx.oda_result, ctx.oda_failure = method, failure.code, failure
    if failure.certificate is not None:
        ctx.oda_certificates.append(failure.certificate)
    ctx.set_tvr(_FAILED_BIT[method])
    if failure.data_missing:
        ctx.set_tvr("ICC_DATA_MISSING")
    ctx.set_tsi("ODA_PERFORMED")
    ctx.step(f"{method} failed", failure.message)


def oda_succeeded(ctx: KernelContext, method: str) -> None:
    ctx.oda, ctx.oda_result = method, "successful"
    ctx.set_tsi("ODA_PERFORMED")
    ctx.step(f"{method} successful")


# --- Cardholder verification --------------------------------------------------------------


def contactless_cvm(ctx: KernelContext, ctq: bytes | None) -> Cvm:
    """Reader CVM processing of kernels 3 and 7 (Book C-3 §5.7): the card's
    CTQ says what it wants, the TTQ what the reader can do."""
    ttq = ctx.pre.ttq
    if not is_set(ttq, TTQ_BITS, "CVM_REQUIRED"):
        return Cvm.NO_CVM
    if ctq is not None and len(ctq) == 2:
        if is_set(ctq, CTQ_BITS, "CONSUMER_DEVICE_CVM_PERFORMED") and is_set(ttq, TTQ_BITS,
                                                                               "CONSUMER_DEVICE_CVM_SUPPORTED"):
            return Cvm.CONFIRMATION_CODE_VERIFIED
        if is_set(ctq, CTQ_BITS, "ONLINE_PIN_REQUIRED") and is_set(ttq, TTQ_BITS, "ONLINE_PIN_SUPPORTED"):
            return Cvm.ONLINE_PIN
        if is_set(ctq, CTQ_BITS, "SIGNATURE_REQUIRED") and is_set(ttq, TTQ_BITS, "SIGNATURE_SUPPORTED"):
            return Cvm.SIGNATURE
        if is_set(ctq, CTQ_BITS, "ONLINE_PIN_REQUIRED") or is_set(ctq, CTQ_BITS, "SIGNATURE_REQUIRED"):
            ctx.set_tvr("CARDHOLDER_VERIFICATION_NOT_SUCCESSFUL")
            raise KernelStop(Outcome.DECLINED, "the card asks for a CVM this reader cannot perform")
    if is_set(ttq, TTQ_BITS, "SIGNATURE_SUPPORTED"):
        return Cvm.SIGNATURE
    if is_set(ttq, TTQ_BITS, "ONLINE_PIN_SUPPORTED"):
        return Cvm.ONLINE_PIN
    ctx.set_tvr("CARDHOLDER_VERIFICATION_NOT_SUCCESSFUL")
    raise KernelStop(Outcome.DECLINED, "a CVM is required and the reader supports none")


_CVM_NAMES = {0x1F: Cvm.NO_CVM, 0x1E: Cvm.SIGNATURE, 0x02: Cvm.ONLINE_PIN}


def cvm_list_processing(ctx: KernelContext, capability: int) -> Cvm:
    """Book 3 §10.5 over the card's CVM List (8E), with the terminal's CVM
    capability byte (9F33 byte 2 layout) chosen by the kernel."""
    aip = ctx.card(0x82) or bytes(2)
    cvm_list = ctx.card(0x8E)
    if not is_set(aip, AIP_BITS, "CARDHOLDER_VERIFICATION_SUPPORTED") or not cvm_list or len(cvm_list) < 10:
        ctx.data[0x9F34] = bytes.fromhex("3F0000")  # no CVM performed; the TSI bit stays 0
        return Cvm.NO_CVM
    ctx.set_tsi("CARDHOLDER_VERIFICATION_PERFORMED")
    amount, x, y = ctx.request.amount, int.from_bytes(cvm_list[:4], "big"), int.from_bytes(cvm_list[4:8], "big")
    same_currency = ctx.card(0x9F42) in (None, ctx.data.get(0x5F2A))
    supported = {0x1F: capability & 0x08, 0x1E: capability & 0x20, 0x02: capability & 0x40}
    rules = cvm_list[8:]
    for i in range(0, len(rules) - 1, 2):
        code, condition = rules[i], rules[i + 1]
        method = code & 0x3F
        applies = {
            0x00: True,
            0x03: bool(supported.get(method)),
            0x06: same_currency and amount < x, 0x07: same_currency and amount > x,
            0x08: same_currency and amount < y, 0x09: same_currency and amount > y,
        }.get(condition, False)
        if not applies:
            continue
        if method in _CVM_NAMES and supported.get(method):
            # Result (Annex A, 9F34 byte 3): unknown (00) for online PIN and
            # signature, which are verified later; successful (02) for no CVM.
            ctx.data[0x9F34] = bytes((code, condition, 0x02 if method == 0x1F else 0x00))
            if method == 0x02:
                ctx.set_tvr("ONLINE_PIN_ENTERED")
            return _CVM_NAMES[method]
        if method not in (0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x1E, 0x1F):
            ctx.set_tvr("UNRECOGNISED_CVM")
        if not code & 0x40:  # b7: apply succeeding rule if this one fails
            break
    ctx.set_tvr("CARDHOLDER_VERIFICATION_NOT_SUCCESSFUL")
    ctx.data[0x9F34] = bytes.fromhex("3F0001")
    return Cvm.NA


# --- Terminal risk management (Book 3 §10.6) and action analysis (§10.7) ----------------------


def terminal_risk_management(ctx: KernelContext) -> None:
    if ctx.pre.floor_limit_exceeded:
        ctx.set_tvr("FLOOR_LIMIT_EXCEEDED")
    config = ctx.config
    target, maximum, threshold = (config.random_selection_percent, config.random_selection_max_percent,
                                  config.random_selection_threshold)
    floor = ctx.app.floor_limit
    if (target or maximum) and not ctx.pre.floor_limit_exceeded:
        amount = ctx.request.amount
        if amount < threshold:
            chance = target
        else:  # §10.6.2: interpolate between the target and the maximum percentage
            span = max(floor - threshold, 1)
            chance = target + (maximum - target) * (amount - threshold) // span
        draw = int.from_bytes(ctx.random(1), "big") % 99 + 1
        if draw <= chance:
            ctx.set_tvr("RANDOMLY_SELECTED_ONLINE")
    ctx.set_tsi("TERMINAL_RISK_MANAGEMENT_PERFORMED")
    ctx.step("terminal risk management", _tvr_note(ctx))


CID_AAC, CID_TC, CID_ARQC = 0x00, 0x40, 0x80
CID_NAMES = {CID_AAC: "AAC", CID_TC: "TC", CID_ARQC: "ARQC"}


def terminal_action_analysis(ctx: KernelContext) -> int:
    """The cryptogram to ask for (§10.7): TVR against TAC and IAC."""
    tvr = bytes(ctx.tvr)

    def hits(tac: bytes, iac: bytes | None, default: int) -> bool:
        code = iac if iac and len(iac) == 5 else bytes([default] * 5)
        return any(t & (a | c) for t, a, c in zip(tvr, tac, code, strict=True))

    if hits(ctx.app.tac_denial, ctx.card(0x9F0E), 0x00):
        decision, why = CID_AAC, "TVR matches a denial action code"
    elif ctx.config.online_capable:
        if hits(ctx.app.tac_online, ctx.card(0x9F0F), 0xFF):
            decision, why = CID_ARQC, "TVR matches an online action code"
        else:
            decision, why = CID_TC, "no action code matched"
    elif hits(ctx.app.tac_default, ctx.card(0x9F0D), 0xFF):
        decision, why = CID_AAC, "offline-only terminal, TVR matches a default action code"
    else:
        decision, why = CID_TC, "no action code matched"
    ctx.step("terminal action analysis", f"{CID_NAMES[decision]} ({why})")
    return decision
