# Portable tests of the card's issuer script and issuer authentication
# commands (EMV Book 3 §6.5.1, §6.5.2, §6.5.4; Book 1 §12.3.1), run on
# CPython and under MicroPython. The valid-MAC cases are in
# tests/test_issuer_scripts.py, checked against pyemv.
try:
    from emvkit.firmware.payapp.card import Card
    from emvkit.firmware.payapp.state import CardState
except ImportError:
    from firmware.payapp.card import Card
    from firmware.payapp.state import CardState

import json

_HERE = __file__.replace("\\", "/")
_PROFILES = (_HERE.rsplit("/", 1)[0] if "/" in _HERE else ".") + "/../../terminal/perso/profiles/"
_VISA_AID = bytes.fromhex("A0000000031010")
# PDOL data of the built-in Visa card: TTQ 36804000 (online cryptogram
# required), 10.00, no other amount, country 0250, TVR, currency 0978, date,
# type, UN.
_PDOL_DATA = bytes.fromhex("36804000" "000000001000" "000000000000" "0250" "0000000000" "0978" "260101"
                           "00" "A1B2C3D4")


def _card(state=None):
    with open(_PROFILES + "visa.json") as f:
        doc = json.load(f)
    if state is not None:
        doc["state"] = state
    return Card(doc, rng=lambda n: bytes(n))


def _sw(response):
    return response[-2] << 8 | response[-1]


def _select(card):
    return card.process(bytes((0x00, 0xA4, 0x04, 0x00, len(_VISA_AID))) + _VISA_AID + b"\x00")


def _gpo(card):
    body = bytes((0x83, len(_PDOL_DATA))) + _PDOL_DATA
    return card.process(bytes((0x80, 0xA8, 0x00, 0x00, len(body))) + body + b"\x00")


def test_blocked_application_selects_with_6283_and_refuses_gpo():
    card = _card({"blocked": 1})
    response = _select(card)
    assert _sw(response) == 0x6283 and response[0] == 0x6F  # the FCI, with the warning
    assert _sw(_gpo(card)) == 0x6985


def test_script_command_with_a_wrong_mac_is_6988_and_changes_nothing():
    card = _card()
    _select(card)
    assert _sw(_gpo(card)) == 0x9000  # an ARQC in the GPO response
    assert _sw(card.process(bytes.fromhex("841E000008") + bytes(8))) == 0x6988
    state = card.store.load()
    assert state.blocked == 0 and state.script_failed == 1 and state.script_commands == 0


def test_script_command_without_an_online_transaction_is_6985():
    card = _card()
    _select(card)
    assert _sw(card.process(bytes.fromhex("841E000008") + bytes(8))) == 0x6985


def test_external_authenticate_with_a_wrong_arpc_is_6300_once():
    card = _card({"consecutive_offline": 5})
    _select(card)
    _gpo(card)
    # CVN 18: ARPC(4) || CSU(4) || proprietary data(2)
    assert _sw(card.process(bytes.fromhex("008200000A") + bytes(4) + bytes.fromhex("80820000") + bytes(2))) == 0x6300
    assert card.store.load().consecutive_offline == 5
    assert _sw(card.process(bytes.fromhex("008200000A") + bytes(10))) == 0x6985  # only once


def test_a_stored_state_without_the_script_fields_loads():
    doc = {"atc": 3, "last_online_atc": 1, "consecutive_offline": 2, "offline_amount": 0,
           "pin_try_counter": 3, "log": []}
    state = CardState.from_dict(doc, complete=True)
    assert (state.script_commands, state.script_failed, state.blocked) == (0, 0, 0)
