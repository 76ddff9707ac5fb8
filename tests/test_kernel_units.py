"""Pure functions of Entry Point and the kernels, against the specification.

Every expected value is written by hand from the spec section named in the
test (EMV 4.3 Book 3, EMV Contactless Book B and C-3); bits are spelled out as
hex with the bit named next to it.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable

import pytest

from emvkit.firmware import tlv
from emvkit.terminal.apdu import ResponseAPDU
from emvkit.terminal.config_files import load_config
from emvkit.terminal.kernel.common import (
    CID_AAC,
    CID_ARQC,
    CID_TC,
    contactless_cvm,
    cvm_list_processing,
    get_processing_options,
    parse_afl,
    processing_restrictions,
    terminal_action_analysis,
    terminal_risk_management,
)
from emvkit.terminal.kernel.config import AppConfig, TerminalConfig
from emvkit.terminal.kernel.context import KernelContext, KernelStop, Preprocessing, TransactionRequest
from emvkit.terminal.kernel.entry_point import build_candidates, preprocess, transaction
from emvkit.terminal.kernel.outcome import Cvm, Outcome

TODAY = datetime.date(2025, 3, 14)
VISA = bytes.fromhex("A0000000031010")
MASTERCARD = bytes.fromhex("A0000000041010")
UNIONPAY = bytes.fromhex("A000000333010101")


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def fixed_random(*draws: bytes) -> Callable[[int], bytes]:
    """The unpredictable number first (4 bytes), then the given draws, in order."""
    queue = [h("01020304"), *draws]

    def draw(n: int) -> bytes:
        if not queue:
            raise AssertionError("random source used more often than expected")
        out = queue.pop(0)
        assert len(out) == n, f"asked for {n} bytes, the test prepared {len(out)}"
        return out

    return draw


def app_of(config: TerminalConfig, aid: bytes) -> AppConfig:
    return next(a for a in config.applications if a.aid == aid)


def stamped(amount: int) -> TransactionRequest:
    """A request with the date, time and random source the driver would give it."""
    return TransactionRequest(amount=amount, date=TODAY, time=datetime.time(10, 0, 0), random=fixed_random())


def make_ctx(amount: int = 1000, aid: bytes = VISA, card: dict[int, str] | None = None,
             config: TerminalConfig | None = None, pre: Preprocessing | None = None,
             app: AppConfig | None = None, **request: object) -> KernelContext:
    config = config or load_config()
    app = app or app_of(config, aid)
    req = dataclasses.replace(stamped(amount), **request)  # type: ignore[arg-type]
    ctx = KernelContext(config=config, app=app, request=req, pre=pre or Preprocessing(ttq=app.ttq),
                        kernel=app.kernel, aid=aid)
    for tag, value in (card or {}).items():
        ctx.card_data[tag] = h(value)
        ctx.data[tag] = h(value)
    return ctx


# --- Entry Point pre-processing (Book B §3.1.1) ----------------------------------------------


def single_app_config(**app: object) -> tuple[TerminalConfig, AppConfig]:
    """Floor 30.00, CVM limit 50.00, transaction limit 150.00, TTQ 36004000 unless overridden."""
    fields: dict[str, object] = {"aid": VISA, "kernel": 3, "floor_limit": 3000, "cvm_required_limit": 5000,
                                 "transaction_limit": 15000, "ttq": h("36004000"), **app}
    a = AppConfig(**fields)  # type: ignore[arg-type]
    return TerminalConfig(applications=[a]), a


def pre_for(amount: int, **app: object) -> Preprocessing:
    config, a = single_app_config(**app)
    return preprocess(config, TransactionRequest(amount=amount))[a]


def test_zero_amount_allowed_asks_for_an_online_cryptogram() -> None:
    pre = pre_for(0, zero_amount_allowed=True)
    assert pre.zero_amount and not pre.not_allowed
    assert pre.ttq == h("36 80 40 00")  # byte 2 bit 8: online cryptogram required


def test_zero_amount_not_allowed() -> None:
    pre = pre_for(0, zero_amount_allowed=False)
    assert pre.zero_amount and pre.not_allowed


@pytest.mark.parametrize(("amount", "not_allowed"), [(14999, False), (15000, True), (15001, True)])
def test_transaction_limit_is_reached_at_the_limit(amount: int, not_allowed: bool) -> None:
    assert pre_for(amount).not_allowed is not_allowed


def test_no_transaction_limit_when_zero() -> None:
    assert not pre_for(10**9, transaction_limit=0).not_allowed


@pytest.mark.parametrize(("amount", "exceeded", "ttq_byte2"), [(2999, False, 0x00), (3000, False, 0x00),
                                                              (3001, True, 0x80)])
def test_floor_limit_is_exceeded_only_above_it(amount: int, exceeded: bool, ttq_byte2: int) -> None:
    pre = pre_for(amount)
    assert pre.floor_limit_exceeded is exceeded
    assert pre.ttq[1] & 0x80 == ttq_byte2


@pytest.mark.parametrize(("amount", "exceeded"), [(4999, False), (5000, True), (5001, True)])
def test_cvm_required_limit_is_reached_at_the_limit(amount: int, exceeded: bool) -> None:
    pre = pre_for(amount)
    assert pre.cvm_required_limit_exceeded is exceeded
    assert pre.ttq == (h("36 C0 40 00") if exceeded else h("36 80 40 00"))  # byte 2 bit 7: CVM required


def test_ttq_bits_of_the_configuration_are_cleared_first() -> None:
    # Book B §3.1.1.1: 'online cryptogram required' and 'CVM required' start at 0.
    assert pre_for(1000, ttq=h("36C04000")).ttq == h("36004000")
    assert pre_for(1000, ttq=h("B6E0C000")).ttq == h("B620C000")  # other bits copied as they are


def test_every_combination_not_allowed_is_try_another_interface_without_apdu() -> None:
    config, _ = single_app_config()
    gen = transaction(config, stamped(15000))
    with pytest.raises(StopIteration) as stop:
        next(gen)
    result = stop.value.value
    assert result.outcome.outcome is Outcome.TRY_ANOTHER_INTERFACE
    assert result.outcome.alternate_interface == "contact chip"


# --- Candidate list (Book B §3.3.2) ----------------------------------------------------------------


def directory(*entries: str) -> list[tlv.TLV]:
    nodes: list[tlv.TLV] = tlv.decode(h("".join(entries)))
    return nodes


def entry(aid: str, priority: str | None = None, kernel: str | None = None) -> str:
    body = "4F" + f"{len(h(aid)):02X}" + aid
    if priority is not None:
        body += "8701" + priority
    if kernel is not None:
        body += "9F2A01" + kernel
    return "61" + f"{len(h(body)):02X}" + body


def candidates_for(*entries: str, config: TerminalConfig | None = None, amount: int = 1000) -> list[tuple[str, int]]:
    config = config or load_config()
    pre = preprocess(config, TransactionRequest(amount=amount))
    return [(c.adf.hex().upper(), c.kernel) for c in build_candidates(directory(*entries), config, pre)]


def test_kernel_by_rid_without_kernel_identifier() -> None:
    got = candidates_for(entry("A0000000031010"), entry("A0000000041010"), entry("A000000333010101"))
    assert got == [("A0000000031010", 3), ("A0000000041010", 2), ("A000000333010101", 7)]


def test_kernel_identifier_must_match_the_combination() -> None:
    assert candidates_for(entry("A0000000031010", kernel="03")) == [("A0000000031010", 3)]
    assert candidates_for(entry("A0000000031010", kernel="02")) == []  # Visa AID on kernel 2: not supported


def test_unknown_rid_without_kernel_identifier_is_no_candidate() -> None:
    assert candidates_for(entry("A0000000251010")) == []


def test_partial_aid_match() -> None:
    longer = entry("A000000003101001")  # the configured AID A0000000031010 is a prefix
    assert candidates_for(longer) == [("A000000003101001", 3)]
    config = load_config()
    config.applications = [dataclasses.replace(a, partial_selection=False) for a in config.applications]
    assert candidates_for(longer, config=config) == []


def test_priority_and_directory_order() -> None:
    config = load_config()
    pre = preprocess(config, TransactionRequest(amount=1000))
    found = build_candidates(directory(entry("A0000000031010", "02"), entry("A0000000041010", "01"),
                                       entry("A000000333010101")), config, pre)
    assert [(c.priority, c.order) for c in found] == [(2, 0), (1, 1), (16, 2)]  # no 87: lowest priority
    # Entry Point selects priority 1 first, though it is second in the directory.
    gen = transaction(config, stamped(1000))
    assert next(gen).to_bytes() == h("00A404000E") + b"2PAY.SYS.DDF01" + b"\x00"
    fci = tlv.encode_tlv(0x6F, tlv.encode_tlv(0x84, b"2PAY.SYS.DDF01") + tlv.encode_tlv(0xA5, tlv.encode_tlv(
        0xBF0C, h(entry("A0000000031010", "02") + entry("A0000000041010", "01")))))
    select = gen.send(ResponseAPDU(fci, 0x90, 0x00))
    assert select.to_bytes() == h("00A4040007 A0000000041010 00")


def test_combinations_not_allowed_are_removed() -> None:
    # 150.00: at the transaction limit of every application in the default configuration.
    config = load_config()
    visa = app_of(config, VISA)
    config.applications = [dataclasses.replace(visa, transaction_limit=0) if a is visa else a
                           for a in config.applications]
    got = candidates_for(entry("A0000000031010"), entry("A0000000041010"), config=config, amount=15000)
    assert got == [("A0000000031010", 3)]


# --- Terminal action analysis (Book 3 §10.7) ----------------------------------------------------------


def taa(tvr: str, card: dict[int, str] | None = None, terminal_type: int = 0x22, **tacs: str) -> int:
    config = load_config()
    config.terminal_type = terminal_type
    app = dataclasses.replace(app_of(config, MASTERCARD), tac_denial=h(tacs.get("denial", "0000000000")),
                              tac_online=h(tacs.get("online", "0000000000")),
                              tac_default=h(tacs.get("default", "0000000000")))
    ctx = make_ctx(aid=MASTERCARD, config=config, app=app, card=card)
    ctx.tvr[:] = h(tvr)
    return terminal_action_analysis(ctx)


ZERO_IACS = {0x9F0D: "0000000000", 0x9F0E: "0000000000", 0x9F0F: "0000000000"}


def test_denial_by_terminal_action_code() -> None:
    assert taa("0000008000", ZERO_IACS, denial="0000008000", online="0000008000") == CID_AAC


def test_denial_by_issuer_action_code() -> None:
    card = {**ZERO_IACS, 0x9F0E: "0040000000"}  # IAC denial: expired application
    assert taa("0040000000", card, online="FFFFFFFFFF") == CID_AAC


def test_online_by_action_code() -> None:
    assert taa("0000008000", ZERO_IACS, online="0000008000") == CID_ARQC
    assert taa("0000008000", {**ZERO_IACS, 0x9F0F: "0000008000"}) == CID_ARQC


def test_no_match_is_tc() -> None:
    assert taa("0000008000", ZERO_IACS) == CID_TC
    assert taa("0000000000", {}, online="FFFFFFFFFF", denial="FFFFFFFFFF") == CID_TC


def test_absent_iac_denial_is_zeros_and_absent_iac_online_is_ones() -> None:
    # Book 3 §10.7: IAC-Denial absent = all 0; IAC-Online and IAC-Default absent = all 1.
    only_online_absent = {0x9F0D: "0000000000", 0x9F0E: "0000000000"}
    assert taa("0000000100", only_online_absent) == CID_ARQC  # any TVR bit goes online
    assert taa("0000000100", {0x9F0D: "0000000000", 0x9F0F: "0000000000"}) == CID_TC  # no denial


def test_offline_only_terminal_uses_the_default_codes() -> None:
    # Terminal type 23: attended, offline only. The online codes are not looked at.
    assert taa("0000008000", ZERO_IACS, terminal_type=0x23, online="FFFFFFFFFF") == CID_TC
    assert taa("0000008000", ZERO_IACS, terminal_type=0x23, default="0000008000") == CID_AAC
    assert taa("0000008000", {**ZERO_IACS, 0x9F0D: "0000008000"}, terminal_type=0x23) == CID_AAC
    no_default = {0x9F0E: "0000000000", 0x9F0F: "0000000000"}  # IAC-Default absent: all ones
    assert taa("0000000100", no_default, terminal_type=0x23) == CID_AAC
    assert taa("0000000000", no_default, terminal_type=0x23) == CID_TC


# --- CVM List processing (Book 3 §10.5) -------------------------------------------------------------------

ONLINE_PIN, SIGNATURE, NO_CVM = 0x40, 0x20, 0x08  # 9F33 byte 2 bits


def cvm(rules: str, capability: int, amount: int = 1000, x: str = "00000000", y: str = "00000000",
        aip: str = "1880", currency: str | None = "0978") -> tuple[Cvm, KernelContext]:
    card = {0x82: aip, 0x8E: x + y + rules}
    if currency is not None:
        card[0x9F42] = currency
    ctx = make_ctx(amount=amount, aid=MASTERCARD, card=card)
    return cvm_list_processing(ctx, capability), ctx


def test_cvm_always_no_cvm() -> None:
    got, ctx = cvm("1F00", NO_CVM)
    assert got is Cvm.NO_CVM
    assert ctx.data[0x9F34] == h("1F0002")
    assert ctx.tsi[0] & 0x40  # TSI byte 1 bit 7: cardholder verification performed


def test_cvm_if_terminal_supports() -> None:
    got, ctx = cvm("4203 1E03 1F03", SIGNATURE)
    assert got is Cvm.SIGNATURE
    got, ctx = cvm("4203 1E03 1F03", ONLINE_PIN | SIGNATURE)
    assert got is Cvm.ONLINE_PIN
    assert ctx.data[0x9F34] == h("420300")  # online PIN: result unknown
    assert ctx.tvr[2] & 0x04  # TVR byte 3 bit 3: online PIN entered


@pytest.mark.parametrize(("condition", "amount", "applies"), [
    ("06", 999, True), ("06", 1000, False),    # under X (X = 10.00)
    ("07", 1001, True), ("07", 1000, False),   # over X
    ("08", 1999, True), ("08", 2000, False),   # under Y (Y = 20.00)
    ("09", 2001, True), ("09", 2000, False),   # over Y
])
def test_cvm_amount_conditions(condition: str, amount: int, applies: bool) -> None:
    got, _ = cvm(f"1F{condition} 0200", NO_CVM | ONLINE_PIN, amount=amount, x="000003E8", y="000007D0")
    assert got is (Cvm.NO_CVM if applies else Cvm.ONLINE_PIN)


def test_cvm_amount_condition_needs_the_application_currency() -> None:
    got, _ = cvm("1F06 0200", NO_CVM | ONLINE_PIN, amount=1, x="000003E8", currency="0840")  # USD card, EUR sale
    assert got is Cvm.ONLINE_PIN


def test_cvm_apply_succeeding_rule() -> None:
    # 42 00: online PIN, always, b7 set: when it cannot be done, the next rule is tried.
    got, ctx = cvm("4200 1F00", NO_CVM)
    assert got is Cvm.NO_CVM and ctx.data[0x9F34] == h("1F0002")
    # 02 00: the same without b7: cardholder verification fails at once.
    got, ctx = cvm("0200 1F00", NO_CVM)
    assert got is Cvm.NA
    assert ctx.tvr[2] & 0x80  # TVR byte 3 bit 8: cardholder verification was not successful
    assert ctx.data[0x9F34][2] == 0x01  # result: failed


def test_unrecognised_cvm_sets_its_tvr_bit() -> None:
    got, ctx = cvm("5000 1F00", NO_CVM)  # 10: RFU method code, b7 set
    assert got is Cvm.NO_CVM
    assert ctx.tvr[2] & 0x40  # TVR byte 3 bit 7: unrecognised CVM
    _, ctx = cvm("1F00", NO_CVM)
    assert not ctx.tvr[2] & 0x40


def test_no_rule_applies() -> None:
    # X = 1.00: the amount (10.00) is not under X, and 'over X' names a CVM the terminal lacks.
    got, ctx = cvm("1F06 0207", NO_CVM, amount=1000, x="00000064")
    assert got is Cvm.NA
    assert ctx.tvr[2] & 0x80
    assert ctx.data[0x9F34] == h("3F0001")


def test_cvm_not_supported_by_the_card() -> None:
    got, ctx = cvm("0200", ONLINE_PIN, aip="0880")  # AIP byte 1 bit 5 clear
    assert got is Cvm.NO_CVM
    assert ctx.data[0x9F34] == h("3F0000")
    assert not ctx.tvr[2] & 0x80


def test_cvm_bypassed_does_not_set_the_tsi_bit() -> None:
    _, ctx = cvm("0200", ONLINE_PIN, aip="0880")
    assert not ctx.tsi[0] & 0x40


def test_signature_result_is_unknown() -> None:
    got, ctx = cvm("1E00", SIGNATURE)
    assert got is Cvm.SIGNATURE
    assert ctx.data[0x9F34] == h("1E0000")


# --- Reader CVM of kernels 3 and 7 (Book C-3 §5.7) --------------------------------------------------


def ccvm(ttq: str, ctq: str | None) -> tuple[Cvm, KernelContext]:
    ctx = make_ctx(pre=Preprocessing(ttq=h(ttq)))
    return contactless_cvm(ctx, h(ctq) if ctq is not None else None), ctx


def test_no_cvm_when_not_required() -> None:
    assert ccvm("36804000", "8000")[0] is Cvm.NO_CVM  # TTQ byte 2 bit 7 clear


def test_cdcvm_performed_on_the_device() -> None:
    assert ccvm("36C04000", "0080")[0] is Cvm.CONFIRMATION_CODE_VERIFIED  # CTQ byte 2 bit 8; TTQ byte 3 bit 7


def test_online_pin_asked_by_the_card() -> None:
    assert ccvm("36C04000", "8000")[0] is Cvm.ONLINE_PIN


def test_signature_asked_by_the_card() -> None:
    assert ccvm("36C04000", "4000")[0] is Cvm.SIGNATURE


@pytest.mark.parametrize(("ttq", "ctq"), [
    ("30C00000", None),     # the reader supports neither online PIN nor signature, the card sends no CTQ
    ("32C00000", "8000"),   # the card wants online PIN, the reader only signature
    ("34C00000", "4000"),   # the card wants signature, the reader only online PIN
])
def test_no_cvm_possible_declines(ttq: str, ctq: str | None) -> None:
    ctx = make_ctx(pre=Preprocessing(ttq=h(ttq)))
    with pytest.raises(KernelStop) as stop:
        contactless_cvm(ctx, h(ctq) if ctq else None)
    assert stop.value.outcome is Outcome.DECLINED
    assert ctx.tvr[2] & 0x80


# --- Processing restrictions (Book 3 §10.4) -----------------------------------------------------------


def restrictions(card: dict[int, str], transaction_type: int = 0x00) -> bytes:
    ctx = make_ctx(card=card, transaction_type=transaction_type)
    processing_restrictions(ctx)
    return bytes(ctx.tvr)


@pytest.mark.parametrize(("expiry", "expired"), [("250313", True), ("250314", False), ("250315", False)])
def test_expired_application(expiry: str, expired: bool) -> None:
    assert bool(restrictions({0x5F24: expiry})[1] & 0x40) is expired  # TVR byte 2 bit 7


@pytest.mark.parametrize(("effective", "not_yet"), [("250315", True), ("250314", False), ("240101", False)])
def test_application_not_yet_effective(effective: str, not_yet: bool) -> None:
    assert bool(restrictions({0x5F25: effective})[1] & 0x20) is not_yet  # TVR byte 2 bit 6


def test_expiry_in_the_previous_century() -> None:
    assert restrictions({0x5F24: "991231"})[1] & 0x40


def test_effective_date_in_the_previous_century() -> None:
    assert not restrictions({0x5F25: "990101"})[1] & 0x20


def test_application_versions_differ() -> None:
    assert restrictions({0x9F08: "0095"})[1] & 0x80  # terminal 0096 for Visa
    assert not restrictions({0x9F08: "0096"})[1] & 0x80
    assert not restrictions({})[1] & 0x80  # absent: no check


DOMESTIC, INTERNATIONAL = "0250", "0840"  # the terminal is in France (9F1A 0250)


@pytest.mark.parametrize(("country", "auc", "kind", "allowed"), [
    (DOMESTIC, "2100", 0x00, True),        # domestic goods
    (DOMESTIC, "1100", 0x00, False),       # only international goods
    (INTERNATIONAL, "1100", 0x00, True),
    (INTERNATIONAL, "2100", 0x00, False),
    (DOMESTIC, "2000", 0x00, False),       # byte 1 bit 1 'valid at terminals other than ATMs' clear
    (DOMESTIC, "8100", 0x01, True),        # domestic cash
    (DOMESTIC, "4100", 0x01, False),
    (INTERNATIONAL, "4100", 0x01, True),
    (DOMESTIC, "2180", 0x09, True),        # domestic cashback
    (DOMESTIC, "2140", 0x09, False),
    (INTERNATIONAL, "1140", 0x09, True),
    (INTERNATIONAL, "1180", 0x09, False),
])
def test_application_usage_control(country: str, auc: str, kind: int, allowed: bool) -> None:
    tvr = restrictions({0x5F28: country, 0x9F07: auc}, transaction_type=kind)
    assert bool(tvr[1] & 0x10) is not allowed  # TVR byte 2 bit 5: requested service not allowed


# --- AFL (Book 3 §10.2) --------------------------------------------------------------------------------


def test_parse_afl() -> None:
    assert parse_afl(h("08010100 10010301")) == [(1, 1, 1, 0), (2, 1, 3, 1)]
    assert parse_afl(b"") == []


def test_parse_afl_all_records_for_oda() -> None:
    assert parse_afl(h("08010202")) == [(1, 1, 2, 2)]


@pytest.mark.parametrize("afl", [
    "080101",            # not a multiple of 4
    "0801010010",
    "00010100",          # SFI 0
    "F8010100",          # SFI 31
    "08000100",          # first record 0
    "08030200",          # last record before the first
    "08010203",          # 3 records for ODA out of 2
    "09010100",          # low 3 bits of byte 1 not zero
])
def test_parse_afl_errors(afl: str) -> None:
    with pytest.raises(KernelStop) as stop:
        parse_afl(h(afl))
    assert stop.value.outcome is Outcome.END_APPLICATION


# --- Terminal risk management: random transaction selection (Book 3 §10.6.2) -----------------------------


def trm(amount: int, draw: int | None, target: int = 20, maximum: int = 60, threshold: int = 1000) -> KernelContext:
    """Floor limit 30.00 (default). ``draw`` is the random byte the terminal gets; the
    selection number is byte % 99 + 1 (1 to 99). None: no draw may happen."""
    config = load_config()
    config.random_selection_percent, config.random_selection_max_percent = target, maximum
    config.random_selection_threshold = threshold
    app = app_of(config, MASTERCARD)
    pre = preprocess(config, TransactionRequest(amount=amount))[app]
    draws = () if draw is None else (bytes([draw]),)
    ctx = make_ctx(amount=amount, aid=MASTERCARD, config=config, app=app, pre=pre, random=fixed_random(*draws))
    terminal_risk_management(ctx)
    return ctx


def selected(ctx: KernelContext) -> bool:
    return bool(ctx.tvr[3] & 0x10)  # TVR byte 4 bit 5: randomly selected for online processing


@pytest.mark.parametrize(("amount", "number", "chosen"), [
    (500, 20, True), (500, 21, False),       # below the threshold: the target percentage, 20
    (999, 20, True), (999, 21, False),
    (2000, 40, True), (2000, 41, False),     # 20 + (60 - 20) * (2000 - 1000) / (3000 - 1000) = 40
    (1500, 30, True), (1500, 31, False),     # 20 + 40 * 500 / 2000 = 30
    (3000, 60, True), (3000, 61, False),     # at the floor limit: the maximum, 60
])
def test_random_selection(amount: int, number: int, chosen: bool) -> None:
    ctx = trm(amount, number - 1)  # byte number-1 gives selection number `number`
    assert selected(ctx) is chosen
    assert not ctx.tvr[3] & 0x80
    assert ctx.tsi[0] & 0x08  # TSI byte 1 bit 4: terminal risk management performed


def test_above_the_floor_limit_no_random_selection() -> None:
    ctx = trm(3001, None)
    assert ctx.tvr[3] & 0x80 and not selected(ctx)  # floor limit exceeded


def test_random_selection_off() -> None:
    assert not selected(trm(500, None, target=0, maximum=0))


def test_biased_selection_with_zero_target() -> None:
    assert selected(trm(2999, 0, target=0, maximum=50))


# --- DOL lengths (Book 3 §5.4) and the size of one short C-APDU (ISO/IEC 7816-4 §5.1) --------


@pytest.mark.parametrize("pdol", [
    "9F02 84 40000000",  # a multi-byte length: one byte in a DOL
    "9F01 7F 9F02 7F 9F03 7F",  # 381 bytes of DOL data: more than a command carries
    "9F01 7F 9F02 7E",  # 253 bytes: fits a command alone, not inside the 83 template of GPO
])
def test_a_pdol_no_command_can_carry_ends_the_application(pdol: str) -> None:
    gpo = get_processing_options(make_ctx(), h(pdol))
    with pytest.raises(KernelStop) as stop:
        next(gpo)
    assert stop.value.outcome is Outcome.END_APPLICATION
    assert "PDOL" in stop.value.reason


def test_the_largest_pdol_data_a_gpo_carries_is_sent() -> None:
    gpo = get_processing_options(make_ctx(), h("9F01 7F 9F02 7D"))
    command = next(gpo)
    assert len(command.data) == 255 and command.data[:3] == h("83 81 FC")
