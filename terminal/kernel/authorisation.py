"""What the terminal and the issuer say to each other: the authorisation
request and response (EMV Book 4 §6.3.6, ISO 8583 fields named), the
:class:`Authoriser` that answers, and the :class:`OnlineRequest` a kernel
yields when it needs that answer.

Plain values, below the kernel's own modules: the transaction result carries
the response, and the host side (:mod:`emvkit.terminal.host.api`) speaks the
same types. What the kernel does with them is in
:mod:`emvkit.terminal.kernel.online`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["AuthorisationRequest", "AuthorisationResponse", "Authoriser", "OnlineRequest"]


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
