"""Kernel 2 (Mastercard, EMV Contactless Book C-2), EMV mode: GPO, the
records, processing restrictions, CVM from the card's CVM List, terminal
risk management and action analysis, then GENERATE AC asking for CDA and
the CDA signature checked (Book 2 §6.6)."""

from __future__ import annotations

from emvkit.firmware import tlv
from emvkit.terminal.apdu import CommandAPDU
from emvkit.terminal.bitmaps import AIP_BITS, is_set
from emvkit.terminal.iso7816 import INS_GENERATE_AC
from emvkit.terminal.kernel import oda
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

__all__ = ["run"]

_MANDATORY = {0x5A: "PAN", 0x5F24: "Application Expiration Date", 0x8C: "CDOL1"}
_STRENGTH = {CID_AAC: 0, CID_ARQC: 1, CID_TC: 2}


def run(ctx: KernelContext, fci: dict[int, bytes]) -> Exchange[TransactionResult]:
    yield from get_processing_options(ctx, fci.get(0x9F38, b""))
    aip = ctx.card(0x82) or bytes(2)
    ctx.step("GET PROCESSING OPTIONS", f"AIP {aip.hex().upper()}")
    signed = yield from read_application_data(ctx, ctx.card(0x94) or b"")
    missing = [name for tag, name in _MANDATORY.items() if ctx.card(tag) is None]
    if missing:
        ctx.set_tvr("ICC_DATA_MISSING")
        raise KernelStop(Outcome.END_APPLICATION, "card data missing: " + ", ".join(missing))
    icc = _prepare_cda(ctx, signed, aip)
    processing_restrictions(ctx)
    capability = (ctx.app.cvm_capability_cvm_required if ctx.pre.cvm_required_limit_exceeded
                  else ctx.app.cvm_capability_no_cvm)
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
    if ctx.pre.cvm_required_limit_exceeded and is_set(aip, AIP_BITS, "ON_DEVICE_CVM_SUPPORTED"):
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
    p1 = requested | (0x10 if cda else 0x00)
    response = yield from transmit(CommandAPDU(0x80, INS_GENERATE_AC, p1, 0x00, data, le=256))
    expect_ok(response, "GENERATE AC")
    nodes = response_objects(response, "GENERATE AC")
    value = format1_value(nodes)  # format 1: CID, ATC, AC, IAD
    if value is not None:
        if len(value) < 11:
            raise KernelStop(Outcome.END_APPLICATION, "GENERATE AC: format 1 response too short")
        children = [tlv.TLV(0x9F27, value[:1]), tlv.TLV(0x9F36, value[1:3]), tlv.TLV(0x9F26, value[3:11])]
        if len(value) > 11:
            children.append(tlv.TLV(0x9F10, value[11:]))
    else:
        children = parse_template(response, "GENERATE AC", (0x77,), nodes)
    ctx.store_card_data(children, "GENERATE AC")
    returned = (ctx.card(0x9F27) or b"\x00")[0] & 0xC0
    ctx.step(f"GENERATE AC ({CID_NAMES[requested]}{' + CDA' if cda else ''})",
             f"the card returned {CID_NAMES.get(returned, 'RFU')}")
    return b"".join(n.encode() for n in children if n.tag != 0x9F4B)
