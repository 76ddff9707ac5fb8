"""Kernel 3 (Visa qVSDC, EMV Contactless Book C-3) and kernel 7 (UnionPay
qPBOC, Book C-7): the card decides and returns its cryptogram in the GPO
response; the reader reads the records, authenticates the card with fDDA,
and applies the CTQ's instructions.
"""

from __future__ import annotations

from emvkit.firmware import tlv
from emvkit.terminal.bitmaps import CTQ_BITS, TTQ_BITS, is_set
from emvkit.terminal.kernel import oda
from emvkit.terminal.kernel.common import (
    CID_AAC,
    CID_ARQC,
    CID_NAMES,
    CID_TC,
    contactless_cvm,
    get_processing_options,
    oda_failed,
    oda_succeeded,
    processing_restrictions,
    read_application_data,
    recover_icc_key,
)
from emvkit.terminal.kernel.context import Exchange, KernelContext, KernelStop
from emvkit.terminal.kernel.outcome import Cvm, Outcome, TransactionResult

__all__ = ["run"]

_MANDATORY = {0x82: "AIP", 0x94: "AFL", 0x9F26: "Application Cryptogram", 0x9F27: "CID",
              0x9F36: "ATC", 0x9F10: "Issuer Application Data"}


def run(ctx: KernelContext, fci: dict[int, bytes]) -> Exchange[TransactionResult]:
    pdol = fci.get(0x9F38)
    if not pdol:
        raise KernelStop(Outcome.END_APPLICATION, "the card has no PDOL: it cannot take the TTQ")
    if ctx.kernel == 7 and _asks_for(pdol, 0xDF69):
        # PBOC 3.0: the card asks whether the terminal supports the SM suite
        # (SM Algorithm Support Indicator DF69, from the configuration).
        ctx.step("SM algorithms", "the card asks (DF69); the terminal " +
                 ("supports SM2/SM3/SM4 (01)" if ctx.config.sm_algorithms else "does not support them (00)"))
    yield from get_processing_options(ctx, pdol)
    missing = [name for tag, name in _MANDATORY.items() if ctx.card(tag) is None]
    if missing:
        raise KernelStop(Outcome.END_APPLICATION, "GPO response without " + ", ".join(missing)
                         + " (the card did not take the qVSDC/qPBOC path)")
    cid = (ctx.card(0x9F27) or b"\x00")[0] & 0xC0
    ctx.step("GET PROCESSING OPTIONS", f"the card returned {CID_NAMES.get(cid, 'an RFU cryptogram type')}"
             f", ATC {(ctx.card(0x9F36) or b'').hex().upper()}")
    signed = yield from read_application_data(ctx, ctx.card(0x94) or b"")
    if ctx.card(0x5A) is None and ctx.card(0x57) is None:
        raise KernelStop(Outcome.END_APPLICATION, "no PAN (5A) or track 2 (57) on the card")
    processing_restrictions(ctx)
    ctq = ctx.card(0x9F6C)
    if cid == CID_AAC:
        return ctx.result(Outcome.DECLINED, cvm=Cvm.NA)
    if cid not in (CID_TC, CID_ARQC):
        raise KernelStop(Outcome.END_APPLICATION, "RFU cryptogram type in CID")
    offline = cid == CID_TC
    if not offline and is_set(ctx.pre.ttq, TTQ_BITS, "OFFLINE_ONLY_READER"):
        return ctx.result(Outcome.DECLINED, "an offline-only reader cannot send an ARQC")
    wants_oda = offline or is_set(ctx.pre.ttq, TTQ_BITS, "ODA_FOR_ONLINE_AUTHORISATIONS_SUPPORTED")
    if wants_oda:
        outcome = _fdda(ctx, signed, offline, ctq)
        if outcome is not None:
            return outcome
    else:
        ctx.set_tvr("ODA_NOT_PERFORMED")
    if offline and ctx.tvr_is("EXPIRED_APPLICATION"):
        if ctq and is_set(ctq, CTQ_BITS, "GO_ONLINE_IF_APPLICATION_EXPIRED") and ctx.config.online_capable:
            ctx.step("application expired", "the CTQ sends it online")
            offline = False
        else:
            return ctx.result(Outcome.DECLINED, "application expired")
    ctx.cvm = contactless_cvm(ctx, ctq)
    ctx.step("cardholder verification", ctx.cvm.value)
    if ctx.cvm is Cvm.ONLINE_PIN and offline:
        ctx.step("online PIN", "the transaction goes online for the PIN")
        offline = False
    return ctx.result(Outcome.APPROVED if offline else Outcome.ONLINE_REQUEST)


def _asks_for(dol: bytes, tag: int) -> bool:
    """Whether a DOL names ``tag``; a malformed one is left to GPO to report."""
    try:
        return tag in (t for t, _ in tlv.parse_dol(dol))
    except tlv.TLVError:
        return False


def _fdda(ctx: KernelContext, signed: list[tuple[int, bytes]], offline: bool,
          ctq: bytes | None) -> TransactionResult | None:
    """fDDA (Book C-3 §5.6); for an offline approval a failure declines,
    goes online or switches interface as the CTQ says."""
    failure: oda.OdaFailure | None = None
    aip = ctx.card(0x82) or bytes(2)
    sdad = ctx.card(0x9F4B)
    if not aip[0] & 0x20:
        failure = oda.OdaFailure("dda_not_supported", "the card's AIP does not support DDA")
    elif sdad is None:
        failure = oda.OdaFailure("icc_data_missing", "no Signed Dynamic Application Data (9F4B)")
    else:
        icc = recover_icc_key(ctx, signed)
        if isinstance(icc, oda.OdaFailure):
            failure = icc
        else:
            card_auth = ctx.card(0x9F69)
            if ctx.kernel == 7 and (not card_auth or card_auth[0] != 0x01):
                failure = oda.OdaFailure("fdda_version", "qPBOC requires fDDA version 01 (9F69)")
            else:
                checked = oda.verify_fdda(icc, sdad, ctx.data[0x9F37], ctx.data[0x9F02], ctx.data[0x5F2A],
                                          card_auth)
                if isinstance(checked, oda.OdaFailure):
                    failure = checked
                else:
                    ctx.data[0x9F4C] = checked.icc_dynamic_number
                    if icc.algorithm == "sm2":
                        ctx.step("fDDA signature", "SM2 with SM3 (PBOC 3.0 SM suite)")
    if failure is None:
        oda_succeeded(ctx, "fDDA")
        return None
    oda_failed(ctx, "fDDA", failure)
    if not offline:
        return None  # the issuer sees the TVR
    if ctq and is_set(ctq, CTQ_BITS, "GO_ONLINE_IF_ODA_FAILS") and ctx.config.online_capable:
        ctx.step("fDDA failed", "the CTQ sends the transaction online")
        ctx.cvm = contactless_cvm(ctx, ctq)
        return ctx.result(Outcome.ONLINE_REQUEST)
    if ctq and is_set(ctq, CTQ_BITS, "SWITCH_INTERFACE_IF_ODA_FAILS"):
        return ctx.result(Outcome.TRY_ANOTHER_INTERFACE, "fDDA failed")
    return ctx.result(Outcome.DECLINED, "fDDA failed")
