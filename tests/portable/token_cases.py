# Portable tests of firmware.main's Token: the personalisation and the card
# state in the store, as the token's boot and provisioning use them. Run by
# pytest on CPython (tests/test_portable.py) and by tests/portable/run.py
# under MicroPython. Plain asserts only; stores go under /tmp and are removed.
# CPython imports the installed package; MicroPython the firmware folder on MICROPYPATH.
try:
    from emvkit.firmware import link, main
    from emvkit.firmware.devlink import ProvisionError
except ImportError:
    from firmware import link, main
    from firmware.devlink import ProvisionError

import binascii
import json
import os

_HERE = __file__.replace("\\", "/")
_PROFILES = (_HERE.rsplit("/", 1)[0] if "/" in _HERE else ".") + "/../../terminal/perso/profiles/"

_docs = {}


def _doc(name):
    if name not in _docs:
        with open(_PROFILES + name + ".json") as f:
            _docs[name] = json.load(f)
    return json.loads(json.dumps(_docs[name]))  # a copy to change


def _perso(name, change=None):
    doc = _doc(name)
    if change is not None:
        change(doc)
    return json.dumps(doc).encode()


class _Store:
    # A store folder under /tmp, removed on exit.
    def __enter__(self):
        self.root = "/tmp/emvkit-token-" + os.urandom(6).hex()
        os.mkdir(self.root)
        return self.root

    def __exit__(self, *exc):
        for name in (main.PERSO_FILE, main.STATE_FILE):
            try:
                os.remove(self.root + "/" + name)
            except OSError:
                pass
        os.rmdir(self.root)


def _file(root, name):
    try:
        with open(root + "/" + name, "rb") as f:
            return f.read()
    except OSError:
        return None


def _token(root, opener=open):
    token = main.Token("test", root, opener=opener)
    token.load()
    return token


def _refusal(call):
    try:
        call()
    except ProvisionError as exc:
        return exc.code, exc.text
    raise AssertionError("no ProvisionError")


def _set_atc(card, atc):
    state = card.store.load()
    state.atc = atc
    card.store.save(state)


def test_a_fresh_store_is_empty_and_not_personalised():
    with _Store() as root:
        token = _token(root)
        assert not token.personalised and token.store_status == "empty" and token.source == "none"
        info = dict(token.info())
        assert info["board"] == "test" and info["store"] == "empty" and info["atc"] == 0
        assert 0 < info["perso_max"] <= link.PROVISION_MAX
        assert _file(root, main.PERSO_FILE) is None


def test_a_personalisation_is_stored_and_found_at_the_next_boot():
    with _Store() as root:
        token = _token(root)
        card = token.personalise(_perso("visa"))
        assert token.personalised and token.card is card and card.profile.id == "visa"
        assert token.store_status == "ok" and token.source == "store"
        _set_atc(card, 3)
        again = _token(root)  # a reboot
        assert again.personalised and again.card.profile.id == "visa" and again.store_status == "ok"
        assert dict(again.info())["atc"] == 3


def _stored(root):
    # What a reboot finds: the current personalisation record (None: none).
    return main.Token("test", root).perso_file.read()


def test_a_refused_personalisation_changes_nothing():
    # Nothing current: a refused profile may have been staged in the slot
    # the next write takes, but the store reads as before, and the slot of
    # the current record is untouched.
    def no_secrets(doc):
        del doc["secrets"]

    def unknown_scheme(doc):
        doc["applications"][0]["scheme"] = "diners"

    def bad_state(doc):
        doc["state"] = {"atc": "one"}

    with _Store() as root:
        token = _token(root)
        for data in (b"{not json", b"[1, 2]", _perso("visa")[:-40], _perso("visa", no_secrets),
                     _perso("visa", unknown_scheme), _perso("visa", bad_state), b"\xff\xfe"):
            code, text = _refusal(lambda d=data: token.personalise(d))
            assert code == link.ERR_BAD_PROFILE, (code, text)
        assert _stored(root) is None and not token.personalised and not _token(root).personalised
        assert _token(root).store_status == "empty"
        card = token.personalise(_perso("visa"))
        _set_atc(card, 9)
        current = _file(root, main.PERSO_FILE)  # slot 0, the first record, is all the file holds
        state = _file(root, main.STATE_FILE)
        for data in (b"{}", _perso("mastercard", unknown_scheme)):
            assert _refusal(lambda d=data: token.personalise(d, True))[0] == link.ERR_BAD_PROFILE
        assert _refusal(lambda: token.personalise(_perso("mastercard")))[0] == link.ERR_ALREADY_PERSONALISED
        assert _refusal(lambda: token.personalise(b" " * (token.capacity + 1), True))[0] == link.ERR_TOO_LARGE
        assert token.card is card and dict(token.info())["atc"] == 9
        assert _file(root, main.PERSO_FILE)[:len(current)] == current and _file(root, main.STATE_FILE) == state
        assert _stored(root) == _perso("visa")
        rebooted = _token(root)
        assert rebooted.card.profile.id == "visa" and dict(rebooted.info())["atc"] == 9


def test_a_transfer_goes_into_the_store_as_it_arrives_and_counts_at_commit():
    old, new = _perso("visa"), _perso("mastercard")
    half = len(new) // 2
    with _Store() as root:
        token = _token(root)
        _set_atc(token.personalise(old), 4)
        given_up = token.stage(len(new), True)
        given_up.write(0, new[:half])
        assert _token(root).card.profile.id == "visa"  # a reboot mid-transfer finds the old card
        transfer = token.stage(len(new), True)  # the next BEGIN starts again
        transfer.write(0, new[:half])
        transfer.write(0, new[:half])  # a piece resent
        transfer.write(half, new[half:])
        assert transfer.crc() == binascii.crc32(new) & 0xFFFFFFFF
        assert _token(root).card.profile.id == "visa" and token.card.profile.id == "visa"
        card = transfer.commit()
        assert card is token.card and card.profile.id == "mastercard"
        rebooted = _token(root)
        assert rebooted.card.profile.id == "mastercard" and dict(rebooted.info())["atc"] == 0
        assert rebooted.perso_file.read() == new


def test_the_unknown_scheme_error_says_which_field():
    def unknown_scheme(doc):
        doc["applications"][0]["scheme"] = "diners"

    code, text = _refusal(lambda: main.card_from_profile(json.loads(_perso("visa", unknown_scheme))))
    assert code == link.ERR_BAD_PROFILE and text.startswith("applications[0].scheme: one of visa")


def test_an_error_about_a_secret_never_quotes_it():
    secret = _doc("visa")["secrets"]["icc_rsa"]["p"]

    def bad_prime(doc):
        doc["secrets"]["icc_rsa"]["p"] = "ZZ" + secret

    code, text = _refusal(lambda: main.card_from_profile(json.loads(_perso("visa", bad_prime))))
    assert code == link.ERR_BAD_PROFILE and text.startswith("secrets.icc_rsa")
    assert secret[:8] not in text and secret[-8:] not in text and "\n" not in text


def test_the_same_card_keeps_its_state_another_card_starts_afresh():
    with _Store() as root:
        token = _token(root)
        _set_atc(token.personalise(_perso("visa")), 41)
        # the same card again (with force): its ATC goes on
        assert dict(token.info())["atc"] == 41
        token.personalise(_perso("visa", lambda doc: doc.update({"id": "visa-again"})), True)
        assert token.card.profile.id == "visa-again" and dict(token.info())["atc"] == 41
        # another card: its own initial state, without a second write
        state = _file(root, main.STATE_FILE)
        token.personalise(_perso("mastercard"), True)
        assert dict(token.info())["atc"] == 0 and _file(root, main.STATE_FILE) == state
        _set_atc(token.card, 2)
        rebooted = _token(root)
        assert rebooted.card.profile.id == "mastercard" and dict(rebooted.info())["atc"] == 2


def test_a_corrupt_personalisation_is_reported_and_can_be_replaced():
    with _Store() as root:
        with open(root + "/" + main.PERSO_FILE, "wb") as f:
            f.write(b"\x13\x37" * 100)  # no valid record
        token = _token(root)
        assert token.store_status == "corrupt" and not token.personalised
        code, text = _refusal(lambda: token.personalise(_perso("visa")))
        assert code == link.ERR_STORE and "damaged" in text
        token.personalise(_perso("visa"), True)
        assert token.store_status == "ok"
        rebooted = _token(root)
        assert rebooted.store_status == "ok" and rebooted.card.profile.id == "visa"


def test_a_damaged_state_is_reported_and_replaced_with_the_personalisation():
    with _Store() as root:
        _set_atc(_token(root).personalise(_perso("visa")), 6)
        with open(root + "/" + main.STATE_FILE, "wb") as f:
            f.write(b"\x55" * 9000)  # neither slot holds a valid record
        token = _token(root)
        assert token.personalised and token.store_status == "corrupt"
        assert _refusal(lambda: token.personalise(_perso("visa")))[0] == link.ERR_ALREADY_PERSONALISED
        token.personalise(_perso("visa"), True)
        assert token.store_status == "ok" and dict(token.info())["atc"] == 0
        _set_atc(token.card, 1)
        assert dict(_token(root).info())["atc"] == 1


def test_a_stored_record_that_is_not_a_profile_is_corrupt():
    with _Store() as root:
        from_store = main.Token("test", root)
        from_store.perso_file.write(b'{"format": "emvkit-card"}')
        token = _token(root)
        assert token.store_status == "corrupt" and not token.personalised


def test_a_frozen_card_serves_when_the_store_holds_none():
    with _Store() as root:
        token = main.Token("test", root)
        token.load(json.dumps(_doc("unionpay")))
        assert token.personalised and token.source == "frozen" and token.store_status == "empty"
        assert _refusal(lambda: token.personalise(_perso("visa")))[0] == link.ERR_ALREADY_PERSONALISED
        token.personalise(_perso("visa"), True)
        again = main.Token("test", root)
        again.load(json.dumps(_doc("unionpay")))
        assert again.source == "store" and again.card.profile.id == "visa"


def test_no_store_means_no_provisioning():
    token = main.Token("test", None)
    token.load()
    assert token.store_status == "none" and not token.personalised and token.capacity == 0
    assert _refusal(lambda: token.personalise(_perso("visa")))[0] == link.ERR_STORE


class _Cut(Exception):
    pass


class _Supply:
    # Power for the store's files: the write that crosses `budget` bytes
    # writes the bytes before the cut and raises; every later call raises.
    def __init__(self, budget):
        self.budget = budget
        self.dead = False

    def open(self, path, mode):
        if self.dead:
            raise _Cut()
        return _File(open(path, mode), self)


class _File:
    def __init__(self, f, supply):
        self.f = f
        self.supply = supply

    def write(self, data):
        supply = self.supply
        if supply.dead:
            raise _Cut()
        if len(data) > supply.budget:
            self.f.write(bytes(data[:supply.budget]))
            self.f.close()
            supply.dead = True
            raise _Cut()
        supply.budget -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        if self.supply.dead:
            raise _Cut()
        return getattr(self.f, name)


def test_a_power_cut_during_provisioning_leaves_the_old_card_or_the_new():
    old, new = _perso("visa"), _perso("mastercard")
    seen = []
    for budget in (0, 1, 13, 100, len(new) // 2, len(new) + 16, len(new) + 17):
        with _Store() as root:
            token = _token(root)
            _set_atc(token.personalise(old), 5)
            cut = main.Token("test", root, opener=_Supply(budget).open)
            cut.load()
            try:
                cut.personalise(new, True)
                finished = True
            except ProvisionError as exc:
                assert exc.code == link.ERR_STORE
                finished = False
            rebooted = _token(root)
            atc = dict(rebooted.info())["atc"]
            if rebooted.card.profile.id == "visa":
                assert not finished and atc == 5, (budget, atc)
            else:
                assert rebooted.card.profile.id == "mastercard" and atc == 0, budget
            assert rebooted.store_status == "ok"
            seen.append(rebooted.card.profile.id)
    assert seen[0] == "visa" and seen[-1] == "mastercard"
