# Portable tests of firmware.nfc.nci (the PN7150/PN7160 NCI driver): the
# recorded frame sequences of tests/vectors/nfc/*.nci (format and provenance
# in that folder's README.md) replayed against the driver on an in-memory
# I2C bus, plus a few packet-level cases. Run by pytest on CPython
# (tests/test_portable.py) and by tests/portable/run.py under MicroPython.
# Plain asserts only; expected bytes come from the files, never from the
# code under test.
try:
    from emvkit.firmware.nfc import bus, nci
except ImportError:
    from firmware.nfc import bus, nci

from front_end_fakes import FakeCard, FakeClock

_HERE = __file__.replace("\\", "/")
_VECTORS = (_HERE.rsplit("/", 1)[0] if "/" in _HERE else ".") + "/../vectors/nfc/"
_POLLS = 50  # polls at most for the driver to write what a line expects, or to go quiet


def _hex(text):
    return bytes.fromhex(text.replace(" ", ""))


def load(name):
    # The lines of a .nci file, includes expanded: (kind, rest) pairs.
    out = []
    with open(_VECTORS + name) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("include "):
                out += load(line[8:].strip())
                continue
            kind, _, rest = line.partition(" ")
            out.append((kind, rest.strip()))
    return out


class _Card(FakeCard):
    def __init__(self):
        FakeCard.__init__(self)
        self.answers = {}

    def answer(self, apdu):
        return self.answers.get(apdu, b"\x6d\x00")


def _driver():
    b = bus.MemoryI2cBus()
    clock = FakeClock()
    card = _Card()
    d = nci.NciTarget(b, lambda: card, b"\x08\x11\x22\x33", ticks_ms=clock.ticks, ticks_diff=clock.diff)
    return d, b, clock, card


def replay(name):
    d, b, clock, card = _driver()
    for number, (kind, rest) in enumerate(load(name)):
        where = "%s line %d (%s %s)" % (name, number + 1, kind, rest[:40])
        if kind == "card":
            command, _, response = rest.partition("->")
            card.answers[_hex(command)] = _hex(response)
        elif kind == "<":
            b.feed(_hex(rest))
        elif kind == ">":
            for _ in range(_POLLS):
                if b.writes:
                    break
                d.poll()
            assert b.writes, "%s: the driver wrote nothing (state %d, %s)" % (where, d.state, d.last_fault)
            got = b.writes.pop(0)
            assert got == _hex(rest), "%s: the driver wrote %s" % (where, got.hex())
        elif kind == "~":
            clock.now += int(rest)
        elif kind == "=":
            for _ in range(_POLLS):
                if not d.poll():
                    break
            assert not b.writes, "%s: the driver also wrote %s" % (where, [w.hex() for w in b.writes])
            attr, _, value = rest.partition(" ")
            assert getattr(d, attr) == int(value), "%s: %s is %r (%s)" % (where, attr, getattr(d, attr), d.last_fault)
        else:
            raise ValueError("%s: unknown line" % where)
    return d, card


def test_pn7150_bring_up():
    d, _ = replay("pn7150_bringup.nci")
    assert d.version == 0x10 and d.max_ctrl == 255 and d.rearms == 0


def test_pn7160_bring_up():
    d, _ = replay("pn7160_bringup.nci")
    assert d.version == 0x20 and d.max_ctrl == 255 and d.rearms == 0


def test_select_ppse_segmented_then_rearm():
    d, card = replay("pn7150_select_ppse.nci")
    assert card.events[0] == "on" and card.events[2:] == ["off", "on", "off"]
    assert card.events[1] == _hex("00A404000E325041592E5359532E444446303100")
    assert d.apdus == 1 and d.errors == 0


def test_errors_start_over_and_rearm():
    d, _ = replay("pn7150_errors.nci")
    assert d.errors == 0


def test_not_personalised_is_configured_but_does_not_listen():
    b = bus.MemoryI2cBus()
    d = nci.NciTarget(b, lambda: None, ticks_ms=lambda: 0, ticks_diff=lambda a, c: a - c)
    lines = [(k, r) for k, r in load("pn7150_bringup.nci") if k in "<>"][:10]  # up to the routing
    for kind, rest in lines:
        if kind == "<":
            b.feed(_hex(rest))
        else:
            while not b.writes:
                d.poll()
            assert b.writes.pop(0) == _hex(rest)
    d.poll()
    assert d.state == nci.ST_IDLE and not d.poll() and b.writes == []


def test_a_long_c_apdu_is_refused_with_wrong_length():
    d, b, _, card = _driver()
    for kind, rest in load("pn7150_bringup.nci"):
        if kind == "<":
            b.feed(_hex(rest))
        elif kind == ">":
            while not b.writes:
                d.poll()
            b.writes.pop(0)
    b.feed(_hex("61050C01020480FF0100800000 0180"))
    b.feed(b"\x10\x00\xff" + bytes(255))  # 255 + 10 bytes: more than a short C-APDU
    b.feed(b"\x00\x00\x0a" + bytes(10))
    for _ in range(10):
        d.poll()
    assert b.writes == [b"\x00\x00\x02\x67\x00"] and card.events == ["on"]


def test_data_on_another_connection_starts_over():
    d, b, _, card = _driver()
    d.state = nci.ST_LISTEN
    d.card = card
    b.feed(b"\x01\x00\x01\x00")  # data, connection 1
    d.poll()
    assert d.state == nci.ST_OFF and d.rearms == 1
    d.poll()
    assert b.writes == [b"\x20\x00\x01\x01"]


def test_pn7160_power_up_notification_before_the_reset_answer_is_skipped():
    # NCI 2.0: a CORE_RESET_NTF with trigger 01 (power-up) may precede the answer to CORE_RESET_CMD.
    d, b, _, _ = _driver()
    d.poll()
    assert b.take() == [_hex("20000101")]
    b.feed(_hex("600009 01 01 20 04 04 50120001"))
    b.feed(_hex("40000100"))
    b.feed(_hex("600009 02 01 20 04 04 50120001"))
    for _ in range(5):
        d.poll()
    assert b.take() == [_hex("2001020000")] and d.version == 0x20 and d.rearms == 0
