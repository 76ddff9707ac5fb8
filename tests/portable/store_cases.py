# Portable tests of firmware.store (tearing-safe slot files, the card's
# persistent state): run by pytest on CPython (tests/test_portable.py) and by
# tests/portable/run.py under MicroPython. Plain asserts only; files go under
# /tmp and are removed.
# CPython imports the installed package; MicroPython the firmware folder on MICROPYPATH.
try:
    from emvkit.firmware import crc, store, tlv
    from emvkit.firmware.payapp.card import Card
    from emvkit.firmware.payapp.profile import Profile
    from emvkit.firmware.payapp.rng import CountingRandom
    from emvkit.firmware.payapp.state import CardState, StateError
except ImportError:
    from firmware import crc, store, tlv
    from firmware.payapp.card import Card
    from firmware.payapp.profile import Profile
    from firmware.payapp.rng import CountingRandom
    from firmware.payapp.state import CardState, StateError

import json
import os

_HERE = __file__.replace("\\", "/")
_PROFILES = (_HERE.rsplit("/", 1)[0] if "/" in _HERE else ".") + "/../../terminal/perso/profiles/"

# One transaction's C-APDUs as emvkit's kernel sends them (`emvkit tap`, 12.34
# EUR, 2026-01-02, unpredictable number 01020304); tests/test_store.py checks
# that the kernel still sends these commands in this order.
_TRANSACTIONS = {
    "visa": [
        "00A404000E325041592E5359532E444446303100",
        "00A4040007A000000003101000",
        "80A8000023832136004000000000001234000000000000025000000000000978260102000102030400",
        "00B2010C00", "00B2011400", "00B2021400", "00B2011C00",
    ],
    "mastercard": [
        "00A404000E325041592E5359532E444446303100",
        "00A4040007A000000004101000",
        "80A8000002830000",
        "00B2010C00", "00B2011C00", "00B2021C00", "00B2012400",
        "80AE5000210000000012340000000000000250000000000009782601020001020304221F030200",
    ],
}
# After an ARQC from the first GENERATE AC: a second one asking for a TC,
# CDOL2 = ARC "00", no issuer authentication data (91 all zeros), TVR, UN.
_SECOND_GENERATE_AC = "80AE400015" + "3030" + "00" * 10 + "00" * 5 + "01020304" + "00"
_SLOT = 1024


def _temp_path():
    return "/tmp/emvkit-store-" + os.urandom(6).hex()


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _put_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _raises(call, exc_type):
    try:
        call()
    except exc_type as exc:
        return exc
    raise AssertionError("no %s" % exc_type.__name__)


_profiles = {}


def _profile(name):
    if name not in _profiles:
        with open(_PROFILES + name + ".json") as f:
            _profiles[name] = Profile(json.load(f))
    return _profiles[name]


class _XorShift:
    # A seeded xorshift32: the same numbers on every interpreter.
    def __init__(self, seed):
        self.x = seed & 0xFFFFFFFF or 1

    def below(self, n):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x % n


# --- power cuts ---

class PowerCut(Exception):
    pass


class _Supply:
    # The token's power: once `budget` bytes have been written the supply
    # fails in the middle of the write that crosses it (the bytes before the
    # cut reach the file), and every file operation fails after that. A
    # restart is a new _Supply. `written` counts bytes written.
    def __init__(self, budget=None):
        self.budget = budget
        self.written = 0
        self.dead = False

    def check(self):
        if self.dead:
            raise PowerCut()

    def open(self, path, mode):
        self.check()
        return _SuppliedFile(open(path, mode), self)


class _SuppliedFile:
    def __init__(self, f, supply):
        self._f = f
        self._supply = supply

    def seek(self, offset, whence=0):
        self._supply.check()
        return self._f.seek(offset, whence)

    def read(self, n=-1):
        self._supply.check()
        return self._f.read(n)

    def readinto(self, buf):
        self._supply.check()
        return self._f.readinto(buf)

    def write(self, data):
        supply = self._supply
        supply.check()
        if supply.budget is not None and supply.written + len(data) > supply.budget:
            room = supply.budget - supply.written
            self._f.write(data[:room])  # what reached the medium before the cut
            self._f.close()
            supply.written += room
            supply.dead = True
            raise PowerCut()
        supply.written += len(data)
        return self._f.write(data)

    def flush(self):
        self._supply.check()
        self._f.flush()

    def close(self):
        self._f.close()


class _Recorder(store.SlotFile):
    # A SlotFile that remembers the last acknowledged payload and the one in
    # flight (`log`, shared across restarts).
    def __init__(self, path, slot_size, opener, log):
        super().__init__(path, slot_size, opener)
        self.log = log

    def write(self, payload):
        self.log["pending"] = payload
        super().write(payload)
        self.log["acked"] = payload
        self.log["pending"] = None


def _released_atc(response):
    # The ATC (9F36) in a successful response, else None.
    if len(response) <= 2 or response[-2:] != b"\x90\x00":
        return None
    value = tlv.find_value(tlv.decode(response[:-2]), 0x9F36)
    return None if value is None else int.from_bytes(value, "big")


class _Released:
    # The ATCs that left the card, checked as they come: a later
    # transaction's cryptograms carry a strictly higher ATC than any earlier
    # one's; within one transaction (first and second GENERATE AC) it is the
    # same ATC. Keeps only the last one (MicroPython's heap is small).
    def __init__(self, count=0, last=None):
        self.count = count
        self.last = last  # (transaction number, ATC)

    def add(self, number, atc):
        if self.last is not None:
            n0, a0 = self.last
            assert atc > a0 or (number == n0 and atc == a0), (n0, a0, number, atc)
        self.last = (number, atc)
        self.count += 1

    def highest(self):
        return -1 if self.last is None else self.last[1]

    def copy(self):
        return _Released(self.count, self.last)


def _transaction(card, name, seen, number):
    # One transaction; every ATC that leaves the card goes to `seen` the
    # moment the response is returned.
    card.reset()
    response = b""
    for command in _TRANSACTIONS[name]:
        response = card.process(bytes.fromhex(command))
        atc = _released_atc(response)
        if atc is not None:
            seen.add(number, atc)
    cid = tlv.find_value(tlv.decode(response[:-2]), 0x9F27) if response[-2:] == b"\x90\x00" else None
    if name == "mastercard" and cid is not None and cid[0] & 0xC0 == 0x80:
        atc = _released_atc(card.process(bytes.fromhex(_SECOND_GENERATE_AC)))
        if atc is not None:
            seen.add(number, atc)


def _restart(path, name, supply, log, seen, opener=None):
    # Power comes back: what the file holds must be the last acknowledged
    # payload or the one being written, and it must load as a card whose ATC
    # covers every ATC that has left the card. The card writes through
    # `supply` (or `opener`).
    raw = store.SlotFile(path, _SLOT).read()
    assert raw == log["acked"] or (log["pending"] is not None and raw == log["pending"]), raw
    log["pending"] = None
    log["acked"] = raw
    opener = supply.open if opener is None else opener
    card = Card(_profile(name), store=store.CardStore(_Recorder(path, _SLOT, opener, log)),
                rng=CountingRandom())
    state = card.store.load()
    assert state.atc >= seen.highest(), (state.atc, seen.last)
    return card


def _cut_at_every_byte(name):
    # One transaction after one that went through, cut after 0, 1, 2, ...
    # bytes written, up to the whole transaction; after each cut a restart,
    # then a whole transaction that must use a higher ATC. Returns the number
    # of cut points.
    path = _temp_path()
    try:
        log = {"acked": None, "pending": None}
        seen = _Released()
        _transaction(_restart(path, name, _Supply(), log, seen), name, seen, 0)
        base_file, base_log, base_seen = _file_bytes(path), dict(log), seen.copy()
        supply = _Supply()
        _transaction(_restart(path, name, supply, log, seen), name, seen, 1)
        total = supply.written
        assert total > 0
        for n in range(total + 1):
            _put_file(path, base_file)
            log = dict(base_log)
            seen = base_seen.copy()
            cut = False
            try:
                _transaction(_restart(path, name, _Supply(n), log, seen), name, seen, 1)
            except PowerCut:
                cut = True
            assert cut == (n < total), (n, total)
            card = _restart(path, name, _Supply(), log, seen)
            _transaction(card, name, seen, 2)
            assert seen.last[0] == 2
        return total
    finally:
        _remove(path)


def _cut_at_random(name, cuts, seed):
    # A run of transactions on one card, cut `cuts` times, each time after a
    # random number of bytes (1 to about three transactions' worth).
    # Returns (cuts, transactions started, ATCs released).
    path = _temp_path()
    rng = _XorShift(seed)
    try:
        log = {"acked": None, "pending": None}
        seen = _Released()
        _transaction(_restart(path, name, _Supply(), log, seen), name, seen, 0)
        number = 1
        for _ in range(cuts):
            # A transaction writes two records of about the current size.
            supply = _Supply(1 + rng.below(6 * (len(log["acked"]) + store.OVERHEAD)))
            card = _restart(path, name, supply, log, seen)
            try:
                while True:
                    _transaction(card, name, seen, number)
                    number += 1
            except PowerCut:
                number += 1
        _restart(path, name, _Supply(), log, seen)
        return cuts, number, seen.count
    finally:
        _remove(path)


# Under MicroPython every case runs the same counts as on CPython.
_RANDOM_CUTS = 1000


def test_power_cut_at_every_byte_of_a_visa_transaction():
    assert _cut_at_every_byte("visa") > 200


def test_power_cut_at_every_byte_of_a_mastercard_transaction():
    assert _cut_at_every_byte("mastercard") > 200


def test_power_cut_at_random_points_visa():
    cuts, transactions, released = _cut_at_random("visa", _RANDOM_CUTS, 20260102)
    assert cuts == _RANDOM_CUTS and transactions > _RANDOM_CUTS * 5 // 4 and released > _RANDOM_CUTS


def test_power_cut_at_random_points_mastercard():
    cuts, transactions, released = _cut_at_random("mastercard", _RANDOM_CUTS, 4242)
    assert cuts == _RANDOM_CUTS and transactions > _RANDOM_CUTS * 5 // 4 and released > _RANDOM_CUTS


def test_torn_write_at_every_byte_leaves_the_old_or_the_new_payload():
    path = _temp_path()
    try:
        payloads = [b"first state", b"second, longer state", b"third"]
        for i in range(len(payloads)):
            _remove(path)
            for p in payloads[:i]:
                store.SlotFile(path, 64).write(p)
            old = store.SlotFile(path, 64).read()
            assert old == (payloads[i - 1] if i else None)
            before = _file_bytes(path) if i else None
            size = len(store.encode_record(i, payloads[i]))
            for n in range(size + 1):
                if before is None:
                    _remove(path)
                else:
                    _put_file(path, before)
                slots = store.SlotFile(path, 64, _Supply(n).open)
                try:
                    slots.write(payloads[i])
                except PowerCut:
                    assert n < size
                got = store.SlotFile(path, 64).read()
                assert got == (payloads[i] if n == size else old), (i, n, got)
    finally:
        _remove(path)


# --- CRC-32 and the record ---

def test_records_are_the_same_with_the_fallback_crc32():
    # The QEMU port may have no binascii.crc32: the table-driven one then
    # writes and reads the records.
    path = _temp_path()
    native = crc._crc32_native
    record = store.encode_record(3, b"payload")
    try:
        store.SlotFile(path, 64).write(b"native")
        crc._crc32_native = None
        assert store.encode_record(3, b"payload") == record
        slots = store.SlotFile(path, 64)
        assert slots.read() == b"native"
        slots.write(b"fallback")
        crc._crc32_native = native
        assert store.SlotFile(path, 64).read() == b"fallback"
    finally:
        crc._crc32_native = native
        _remove(path)


def test_crc32_check_value():
    # CRC-32 (IEEE 802.3) check value from the CRC catalogue
    # (reveng.sourceforge.io "CRC-32/ISO-HDLC"): CBF43926.
    assert crc.crc32(b"123456789") == 0xCBF43926
    assert crc.crc32_portable(b"123456789") == 0xCBF43926
    assert crc.crc32(b"") == crc.crc32_portable(b"") == 0
    assert crc.crc32_portable(b"6789", crc.crc32_portable(b"12345")) == 0xCBF43926
    assert crc.crc32(b"6789", crc.crc32(b"12345")) == 0xCBF43926


def test_crc32_fallback_matches_native():
    rng = _XorShift(7)
    for n in (1, 2, 3, 64, 255, 1000):
        data = bytes([rng.below(256) for _ in range(n)])
        assert crc.crc32_portable(data) == crc.crc32(data), n
        assert crc.crc32_portable(memoryview(data)) == crc.crc32(data), n


def test_record_layout():
    record = store.encode_record(0x01020304, b"abc")
    head = b"EMVS\x01\x01\x02\x03\x04\x00\x00\x00\x03abc"
    assert record[:-4] == head
    assert record[-4:] == crc.crc32_portable(head).to_bytes(4, "big")
    assert len(record) == store.OVERHEAD + 3


# --- SlotFile ---

def test_fresh_store_reads_none_missing_or_empty():
    path = _temp_path()
    try:
        assert store.SlotFile(path, 64).read() is None
        _put_file(path, b"")
        assert store.SlotFile(path, 64).read() is None
        # What a cut can leave of the very first write (zeros: not written).
        for start in (b"E", b"EMVS", b"EMVS\x01\x00\x00", b"\x00MV\x00\x01\xff", bytes(64)):
            _put_file(path, start)
            assert store.SlotFile(path, 64).read() is None, start
    finally:
        _remove(path)


def test_a_file_with_no_valid_record_is_not_a_fresh_store():
    # Taking it for one would reset the counters, or overwrite a file that
    # is not a store at all.
    path = _temp_path()
    try:
        for content in (b'{"format": "emvkit-card"}', b"EMVS\x02", b"\xff" * 10, bytes(65),
                        store.encode_record(0, b"x")[:-1] + bytes(60)):
            _put_file(path, content)
            slots = store.SlotFile(path, 64)
            exc = _raises(slots.read, store.StoreError)
            assert "no valid record" in str(exc) and path in str(exc), str(exc)
            _raises(lambda s=slots: s.write(b"new"), store.StoreError)
            assert _file_bytes(path) == content
    finally:
        _remove(path)


def test_writes_alternate_slots_and_the_newest_wins():
    path = _temp_path()
    try:
        slots = store.SlotFile(path, 64)
        slots.write(b"A")  # slot 0, seq 0 (creates the file)
        slots.write(b"BB")  # slot 1, seq 1
        slots.write(b"CCC")  # slot 0, seq 2
        data = _file_bytes(path)
        assert data[:20] == store.encode_record(2, b"CCC")
        assert data[64:83] == store.encode_record(1, b"BB")
        assert len(data) == 83
        assert store.SlotFile(path, 64).read() == b"CCC"
        # A new SlotFile that writes before reading still spares the newest.
        store.SlotFile(path, 64).write(b"DDDD")
        data = _file_bytes(path)
        assert data[:20] == store.encode_record(2, b"CCC")
        assert data[64:85] == store.encode_record(3, b"DDDD")
        assert store.SlotFile(path, 64).read() == b"DDDD"
    finally:
        _remove(path)


def test_a_staged_record_counts_only_once_committed():
    path = _temp_path()
    try:
        slots = store.SlotFile(path, 64)
        slots.write(b"old")  # slot 0, seq 0
        staged = slots.stage(13)
        staged.write(0, b'{"a": ')
        assert store.SlotFile(path, 64).read() == b"old"  # a cut now: the old record
        assert staged.crc() is None  # not all there
        _raises(staged.commit, store.StoreError)
        assert store.SlotFile(path, 64).read() == b"old"
        staged.write(0, b'{"a": ')  # a resent piece, then the rest
        staged.write(6, b"[1, 2]}")
        _raises(lambda: staged.write(12, b"xx"), store.StoreError)  # past the announced length
        assert store.SlotFile(path, 64).read() == b"old"  # written, not committed: still the old one
        assert staged.crc() == 0x726169D5  # zlib.crc32 of the 13 bytes, worked out apart
        with staged.reader() as stream:
            assert json.load(stream) == {"a": [1, 2]}  # the stream ends with the payload
        staged.commit()
        assert _file_bytes(path)[64:] == store.encode_record(1, b'{"a": [1, 2]}')
        assert slots.read() == store.SlotFile(path, 64).read() == b'{"a": [1, 2]}'
        with store.SlotFile(path, 64).reader() as stream:
            assert json.load(stream) == {"a": [1, 2]}
        assert store.SlotFile(_temp_path() + "-none", 64).reader() is None
    finally:
        _remove(path)


def test_payload_too_large_is_refused_before_writing():
    path = _temp_path()
    try:
        slots = store.SlotFile(path, 64)
        assert slots.capacity == 64 - store.OVERHEAD
        exc = _raises(lambda: slots.write(bytes(slots.capacity + 1)), store.StoreError)
        assert isinstance(exc, ValueError) and "do not fit" in str(exc)
        assert not _exists(path)  # nothing created
        slots.write(bytes(slots.capacity))
        before = _file_bytes(path)
        _raises(lambda: slots.write(bytes(100)), store.StoreError)
        assert _file_bytes(path) == before
        assert store.SlotFile(path, 64).read() == bytes(slots.capacity)
        _raises(lambda: store.SlotFile(path, store.OVERHEAD), store.StoreError)
    finally:
        _remove(path)


def _damage(path, offset):
    data = bytearray(_file_bytes(path))
    data[offset] ^= 0x01
    _put_file(path, data)


def test_a_damaged_slot_is_skipped():
    path = _temp_path()
    try:
        slots = store.SlotFile(path, 64)
        slots.write(b"old")
        slots.write(b"new")  # slot 1
        for offset in (64, 64 + 4, 64 + 8, 64 + 12, 64 + 13, 64 + 16, 64 + 19):
            good = _file_bytes(path)
            _damage(path, offset)  # magic, version, seq, length, payload, CRC
            assert store.SlotFile(path, 64).read() == b"old", offset
            _put_file(path, good)
        _damage(path, 13)
        _damage(path, 64 + 13)
        _raises(store.SlotFile(path, 64).read, store.StoreError)
        # A length that runs past the slot is not even read.
        _put_file(path, store.encode_record(0, b"x")[:9] + (64).to_bytes(4, "big") + bytes(51)
                  + store.encode_record(1, b"y"))
        assert store.SlotFile(path, 64).read() == b"y"
    finally:
        _remove(path)


def test_any_slot_size():
    path = _temp_path()
    try:
        for size in (store.OVERHEAD + 1, 100, 512, store.STATE_SLOT_SIZE, store.PERSO_SLOT_SIZE):
            _remove(path)
            slots = store.SlotFile(path, size)
            for i in range(3):
                payload = bytes([i + 1]) * slots.capacity
                slots.write(payload)
                assert store.SlotFile(path, size).read() == payload, (size, i)
    finally:
        _remove(path)


def test_sequence_exhausted_is_refused():
    path = _temp_path()
    try:
        _put_file(path, store.encode_record(0xFFFFFFFF, b"last"))
        before = _file_bytes(path)
        exc = _raises(lambda: store.SlotFile(path, 64).write(b"more"), store.StoreError)
        assert "exhausted" in str(exc)
        assert _file_bytes(path) == before
    finally:
        _remove(path)


def test_a_personalisation_fits_the_perso_slot():
    path = _temp_path()
    try:
        for name in ("visa", "mastercard", "unionpay", "wearable"):
            with open(_PROFILES + name + ".json") as f:
                doc = json.load(f)
            payload = json.dumps(doc, separators=(",", ":")).encode()
            _remove(path)
            store.SlotFile(path, store.PERSO_SLOT_SIZE).write(payload)
            back = store.SlotFile(path, store.PERSO_SLOT_SIZE).read()
            assert json.loads(back.decode()) == doc, name
    finally:
        _remove(path)


# --- CardStore ---

def test_card_store_fresh_load_is_a_copy_of_the_initial_state():
    path = _temp_path()
    try:
        initial = CardState(atc=7, log=[b"\x01\x02"])
        cards = store.CardStore(store.SlotFile(path, _SLOT), initial)
        state = cards.load()
        assert state.to_dict() == initial.to_dict() and state is not initial
        assert cards.load() is state  # cached
        assert not _exists(path)  # loading writes nothing
    finally:
        _remove(path)


def test_card_store_round_trip():
    path = _temp_path()
    try:
        cards = store.CardStore(store.SlotFile(path, _SLOT))
        state = cards.load()
        state.atc = 0x1234
        state.last_online_atc = 0x1200
        state.consecutive_offline = 3
        state.offline_amount = 999999999999
        state.pin_try_counter = 2
        state.log = [bytes(range(20)), b"\xff" * 255]
        cards.save(state)
        assert cards.saves == 1
        again = store.CardStore(store.SlotFile(path, _SLOT), CardState(atc=1)).load()
        assert again.to_dict() == state.to_dict()
        assert store.decode_state(store.encode_state(state)).to_dict() == state.to_dict()
    finally:
        _remove(path)


def test_encoding_is_compact_sorted_json():
    raw = store.encode_state(CardState(atc=1, log=[b"\xab"]))
    assert raw == (b'{"atc":1,"blocked":0,"consecutive_offline":0,"last_online_atc":0,"log":["ab"],'
                   b'"offline_amount":0,"pin_try_counter":3,"script_commands":0,"script_failed":0}'), raw


def test_limits_cover_every_field_of_the_state():
    fields = sorted(CardState().to_dict())
    assert "log" in fields
    from_state = CardState.from_dict(CardState().to_dict(), complete=True)
    assert sorted(from_state.to_dict()) == fields


def test_a_profiles_state_block_is_checked_field_by_field():
    good = CardState.from_dict({"atc": 5, "pin_try_counter": 0, "log": ["0102"]})
    assert good.atc == 5 and good.pin_try_counter == 0 and good.log == [b"\x01\x02"]
    assert CardState.from_dict({}).to_dict() == CardState().to_dict()
    cases = [
        ({"atc": "abc"}, "state.atc must be an integer 0..65535"),
        ({"atc": 1.5}, "state.atc must be an integer"),
        ({"atc": True}, "state.atc must be an integer"),
        ({"atc": 0x10000}, "state.atc must be an integer 0..65535"),
        ({"offline_amount": 10 ** 12}, "state.offline_amount must be an integer 0..999999999999"),
        ({"pin_try_counter": -1}, "state.pin_try_counter"),
        ({"log": "ab"}, "state.log must be a list"),
        ({"log": ["zz"]}, "state.log[0] must be a hex string"),
        ({"log": ["01", 1.5]}, "state.log[1] must be a hex string"),
        ({"log": [""]}, "state.log[0]"),
        ({"atcc": 1}, "state: unknown field 'atcc'"),
        ([1], "state: expected an object"),
        (1.5, "state: expected an object"),
    ]
    for doc, words in cases:
        exc = _raises(lambda d=doc: CardState.from_dict(d), StateError)
        assert words in str(exc), (doc, str(exc))
    exc = _raises(lambda: CardState.from_dict({"atc": "x" * 10000}), StateError)
    assert len(str(exc)) < 200  # a huge value is not quoted whole


def test_a_profile_with_a_bad_state_block_is_refused():
    for state in ({"atc": "abc"}, {"log": ["zz"]}, {"atc": 1.5}, 7):
        with open(_PROFILES + "visa.json") as f:
            doc = json.load(f)
        doc["state"] = state
        exc = _raises(lambda d=doc: Profile(d), ValueError)
        assert str(exc).startswith("state"), str(exc)


def test_nonsense_with_a_good_crc_is_one_clear_error():
    base = CardState().to_dict()
    bad = [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"{", "not JSON"),
    ]
    for name in ("atc", "last_online_atc", "consecutive_offline", "offline_amount", "pin_try_counter"):
        for value in (-1, "1", 1.5, True, None, 2 ** 40):
            doc = dict(base)
            doc[name] = value
            bad.append((json.dumps(doc).encode(), name + " must be an integer"))
        doc = dict(base)
        del doc[name]
        bad.append((json.dumps(doc).encode(), name + " must be an integer"))
    for log in ("ab", [1], ["zz"], [""], ["ab" * 256], None):
        doc = dict(base)
        doc["log"] = log
        bad.append((json.dumps(doc).encode(), "log"))
    doc = dict(base)
    doc["extra"] = 1
    bad.append((json.dumps(doc).encode(), "unknown field"))
    path = _temp_path()
    try:
        for payload, words in bad:
            _remove(path)
            store.SlotFile(path, _SLOT).write(payload)
            cards = store.CardStore(store.SlotFile(path, _SLOT))
            exc = _raises(cards.load, store.StoreError)
            assert words in str(exc) and path in str(exc) and "\n" not in str(exc), (payload, str(exc))
    finally:
        _remove(path)


def test_the_atc_is_on_file_before_the_cryptogram_leaves():
    path = _temp_path()
    try:
        card = Card(_profile("visa"), store=store.CardStore(store.SlotFile(path, _SLOT)), rng=CountingRandom())
        for command in _TRANSACTIONS["visa"][:2]:
            card.process(bytes.fromhex(command))
        card.store.load()
        # The card cannot write: the GPO (the cryptogram) must not come out.
        card.store.slot_file.opener = _Supply(0).open
        _raises(lambda: card.process(bytes.fromhex(_TRANSACTIONS["visa"][2])), PowerCut)
        card = Card(_profile("visa"), store=store.CardStore(store.SlotFile(path, _SLOT)), rng=CountingRandom())
        seen = _Released()
        _transaction(card, "visa", seen, 0)
        assert (seen.count, seen.last) == (1, (0, 1))
        assert store.CardStore(store.SlotFile(path, _SLOT)).load().atc == 1
    finally:
        _remove(path)
