"""Kernel 2 (Mastercard, EMV Contactless Book C-2), EMV mode: GPO, the
records, processing restrictions, CVM from the card's CVM List, terminal
risk management and action analysis, then GENERATE AC asking for CDA and
the CDA signature checked (Book 2 §6.6); after an online authorisation, the
second GENERATE AC, with CDA too when the first had it.

emvkit's kernel 2 has no mag-stripe mode: a card whose AIP does not say
"EMV mode is supported" ends the transaction right after GPO (see
:func:`run`)."""

from __future__ import annotations

from emvkit.firmware import tlv
from emvkit.terminal.apdu import CommandAPDU
from emvkit.terminal.bitmaps import AIP_BITS, is_set
from emvkit.terminal.iso7816 import INS_GENERATE_AC
from emvkit.terminal.kernel import oda
from emvkit.terminal.kernel.authorisation import AuthorisationResponse
from emvkit.terminal.kernel.common import (
    CID_AAC,
    CID_ARQC,
    CID_NAMES,
    CID_TC,
    cvm_list_processing,
    get_processing_options,
    oda_failed,
    oda_succeeded,
    processing_restrictions,
    read_application_data,
    recover_icc_key,
    terminal_action_analysis,
    terminal_risk_management,
)
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
from emvkit.terminal.kernel.outcome import Cvm, Outcome, TransactionResult

__all__ = ["cvm_required", "run", "second_generate_ac"]

_MANDATORY = {0x5A: "PAN", 0x5F24: "Application Expiration Date", 0x8C: "CDOL1"}
_STRENGTH = {CID_AAC: 0, CID_ARQC: 1, CID_TC: 2}
_AIP_EMV_MODE = 0x80  # AIP byte 2 b8 in Book C-2: "EMV mode is supported"
_CDA_SIGNATURE_REQUESTED = 0x10  # GENERATE AC P1 b5 (Book 3 §6.5.5.2)


def run(ctx: KernelContext, fci: dict[int, bytes]) -> Exchange[TransactionResult]:
    yield from get_processing_options(ctx, fci.get(0x9F38, b""))
    aip = ctx.card(0x82) or bytes(2)
    ctx.step("GET PROCESSING OPTIONS", f"AIP {aip.hex().upper()}")
    if not aip[1] & _AIP_EMV_MODE:
        # Book C-2, state 3 (waiting for the GPO response), S3.16-S3.18 and S3.90:
        # the card does not support EMV mode and this kernel has no mag-stripe mode
        # ("Mag-stripe mode contactless transactions not supported"): Error
        # Indication L2 MAGSTRIPE NOT SUPPORTED, outcome End Application with the
        # message "Error - other card" (Book A: "Insert, swipe or try another card").
        raise KernelStop(Outcome.END_APPLICATION, "mag-stripe not supported: the card's AIP "
                         f"{aip.hex().upper()} does not support EMV mode and kernel 2 has no mag-stripe mode")
    signed = yield from read_application_data(ctx, ctx.card(0x94) or b"")
    missing = [name for tag, name in _MANDATORY.items() if ctx.card(tag) is None]
    if missing:
        ctx.set_tvr("ICC_DATA_MISSING")
        raise KernelStop(Outcome.END_APPLICATION, "card data missing: " + ", ".join(missing))
    icc = _prepare_cda(ctx, signed, aip)
    ctx.icc_key = icc
    processing_restrictions(ctx)
    capability = ctx.app.cvm_capability_cvm_required if cvm_required(ctx) else ctx.app.cvm_capability_no_cvm
    ctx.cvm = _cvm(ctx, aip, capability)
    ctx.step("cardholder verification", f"{ctx.cvm.value}, CVM Results {ctx.data.get(0x9F34, b'').hex().upper()}")
    terminal_risk_management(ctx)
    requested = terminal_action_analysis(ctx)
    if ctx.cvm is Cvm.ONLINE_PIN and requested == CID_TC:
        requested = CID_ARQC  # the PIN is verified online
    cda = icc is not None and requested != CID_AAC
    response = yield from _generate_ac(ctx, requested, cda)
    cid = (ctx.card(0x9F27) or b"\x00")[0] & 0xC0
    if cid not in _STRENGTH or _STRENGTH[cid] > _STRENGTH[requested]:
        raise KernelStop(Outcome.END_APPLICATION, f"the card answered {CID_NAMES.get(cid, 'RFU')} to a "
                         f"request for {CID_NAMES[requested]}")
    if cda and cid != CID_AAC:
        assert icc is not None
        checked = oda.verify_cda(icc, ctx.card(0x9F4B), ctx.data[0x9F37], cid,
                                 ctx.pdol_data + ctx.cdol1_data + response)
        if isinstance(checked, oda.OdaFailure):
            oda_failed(ctx, "CDA", checked)
            return ctx.result(Outcome.DECLINED, "CDA failed")
        ctx.data[0x9F26] = checked.cryptogram
        ctx.data[0x9F4C] = checked.icc_dynamic_number
        oda_succeeded(ctx, "CDA")
    elif ctx.card(0x9F26) is None:
        raise KernelStop(Outcome.END_APPLICATION, "GENERATE AC response without a cryptogram")
    outcome = {CID_TC: Outcome.APPROVED, CID_ARQC: Outcome.ONLINE_REQUEST, CID_AAC: Outcome.DECLINED}[cid]
    return ctx.result(outcome)


def cvm_required(ctx: KernelContext) -> bool:
    """Book C-2 compares "greater than": the CVM Capability - CVM Required
    applies when Amount, Authorised (9F02) > Reader CVM Required Limit
    (S456.30-S456.33, and CVM.2 for on-device CVM), where Book B §3.1.1
    pre-processing (kernels 3 and 7) uses "greater than or equal"."""
    return ctx.request.amount > ctx.app.cvm_required_limit


def _prepare_cda(ctx: KernelContext, signed: list[tuple[int, bytes]], aip: bytes) -> oda.IccPublicKey | None:
    """Recover the ICC key before GENERATE AC, when card and terminal do CDA."""
    terminal_cda = bool(ctx.config.capabilities[2] & 0x08)
    if not (is_set(aip, AIP_BITS, "CDA_SUPPORTED") and terminal_cda):
        ctx.set_tvr("ODA_NOT_PERFORMED")
        ctx.step("offline data authentication", "not performed (no method common to card and terminal)")
        return None
    icc = recover_icc_key(ctx, signed)
    if isinstance(icc, oda.OdaFailure):
        oda_failed(ctx, "CDA", icc)
        return None
    ctx.step("CDA", "ICC public key recovered; the signature comes with the cryptogram")
    return icc


def _cvm(ctx: KernelContext, aip: bytes, capability: int) -> Cvm:
    if cvm_required(ctx) and is_set(aip, AIP_BITS, "ON_DEVICE_CVM_SUPPORTED"):
        ctx.data[0x9F34] = bytes.fromhex("010002")  # C-2: on-device CVM recorded as successful
        ctx.set_tsi("CARDHOLDER_VERIFICATION_PERFORMED")
        return Cvm.CONFIRMATION_CODE_VERIFIED
    return cvm_list_processing(ctx, capability)


def _generate_ac(ctx: KernelContext, requested: int, cda: bool) -> Exchange[bytes]:
    """First GENERATE AC with CDOL1 data; returns the response's TLV objects
    other than the SDAD, as CDA hashes them."""
    cdol1 = ctx.card(0x8C) or b""
    data = ctx.dol(cdol1, "CDOL1")
    ctx.cdol1_data = data
    children = yield from _send_generate_ac(ctx, requested, cda, data, "GENERATE AC")
    ctx.store_card_data(children, "GENERATE AC")
    returned = (ctx.card(0x9F27) or b"\x00")[0] & 0xC0
    ctx.step(f"GENERATE AC ({CID_NAMES[requested]}{' + CDA' if cda else ''})",
             f"the card returned {CID_NAMES.get(returned, 'RFU')}")
    return b"".join(n.encode() for n in children if n.tag != 0x9F4B)


def _send_generate_ac(ctx: KernelContext, requested: int, cda: bool, data: bytes,
                      name: str) -> Exchange[list[tlv.TLV]]:
    """GENERATE AC (Book 3 §6.5.5): P1 is the cryptogram type, with b5 when a CDA
    signature is requested; the response's data objects, format 1 (80: CID,
    ATC, AC, IAD) turned into the shape of format 2 (77)."""
    p1 = requested | (_CDA_SIGNATURE_REQUESTED if cda else 0x00)
    response = yield from transmit(CommandAPDU(0x80, INS_GENERATE_AC, p1, 0x00, data, le=256))
    expect_ok(response, name)
    nodes = response_objects(response, name)
    value = format1_value(nodes)
    if value is None:
        return parse_template(response, name, (0x77,), nodes)
    if len(value) < 11:
        raise KernelStop(Outcome.END_APPLICATION, f"{name}: format 1 response too short")
    children = [tlv.TLV(0x9F27, value[:1]), tlv.TLV(0x9F36, value[1:3]), tlv.TLV(0x9F26, value[3:11])]
    if len(value) > 11:
        children.append(tlv.TLV(0x9F10, value[11:]))
    return children


def second_generate_ac(ctx: KernelContext, response: AuthorisationResponse) -> Exchange[TransactionResult]:
    """The second GENERATE AC after the issuer's answer (Book 3 §6.5.5, §10.9):
    a TC asked for when the issuer approved, an AAC when it declined.

    CDA is requested with the TC when the first GENERATE AC had it, that is
    when the card (AIP) and the terminal (9F33) both do CDA and the ICC key
    was recovered (Book 2 §6.6); the signature is then verified with the CDOL2
    data in the transaction data hash (Book 2 §6.6.2). A failure sets "CDA
    failed" and declines."""
    requested = CID_TC if response.approved else CID_AAC
    data = ctx.dol(ctx.card(0x8D) or b"", "CDOL2")
    icc = ctx.icc_key
    cda = icc is not None and requested == CID_TC
    children = yield from _send_generate_ac(ctx, requested, cda, data, "second GENERATE AC")
    fields = tlv.flatten(children)
    if 0x9F27 not in fields:
        raise KernelStop(Outcome.END_APPLICATION, "second GENERATE AC without a CID")
    ctx.data.update({t: v for t, v in fields.items() if t in (0x9F27, 0x9F26, 0x9F36, 0x9F10, 0x9F4B)})
    cid = fields[0x9F27][0] & 0xC0
    if response.issuer_authentication_data:
        ctx.set_tsi("ISSUER_AUTHENTICATION_PERFORMED")
    ctx.step("second GENERATE AC", f"asked for {CID_NAMES[requested]}{' + CDA' if cda else ''}, "
             f"the card returned {CID_NAMES.get(cid, 'RFU')}")
    if cda and cid == CID_TC:
        assert icc is not None
        signed = b"".join(n.encode() for n in children if n.tag != 0x9F4B)
        checked = oda.verify_cda(icc, fields.get(0x9F4B), ctx.data[0x9F37], cid,
                                 ctx.pdol_data + ctx.cdol1_data + data + signed)
        if isinstance(checked, oda.OdaFailure):
            oda_failed(ctx, "CDA", checked)
            return ctx.result(Outcome.DECLINED, "CDA failed in the second GENERATE AC")
        ctx.data[0x9F26] = checked.cryptogram
        ctx.data[0x9F4C] = checked.icc_dynamic_number
        oda_succeeded(ctx, "CDA")
    elif cid != CID_AAC and 0x9F26 not in fields:
        raise KernelStop(Outcome.END_APPLICATION, "second GENERATE AC response without a cryptogram")
    if cid == CID_TC and requested == CID_TC:
        return ctx.result(Outcome.APPROVED)
    if response.approved and response.issuer_authentication_data:
        ctx.set_tvr("ISSUER_AUTHENTICATION_FAILED")
        return ctx.result(Outcome.DECLINED, "the card declined after issuer authentication")
    return ctx.result(Outcome.DECLINED, f"declined by the issuer ({response.response_code})"
                      if not response.approved else "the card declined the second GENERATE AC")
