"""The kernels against scripted cards that are not emvkit's emulator.

Each session in ``tests/vectors/cards/*.apdu`` is a scripted-transport text
file (``> C-APDU`` / ``< R-APDU``, see :mod:`emvkit.terminal.transport.scripted`)
written from the specifications and public sample data (provenance in
``tests/vectors/cards/README.md``). Every command the kernel sends must match
the script byte for byte, so the PDOL and CDOL1 data written in the files by
hand are checked too. A session's header holds, in ``#: key = value`` lines,
what the merchant asked for (amount, date, time, the pinned unpredictable
number, terminal overrides) and the expected result, also written by hand.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from emvkit.terminal.config_files import load_config
from emvkit.terminal.errors import ScriptMismatch, TransportError
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import Tap, run_transaction
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.scripted import ScriptedTransport, parse_script

CARDS = Path(__file__).resolve().parent / "vectors" / "cards"
SESSIONS = sorted(CARDS.glob("*.apdu"))

# Header keys that describe the request and the terminal; every other key is an expectation.
REQUEST_KEYS = {"amount", "date", "time", "random", "type", "capabilities", "terminal_type"}


@dataclass
class Session:
    """One scripted card session and what its header says."""

    path: Path
    meta: dict[str, str]

    @property
    def url(self) -> str:
        return f"scripted:{self.path}"

    @property
    def expected(self) -> dict[str, str]:
        return {k: v for k, v in self.meta.items() if k not in REQUEST_KEYS}

    def request(self, **overrides: object) -> TransactionRequest:
        meta = self.meta
        request = TransactionRequest(amount=int(meta["amount"]))
        if "date" in meta:
            request.date = datetime.date.fromisoformat(meta["date"])
        if "time" in meta:
            request.time = datetime.time.fromisoformat(meta["time"])
        if "random" in meta:
            request.random = pinned_random(meta["random"])
        if "type" in meta:
            request.transaction_type = int(meta["type"], 16)
        return dataclasses.replace(request, **overrides)  # type: ignore[arg-type]

    def config(self) -> TerminalConfig:
        config = load_config()
        if "capabilities" in self.meta:
            config.capabilities = bytes.fromhex(self.meta["capabilities"])
        if "terminal_type" in self.meta:
            config.terminal_type = int(self.meta["terminal_type"], 16)
        return config


def load_session(path: Path) -> Session:
    """The one loader for the session files: ``#: key = value`` header lines."""
    meta: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("#:"):
            key, _, value = line[2:].partition("=")
            meta[key.strip()] = value.strip()
    assert "amount" in meta, f"{path.name}: no '#: amount' line"
    return Session(path, meta)


def pinned_random(hex_bytes: str) -> Callable[[int], bytes]:
    """A random source that always answers with the given bytes (repeated as needed)."""
    pool = bytes.fromhex(hex_bytes)

    def draw(n: int) -> bytes:
        return (pool * (n // len(pool) + 1))[:n]

    return draw


def run(session: Session, **overrides: object) -> tuple[Tap, ScriptedTransport]:
    transport = open_transport(session.url)
    assert isinstance(transport, ScriptedTransport)
    with transport:
        tap = run_transaction(transport, session.config(), session.request(**overrides))
    return tap, transport


def session(name: str) -> Session:
    return load_session(CARDS / name)


# --- every session: the outcome and data its header expects --------------------------------


@pytest.mark.parametrize("path", SESSIONS, ids=[p.stem for p in SESSIONS])
def test_session_outcome(path: Path) -> None:
    s = load_session(path)
    tap, transport = run(s)
    r = tap.result
    want = s.expected
    assert r.outcome.outcome.value == want["outcome"], r.error
    assert transport.finished, f"script not consumed: stopped at step {transport.position + 1}"
    checks: dict[str, Callable[[], object]] = {
        "kernel": lambda: str(r.kernel),
        "aid": lambda: r.aid.hex().upper(),
        "label": lambda: r.label,
        "pan": lambda: r.pan,
        "cid": lambda: r.data.get(0x9F27, b"").hex().upper(),
        "atc": lambda: r.data.get(0x9F36, b"").hex().upper(),
        "cryptogram": lambda: r.data.get(0x9F26, b"").hex().upper(),
        "tvr": lambda: r.tvr.hex().upper(),
        "tsi": lambda: r.tsi.hex().upper(),
        "cvm": lambda: r.outcome.cvm.value,
        "cvm_results": lambda: r.data.get(0x9F34, b"").hex().upper(),
    }
    for key, value in want.items():
        if key == "outcome":
            continue
        if key == "error":
            assert value in r.error, f"error {r.error!r} does not mention {value!r}"
            continue
        assert checks[key]() == value, f"{key}: got {checks[key]()!r}, the session expects {value!r}"


def test_sessions_cover_the_three_kernels_online() -> None:
    online = {load_session(p).meta.get("kernel") for p in SESSIONS
              if load_session(p).meta["outcome"] == Outcome.ONLINE_REQUEST.value}
    assert online >= {"2", "3", "7"}


def test_every_session_has_a_provenance_entry() -> None:
    readme = (CARDS / "README.md").read_text()
    for path in SESSIONS:
        assert f"`{path.name}`" in readme, f"{path.name} is not described in README.md"


# --- Visa qVSDC, kernel 3 ----------------------------------------------------------------------


def test_visa_qvsdc_online_data_record() -> None:
    tap, _ = run(session("visa_qvsdc_arqc.apdu"))
    r = tap.result
    assert r.outcome.outcome is Outcome.ONLINE_REQUEST
    # What the acquirer needs, as the card sent it (GPO response and records).
    assert r.data[0x57] == bytes.fromhex("4761739001010119D27122010000000000000F")
    assert r.data[0x9F10] == bytes.fromhex("06010A03A00000")
    assert r.data[0x5F34] == b"\x01"
    assert r.data[0x5F24] == bytes.fromhex("271231")
    # And what the terminal sent in the PDOL.
    assert r.data[0x9F66] == bytes.fromhex("36804000")
    assert r.data[0x9F37] == bytes.fromhex("1A2B3C4D")
    assert r.data[0x9A] == bytes.fromhex("250314")
    assert r.oda == "not performed"  # no "ODA for online authorisations" in the TTQ
    assert tap.apdus == 5
    assert r.outcome.data_record_present


def test_visa_get_response_chain_and_wrong_le_are_handled_below_the_kernel() -> None:
    tap, transport = run(session("visa_qvsdc_arqc_chained.apdu"))
    assert transport.finished
    commands = [e.command.hex().upper() for e in tap.trace.exchanges]
    assert commands[3:5] == ["00C0000040", "00C000000C"]  # GET RESPONSE twice, Le from 61xx
    assert commands[5:7] == ["00B2010C00", "00B2010C48"]  # READ RECORD re-sent with Le from 6C48
    # The kernel saw the same final responses as from the plain session.
    plain, _ = run(session("visa_qvsdc_arqc.apdu"))
    assert tap.result.cryptogram == plain.result.cryptogram == bytes.fromhex("D39E7A164C2B5801")
    assert tap.result.data[0x9F6C] == bytes.fromhex("3000")  # from the second GET RESPONSE
    assert tap.apdus == 8  # PPSE, SELECT, GPO, 2 x GET RESPONSE, READ RECORD twice, READ RECORD


def test_visa_script_mismatch_is_a_link_error_try_again() -> None:
    """A command other than the scripted one raises ScriptMismatch in the transport; the
    driver throws it into the kernel, and since ScriptMismatch is a TransportError, Entry
    Point ends with Try Again (Book A: the card is presented again) and keeps the message."""
    tap, transport = run(session("visa_qvsdc_arqc.apdu"), amount=4100)  # GPO data differs
    r = tap.result
    assert r.outcome.outcome is Outcome.TRY_AGAIN
    assert r.outcome.start == "B"
    assert "step 3: expected 80A80000" in r.error and "000000004100" in r.error
    assert transport.position == 2 and not transport.finished
    assert r.kernel == 3  # the kernel had started: its context gives the result
    assert issubclass(ScriptMismatch, TransportError)


def test_visa_card_torn_away_during_read_record() -> None:
    steps = parse_script((CARDS / "visa_qvsdc_arqc.apdu").read_text())
    steps[3] = (steps[3][0], None)  # READ RECORD SFI 1 record 1: the card leaves the field
    transport = ScriptedTransport(steps)
    s = session("visa_qvsdc_arqc.apdu")
    with transport:
        tap = run_transaction(transport, s.config(), s.request())
    assert tap.result.outcome.outcome is Outcome.TRY_AGAIN
    assert "card removed" in tap.result.error
    assert transport.position == 4


def test_visa_duplicate_tag_ends_the_application() -> None:
    tap, transport = run(session("visa_duplicate_tag.apdu"))
    assert tap.result.outcome.outcome is Outcome.END_APPLICATION
    assert "5F34" in tap.result.error and "twice" in tap.result.error
    assert transport.finished  # nothing sent after the contradicting record


# --- Mastercard, kernel 2 --------------------------------------------------------------------------


def test_mastercard_generate_ac_without_cda() -> None:
    tap, _ = run(session("mastercard_mchip_arqc.apdu"))
    r = tap.result
    genac = tap.trace.exchanges[-1].command
    assert genac[:4] == bytes.fromhex("80AE8000")  # ARQC, CDA not requested (P1 bit 5 clear)
    assert r.oda == "not performed"
    assert r.data[0x9F10] == bytes.fromhex("0110A00003220000000000000000000000FF")
    assert r.pan == "5413339000001513"


def test_mastercard_format_1_responses() -> None:
    tap, transport = run(session("mastercard_format1.apdu"))
    r = tap.result
    assert transport.finished
    assert r.data[0x82] == bytes.fromhex("1980")
    assert r.data[0x94] == bytes.fromhex("0801010010010200")
    assert r.data[0x9F27] == b"\x80"
    assert r.data[0x9F36] == bytes.fromhex("0022")
    assert r.data[0x9F26] == bytes.fromhex("4F0A9C31E2D87B65")
    assert r.data[0x9F10] == bytes.fromhex("0110A00003220000000000000000000000FF")  # the rest of format 1
    assert r.oda == "not performed"  # the card offers CDA (AIP 1980) but the terminal (E068C0) does not


def test_mastercard_tc_to_an_arqc_request_ends_the_application() -> None:
    tap, _ = run(session("mastercard_tc_for_arqc.apdu"))
    r = tap.result
    assert r.outcome.outcome is Outcome.END_APPLICATION
    assert r.error == "the card answered TC to a request for ARQC"
    assert not r.outcome.data_record_present


def test_mastercard_magstripe_only_card_ends_after_gpo() -> None:
    """Book C-2 S3.16-S3.18 and S3.90: a card without EMV mode on a kernel without
    mag-stripe mode: End Application with "Error - other card", nothing read."""
    tap, transport = run(session("mastercard_magstripe_only.apdu"))
    r = tap.result
    assert transport.finished and tap.apdus == 3  # PPSE, SELECT, GPO: no READ RECORD
    assert r.outcome.outcome is Outcome.END_APPLICATION
    assert r.outcome.ui_message == "Insert, swipe or try another card"
    assert "AIP 0000" in r.error and "card data missing" not in r.error


@pytest.mark.parametrize(("name", "kernel", "method", "bit"), [
    ("mastercard_cda_sfi11_not_template.apdu", 2, "CDA", 0x04),  # TVR byte 1 b3: CDA failed
    ("visa_fdda_sfi11_not_template.apdu", 3, "fDDA", 0x08),  # byte 1 b4: DDA failed (fDDA is a DDA)
])
def test_oda_record_in_sfi_11_not_a_70_template(name: str, kernel: int, method: str, bit: int) -> None:
    """EMV 4.4 Book 3 §10.3: a record read for ODA that is not coded with tag 70 makes
    ODA performed and failed, in SFI 11-30 as in SFI 1-10."""
    tap, transport = run(session(name))
    r = tap.result
    assert transport.finished and r.kernel == kernel
    assert (r.oda, r.oda_result) == (method, "oda_record_not_template")
    assert r.oda_failure is not None and "SFI 11" in r.oda_failure.message
    assert r.tvr[0] == bit and r.tsi[0] & 0x80
    assert r.oda_certificates == ()  # failed before any certificate was opened


# --- UnionPay, kernel 7 -------------------------------------------------------------------------


def test_unionpay_wildcards_accept_any_unpredictable_number_and_date() -> None:
    s = session("unionpay_qpboc_arqc.apdu")
    for un in ("00000000", "FFFFFFFF"):
        tap, transport = run(s, random=pinned_random(un), date=datetime.date(2031, 7, 9))
        assert transport.finished
        assert tap.result.outcome.outcome is Outcome.ONLINE_REQUEST
        gpo = tap.trace.exchanges[2].command
        assert gpo[-9:-1] == bytes.fromhex("310709 00" + un)  # date, type, UN as sent


def test_unionpay_online_pin_from_the_ctq() -> None:
    tap, _ = run(session("unionpay_qpboc_arqc.apdu"))
    r = tap.result
    assert r.kernel == 7
    assert r.outcome.cvm.value == "Online PIN"
    assert r.data[0x9F66] == bytes.fromhex("36C04000")  # CVM required: 60.00 >= 50.00


# --- Entry Point -----------------------------------------------------------------------------------


def test_next_candidate_after_a_failed_selection() -> None:
    tap, _ = run(session("ppse_first_choice_not_found.apdu"))
    names = [step.name for step in tap.result.steps]
    assert "SELECT A0000000041010" in names
    failed = tap.result.steps[names.index("SELECT A0000000041010")]
    assert "6A82" in failed.detail
    assert tap.result.aid == bytes.fromhex("A0000000031010")


def test_select_next_after_gpo_6985() -> None:
    tap, _ = run(session("gpo_6985_select_next.apdu"))
    steps = [(s.name, s.detail) for s in tap.result.steps]
    assert any(name == "Select Next" and "6985" in detail for name, detail in steps)
    assert tap.result.kernel == 2
    assert tap.result.aid == bytes.fromhex("A0000000041010")
    assert tap.result.label == "MASTERCARD"


@pytest.mark.parametrize("name", ["ppse_not_found.apdu", "ppse_empty_directory.apdu"])
def test_no_directory_no_candidates(name: str) -> None:
    tap, transport = run(session(name))
    r = tap.result
    assert r.outcome.outcome is Outcome.END_APPLICATION
    assert r.kernel is None and r.aid == b""
    assert r.outcome.ui_message == "Insert, swipe or try another card"
    assert transport.finished and tap.apdus == 1
