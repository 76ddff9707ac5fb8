"""Online processing: the authorisation request the kernel builds, and what
it does with the issuer's answer (EMV Book 3 §10.9, Book 4 §6.3.6).

The kernel stays sans-IO: it yields an
:class:`~emvkit.terminal.kernel.authorisation.OnlineRequest` and the driver
(:func:`emvkit.terminal.session.drive`) sends back the
:class:`~emvkit.terminal.kernel.authorisation.AuthorisationResponse` of an
:class:`~emvkit.terminal.kernel.authorisation.Authoriser`, or None when the
host could not be reached.
"""

from __future__ import annotations

from dataclasses import replace

from emvkit.firmware import tlv
from emvkit.terminal.bitmaps import AIP_BITS, CTQ_BITS, TTQ_BITS, is_set
from emvkit.terminal.kernel import c2
from emvkit.terminal.kernel.authorisation import AuthorisationRequest, AuthorisationResponse, OnlineRequest
from emvkit.terminal.kernel.context import Exchange, KernelContext
from emvkit.terminal.kernel.issuer_scripts import (
    AFTER_FINAL_GENAC,
    BEFORE_FINAL_GENAC,
    external_authenticate,
    process_scripts,
    split_scripts,
)
from emvkit.terminal.kernel.outcome import Outcome, TransactionResult

__all__ = ["authorisation_request", "online_processing"]


# ICC data sent to the issuer in DE 55 when the terminal has it.
DE55_TAGS = (0x9F26, 0x9F27, 0x9F10, 0x9F37, 0x9F36, 0x95, 0x9A, 0x9C, 0x9F02, 0x5F2A, 0x82, 0x9F1A, 0x9F03,
             0x9F33, 0x9F34, 0x9F35, 0x9F09, 0x9F1E, 0x9F6E, 0x9F66, 0x9F6C, 0x5F34)
PROCESSING_CODES = {0x00: "000000", 0x01: "010000", 0x09: "090000", 0x20: "200000"}


def authorisation_request(ctx: KernelContext) -> AuthorisationRequest:
    """The authorisation request for the transaction in ``ctx`` (Book 4 §6.3.6)."""
    icc = {tag: ctx.data[tag] for tag in DE55_TAGS if tag in ctx.data}
    icc.update(_signed_terminal_data(ctx))
    icc[0x84] = ctx.aid
    pan_raw = ctx.card(0x5A)
    track2 = ctx.card(0x57)
    if pan_raw is not None:
        pan = pan_raw.hex().upper().rstrip("F")
    else:
        pan = (track2 or b"").hex().upper().split("D", 1)[0]
    psn = ctx.card(0x5F34)
    return AuthorisationRequest(
        pan=pan,
        amount=ctx.request.amount,
        amount_other=ctx.request.amount_other,
        currency=ctx.data[0x5F2A],
        icc_data=icc,
        psn=psn.hex() if psn else None,
        track2=track2,
        processing_code=PROCESSING_CODES.get(ctx.request.transaction_type, "000000"),
        terminal_id=ctx.config.terminal_id.decode("ascii", "replace").strip(),
    )


def _signed_terminal_data(ctx: KernelContext) -> dict[int, bytes]:
    """The terminal data as the card received it in the PDOL and CDOL1 data:
    the issuer must check the cryptogram over exactly these values (the TVR in
    particular, which the kernel may update after GPO)."""
    signed: dict[int, bytes] = {}
    for dol, data in ((ctx.pdol, ctx.pdol_data), (ctx.card(0x8C) or b"", ctx.cdol1_data)):
        if dol and data:
            try:
                parts = tlv.split_dol(dol, data)
            except tlv.TLVError:
                continue
            signed.update({tag: value for tag, value in parts.items() if tag in DE55_TAGS})
    return signed


def _ask_issuer(request: AuthorisationRequest) -> Exchange[AuthorisationResponse | None]:
    """Yield the request for the driver's authoriser; its answer, or None when
    the host could not be reached. Another kind of answer is the driver's bug."""
    answer = yield OnlineRequest(request)
    if answer is not None and not isinstance(answer, AuthorisationResponse):
        raise TypeError(f"an OnlineRequest answered with {type(answer).__name__}, not an AuthorisationResponse")
    return answer


def online_processing(ctx: KernelContext) -> Exchange[TransactionResult]:
    """Send the ARQC to the issuer; then, for kernel 2 cards that support
    issuer authentication, a second GENERATE AC with the issuer's answer
    (Book 3 §6.5.5, §10.9), the issuer's 71 scripts before it and its 72
    scripts after it (§10.10); for kernels 3 and 7, Issuer Update Processing
    when reader (TTQ) and card (CTQ) support it: EXTERNAL AUTHENTICATE with
    the Issuer Authentication Data, then the 71 and 72 scripts, in the same
    session (:func:`issuer_update`). Returns the final TransactionResult."""
    response = yield from _ask_issuer(authorisation_request(ctx))
    if response is None:
        ctx.step("online authorisation", "the issuer host could not be reached")
        return ctx.result(Outcome.DECLINED, "unable to go online")
    ctx.authorisation = response
    ctx.data[0x8A] = response.arc
    if response.issuer_authentication_data:
        ctx.data[0x91] = response.issuer_authentication_data
    verdict = "approved" if response.approved else "declined"
    ctx.step("online authorisation", f"{verdict}, response code {response.response_code}"
             + (f" ({response.reason})" if response.reason else ""))
    aip = ctx.card(0x82) or bytes(2)
    scripts = split_scripts(response.issuer_scripts)
    if ctx.kernel == 2 and is_set(aip, AIP_BITS, "ISSUER_AUTHENTICATION_SUPPORTED") and ctx.card(0x8D):
        yield from process_scripts(ctx, scripts, BEFORE_FINAL_GENAC)
        result = yield from c2.second_generate_ac(ctx, response)
        yield from process_scripts(ctx, scripts, AFTER_FINAL_GENAC)
        return _with_scripts(ctx, result)
    result = ctx.result(Outcome.APPROVED if response.approved else Outcome.DECLINED,
                        "" if response.approved else f"declined by the issuer ({response.response_code})")
    if ctx.kernel in (3, 7) and _issuer_update_supported(ctx):
        yield from issuer_update(ctx, response, scripts)
        return _with_scripts(ctx, result)
    if scripts:
        ctx.step("issuer scripts", "not delivered: the reader or the card does not support Issuer Update "
                 "Processing")
    return result


def _issuer_update_supported(ctx: KernelContext) -> bool:
    """Book C-3 Issuer Update Processing: TTQ byte 3 b8 and CTQ byte 2 b7."""
    ctq = ctx.card(0x9F6C) or bytes(2)
    return (is_set(ctx.pre.ttq, TTQ_BITS, "ISSUER_UPDATE_PROCESSING_SUPPORTED")
            and is_set(ctq, CTQ_BITS, "ISSUER_UPDATE_PROCESSING_SUPPORTED"))


def issuer_update(ctx: KernelContext, response: AuthorisationResponse,
                  scripts: list[tuple[int, bytes]]) -> Exchange[None]:
    """Issuer Update Processing for a qVSDC/qPBOC card (Book C-3): the card
    checks the ARPC by EXTERNAL AUTHENTICATE (and, approved, resets its
    offline counters), then takes the scripts. Book C-3 does this on a second
    presentment of the card after the online answer; the emulated flow does it
    in the same session, the card still in the field (docs/kernel.md)."""
    if response.issuer_authentication_data:
        yield from external_authenticate(ctx, response.issuer_authentication_data)
    yield from process_scripts(ctx, scripts, BEFORE_FINAL_GENAC)
    yield from process_scripts(ctx, scripts, AFTER_FINAL_GENAC)


def _with_scripts(ctx: KernelContext, result: TransactionResult) -> TransactionResult:
    """``result`` with the data, TVR and TSI as script processing left them."""
    ctx.data[0x95] = bytes(ctx.tvr)
    ctx.data[0x9B] = bytes(ctx.tsi)
    return replace(result, data=dict(ctx.data), tvr=bytes(ctx.tvr), tsi=bytes(ctx.tsi))
