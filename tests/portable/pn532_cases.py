# Portable tests of firmware.nfc.pn532 (the PN532 target driver's framing and
# its command flow, against a scripted chip on an in-memory bus): run by
# pytest on CPython (tests/test_portable.py) and by tests/portable/run.py
# under MicroPython. Plain asserts only. Frames are written out by hand from
# UM0701-02 §6.2.1, not built with the code under test.
try:
    from emvkit.firmware.nfc import bus, pn532
except ImportError:
    from firmware.nfc import bus, pn532

from front_end_fakes import FakeCard, FakeClock

ACK = b"\x00\x00\xff\x00\xff\x00"
# SAMConfiguration normal mode, timeout 0x14, no IRQ: LEN 5, LCS FB, DCS = -(D4+14+01+14+00)
SAM = b"\x00\x00\xff\x05\xfb\xd4\x14\x01\x14\x00\x03\x00"
SAM_ANSWER = b"\x00\x00\xff\x02\xfe\xd5\x15\x16\x00"
TG_GET_DATA = b"\x00\x00\xff\x02\xfe\xd4\x86\xa6\x00"


def _answer(code, data):
    # D5 code+1 data as a normal frame, sums worked out here.
    body = bytes((0xD5, code + 1)) + data
    return b"\x00\x00\xff" + bytes((len(body), (256 - len(body)) & 0xFF)) + body \
        + bytes(((256 - sum(body) % 256) % 256, 0))


class _Card(FakeCard):
    def answer(self, apdu):
        return apdu + b"\x90\x00"


def _driver(card=None):
    b = bus.MemoryBus()
    clock = FakeClock()
    c = card if card is not None else _Card()
    d = pn532.Pn532Target(b, lambda: c, b"\x11\x22\x33", ticks_ms=clock.ticks, ticks_diff=clock.diff)
    return d, b, clock, c


def _feed(parser, data):
    return [e for e in [parser.feed(x) for x in data] if e != pn532.EV_NONE]


def test_build_frame_matches_the_manual():
    buf = bytearray(300)
    n = pn532.build_frame(buf, 0x14, b"\x01\x14\x00")
    assert bytes(buf[:n]) == SAM
    n = pn532.build_frame(buf, 0x86)
    assert bytes(buf[:n]) == TG_GET_DATA


def test_build_frame_refuses_more_than_a_normal_frame_holds():
    buf = bytearray(300)
    assert pn532.build_frame(buf, 0x8E, bytes(253)) == 262
    refused = False
    try:
        pn532.build_frame(buf, 0x8E, bytes(254))
    except ValueError:
        refused = True
    assert refused, "254 data bytes accepted"


def test_parser_ack_nack_and_frames():
    p = pn532.FrameParser()
    assert _feed(p, ACK) == [pn532.EV_ACK]
    assert _feed(p, b"\x00\x00\xff\xff\x00\x00") == [pn532.EV_NACK]
    assert _feed(p, SAM_ANSWER) == [pn532.EV_FRAME]
    assert bytes(p.frame()) == b"\xd5\x15"


def test_parser_skips_garbage_and_reports_bad_checksums():
    p = pn532.FrameParser()
    assert _feed(p, b"\x55\x13\xff\x00") == []  # no 00 FF start code: nothing
    bad_lcs = b"\x00\x00\xff\x02\xfd\xd5\x15\x16\x00"
    assert _feed(p, bad_lcs) == [pn532.EV_BAD]
    bad_dcs = b"\x00\x00\xff\x02\xfe\xd5\x15\x17\x00"
    assert _feed(p, bad_dcs) == [pn532.EV_BAD]
    assert _feed(p, SAM_ANSWER) == [pn532.EV_FRAME]  # and the next good frame is found


def test_parser_reads_an_extended_frame():
    body = b"\xd5\x87\x00" + bytes(range(256))[:259 - 3]
    n = len(body)  # 259: more than a normal frame holds
    frame = b"\x00\x00\xff\xff\xff" + bytes((n >> 8, n & 0xFF, (256 - ((n >> 8) + (n & 0xFF)) % 256) % 256)) \
        + body + bytes(((256 - sum(body) % 256) % 256, 0))
    p = pn532.FrameParser()
    assert _feed(p, frame) == [pn532.EV_FRAME]
    assert bytes(p.frame()) == body


def test_wake_up_then_sam_configuration_first():
    d, b, _, _ = _driver()
    d.poll()
    out = b.take()
    assert out.startswith(b"\x55\x55\x00\x00")
    assert out.endswith(SAM)


def test_a_tap_as_the_driver_sees_it():
    d, b, _, card = _driver()
    d.poll()
    b.take()
    b.feed(ACK + SAM_ANSWER)
    d.poll()
    init = b.take()
    # TgInitAsTarget: mode 05, SENS_RES 04 00, NFCID1t 11 22 33, SEL_RES 20, 18 + 10 zeros, no Gt, Tk 80 73
    params = b"\x05\x04\x00\x11\x22\x33\x20" + bytes(28) + b"\x00\x02\x80\x73"
    assert init[5:7] == b"\xd4\x8c" and init[7:-2] == params
    b.feed(ACK + _answer(0x8C, b"\x08\xe0\x80"))  # activated as PICC after RATS E0 80
    d.poll()
    assert b.take() == TG_GET_DATA and card.events == ["on"]
    b.feed(ACK + _answer(0x86, b"\x00\x00\xa4\x04\x00"))
    d.poll()
    assert b.take()[5:-2] == b"\xd4\x8e\x00\xa4\x04\x00\x90\x00"  # TgSetData with the R-APDU
    b.feed(ACK + _answer(0x8E, b"\x00"))
    d.poll()
    assert b.take() == TG_GET_DATA
    b.feed(ACK + _answer(0x86, b"\x29"))  # released by the reader
    d.poll()
    assert card.events == ["on", b"\x00\xa4\x04\x00", "off"]
    assert b.take()[5:7] == b"\xd4\x8c"  # armed again
    assert (d.activations, d.apdus, d.last_status) == (1, 1, 0x29)


def test_no_ack_sends_again_then_starts_over():
    d, b, clock, _ = _driver()
    d.poll()
    b.take()
    for _ in range(2):
        clock.now += 150
        d.poll()
        assert b.take() == SAM  # sent again (§6.2.2)
    clock.now += 150
    d.poll()
    assert b.take() == ACK  # given up: aborted
    d.poll()
    assert b.take().endswith(SAM) and d.wakeups == 2  # woken again


def test_damaged_answer_is_nacked_then_taken():
    d, b, _, _ = _driver()
    d.poll()
    b.take()
    b.feed(ACK + b"\x00\x00\xff\x02\xfe\xd5\x15\x17\x00")  # DCS wrong
    d.poll()
    assert b.take() == b"\x00\x00\xff\xff\x00\x00"  # NACK: send it again
    b.feed(SAM_ANSWER)
    d.poll()
    assert b.take()[5:7] == b"\xd4\x8c"


def test_error_frame_aborts_and_arms_again():
    d, b, _, _ = _driver()
    d.poll()
    b.take()
    b.feed(ACK + SAM_ANSWER)
    d.poll()
    b.take()
    b.feed(ACK + b"\x00\x00\xff\x01\xff\x7f\x81\x00")  # §6.2.1.5 error frame
    d.poll()
    out = b.take()
    assert out.startswith(ACK) and out[6 + 5:6 + 7] == b"\xd4\x8c"


def test_response_that_never_comes_aborts_the_session():
    d, b, clock, card = _driver()
    d.poll()
    b.take()
    b.feed(ACK + SAM_ANSWER)
    d.poll()
    b.take()
    b.feed(ACK + _answer(0x8C, b"\x08\xe0\x80"))
    d.poll()
    b.take()
    b.feed(ACK)  # TgGetData ACKed, then nothing
    d.poll()
    clock.now += 10001
    d.poll()
    out = b.take()
    assert out.startswith(ACK) and out[6 + 5:6 + 7] == b"\xd4\x8c"
    assert card.events == ["on", "off"]


def test_not_personalised_is_configured_but_not_armed():
    b = bus.MemoryBus()
    d = pn532.Pn532Target(b, lambda: None, ticks_ms=lambda: 0, ticks_diff=lambda a, c: a - c)
    d.poll()
    b.take()
    b.feed(ACK + SAM_ANSWER)
    d.poll()
    assert b.take() == b"" and d.state == pn532.ST_IDLE
    assert not d.poll()


# --- the I2C and SPI links: the same frames, in transactions ---
# Fake peripherals record every transaction; what the chip answers is scripted
# here, byte for byte.


class _I2c:
    # machine.I2C as the link uses it: writeto, readfrom_into.
    def __init__(self):
        self.writes = []  # (address, bytes)
        self.reads = []  # lengths read
        self.answers = []  # what the next reads return (status byte first)

    def writeto(self, addr, buf, stop=True):
        self.writes.append((addr, bytes(buf)))

    def readfrom_into(self, addr, buf, stop=True):
        assert addr == 0x24
        self.reads.append(len(buf))
        answer = self.answers.pop(0) if self.answers else b"\x00"
        for i in range(len(buf)):
            buf[i] = answer[i] if i < len(answer) else 0


def _read_frame(link):
    # What one readinto hands on (a frame, up to 300 bytes)
    buf = bytearray(300)
    n = link.readinto(buf, 0)
    return bytes(buf[:n])


def test_i2c_link_writes_frames_to_0x24_and_polls_the_status_byte():
    i2c = _I2c()
    link = pn532.I2cLink(i2c)
    link.wake_up()
    link.write(SAM)
    assert i2c.writes == [(0x24, b""), (0x24, SAM)]  # an address-only write wakes the chip
    assert link.readinto(bytearray(8), 0) == 0  # status 00: not ready, and no frame read
    assert i2c.reads == [1]


def test_i2c_link_reads_status_and_frame_and_keeps_the_frame_only():
    i2c = _I2c()
    link = pn532.I2cLink(i2c)
    i2c.answers = [b"\x01", b"\x01" + ACK, b"\x01", b"\x01" + SAM_ANSWER]
    assert _read_frame(link) == ACK  # the 00s after the frame are not handed on
    assert _read_frame(link) == SAM_ANSWER
    assert i2c.reads[0] == 1 and i2c.reads[1] > len(ACK) + 200  # one read of the longest frame


def test_i2c_link_takes_no_frame_when_the_second_status_says_not_ready():
    i2c = _I2c()
    link = pn532.I2cLink(i2c)
    i2c.answers = [b"\x01", b"\x00" + ACK]
    assert link.readinto(bytearray(8), 0) == 0


class _Pin:
    def __init__(self, log):
        self.log = log

    def value(self, v=None):
        if v is not None:
            self.log.append("cs%d" % v)


class _Spi:
    # machine.SPI as the link uses it: write, readinto; MISO scripted per transaction.
    def __init__(self):
        self.log = []
        self.miso = []

    def write(self, buf):
        self.log.append(bytes(buf))

    def readinto(self, buf, write=0):
        for i in range(len(buf)):
            buf[i] = self.miso.pop(0) if self.miso else 0
        self.log.append("read %d" % len(buf))


def test_spi_link_data_write_is_01_then_the_frame_in_one_transaction():
    spi = _Spi()
    link = pn532.SpiLink(spi, _Pin(spi.log))
    spi.log.clear()
    link.write(SAM)
    assert spi.log == ["cs0", b"\x01", SAM, "cs1"]


def test_spi_link_status_read_then_data_read_of_exactly_the_frame():
    spi = _Spi()
    link = pn532.SpiLink(spi, _Pin(spi.log))
    spi.log.clear()
    spi.miso = [0x00]
    assert link.readinto(bytearray(8), 0) == 0
    assert spi.log == ["cs0", b"\x02", "read 1", "cs1"]  # SR: not ready, no data read
    spi.log.clear()
    spi.miso = list(b"\x01" + SAM_ANSWER + b"\xee")  # one byte more than the frame: never read
    assert _read_frame(link) == SAM_ANSWER
    assert spi.log == ["cs0", b"\x02", "read 1", "cs1", "cs0", b"\x03", "read 5", "read 4", "cs1"]
    spi.log.clear()
    spi.miso = list(b"\x01" + ACK)
    assert _read_frame(link) == ACK
    assert spi.log[-3:] == ["read 5", "read 1", "cs1"]


def _mirror(b):
    # b's bits in the other order, one by one (the test's own reference)
    out = 0
    for i in range(8):
        if b & (1 << i):
            out |= 1 << (7 - i)
    return out


def test_spi_link_reverses_the_bits_for_an_msb_first_peripheral():
    spi = _Spi()
    link = pn532.SpiLink(spi, _Pin(spi.log), lsb_first=False)
    spi.log.clear()
    link.write(b"\x00\x00\xff\x01\xd4")
    assert spi.log == ["cs0", b"\x80", b"\x00\x00\xff\x80\x2b", "cs1"]  # 01 -> 80, D4 -> 2B
    # status 01 and the SAMConfiguration answer as an MSB-first SPI sees them: each byte's bits reversed
    spi.miso = [_mirror(b) for b in b"\x01" + SAM_ANSWER]
    assert _read_frame(link) == SAM_ANSWER


def test_driver_wakes_an_i2c_chip_with_the_links_wake_up():
    i2c = _I2c()
    clock = FakeClock()
    d = pn532.Pn532Target(pn532.I2cLink(i2c), lambda: None, b"\x11\x22\x33", ticks_ms=clock.ticks,
                          ticks_diff=clock.diff)
    d.poll()
    assert i2c.writes == [(0x24, b""), (0x24, SAM)]  # no HSU 55 preamble on I2C
