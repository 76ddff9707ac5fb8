"""Entry Point (EMV Contactless Book B): pre-processing, PPSE selection, the
candidate list, final combination selection, kernel activation and Select
Next. The whole transaction is one generator: :func:`transaction` yields
command APDUs and returns a :class:`TransactionResult`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from emvkit.firmware import tlv
from emvkit.terminal.apdu import CommandAPDU, ResponseAPDU, sw_meaning
from emvkit.terminal.bitmaps import TTQ_BITS, clear_bit, set_bit
from emvkit.terminal.errors import APDUError, CardRemoved, TransportError
from emvkit.terminal.iso7816 import INS_SELECT, PPSE
from emvkit.terminal.kernel import c2, c3
from emvkit.terminal.kernel.config import AppConfig, TerminalConfig
from emvkit.terminal.kernel.context import (
    Exchange,
    KernelContext,
    KernelStop,
    Preprocessing,
    TransactionRequest,
    transmit,
)
from emvkit.terminal.kernel.online import online_processing
from emvkit.terminal.kernel.outcome import Outcome, OutcomeParameterSet, Step, TransactionResult

__all__ = ["Candidate", "build_candidates", "preprocess", "transaction"]

KERNELS: dict[int, Callable[[KernelContext, dict[int, bytes]], Exchange[TransactionResult]]] = {
    2: c2.run,
    3: c3.run,
    7: c3.run,
}
# Book B §3.3.2.5: without a Kernel Identifier the kernel follows from the RID.
_DEFAULT_KERNEL = {bytes.fromhex("A000000004"): 2, bytes.fromhex("A000000003"): 3, bytes.fromhex("A000000333"): 7}


def preprocess(config: TerminalConfig, request: TransactionRequest) -> dict[AppConfig, Preprocessing]:
    """Book B §3.1.1: per combination, the limits against the amount and the TTQ."""
    out = {}
    amount = request.amount
    for app in config.applications:
        pre = Preprocessing()
        ttq = bytearray(app.ttq)
        clear_bit(ttq, TTQ_BITS, "ONLINE_CRYPTOGRAM_REQUIRED")
        clear_bit(ttq, TTQ_BITS, "CVM_REQUIRED")
        if amount == 0:
            pre.zero_amount = True
            if not app.zero_amount_allowed:
                pre.not_allowed = True
            else:
                set_bit(ttq, TTQ_BITS, "ONLINE_CRYPTOGRAM_REQUIRED")
        if app.transaction_limit and amount >= app.transaction_limit:
            pre.not_allowed = True
        if amount > app.floor_limit:
            pre.floor_limit_exceeded = True
            set_bit(ttq, TTQ_BITS, "ONLINE_CRYPTOGRAM_REQUIRED")
        if amount >= app.cvm_required_limit:
            pre.cvm_required_limit_exceeded = True
            set_bit(ttq, TTQ_BITS, "CVM_REQUIRED")
        pre.ttq = bytes(ttq)
        out[app] = pre
    return out


@dataclass
class Candidate:
    adf: bytes  # the card's AID (4F)
    app: AppConfig
    kernel: int
    priority: int
    label: str
    order: int


def build_candidates(directory: list[tlv.TLV], config: TerminalConfig,
                     pre: dict[AppConfig, Preprocessing]) -> list[Candidate]:
    """Book B §3.3.2: each directory entry (61) against each supported
    combination; kernel from 9F2A (or the RID), priority from 87."""
    out = []
    for order, entry in enumerate(directory):
        if entry.tag != 0x61 or entry.children is None:
            continue
        fields = tlv.flatten(entry.children)
        adf = fields.get(0x4F)
        if adf is None or not 5 <= len(adf) <= 16:
            continue
        kernel_id = fields.get(0x9F2A)
        kernel = kernel_id[0] if kernel_id else _DEFAULT_KERNEL.get(adf[:5], 0)
        label = fields.get(0x50, b"").decode("ascii", "replace")
        priority = (fields.get(0x87) or b"\x00")[0] & 0x0F
        for app in config.applications:
            matches = adf == app.aid or (app.partial_selection and adf.startswith(app.aid))
            if matches and app.kernel == kernel and not pre[app].not_allowed:
                out.append(Candidate(adf, app, kernel, priority or 16, label, order))
                break
    return out


def _select(name: bytes) -> CommandAPDU:
    return CommandAPDU(0x00, INS_SELECT, 0x04, 0x00, name, le=256)


def _early_result(outcome: Outcome, steps: list[Step], error: str = "") -> TransactionResult:
    """An outcome reached before any kernel ran (no application selected)."""
    return TransactionResult(outcome=OutcomeParameterSet.for_outcome(outcome), steps=steps, error=error)


def transaction(config: TerminalConfig, request: TransactionRequest,
                online: bool = False) -> Exchange[TransactionResult]:
    """One contactless transaction, from pre-processing to the outcome. With
    ``online``, an Online Request goes to the issuer (an
    :class:`~emvkit.terminal.kernel.authorisation.OnlineRequest` is yielded)
    and the transaction ends Approved or Declined. The request must carry its
    date, time and random source (ValueError before the first command if not)."""
    request.terminal_values()
    steps: list[Step] = []
    pre = preprocess(config, request)
    if all(p.not_allowed for p in pre.values()):
        steps.append(Step("pre-processing", "contactless not allowed for this amount on any application"))
        return _early_result(Outcome.TRY_ANOTHER_INTERFACE, steps)
    ctx: KernelContext | None = None
    try:
        response = yield from transmit(_select(PPSE))
        if response.sw != 0x9000:
            reason = f"SELECT PPSE: {response.sw:04X} ({sw_meaning(response.sw)})"
            steps.append(Step("SELECT PPSE", reason))
            return _early_result(Outcome.END_APPLICATION, steps, reason)
        try:
            fci = tlv.decode(response.data)
        except tlv.TLVError as exc:
            steps.append(Step("SELECT PPSE", f"malformed FCI: {exc}"))
            return _early_result(Outcome.END_APPLICATION, steps, f"SELECT PPSE: malformed FCI: {exc}")
        directory = (tlv.find_path(fci, [0x6F, 0xA5, 0xBF0C]) or tlv.TLV(0xBF0C, children=[])).children or []
        candidates = build_candidates(directory, config, pre)
        steps.append(Step("SELECT PPSE", f"{len(candidates)} candidate(s): "
                          + ", ".join(f"{c.adf.hex().upper()} (kernel {c.kernel})" for c in candidates)))
        while candidates:
            best = min(candidates, key=lambda c: (c.priority, c.order))
            response = yield from transmit(_select(best.adf))
            fci_data = _final_selection(response, best)
            if fci_data is None:
                steps.append(Step(f"SELECT {best.adf.hex().upper()}", f"failed ({response.sw:04X}); next candidate"))
                candidates.remove(best)
                continue
            label = fci_data.get(0x50, b"").decode("ascii", "replace") or best.label
            ctx = KernelContext(config=config, app=best.app, request=request, pre=pre[best.app],
                                kernel=best.kernel, aid=best.adf, label=label, steps=steps)
            ctx.step(f"SELECT {best.adf.hex().upper()}", f"{label or 'no label'}, kernel {best.kernel}")
            result = yield from _run_kernel(ctx, fci_data, online)
            if result.outcome.outcome is not Outcome.SELECT_NEXT:
                return result
            steps.append(Step("Select Next", result.error))
            candidates.remove(best)
        steps.append(Step("final selection", "no candidate left"))
        return _early_result(Outcome.END_APPLICATION, steps, "no application could be selected")
    except TransportError as exc:
        what = "card removed" if isinstance(exc, CardRemoved) else "link error"
        steps.append(Step(what, str(exc)))
        if ctx is not None:
            return ctx.result(Outcome.TRY_AGAIN, error=str(exc))
        return _early_result(Outcome.TRY_AGAIN, steps, str(exc))
    except APDUError as exc:
        steps.append(Step("protocol error", str(exc)))
        if ctx is not None:
            return ctx.result(Outcome.END_APPLICATION, error=str(exc))
        return _early_result(Outcome.END_APPLICATION, steps, str(exc))


def _final_selection(response: ResponseAPDU, candidate: Candidate) -> dict[int, bytes] | None:
    """The FCI's data (Book B §3.3.3), or None when the selection failed."""
    if response.sw != 0x9000:
        return None
    try:
        nodes = tlv.decode(response.data)
    except tlv.TLVError:
        return None
    if len(nodes) != 1 or nodes[0].tag != 0x6F or nodes[0].children is None:
        return None
    if tlv.find_value(nodes[0].children, 0x84) != candidate.adf:
        return None
    return tlv.flatten(nodes)


def _run_kernel(ctx: KernelContext, fci: dict[int, bytes], online: bool) -> Exchange[TransactionResult]:
    """Activate the kernel, then online processing; a KernelStop becomes the outcome."""
    try:
        result = yield from KERNELS[ctx.kernel](ctx, fci)
        if online and result.outcome.outcome is Outcome.ONLINE_REQUEST:
            result = yield from online_processing(ctx)
    except KernelStop as stop:
        ctx.step("end", stop.reason)
        return ctx.result(stop.outcome, error=stop.reason, cvm=stop.cvm)
    return result
