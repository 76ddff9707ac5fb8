"""ISO 8583 messages between terminal and host, encoded with pyiso8583.

The spec (:data:`SPEC`) is pyiso8583's ``default_ascii`` (ISO 8583:1987,
ASCII fields, the bitmap as 16 hex characters) with DE 55 changed to binary
data with an ASCII LLL length (up to 999 bytes). Messages used:

request 0100 (authorisation) / 0200 (financial)
    ==  =====================================  =======  ========================
    DE  content                                format   required
    ==  =====================================  =======  ========================
    2   PAN                                    n..19    yes
    3   processing code                        n6       yes
    4   amount, transaction (minor units)      n12      yes
    7   transmission date and time, UTC        n10      no (sent by the client)
    11  STAN                                   n6       yes
    22  POS entry mode (072: contactless chip) n3       yes
    23  PAN sequence number (5F34), "001"      n3       no
    35  track 2 equivalent (57), ``D`` -> ``=``  z..37  no
    41  terminal id, space padded              ans8     no
    49  currency (5F2A)                        n3       yes
    55  ICC data, BER-TLV                      b..999   yes
    ==  =====================================  =======  ========================

response 0110 / 0210
    DE 3, 4, 11, 41 and 49 echoed from the request (as far as they were
    readable), DE 39 the response code, DE 55 the Issuer Authentication
    Data (91) and any issuer script templates (71/72), DE 63 the reason as
    text for people. The ARC (8A) is DE 39 in ASCII; the PAN and track 2
    are never echoed.

On TCP each message is preceded by its length, 2 bytes big-endian
(:func:`frame`). A message that does not decode, misses a required DE or has
a malformed one raises :class:`MessageFormatError`; the host answers it with
DE 39 "30" when its MTI is readable (:func:`encode_format_error`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any, Final

import iso8583
import iso8583.specs

from emvkit.firmware import tlv
from emvkit.terminal.errors import EmvkitError
from emvkit.terminal.host.api import AuthorisationRequest, AuthorisationResponse
from emvkit.terminal.host.reversal import REVERSAL, REVERSAL_ADVICE, Reversal

__all__ = [
    "MAX_MESSAGE",
    "SPEC",
    "MessageFormatError",
    "de35_to_track2",
    "decode_request",
    "decode_response",
    "decode_reversal",
    "encode_format_error",
    "encode_request",
    "encode_response",
    "encode_reversal",
    "encode_reversal_response",
    "frame",
    "response_mti",
    "track2_to_de35",
    "transmission_time",
]

SPEC: Final[dict[str, dict[str, Any]]] = copy.deepcopy(iso8583.specs.default_ascii)
SPEC["55"] = {"data_enc": "b", "len_enc": "ascii", "len_type": 3, "max_len": 999, "desc": "ICC data"}

MAX_MESSAGE: Final = 8192  # bytes; a longer frame is refused
REQUEST_MTIS: Final = ("0100", "0200")
REVERSAL_MTIS: Final = (REVERSAL, REVERSAL_ADVICE)
_REVERSAL_REQUIRED: Final = ("2", "3", "4", "11", "49", "55", "90")
_REQUIRED: Final = ("2", "3", "4", "11", "22", "49", "55")
# Numeric DEs: (fewest, most digits).
_NUMERIC: Final = {"2": (12, 19), "3": (6, 6), "4": (12, 12), "7": (10, 10), "11": (6, 6), "22": (3, 3),
                   "23": (3, 3), "49": (3, 3), "90": (42, 42)}
_ECHOED: Final = ("3", "4", "11", "41", "49")


class MessageFormatError(EmvkitError):
    """An ISO 8583 message that cannot be used. ``mti``, ``stan`` and
    ``echo`` (fields safe to repeat in the answer) hold what was readable."""

    def __init__(self, reason: str, mti: str | None = None, echo: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.mti = mti
        self.echo = dict(echo or {})

    @property
    def stan(self) -> int | None:
        value = self.echo.get("11")
        return int(value) if value is not None else None

    @property
    def terminal_id(self) -> str | None:
        value = self.echo.get("41")
        return value.strip() if value is not None else None


def frame(message: bytes) -> bytes:
    """The message with its 2-byte big-endian length header."""
    if len(message) > 0xFFFF:
        raise MessageFormatError(f"message of {len(message)} bytes does not fit a 2-byte length header")
    return len(message).to_bytes(2, "big") + message


def response_mti(mti: str) -> str | None:
    """0100 -> 0110, 0200 -> 0210 (any request or advice MTI: the
    function digit plus one); None when ``mti`` is not one."""
    if len(mti) != 4 or not mti.isdigit() or mti[2] not in "02468":
        return None
    return mti[:2] + str(int(mti[2]) + 1) + mti[3]


# --- DE 35: track 2 equivalent data ---

def track2_to_de35(track2: bytes) -> str:
    """Tag 57 (cn, separator ``D``, padded with ``F``) as DE 35 text, with the
    ISO/IEC 7813 field separator ``=``."""
    text = track2.hex().upper().rstrip("F")
    if text.count("D") != 1 or not text.replace("D", "").isdigit():
        raise MessageFormatError("track 2 equivalent data (57) must be digits with one separator D")
    return text.replace("D", "=")


def de35_to_track2(de35: str) -> bytes:
    """DE 35 text back to the tag 57 value."""
    if de35.count("=") != 1 or not de35.replace("=", "").isdigit() or len(de35) > 37:
        raise MessageFormatError("DE 35 must be up to 37 digits with one separator '='")
    text = de35.replace("=", "D")
    return bytes.fromhex(text + ("F" if len(text) % 2 else ""))


def transmission_time(when: float | None = None) -> str:
    """DE 7: MMDDhhmmss, UTC."""
    return time.strftime("%m%d%H%M%S", time.gmtime(when))


# --- requests ---

def encode_request(request: AuthorisationRequest, when: float | None = None) -> bytes:
    """The request as an 0100/0200 message (without the length header)."""
    if request.mti not in REQUEST_MTIS:
        raise MessageFormatError(f"MTI {request.mti} is not an authorisation or financial request")
    if len(request.terminal_id) > 8:
        raise MessageFormatError("the terminal id (DE 41) is at most 8 characters")
    doc: dict[str, str] = {
        "t": request.mti,
        "2": request.pan,
        "3": request.processing_code,
        "4": f"{request.amount:012d}",
        "7": transmission_time(when),
        "11": f"{request.stan % 1_000_000:06d}",
        "22": request.pos_entry_mode,
        "49": request.currency.hex()[-3:],
        "55": _encode_icc(request.icc_data).hex(),
    }
    if request.psn is not None:
        doc["23"] = request.psn.rjust(3, "0")
    if request.track2 is not None:
        doc["35"] = track2_to_de35(request.track2)
    if request.terminal_id:
        doc["41"] = request.terminal_id.ljust(8)
    _check_numeric(doc, doc["t"])
    return _encode(doc)


def _decode_checked(message: bytes, mtis: tuple[str, ...], required: tuple[str, ...],
                    what: str) -> tuple[dict[str, str], str, dict[str, str], dict[int, bytes]]:
    """(fields, MTI, readable echo, DE 55's data objects) of a message that must be ``what``: one of
    ``mtis``, with every ``required`` field, numeric fields numeric; MessageFormatError otherwise."""
    doc, mti = _decode(message)
    echo = _readable_echo(doc)
    if mti not in mtis:
        raise MessageFormatError(f"MTI {mti} is not {what}", mti, echo)
    missing = [f for f in required if f not in doc]
    if missing:
        raise MessageFormatError("missing DE " + ", ".join(missing), mti, echo)
    _check_numeric(doc, mti, echo)
    return doc, mti, echo, _decode_icc(doc["55"], mti, echo)


def decode_request(message: bytes) -> AuthorisationRequest:
    """An 0100/0200 message (without the length header) as a request."""
    doc, mti, echo, icc = _decode_checked(message, REQUEST_MTIS, _REQUIRED, "an authorisation or financial request")
    track2 = _de35_or_error(doc.get("35"), mti, echo)
    psn = doc.get("23")
    if psn is not None and int(psn) > 99:
        raise MessageFormatError("DE 23: a PAN sequence number is 00..99", mti, echo)
    other = icc.get(0x9F03, b"").hex()
    return AuthorisationRequest(
        pan=doc["2"],
        amount=int(doc["4"]),
        currency=bytes.fromhex("0" + doc["49"]),
        icc_data=icc,
        psn=psn[1:] if psn is not None else None,
        track2=track2,
        amount_other=int(other) if other.isdigit() else 0,
        processing_code=doc["3"],
        pos_entry_mode=doc["22"],
        mti=mti,
        stan=int(doc["11"]),
        terminal_id=doc.get("41", "").strip(),
    )


# --- reversals ---

def encode_reversal(reversal: Reversal, when: float | None = None) -> bytes:
    """The reversal as an 0400/0420 message (without the length header)."""
    original = reversal.original
    if reversal.mti not in REVERSAL_MTIS:
        raise MessageFormatError(f"MTI {reversal.mti} is not a reversal")
    atc = original.icc_data.get(0x9F36)
    doc: dict[str, str] = {
        "t": reversal.mti,
        "2": original.pan,
        "3": original.processing_code,
        "4": f"{original.amount:012d}",
        "7": transmission_time(when),
        "11": f"{reversal.stan % 1_000_000:06d}",
        "49": original.currency.hex()[-3:],
        "55": (tlv.encode_tlv(0x9F36, atc) if atc is not None else b"").hex(),
        "90": f"{original.mti}{original.stan % 1_000_000:06d}{reversal.transmitted}" + "0" * 22,
    }
    if original.psn is not None:
        doc["23"] = original.psn.rjust(3, "0")
    if original.terminal_id:
        doc["41"] = original.terminal_id.ljust(8)
    reason = "".join(c if " " <= c <= "~" else "?" for c in reversal.reason)[:999]
    if reason:
        doc["63"] = reason
    _check_numeric(doc, doc["t"])
    return _encode(doc)


def decode_reversal(message: bytes) -> Reversal:
    """An 0400/0420 message (without the length header) as a reversal."""
    doc, mti, echo, icc = _decode_checked(message, REVERSAL_MTIS, _REVERSAL_REQUIRED, "a reversal")
    if len(icc.get(0x9F36, b"")) != 2:
        raise MessageFormatError("DE 55 of a reversal holds the original's ATC (9F36, 2 bytes)", mti, echo)
    psn = doc.get("23")
    if psn is not None and int(psn) > 99:
        raise MessageFormatError("DE 23: a PAN sequence number is 00..99", mti, echo)
    de90 = doc["90"]
    original = AuthorisationRequest(
        pan=doc["2"], amount=int(doc["4"]), currency=bytes.fromhex("0" + doc["49"]), icc_data=icc,
        psn=psn[1:] if psn is not None else None, processing_code=doc["3"], mti=de90[:4], stan=int(de90[4:10]),
        terminal_id=doc.get("41", "").strip(),
    )
    return Reversal(original, de90[10:20], doc.get("63", ""), mti, int(doc["11"]))


def encode_reversal_response(response: AuthorisationResponse, reversal: Reversal) -> bytes:
    """The 0410/0430 answer to a reversal."""
    original = reversal.original
    echo = {"3": original.processing_code, "4": f"{original.amount:012d}", "11": f"{reversal.stan % 1_000_000:06d}",
            "49": original.currency.hex()[-3:]}
    if original.terminal_id:
        echo["41"] = original.terminal_id.ljust(8)
    return _encode_answer(str(response_mti(reversal.mti)), echo, response)


def _de35_or_error(value: str | None, mti: str, echo: Mapping[str, str]) -> bytes | None:
    if value is None:
        return None
    try:
        return de35_to_track2(value)
    except MessageFormatError as exc:
        raise MessageFormatError(exc.reason, mti, echo) from None


# --- responses ---

def encode_response(response: AuthorisationResponse, request: AuthorisationRequest) -> bytes:
    """The 0110/0210 answer to ``request``."""
    mti = response_mti(request.mti)
    if mti is None:
        raise MessageFormatError(f"MTI {request.mti} has no response")
    echo = {"3": request.processing_code, "4": f"{request.amount:012d}", "11": f"{request.stan % 1_000_000:06d}",
            "49": request.currency.hex()[-3:]}
    if request.terminal_id:
        echo["41"] = request.terminal_id.ljust(8)
    return _encode_answer(mti, echo, response)


def encode_format_error(error: MessageFormatError) -> bytes | None:
    """The DE 39 "30" answer to a message that could not be used, or None
    when not even its MTI was readable (there is nothing to answer)."""
    mti = response_mti(error.mti or "")
    if mti is None:
        return None
    answer = AuthorisationResponse(approved=False, response_code="30", arc=b"30", reason=error.reason)
    return _encode_answer(mti, error.echo, answer)


def _encode_answer(mti: str, echo: Mapping[str, str], response: AuthorisationResponse) -> bytes:
    doc: dict[str, str] = {"t": mti, **{k: v for k, v in echo.items() if k in _ECHOED}, "39": response.response_code}
    icc = b""
    if response.issuer_authentication_data:
        icc += tlv.encode_tlv(0x91, response.issuer_authentication_data)
    icc += response.issuer_scripts
    if icc:
        doc["55"] = icc.hex()
    reason = response.reason.encode("ascii", "replace").decode("ascii")[:999]
    if reason:
        doc["63"] = "".join(c if " " <= c <= "~" else "?" for c in reason)
    return _encode(doc)


def decode_response(message: bytes, expected: tuple[str, ...] = ("0110", "0210")) -> tuple[
        AuthorisationResponse, int | None]:
    """An 0110/0210 message (or one of the ``expected`` MTIs: 0410/0430 for a
    reversal) as (response, STAN)."""
    doc, mti = _decode(message)
    if mti not in expected:
        raise MessageFormatError(f"MTI {mti} is not a response of {'/'.join(expected)}", mti)
    code = doc.get("39")
    if code is None or len(code) != 2 or not code.isalnum():
        raise MessageFormatError("the response has no valid response code (DE 39)", mti)
    _check_numeric(doc, mti)
    icc: dict[int, bytes] = {}
    scripts = b""
    if "55" in doc:
        try:
            nodes = tlv.decode(bytes.fromhex(doc["55"]))
        except tlv.TLVError as exc:
            raise MessageFormatError(f"DE 55 is not BER-TLV ({exc})", mti) from None
        for node in nodes:
            if node.tag in (0x71, 0x72):
                scripts += node.encode()
            else:
                icc[node.tag] = node.value
    stan = int(doc["11"]) if "11" in doc else None
    iad = icc.get(0x91)
    return AuthorisationResponse(
        approved=code == "00", response_code=code, arc=code.encode("ascii"), issuer_authentication_data=iad,
        issuer_scripts=scripts, reason=doc.get("63", ""), icc_data=icc,
    ), stan


# --- the codec underneath ---

def _encode(doc: dict[str, str]) -> bytes:
    try:
        message, _ = iso8583.encode(doc, SPEC)
    except iso8583.EncodeError as exc:
        raise MessageFormatError(f"cannot encode DE {exc.field}: {exc.msg}", doc.get("t")) from None
    return bytes(message)


def _decode(message: bytes) -> tuple[dict[str, str], str]:
    if len(message) > MAX_MESSAGE:
        raise MessageFormatError(f"message of {len(message)} bytes is longer than {MAX_MESSAGE}")
    try:
        doc, _ = iso8583.decode(message, SPEC)
    except iso8583.DecodeError as exc:
        partial: dict[str, str] = dict(exc.doc_dec)
        mti = partial.get("t")
        readable = mti if mti is not None and len(mti) == 4 and mti.isdigit() else None
        where = "the bitmap" if exc.field in ("p", "1") else "the MTI" if exc.field == "t" else f"DE {exc.field}"
        raise MessageFormatError(f"{where}: {exc.msg}", readable, _readable_echo(partial)) from None
    mti = doc["t"]
    if len(mti) != 4 or not mti.isdigit():
        raise MessageFormatError("the MTI must be 4 digits")
    return dict(doc), mti


def _readable_echo(doc: Mapping[str, str]) -> dict[str, str]:
    # The fields of a (possibly partly decoded) request that are safe to
    # repeat in the answer: well-formed, and none of them cardholder data.
    out: dict[str, str] = {}
    for key in _ECHOED:
        value = doc.get(key)
        if value is None:
            continue
        if key == "41" and len(value) == 8 and value.isprintable():
            out[key] = value
        elif key != "41" and value.isdigit() and len(value) == _NUMERIC[key][0]:
            out[key] = value
    return out


def _check_numeric(doc: Mapping[str, str], mti: str, echo: Mapping[str, str] | None = None) -> None:
    for key, (low, high) in _NUMERIC.items():
        value = doc.get(key)
        if value is not None and (not value.isdigit() or not low <= len(value) <= high):
            size = f"{low}" if low == high else f"{low} to {high}"
            raise MessageFormatError(f"DE {key} must be {size} digits", mti, echo)


def _encode_icc(icc: Mapping[int, bytes]) -> bytes:
    return b"".join(tlv.encode_tlv(tag, value) for tag, value in icc.items())


def _decode_icc(hex_value: str, mti: str, echo: Mapping[str, str]) -> dict[int, bytes]:
    try:
        nodes = tlv.decode(bytes.fromhex(hex_value))
    except tlv.TLVError as exc:
        raise MessageFormatError(f"DE 55 is not BER-TLV ({exc})", mti, echo) from None
    icc: dict[int, bytes] = {}
    for node in nodes:
        if node.tag in icc:
            raise MessageFormatError(f"DE 55 holds tag {node.tag:X} twice", mti, echo)
        icc[node.tag] = node.value
    return icc
