"""Issuer-to-card script processing (EMV Book 3 §10.10, Book 4 §6.3.9) and the
issuer authentication of a qVSDC/qPBOC card by EXTERNAL AUTHENTICATE (§6.5.4).

The issuer's answer may carry scripts: template 71 (to be delivered before the
final GENERATE AC) and template 72 (after it), each holding an optional Issuer
Script Identifier (9F18, 4 bytes) and its Issuer Script Commands (86, one
C-APDU each). Each script's commands go to the card in order; a command whose
SW1 is not 90, 62 or 63 ends that script (the rest of it is not sent) and the
next script follows. The results are values:

- Issuer Script Results (9F5B): 5 bytes per script, in the order processed:
  byte 1 b8-b5 the result (0 not performed, 1 failed, 2 successful), b4-b1 the
  sequence number of the failing command (1..14, F for 15 and above, 0 when
  not specified), bytes 2-5 the script identifier (zeros when absent);
- TVR byte 5 b6 / b5: script processing failed before / after the final
  GENERATE AC;
- TSI byte 1 b3: script processing performed (set once a command was sent).

A malformed template fails as a whole (result 1, sequence 0) without a
command being sent. An error status word is a result, not an exception.
"""

from __future__ import annotations

from emvkit.firmware import tlv
from emvkit.terminal.apdu import CommandAPDU
from emvkit.terminal.kernel.context import Exchange, KernelContext, transmit

__all__ = ["AFTER_FINAL_GENAC", "BEFORE_FINAL_GENAC", "external_authenticate", "process_scripts", "split_scripts"]

BEFORE_FINAL_GENAC = 0x71
AFTER_FINAL_GENAC = 0x72
_INS_EXTERNAL_AUTHENTICATE = 0x82
_NOT_PERFORMED, _FAILED, _SUCCESSFUL = 0x0, 0x1, 0x2


def split_scripts(data: bytes) -> list[tuple[int, bytes]]:
    """The templates in ``data`` (the 71/72 objects of DE 55, as received) as
    (tag, encoded template); bytes that do not decode are one failed template."""
    try:
        nodes = tlv.decode(data)
    except tlv.TLVError:
        return [(0, data)] if data else []
    return [(n.tag, n.encode()) for n in nodes if n.tag in (BEFORE_FINAL_GENAC, AFTER_FINAL_GENAC)]


def _parse(template: bytes) -> tuple[bytes, list[bytes]] | None:
    """(script identifier, commands) of one 71/72 template, None when malformed."""
    try:
        nodes = tlv.decode(template)
    except tlv.TLVError:
        return None
    if len(nodes) != 1 or nodes[0].children is None:
        return None
    ident = bytes(4)
    commands: list[bytes] = []
    for child in nodes[0].children:
        if child.tag == 0x9F18 and len(child.value) == 4 and not commands:
            ident = child.value
        elif child.tag == 0x86 and len(child.value) >= 4:
            commands.append(child.value)
        else:
            return None
    return (ident, commands) if commands else None


def _command(raw: bytes) -> CommandAPDU:
    """An Issuer Script Command (86) as a CommandAPDU: case 1 or 3 (no Le)."""
    cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
    if len(raw) == 4:
        return CommandAPDU(cla, ins, p1, p2)
    lc = raw[4]
    if lc == 0 or len(raw) not in (5 + lc, 6 + lc):
        raise ValueError("length byte does not match the command")
    return CommandAPDU(cla, ins, p1, p2, raw[5:5 + lc])


def process_scripts(ctx: KernelContext, scripts: list[tuple[int, bytes]], tag: int) -> Exchange[None]:
    """Deliver the scripts of template ``tag`` (71 or 72) to the card; append
    their results to 9F5B, set the TVR and TSI bits."""
    failed_bit = "SCRIPT_FAILED_BEFORE_FINAL_GENAC" if tag == BEFORE_FINAL_GENAC else \
        "SCRIPT_FAILED_AFTER_FINAL_GENAC"
    results = bytearray(ctx.data.get(0x9F5B, b""))
    for template_tag, template in scripts:
        if template_tag not in (tag, 0):
            continue
        if template_tag == 0 and tag == BEFORE_FINAL_GENAC:
            continue  # an undecodable DE 55 script part is counted once, with the 72 scripts
        parsed = _parse(template)
        if parsed is None:
            results += bytes((_FAILED << 4,)) + bytes(4)
            ctx.set_tvr(failed_bit)
            ctx.step(f"issuer script ({template_tag:02X})", "malformed template: not sent")
            continue
        ident, commands = parsed
        outcome, sequence = _SUCCESSFUL, 0
        for number, raw in enumerate(commands, 1):
            try:
                command = _command(raw)
            except ValueError:
                outcome, sequence = _FAILED, number
                break
            ctx.set_tsi("SCRIPT_PROCESSING_PERFORMED")
            response = yield from transmit(command)
            if response.sw1 not in (0x90, 0x62, 0x63):
                outcome, sequence = _FAILED, number
                break
        results += bytes(((outcome << 4) | min(sequence, 0xF),)) + ident
        if outcome == _FAILED:
            ctx.set_tvr(failed_bit)
        ctx.step(f"issuer script {ident.hex().upper()} ({template_tag:02X})",
                 f"{len(commands)} command(s), " + ("successful" if outcome == _SUCCESSFUL
                                                     else f"failed at command {sequence}"))
    if results:
        ctx.data[0x9F5B] = bytes(results)


def external_authenticate(ctx: KernelContext, issuer_authentication_data: bytes) -> Exchange[bool]:
    """EXTERNAL AUTHENTICATE with the Issuer Authentication Data (91): the
    card checks the ARPC. Sets TSI "issuer authentication performed", and TVR
    "issuer authentication failed" unless the card answers 9000."""
    response = yield from transmit(CommandAPDU(0x00, _INS_EXTERNAL_AUTHENTICATE, 0x00, 0x00,
                                               issuer_authentication_data))
    ctx.set_tsi("ISSUER_AUTHENTICATION_PERFORMED")
    ok = response.sw == 0x9000
    if not ok:
        ctx.set_tvr("ISSUER_AUTHENTICATION_FAILED")
    ctx.step("EXTERNAL AUTHENTICATE", "issuer authentication successful" if ok
             else f"failed ({response.sw:04X})")
    return ok
