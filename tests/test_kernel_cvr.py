"""The Card Verification Results the emulated cards set, as a terminal sees
them in the Issuer Application Data (9F10) of a tap: Visa's "new card" and
"offline dynamic data authentication performed", Mastercard's "upper
cumulative offline limit exceeded" (CDA in the second GENERATE AC is in
test_kernel_c2.py). Layouts: docs/card-application.md#cvr-and-iad."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path

from emvkit.terminal.config_files import load_config
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.perso.builtin import load_builtin
from emvkit.terminal.session import Tap, run_transaction
from emvkit.terminal.transport import open_transport

REQUEST = {"date": datetime.date(2026, 1, 15), "time": datetime.time(9, 30), "random": lambda n: b"\x5a" * n}


def tap(url: str, amount: int) -> Tap:
    with open_transport(url) as card:
        return run_transaction(card, load_config(), TransactionRequest(amount=amount, **REQUEST))  # type: ignore[arg-type]


def visa_cvr(iad: bytes) -> bytes:
    assert iad[0] == 0x06 and iad[3] == 0x03  # 06 | DKI | CVN | 03 | CVR (3)
    return iad[4:7]


def test_visa_new_card_with_fdda_performed() -> None:
    r = tap("emu:visa", 1234).result  # offline approval with fDDA
    assert r.outcome.outcome is Outcome.APPROVED and r.oda == "fDDA"
    cvr = visa_cvr(r.data[0x9F10])
    assert cvr[1] & 0x10, "CVR byte 2 b5: new card (never approved online)"
    assert cvr[2] & 0x02, "CVR byte 3 b2: offline dynamic data authentication performed"


def test_visa_online_without_fdda_is_not_dda_performed() -> None:
    r = tap("emu:visa", 4000).result  # ARQC; the default TTQ does not ask for ODA for online authorisations
    assert r.outcome.outcome is Outcome.ONLINE_REQUEST and r.oda == "not performed"
    cvr = visa_cvr(r.data[0x9F10])
    assert not cvr[2] & 0x02
    assert cvr[1] & 0x10


def test_mastercard_upper_cumulative_offline_limit(tmp_path: Path) -> None:
    profile = copy.deepcopy(load_builtin("mastercard"))
    profile["applications"][0]["risk"]["upper_cumulative_offline_limit"] = 2000
    path = tmp_path / "mc-ucota.json"
    path.write_text(json.dumps(profile))
    path.chmod(0o600)  # the profile holds the card's keys
    r = tap(f"emu:{path}", 2500).result  # below the floor limit: the terminal asks for a TC
    assert r.outcome.outcome is Outcome.ONLINE_REQUEST and r.cid == b"\x80"
    cvr = r.data[0x9F10][2:8]  # DKI | CVN | CVR (6)
    assert cvr[4] & 0x10, "CVR byte 5 b5: upper cumulative offline limit exceeded"
    assert not cvr[4] & 0x20, "15000, the lower cumulative limit, is not exceeded"
    within = tap("emu:mastercard", 2500).result
    assert within.outcome.outcome is Outcome.APPROVED and not within.data[0x9F10][6] & 0x10
