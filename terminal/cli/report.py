"""What ``emvkit tap`` and ``emvkit watch`` print of a transaction: the
report for people (each step, ODA, CVM, the TVR bit by bit, the cryptogram,
the issuer's answer, the outcome, every APDU with its timing) and the JSON
object."""

from __future__ import annotations

from emvkit.terminal.bitmaps import explain
from emvkit.terminal.iso7816 import INS_NAMES, INS_READ_RECORD, INS_SELECT, PPSE
from emvkit.terminal.kernel.common import CID_NAMES
from emvkit.terminal.kernel.oda import RecoveredCertificate
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import Tap
from emvkit.terminal.tlvdump import mask_pan

__all__ = ["KERNEL_NAMES", "certificate_fields", "certificate_line", "command_name", "report", "to_json"]

KERNEL_NAMES = {2: "C-2 Mastercard", 3: "C-3 Visa", 7: "C-7 UnionPay"}


def _pan(tap: Tap, reveal: bool) -> str:
    pan = tap.result.pan
    return pan if reveal or not pan else mask_pan(pan)


def certificate_fields(c: RecoveredCertificate, reveal: bool) -> dict[str, object]:
    """A recovered certificate's fields; the ICC certificate's PAN masked unless ``reveal``."""
    identifier = c.identifier if reveal or c.owner == "issuer" else mask_pan(c.identifier)
    return {
        "certificate": c.owner, "format": f"{c.format:02X}", "identifier": identifier,
        "expiry": c.expiry.hex().upper(), "serial": c.serial.hex().upper(),
        "hash_algorithm": f"{c.hash_algorithm:02X}", "key_algorithm": f"{c.key_algorithm:02X}",
        "key_length": c.key_length, "exponent_length": c.exponent_length,
        "hash_result": c.hash_result.hex().upper(), "hash_matched": c.hash_matched,
    }


def certificate_line(c: RecoveredCertificate, reveal: bool) -> str:
    fields = certificate_fields(c, reveal)
    matched = {True: "matched", False: "did not match", None: "not compared"}[c.hash_matched]
    return (f"{c.owner} certificate: format {fields['format']}, {'issuer' if c.owner == 'issuer' else 'PAN'} "
            f"{fields['identifier']}, expiry {fields['expiry']}, serial {fields['serial']}, hash algorithm "
            f"{fields['hash_algorithm']}, key algorithm {fields['key_algorithm']}, key {c.key_length} bytes, "
            f"exponent {c.exponent_length} byte(s), hash {matched}")


def to_json(tap: Tap, url: str, reveal: bool, amount: str) -> dict[str, object]:
    r = tap.result
    failure = r.oda_failure
    return {
        "reader": url,
        "amount": amount,
        "outcome": r.outcome.outcome.value,
        "kernel": r.kernel,
        "aid": r.aid.hex().upper(),
        "label": r.label,
        "pan": _pan(tap, reveal),
        "tvr": r.tvr.hex().upper(),
        "tsi": r.tsi.hex().upper(),
        "cid": r.cid.hex().upper(),
        "cryptogram": r.cryptogram.hex().upper(),
        "atc": r.atc.hex().upper(),
        "cvm": r.outcome.cvm.value,
        "oda": r.oda,
        "oda_result": r.oda_result,
        "oda_failure": None if failure is None else {"code": failure.code, "reason": failure.message},
        "oda_certificates": [certificate_fields(c, reveal) for c in r.oda_certificates],
        "ui_message": r.outcome.ui_message,
        "error": r.error,
        "apdus": tap.apdus,
        "bytes": tap.bytes_exchanged,
        "elapsed_ms": round(tap.elapsed_ms, 3),
        "steps": [{"step": s.name, "detail": s.detail} for s in r.steps],
        "authorisation": None if r.authorisation is None else {
            "approved": r.authorisation.approved,
            "response_code": r.authorisation.response_code,
            "reason": r.authorisation.reason,
            "issuer_authentication_data": (r.authorisation.issuer_authentication_data or b"").hex().upper(),
        },
    }


def report(tap: Tap, url: str, reveal: bool, amount: str, kind: str) -> str:
    r = tap.result
    lines = [f"Card:        {url}", f"Transaction: {kind} of {amount}", ""]
    for i, step in enumerate(r.steps, 1):
        lines.append(f"  {i:2}. {step.name}" + (f": {step.detail}" if step.detail else ""))
    lines.append("")
    if r.aid:
        lines.append(f"Application: {r.label or '-'} ({r.aid.hex().upper()}), kernel {KERNEL_NAMES.get(r.kernel or 0)}")
    if r.pan:
        lines.append(f"PAN:         {_pan(tap, reveal)}")
    lines.append(f"ODA:         {r.oda}" + (f" ({r.oda_result})" if r.oda_result else ""))
    if r.oda_failure is not None:
        lines.append(f"             {r.oda_failure.message}")
    lines += [f"             {certificate_line(c, reveal)}" for c in r.oda_certificates]
    lines.append(f"CVM:         {r.outcome.cvm.value}")
    lines.append(f"TVR:         {r.tvr.hex().upper()}")
    lines += [f"             {line}" for line in explain(0x95, r.tvr)]
    lines.append(f"TSI:         {r.tsi.hex().upper()}")
    if r.cid:
        cid = CID_NAMES.get(r.cid[0] & 0xC0, "RFU")
        lines.append(f"Cryptogram:  {cid} {r.cryptogram.hex().upper()}  ATC {r.atc.hex().upper()}")
    auth = r.authorisation
    if auth is not None:
        verdict = "approved" if auth.approved else "declined"
        lines.append(f"Issuer:      {verdict}, response code {auth.response_code}"
                     + (f" ({auth.reason})" if auth.reason else ""))
        if auth.issuer_authentication_data:
            lines.append(f"             issuer authentication data (91) "
                         f"{auth.issuer_authentication_data.hex().upper()}")
    lines.append("")
    banner = r.outcome.outcome.value.upper()
    lines.append(f"OUTCOME:     {banner}" + (f"  ({r.error})" if r.error and r.outcome.outcome is not
                                             Outcome.APPROVED else ""))
    if r.outcome.ui_message:
        lines.append(f"Message:     {r.outcome.ui_message}")
    lines.append("")
    lines.append(f"{tap.apdus} APDUs, {tap.bytes_exchanged} bytes, {tap.elapsed_ms:.2f} ms in total")
    for e in tap.trace.exchanges:
        name = command_name(e.command)
        status = (e.response or b"")[-2:].hex().upper() if e.response else (e.error or "no response")
        size = len(e.response or b"")
        lines.append(f"  {name:22} {len(e.command):4} > {size:4} <  {status:6} {e.elapsed_ms:8.3f} ms")
    return "\n".join(lines)


def command_name(apdu: bytes) -> str:
    ins = apdu[1] if len(apdu) > 1 else 0
    if ins == INS_SELECT:
        name = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
        return "SELECT PPSE" if name == PPSE else f"SELECT {name.hex().upper()}"
    if ins == INS_READ_RECORD and len(apdu) > 3:
        return f"READ RECORD {apdu[3] >> 3}.{apdu[2]}"
    return INS_NAMES.get(ins, f"INS {ins:02X}")
