"""Outcomes: what a contactless transaction ended with (EMV Contactless Book A §6.2).

An outcome is a value. Every path through Entry Point and the kernels ends
with a :class:`TransactionResult`: the Outcome Parameter Set, the data record
(the tags the acquirer needs), and a readable account of what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from emvkit.terminal.kernel.authorisation import AuthorisationResponse
from emvkit.terminal.kernel.oda import OdaFailure, RecoveredCertificate

__all__ = ["Cvm", "Outcome", "OutcomeParameterSet", "Step", "TransactionResult"]


class Outcome(Enum):
    """Book A §6.2.1 outcomes."""

    APPROVED = "Approved"
    DECLINED = "Declined"
    ONLINE_REQUEST = "Online Request"
    TRY_ANOTHER_INTERFACE = "Try Another Interface"
    END_APPLICATION = "End Application"
    SELECT_NEXT = "Select Next"
    TRY_AGAIN = "Try Again"


class Cvm(Enum):
    """Book A §6.2.2 CVM of the Outcome Parameter Set."""

    NO_CVM = "No CVM"
    SIGNATURE = "Obtain Signature"
    ONLINE_PIN = "Online PIN"
    CONFIRMATION_CODE_VERIFIED = "Confirmation Code Verified"  # CDCVM on the consumer's device
    NA = "N/A"


@dataclass
class OutcomeParameterSet:
    """The Outcome Parameter Set (Book A Table 6-1), the fields emvkit fills."""

    outcome: Outcome
    start: str | None = None  # A, B, C or D: where a restart begins
    cvm: Cvm = Cvm.NA
    ui_message: str = ""
    alternate_interface: str | None = None
    field_off_request: bool = False
    receipt: bool = False
    data_record_present: bool = False

    @classmethod
    def for_outcome(cls, outcome: Outcome, cvm: Cvm = Cvm.NA) -> OutcomeParameterSet:
        """The parameters that go with an outcome: restart point, alternate
        interface, UI message, receipt and data record (Book A §6.2)."""
        params = cls(outcome=outcome, cvm=cvm)
        if outcome is Outcome.TRY_AGAIN:
            params.start = "B"
            params.ui_message = "Present card again"
        elif outcome is Outcome.TRY_ANOTHER_INTERFACE:
            params.alternate_interface = "contact chip"
            params.ui_message = "Insert or swipe card"
        elif outcome is Outcome.APPROVED:
            params.ui_message = "Approved" + (" - sign" if cvm is Cvm.SIGNATURE else "")
            params.receipt = cvm is Cvm.SIGNATURE
            params.data_record_present = True
        elif outcome is Outcome.DECLINED:
            params.ui_message = "Not authorised"
            params.data_record_present = True
        elif outcome is Outcome.ONLINE_REQUEST:
            params.ui_message = "Authorising, please wait"
            params.data_record_present = True
        elif outcome is Outcome.END_APPLICATION:
            params.ui_message = "Insert, swipe or try another card"
        return params


@dataclass
class Step:
    """One line of the account the CLI prints: what was done and how it went."""

    name: str
    detail: str = ""


@dataclass
class TransactionResult:
    outcome: OutcomeParameterSet
    kernel: int | None = None
    aid: bytes = b""
    label: str = ""
    data: dict[int, bytes] = field(default_factory=dict)  # every data element seen or set
    tvr: bytes = bytes(5)
    tsi: bytes = bytes(2)
    oda: str = "not performed"  # fDDA, CDA, DDA, SDA, or "not performed"
    oda_result: str = ""  # "successful", or the failure code
    oda_failure: OdaFailure | None = None  # the failed check: code, sentence, the certificate's fields if opened
    oda_certificates: tuple[RecoveredCertificate, ...] = ()  # issuer, then ICC: what each recovered to
    steps: list[Step] = field(default_factory=list)
    error: str = ""  # why a transaction ended early (a status word, malformed data, a link error)
    authorisation: AuthorisationResponse | None = None  # the issuer's answer when the transaction went online

    @property
    def cid(self) -> bytes:
        return self.data.get(0x9F27, b"")

    @property
    def cryptogram(self) -> bytes:
        return self.data.get(0x9F26, b"")

    @property
    def atc(self) -> bytes:
        return self.data.get(0x9F36, b"")

    @property
    def pan(self) -> str:
        raw = self.data.get(0x5A)
        if raw is None:
            track2 = self.data.get(0x57, b"").hex().upper()
            return track2.split("D", 1)[0] if "D" in track2 else ""
        return raw.hex().upper().rstrip("F")
