"""Online processing: what the terminal sends the issuer, what it gets back,
and what the kernel does with the answer.

An :class:`Authoriser` is anything that can answer an authorisation request:
the issuer host simulator in-process, or a client speaking ISO 8583 to
``emvkit host serve``. The kernel stays sans-IO: it yields an
:class:`OnlineRequest` and the driver sends back the
:class:`AuthorisationResponse` (or None when the host could not be reached).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from emvkit.firmware import tlv
from emvkit.terminal.apdu import CommandAPDU, ResponseAPDU
from emvkit.terminal.bitmaps import AIP_BITS, is_set
from emvkit.terminal.kernel.common import CID_NAMES, Gen
from emvkit.terminal.kernel.context import (
    KernelContext,
    KernelStop,
    expect_ok,
    format1_value,
    parse_template,
    response_objects,
)
from emvkit.terminal.kernel.outcome import Outcome

__all__ = ["AuthorisationRequest", "AuthorisationResponse", "Authoriser", "OnlineRequest", "online_processing"]


@dataclass(frozen=True)
class AuthorisationRequest:
    """An authorisation (MTI 0100) or financial (0200) request from a terminal."""

    pan: str  # digits
    amount: int  # minor units (DE 4)
    currency: bytes  # 5F2A, n 3 as 2 bytes BCD (DE 49)
    icc_data: dict[int, bytes]  # DE 55: 9F26, 9F27, 9F10, 9F37, 9F36, 95, 9A, 9C, 9F02, 5F2A, 82, 9F1A, ...
    psn: str | None = None  # 5F34 as 2 digits (DE 23)
    track2: bytes | None = None  # 57 (DE 35)
    amount_other: int = 0
    processing_code: str = "000000"  # DE 3: 00 purchase, 01 cash, 09 cashback, 20 refund
    pos_entry_mode: str = "072"  # DE 22: contactless chip
    mti: str = "0100"
    stan: int = 0  # DE 11
    terminal_id: str = ""  # DE 41


@dataclass(frozen=True)
class AuthorisationResponse:
    """The issuer's answer (MTI 0110 / 0210)."""

    approved: bool
    response_code: str  # DE 39: "00" approved, "05" do not honour, "30" format error, ...
    arc: bytes  # 8A: the response code as 2 ASCII bytes
    issuer_authentication_data: bytes | None = None  # 91, in the card scheme's format
    issuer_scripts: bytes = b""  # 71 / 72 templates, as received
    reason: str = ""  # why, for people (never a PAN or key)
    icc_data: dict[int, bytes] = field(default_factory=dict)  # DE 55 of the response


class Authoriser(Protocol):
    def authorise(self, request: AuthorisationRequest) -> AuthorisationResponse: ...


@dataclass(frozen=True)
class OnlineRequest:
    """Yielded by the kernel when it needs the issuer's answer."""

    request: AuthorisationRequest


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


def online_processing(ctx: KernelContext) -> Gen:
    """Send the ARQC to the issuer; then, for kernel 2 cards that support
    issuer authentication, a second GENERATE AC with the issuer's answer
    (Book 3 §6.5.5, §10.9). Returns the final TransactionResult."""
    response = yield OnlineRequest(authorisation_request(ctx))
    if response is None:
        ctx.step("online authorisation", "the issuer host could not be reached")
        return ctx.result(Outcome.DECLINED, "unable to go online")
    assert isinstance(response, AuthorisationResponse)
    ctx.authorisation = response
    ctx.data[0x8A] = response.arc
    if response.issuer_authentication_data:
        ctx.data[0x91] = response.issuer_authentication_data
    verdict = "approved" if response.approved else "declined"
    ctx.step("online authorisation", f"{verdict}, response code {response.response_code}"
             + (f" ({response.reason})" if response.reason else ""))
    aip = ctx.card(0x82) or bytes(2)
    if ctx.kernel == 2 and is_set(aip, AIP_BITS, "ISSUER_AUTHENTICATION_SUPPORTED") and ctx.card(0x8D):
        return (yield from _second_generate_ac(ctx, response))
    return ctx.result(Outcome.APPROVED if response.approved else Outcome.DECLINED,
                      "" if response.approved else f"declined by the issuer ({response.response_code})")


def _second_generate_ac(ctx: KernelContext, response: AuthorisationResponse) -> Gen:
    requested = 0x40 if response.approved else 0x00
    data = ctx.dol(ctx.card(0x8D) or b"", "CDOL2")
    answer: ResponseAPDU = yield CommandAPDU(0x80, 0xAE, requested, 0x00, data, le=256)
    expect_ok(answer, "second GENERATE AC")
    nodes = response_objects(answer, "second GENERATE AC")
    value = format1_value(nodes)
    if value is not None and len(value) >= 11:
        fields = {0x9F27: value[:1], 0x9F36: value[1:3], 0x9F26: value[3:11]}
    else:
        fields = tlv.flatten(parse_template(answer, "second GENERATE AC", (0x77,), nodes))
    if 0x9F27 not in fields:
        raise KernelStop(Outcome.END_APPLICATION, "second GENERATE AC without a CID")
    ctx.data.update({t: v for t, v in fields.items() if t in (0x9F27, 0x9F26, 0x9F36, 0x9F10)})
    cid = fields[0x9F27][0] & 0xC0
    if response.issuer_authentication_data:
        ctx.set_tsi("ISSUER_AUTHENTICATION_PERFORMED")
    returned = CID_NAMES.get(cid, "RFU")
    ctx.step("second GENERATE AC", f"asked for {'TC' if requested else 'AAC'}, the card returned {returned}")
    if cid == 0x40 and requested == 0x40:
        return ctx.result(Outcome.APPROVED)
    if response.approved and response.issuer_authentication_data:
        ctx.set_tvr("ISSUER_AUTHENTICATION_FAILED")
        return ctx.result(Outcome.DECLINED, "the card declined after issuer authentication")
    return ctx.result(Outcome.DECLINED, f"declined by the issuer ({response.response_code})"
                      if not response.approved else "the card declined the second GENERATE AC")
