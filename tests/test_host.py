"""The issuer host simulator against the real card application.

Each test drives a built-in card (emvkit.firmware.payapp.card.Card) to an ARQC,
sends what a terminal would send to the host, and, where the card takes part
in issuer authentication, hands the host's answer back to the card in the
second GENERATE AC: the card's own ARPC check (firmware/crypto/emv.py) and
the host's (pyemv) must agree.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from emvkit.firmware import tlv
from emvkit.firmware.crypto import emv as emvcrypto
from emvkit.terminal.config_files import load_config
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.host.api import AuthorisationRequest, AuthorisationResponse
from emvkit.terminal.host.authlog import AuthLog, scrub
from emvkit.terminal.host.issuer import CSU_APPROVED, CSU_DECLINED, PROPRIETARY_AUTH_DATA, IssuerHost
from emvkit.terminal.host.keys import IssuerKey, IssuerKeys
from emvkit.terminal.host.rules import Rules, load_blocked
from emvkit.terminal.host.secret import HostSecret
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from tests.cardutil import Exchange, flat, generate_ac, gpo, make_card, profile, select, terminal_data

AIDS = {"visa": "A0000000031010", "mastercard": "A0000000041010", "unionpay": "A000000333010101"}
SCHEMES = tuple(AIDS)
PDOL = bytes.fromhex("9F66049F02069F03069F1A0295055F2A029A039C019F3704")
CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F35019F3403")
CDOL2 = bytes.fromhex("8A02910A95059F3704")
TTQ_LEGACY = bytes.fromhex("80004000")  # no EMV mode: AIP/AFL from GPO, then GENERATE AC
TTQ_QUICK_ONLINE = bytes.fromhex("36804000")  # qVSDC/qPBOC, online cryptogram required

CARD_TAGS = (0x9F26, 0x9F27, 0x9F10, 0x9F36)
TERMINAL_TAGS = (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37, 0x9F35, 0x9F34)


@dataclass
class Online:
    """A card that has produced an ARQC, and the request a terminal sends for it."""

    card: Exchange
    terminal: dict[int, bytes]
    request: AuthorisationRequest

    def second_generate_ac(self, response: AuthorisationResponse, iad: bytes | None = None) -> dict[int, bytes]:
        """The card's answer to the issuer's response (CDOL2: 8A, 91, 95, 9F37)."""
        data = tlv.build_dol(CDOL2, {0x8A: response.arc,
                                     0x91: iad if iad is not None else response.issuer_authentication_data or b"",
                                     0x95: bytes(5), 0x9F37: self.terminal[0x9F37]})
        return flat(self.card.ok(generate_ac(0x40 if response.approved else 0x00, data)))


def start(name: str, doc: dict[str, Any] | None = None) -> Exchange:
    x = make_card(doc if doc is not None else profile(name))
    x.ok(select(bytes.fromhex(AIDS[name])))
    return x


def arqc(x: Exchange, name: str, amount: int = 1000, quick: bool = False, un: bytes = bytes.fromhex("A1B2C3D4"),
         pan: str | None = None) -> Online:
    """The next transaction on the selected card, up to its ARQC."""
    t = terminal_data(t9F02=bytes.fromhex(f"{amount:012d}"),
                      t9F66=TTQ_QUICK_ONLINE if quick else TTQ_LEGACY, t9F37=un)
    if name == "mastercard":
        first = flat(x.ok(gpo(b"")))
    else:
        first = flat(x.ok(gpo(tlv.build_dol(PDOL, t))))
    if not quick:
        first.update(flat(x.ok(generate_ac(0x80, tlv.build_dol(CDOL1, t)))))
    assert first[0x9F27] == b"\x80", "the card should ask to go online"
    icc = {tag: t[tag] for tag in TERMINAL_TAGS}
    icc.update({tag: first[tag] for tag in CARD_TAGS})
    icc[0x82] = first[0x82]
    secrets, app = x.card.profile.secrets, x.card.app
    assert secrets is not None and app is not None
    request = AuthorisationRequest(pan=pan or str(secrets.pan), amount=amount, currency=t[0x5F2A], icc_data=icc,
                                   psn=str(secrets.psn), track2=app.find(0x57), terminal_id="TERM0001", stan=7)
    return Online(x, t, request)


def online(name: str, **kwargs: Any) -> Online:
    return arqc(start(name), name, **kwargs)


def next_online(previous: Online, name: str, **kwargs: Any) -> Online:
    """Another transaction on the same card (a new ATC)."""
    previous.card.ok(select(bytes.fromhex(AIDS[name])))
    return arqc(previous.card, name, **kwargs)


def flip(value: bytes, bit: int = 0) -> bytes:
    out = bytearray(value)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


@pytest.fixture
def host() -> IssuerHost:
    return IssuerHost.builtin()


# --- approvals: the card accepts the host's ARPC ---


@pytest.mark.parametrize("name", SCHEMES)
def test_approved_and_the_card_accepts_the_arpc(host: IssuerHost, name: str) -> None:
    tx = online(name)
    response = host.authorise(tx.request)
    assert (response.approved, response.response_code, response.arc, response.reason) == (True, "00", b"00", "")
    iad = response.issuer_authentication_data
    assert iad is not None and len(iad) == 10  # what the card's CDOL2 asks for
    assert response.icc_data == {0x91: iad}
    if name == "visa":  # method 2: ARPC(4) || CSU(4) || proprietary data(2)
        assert iad[4:] == CSU_APPROVED + PROPRIETARY_AUTH_DATA
    else:  # method 1: ARPC(8) || ARC(2)
        assert iad[8:] == b"00"
    second = tx.second_generate_ac(response)
    assert second[0x9F27] == b"\x40"  # TC: issuer authentication passed
    assert tx.card.card.store.load().last_online_atc == int.from_bytes(tx.request.icc_data[0x9F36], "big")
    if name == "mastercard":
        assert second[0x9F10][3] & 0x10 and not second[0x9F10][6] & 0x04  # CVR: performed, not failed


@pytest.mark.parametrize("name", ["visa", "unionpay"])
def test_arqc_from_the_gpo_response_verifies(host: IssuerHost, name: str) -> None:
    tx = online(name, quick=True)  # qVSDC / qPBOC: the cryptogram comes with GPO
    assert host.authorise(tx.request).response_code == "00"


@pytest.mark.parametrize(("name", "version", "cvn"), [("visa", "visa_cvn10", 0x0A), ("mastercard", "mc_cvn17", 0x11)])
def test_other_cryptogram_versions(name: str, version: str, cvn: int) -> None:
    doc = profile(name)
    doc["applications"][0].update(cryptogram_version=version, cvn=cvn)
    host = IssuerHost(IssuerKeys.from_profiles([doc]))
    tx = arqc(start(name, doc), name)
    response = host.authorise(tx.request)
    assert response.response_code == "00"
    assert tx.second_generate_ac(response)[0x9F27] == b"\x40"


@pytest.mark.parametrize("name", ["visa", "mastercard"])
def test_derivation_option_b_for_a_19_digit_pan(name: str) -> None:
    doc = profile(name)
    s = doc["secrets"]
    s["pan"] = "4761739001010119" + "123" if name == "visa" else "5413330089010012" + "123"
    s["derivation"] = "B"
    s["icc_mk_ac"] = emvcrypto.derive_icc_mk(bytes.fromhex(s["imk_ac"]), s["pan"], s["psn"], "B").hex()
    keys = IssuerKeys.from_profiles([doc])
    tx = arqc(start(name, doc), name)
    assert IssuerHost(keys).authorise(tx.request).response_code == "00"
    # The same card under an option A entry: a different ICC MK, the ARQC fails.
    key = next(iter(keys))
    wrong = IssuerHost(IssuerKeys([replace(key, derivation="A")]))
    assert wrong.authorise(tx.request).response_code == "05"


# --- declines ---


@pytest.mark.parametrize("name", SCHEMES)
def test_flipped_bit_in_the_arqc_is_declined(host: IssuerHost, name: str) -> None:
    tx = online(name)
    for bit in (0, 37, 63):
        icc = dict(tx.request.icc_data)
        icc[0x9F26] = flip(icc[0x9F26], bit)
        response = host.authorise(replace(tx.request, icc_data=icc))
        assert (response.approved, response.response_code) == (False, "05")
        assert response.reason == "ARQC verification failed"
        assert response.issuer_authentication_data is None
    # A cryptogram that fails does not spend the ATC: the genuine one still passes.
    assert host.authorise(tx.request).response_code == "00"


def test_changed_signed_data_is_declined(host: IssuerHost) -> None:
    tx = online("mastercard", amount=1000)
    icc = dict(tx.request.icc_data)
    icc[0x9F02] = bytes.fromhex("000000000100")  # the terminal claims 1.00 instead of 10.00
    response = host.authorise(replace(tx.request, icc_data=icc, amount=100))
    assert response.response_code == "05"


def test_amount_outside_the_signed_data_is_declined(host: IssuerHost) -> None:
    tx = online("visa", amount=1000)
    response = host.authorise(replace(tx.request, amount=100))  # DE 4 differs from 9F02
    assert response.response_code == "13"
    assert "9F02" in response.reason


@pytest.mark.parametrize("name", SCHEMES)
def test_amount_limit_declines_and_the_card_authenticates_the_decline(name: str) -> None:
    host = IssuerHost(IssuerKeys.builtin(), Rules(max_amount=500))
    tx = online(name, amount=1000)
    response = host.authorise(tx.request)
    assert (response.approved, response.response_code, response.arc) == (False, "61", b"61")
    assert "limit" in response.reason
    iad = response.issuer_authentication_data
    assert iad is not None
    if name == "visa":
        assert iad[4:8] == CSU_DECLINED
    else:
        assert iad[8:] == b"61"
    second = tx.second_generate_ac(response)
    assert second[0x9F27] == b"\x00"  # AAC
    if name == "mastercard":
        assert not second[0x9F10][6] & 0x04  # the decline's ARPC verified on the card


def test_blocked_pan_is_declined(host: IssuerHost) -> None:
    tx = online("mastercard")
    log = AuthLog()
    assert log.secret is not None
    rules = Rules().blocking(log.secret, tx.request.pan)
    assert tx.request.pan not in repr(rules)
    assert rules.blocked == {hmac.new(log.secret.keys[1], tx.request.pan.encode(), hashlib.sha256).hexdigest()}
    response = IssuerHost(IssuerKeys.builtin(), rules, log).authorise(tx.request)
    assert (response.response_code, response.reason) == ("62", "the card is blocked")


def test_blocked_file(tmp_path: Path) -> None:
    path = tmp_path / "blocked.txt"
    keyed = HostSecret.ephemeral().pan_hash("5413330089010012")
    path.write_text(f"# lost cards\n{keyed}  # test card\n\n")
    assert load_blocked(path) == {keyed}
    path.write_text("5413330089010012\n")
    with pytest.raises(ConfigError, match="keyed hash"):
        load_blocked(path)
    with pytest.raises(ConfigError, match=r"cannot read blocked-PAN file .*none\.txt"):
        load_blocked(tmp_path / "none.txt")
    with pytest.raises(ConfigError, match="blocked-PAN file /dev/zero is larger than"):
        load_blocked("/dev/zero")  # an endless file ends in one line, not in memory


def test_velocity_limit() -> None:
    now = [1_000_000.0]
    host = IssuerHost(IssuerKeys.builtin(), Rules(velocity_count=2, velocity_window_s=60), clock=lambda: now[0])
    tx = online("unionpay")
    assert host.authorise(tx.request).response_code == "00"
    tx = next_online(tx, "unionpay")
    now[0] += 10
    assert host.authorise(tx.request).response_code == "00"
    tx = next_online(tx, "unionpay")
    now[0] += 10
    response = host.authorise(tx.request)
    assert response.response_code == "65"
    assert response.issuer_authentication_data is not None  # a genuine cryptogram: the decline is authenticated
    tx = next_online(tx, "unionpay")
    now[0] += 60  # the first approval has left the window
    assert host.authorise(tx.request).response_code == "00"


@pytest.mark.parametrize("name", SCHEMES)
def test_replayed_arqc_is_declined(host: IssuerHost, name: str) -> None:
    tx = online(name)
    assert host.authorise(tx.request).response_code == "00"
    response = host.authorise(tx.request)
    assert (response.response_code, response.issuer_authentication_data) == ("63", None)
    assert "already used" in response.reason


def test_atc_window() -> None:
    host = IssuerHost(IssuerKeys.builtin(), Rules(atc_window=5))
    txs = [online("mastercard")]
    for _ in range(7):
        txs.append(next_online(txs[-1], "mastercard"))
    atcs = [int.from_bytes(t.request.icc_data[0x9F36], "big") for t in txs]
    assert atcs == list(range(1, 9))
    assert host.authorise(txs[7].request).response_code == "00"  # ATC 8 first
    response = host.authorise(txs[0].request)  # ATC 1: 7 below the highest
    assert response.response_code == "63"
    assert "more than 5 below" in response.reason
    assert host.authorise(txs[4].request).response_code == "00"  # ATC 5, late but in the window
    assert host.authorise(txs[3].request).response_code == "00"  # ATC 4: exactly 4 below
    assert host.authorise(txs[2].request).response_code == "00"  # ATC 3: exactly 5 below (W)
    assert host.authorise(txs[4].request).response_code == "63"  # now a replay


def test_card_that_declined_has_nothing_to_authorise(host: IssuerHost) -> None:
    tx = online("mastercard")
    icc = dict(tx.request.icc_data)
    icc[0x9F27] = b"\x00"
    response = host.authorise(replace(tx.request, icc_data=icc))
    assert response.response_code == "12"
    assert "AAC" in response.reason


@pytest.mark.parametrize("name", ["visa", "unionpay"])
def test_offline_approval_sent_online_after_fdda_failed(name: str) -> None:
    # A corrupted SDAD: fDDA fails, the CTQ says "go online if ODA fails", the
    # reader sends the card's TC for authorisation (Book C-3), and the issuer
    # verifies it like an ARQC.
    host = IssuerHost.builtin()
    with open_transport(f"emu:{name}?corrupt=9F4B") as transport:
        tap = run_transaction(transport, load_config(), TransactionRequest(amount=1234), authoriser=host)
    assert tap.result.oda_result.startswith("sdad_")  # the signature no longer recovers
    assert tap.result.cid == b"\x40"
    assert tap.result.authorisation.response_code == "00"
    assert tap.result.outcome.outcome is Outcome.APPROVED


def test_unknown_issuer(host: IssuerHost) -> None:
    tx = online("mastercard")
    response = host.authorise(replace(tx.request, pan="5555555555554444"))
    assert (response.response_code, response.reason) == ("15", "no issuer key covers this PAN")


@pytest.mark.parametrize(("change", "code", "words"), [
    ({0x9F26: None}, "30", "lacks 9F26"),
    ({0x9F36: b"\x01"}, "30", "9F36 is 1 bytes"),
    ({0x9F10: b"\x06\x01"}, "30", "9F10"),
])
def test_malformed_icc_data(host: IssuerHost, change: dict[int, bytes | None], code: str, words: str) -> None:
    tx = online("visa")
    icc = dict(tx.request.icc_data)
    for tag, value in change.items():
        if value is None:
            del icc[tag]
        else:
            icc[tag] = value
    response = host.authorise(replace(tx.request, icc_data=icc))
    assert response.response_code == code
    assert words in response.reason


def test_bad_pan_is_a_format_error(host: IssuerHost) -> None:
    tx = online("visa")
    assert host.authorise(replace(tx.request, pan="4761-7390")).response_code == "30"


def test_a_host_fault_answers_96(host: IssuerHost, monkeypatch: pytest.MonkeyPatch) -> None:
    tx = online("visa")

    def broken(*args: object) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr("emvkit.terminal.host.issuer._Card.arqc", broken)
    response = host.authorise(tx.request)
    assert (response.response_code, response.reason) == ("96", "host fault: RuntimeError")
    monkeypatch.undo()
    assert host.authorise(tx.request).response_code == "00"  # the fault did not spend the ATC


# --- the kernel going online to the in-process host ---

@pytest.mark.parametrize("name", ["mastercard", "visa", "unionpay"])
def test_kernel_goes_online_to_the_host(name: str) -> None:
    host = IssuerHost.builtin()
    with open_transport(f"emu:{name}") as transport:
        # 60.00: above the cards' offline limit, under the contactless limit.
        tap = run_transaction(transport, load_config(), TransactionRequest(amount=6000), authoriser=host)
    row = host.log.entries()[-1]
    assert (row.response_code, row.reason) == ("00", "")
    assert tap.result.outcome.outcome is Outcome.APPROVED


@pytest.mark.parametrize("name", ["mastercard", "visa", "unionpay"])
def test_kernel_declined_by_an_issuer_rule(name: str) -> None:
    host = IssuerHost(IssuerKeys.builtin(), Rules(max_amount=5000))
    with open_transport(f"emu:{name}") as transport:
        tap = run_transaction(transport, load_config(), TransactionRequest(amount=6000), authoriser=host)
    assert tap.result.outcome.outcome is Outcome.DECLINED
    assert tap.result.authorisation.response_code == "61"
    steps = [s.name for s in tap.result.steps]
    if name == "mastercard":  # the card is told too: second GENERATE AC asking for an AAC
        assert "second GENERATE AC" in steps and tap.result.cid == b"\x00"
    else:
        assert "second GENERATE AC" not in steps


def test_kernel_transaction_replayed_to_the_host_is_declined() -> None:
    host = IssuerHost.builtin()
    request = TransactionRequest(amount=6000, random=lambda n: bytes(range(1, n + 1)))
    with open_transport("emu:visa?rng=counting") as transport:
        first = run_transaction(transport, load_config(), request)  # no host: the ARQC stays with the terminal
    assert first.result.outcome.outcome is Outcome.ONLINE_REQUEST
    with open_transport("emu:visa?rng=counting") as transport:
        again = run_transaction(transport, load_config(), request, authoriser=host)
    assert again.result.outcome.outcome is Outcome.APPROVED
    # The same card state again: the same ATC, a replay for the host.
    with open_transport("emu:visa?rng=counting") as transport:
        replay = run_transaction(transport, load_config(), request, authoriser=host)
    assert replay.result.cryptogram == again.result.cryptogram
    assert replay.result.outcome.outcome is Outcome.DECLINED
    assert replay.result.authorisation.response_code == "63"


# --- issuer authentication failures seen by the card ---


@pytest.mark.parametrize("name", SCHEMES)
def test_card_detects_a_wrong_arpc(host: IssuerHost, name: str) -> None:
    tx = online(name)
    response = host.authorise(tx.request)
    iad = response.issuer_authentication_data
    assert iad is not None
    second = tx.second_generate_ac(response, iad=flip(iad, 5))
    assert second[0x9F27] == b"\x00"  # AAC: issuer authentication failed
    assert tx.card.card.store.load().last_online_atc == 0
    if name == "mastercard":
        assert second[0x9F10][6] & 0x04  # CVR: issuer authentication failed


# --- the log ---


def test_every_request_is_logged_without_the_pan(host: IssuerHost) -> None:
    tx = online("visa")
    host.authorise(tx.request)
    host.authorise(tx.request)
    host.format_error("missing DE 55", "0100", 12, "TERM0002")
    rows = host.log.entries()
    assert [r.response_code for r in rows] == ["00", "63", "30"]
    first = rows[0]
    assert first.pan_masked == "476173******0119"
    assert host.log.secret is not None
    assert first.pan_hmac == host.log.secret.pan_hash(tx.request.pan)
    assert first.pan_hmac != hashlib.sha256(tx.request.pan.encode()).hexdigest()
    assert (first.amount, first.currency, first.atc, first.atc_spent, first.stan, first.terminal_id, first.mti,
            first.psn) == (1000, "978", 1, True, 7, "TERM0001", "0100", "01")
    assert rows[2].pan_hmac is None and rows[2].stan == 12
    assert host.log.entries(host.log.secret.pan_hashes(tx.request.pan)) == rows[:2]


def test_reasons_are_scrubbed_of_pans() -> None:
    assert scrub("card 4761739001010119 declined") == "card 476173******0119 declined"
    assert scrub("ATC 12 of 123456789") == "ATC 12 of 123456789"


def test_the_log_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "host.sqlite"
    rules = Rules(velocity_count=1, velocity_window_s=3600)
    tx = online("mastercard")
    with IssuerHost(IssuerKeys.builtin(), rules, AuthLog(db)) as first:
        assert first.authorise(tx.request).response_code == "00"
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    with IssuerHost(IssuerKeys.builtin(), rules, AuthLog(db)) as second:
        replayed = second.authorise(tx.request)
        assert (replayed.response_code, replayed.reason) == ("63", "ATC 1 was already used (replayed cryptogram)")
        # The velocity count came back too: one approval in the hour already.
        assert second.authorise(next_online(tx, "mastercard").request).response_code == "65"
        assert [r.response_code for r in second.log.entries()] == ["00", "63", "65"]


def test_the_database_never_holds_the_pan(tmp_path: Path) -> None:
    db = tmp_path / "host.sqlite"
    pans, track2 = [], []
    with IssuerHost(IssuerKeys.builtin(), Rules(max_amount=5000), AuthLog(db)) as host:
        for name in SCHEMES:
            tx = online(name, amount=1000)
            pans.append(tx.request.pan)
            host.authorise(tx.request)
            host.authorise(tx.request)
            host.authorise(next_online(tx, name, amount=9000).request)
            host.authorise(replace(tx.request, icc_data={}))
            host.format_error("DE 2 must be 12 to 19 digits", "0100", 1)
            assert tx.request.track2 is not None
            track2.append(tx.request.track2)
        assert len(host.log.entries()) == 15
        files = [p for p in tmp_path.iterdir() if p.name.startswith("host.sqlite")]
        contents = b"".join(p.read_bytes() for p in files)  # the database, its WAL and shared memory
    contents += db.read_bytes()
    for pan, t2 in zip(pans, track2, strict=True):
        assert pan.encode() not in contents
        assert hashlib.sha256(pan.encode()).hexdigest().encode() not in contents  # no unkeyed hash
        assert bytes.fromhex(pan) not in contents  # nor packed as BCD
        assert t2 not in contents
        assert pan[:6].encode() + b"******" + pan[-4:].encode() in contents


# --- keys ---


def test_builtin_keys_cover_the_builtin_cards() -> None:
    keys = IssuerKeys.builtin()
    assert len(keys) == 5
    for name in ("visa", "mastercard", "unionpay", "wearable", "unionpay-sm"):
        doc = profile(name)
        key = keys.find(doc["secrets"]["pan"])
        assert key is not None
        assert key.imk_ac == bytes.fromhex(doc["secrets"]["imk_ac"])
        assert key.cryptogram_version == doc["applications"][0]["cryptogram_version"]
        assert key.derivation == doc["secrets"]["derivation"]
    assert keys.find("4000000000000002") is None


def test_longest_prefix_wins() -> None:
    wide = IssuerKey("476173", "visa", "visa_cvn18", bytes(16), "B")
    card = IssuerKey("4761739001010119", "visa", "visa_cvn10", bytes(range(16)), "A")
    keys = IssuerKeys([wide, card])
    assert keys.find("4761739001010119") is card
    assert keys.find("4761739001010127") is wide
    assert keys.find("47617") is None
    with pytest.raises(ConfigError, match="two issuer keys"):
        keys.add(wide)


def test_keys_never_show_in_a_repr() -> None:
    keys = IssuerKeys.builtin()
    text = repr(keys) + repr(list(keys))
    for doc in (profile(n) for n in SCHEMES):
        assert doc["secrets"]["imk_ac"].lower() not in text.lower()


def test_key_file_round_trip_and_permissions(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys = IssuerKeys.builtin()
    keys.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = IssuerKeys.load(path)
    assert list(loaded) == list(keys)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        IssuerKeys.load(path)


@pytest.mark.parametrize(("doc", "words"), [
    ({"format": "x"}, "not an issuer key file"),
    ({"format": "emvkit-issuer-keys", "version": 1, "keys": [{"bin_prefix": "4"}]}, "missing"),
    ({"format": "emvkit-issuer-keys", "version": 1, "keys": [
        {"bin_prefix": "4", "scheme": "visa", "cryptogram_version": "visa_cvn99", "imk_ac": "00" * 16}]},
     "cryptogram_version"),
    ({"format": "emvkit-issuer-keys", "version": 1, "keys": [
        {"bin_prefix": "4", "scheme": "visa", "cryptogram_version": "visa_cvn18", "imk_ac": "00" * 15}]},
     "16 bytes"),
])
def test_bad_key_files(doc: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        IssuerKeys.from_dict(doc)


def test_profile_without_secrets_is_refused() -> None:
    doc = profile("visa")
    del doc["secrets"]
    with pytest.raises(ConfigError, match="secrets"):
        IssuerKeys.from_profiles([doc])
