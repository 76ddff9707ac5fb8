# Portable tests of firmware.link (framing) and firmware.devlink (the dev-link
# dispatcher): run by pytest on CPython (tests/test_portable.py) and by
# tests/portable/run.py under MicroPython. Plain asserts only.
# CPython imports the installed package; MicroPython the firmware folder on MICROPYPATH.
try:
    from emvkit.firmware import crc, devlink, link
except ImportError:
    from firmware import crc, devlink, link

# CRC-16/CCITT-FALSE check value from the CRC catalogue (reveng.sourceforge.io
# "CRC-16/IBM-3740", alias CCITT-FALSE): poly 1021, init FFFF, check 29B1.
_CHECK = b"123456789"

# COBS examples 1-11 of Wikipedia's "Consistent Overhead Byte Stuffing"
# article (the trailing 00 delimiter left off: cobs_encode does not add it).
_R254 = bytes(range(1, 255))  # 01..FE


def _cobs_vectors():
    return [
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
        (_R254, b"\xff" + _R254),
        (b"\x00" + _R254, b"\x01\xff" + _R254),
        (_R254 + b"\xff", b"\xff" + _R254 + b"\x02\xff"),
        (_R254[1:] + b"\xff\x00", b"\xff" + _R254[1:] + b"\xff\x01\x01"),
        (_R254[2:] + b"\xff\x00\x01", b"\xfe" + _R254[2:] + b"\xff\x02\x01"),
        (b"", b"\x01"),
    ]


def _frames(data):
    return [e for e in link.decode_frames(data) if isinstance(e, link.Frame)]


def _faults(events):
    return [e for e in events if isinstance(e, link.Fault)]


def _raises(call, exc_type):
    try:
        call()
    except exc_type as exc:
        return exc
    raise AssertionError("no %s" % exc_type.__name__)


# --- CRC ---

def test_crc16_ccitt_false_check_value():
    assert link.crc16(_CHECK) == 0x29B1
    assert link.crc16_portable(_CHECK) == 0x29B1
    assert link.crc16(b"") == 0xFFFF
    assert link.crc16(b"\x00") == link.crc16_portable(b"\x00") == 0xE1F0


def test_crc16_runs_on():
    assert link.crc16(_CHECK[4:], link.crc16(_CHECK[:4])) == 0x29B1
    data = bytes(range(256)) * 3
    assert link.crc16(data) == link.crc16_portable(data)
    assert link.crc16(memoryview(data)[10:20]) == link.crc16_portable(data[10:20])


# --- COBS ---

def test_cobs_published_vectors():
    for raw, encoded in _cobs_vectors():
        assert link.cobs_encode(raw) == encoded, (raw, link.cobs_encode(raw))
        assert link.cobs_decode(encoded) == raw
        assert 0 not in link.cobs_encode(raw)


def test_cobs_round_trip_around_block_sizes():
    for n in (0, 1, 2, 253, 254, 255, 256, 507, 508, 509, 1030):
        for data in (bytes([(i % 255) + 1 for i in range(n)]), bytes(n), bytes([0xFF]) * n,
                     bytes([i & 0xFF for i in range(n)])):
            enc = link.cobs_encode(data)
            assert 0 not in enc
            assert len(enc) <= n + n // 254 + 1
            assert link.cobs_decode(enc) == data, n


def test_cobs_decode_rejects_bad_input():
    for bad in (b"\x00", b"\x05\x11\x22", b"\x03\x11\x00"):
        _raises(lambda bad=bad: link.cobs_decode(bad), link.LinkError)
    dst = bytearray(8)
    assert link.cobs_decode_into(b"\x05\x11", 2, dst) == -1


# --- frames ---

def test_frame_layout():
    wire = link.encode_frame(link.APDU_COMMAND, 7, b"\x00\xa4")
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    body = link.cobs_decode(wire[1:-1])
    assert body[:4] == b"\x01\x07\x00\x02" and body[4:6] == b"\x00\xa4"
    assert int.from_bytes(body[6:], "big") == link.crc16(body[:6])


def test_round_trip_payload_sizes():
    for n in (0, 1, 253, 254, 255, 256, 1024):
        for payload in (bytes(n), bytes([0xFF]) * n, bytes([i & 0xFF for i in range(n)])):
            wire = link.encode_frame(link.APDU_RESPONSE, n & 0xFF, payload)
            assert _frames(wire) == [link.Frame(link.APDU_RESPONSE, n & 0xFF, payload)], n
            assert len(wire) <= link.max_wire(link.MAX_PAYLOAD)


def test_frame_writer_matches_encode_frame_and_reuses_its_buffer():
    writer = link.FrameWriter()
    first = writer.encode(link.LOG, 1, b"hello")
    assert bytes(first) == link.encode_frame(link.LOG, 1, b"hello")
    second = writer.encode(link.ERROR, 255, bytes(300))
    assert bytes(second) == link.encode_frame(link.ERROR, 255, bytes(300))
    assert bytes(writer.encode(link.ATR, 0, b"")) == link.encode_frame(link.ATR, 0, b"")


def test_misuse_is_link_error():
    _raises(lambda: link.encode_frame(256, 0, b""), link.LinkError)
    _raises(lambda: link.encode_frame(1, -1, b""), link.LinkError)
    _raises(lambda: link.encode_frame(1, 0, bytes(1025)), link.LinkError)
    _raises(lambda: link.FrameWriter(16).encode(1, 0, bytes(17)), link.LinkError)
    assert isinstance(link.LinkError("x"), ValueError)


def test_byte_at_a_time_and_all_at_once_agree():
    stream = b"".join([link.encode_frame(link.APDU_COMMAND, i, bytes([i]) * i) for i in range(6)])
    whole = link.decode_frames(stream)
    dec = link.Decoder()
    pieces = []
    for i in range(len(stream)):
        pieces += dec.feed(stream[i:i + 1])
    assert pieces == whole and len(whole) == 6


def test_garbage_before_between_and_after_frames():
    f1 = link.encode_frame(link.APDU_COMMAND, 1, b"\x00\xb2\x01\x0c\x00")
    f2 = link.encode_frame(link.POWER_ON, 2, b"")
    events = link.decode_frames(b"\x13\x37\xff" + f1 + b"\x41\x00\x42\x43" + f2 + b"\x99\x98")
    frames = [e for e in events if isinstance(e, link.Frame)]
    assert frames == [link.Frame(1, 1, b"\x00\xb2\x01\x0c\x00"), link.Frame(link.POWER_ON, 2, b"")]
    assert len(_faults(events)) == 3  # 13 37 FF, 41, 42 43 (99 98 awaits its delimiter)
    assert [f.kind for f in _faults(events)] == [link.FAULT_FRAMING] * 3


def test_truncated_frame_is_dropped_and_the_next_one_decodes():
    f1 = link.encode_frame(link.APDU_COMMAND, 1, bytes(range(1, 40)))
    f2 = link.encode_frame(link.APDU_COMMAND, 2, b"\x01\x02")
    dec = link.Decoder()
    assert dec.feed(f1[:-9]) == []
    events = dec.feed(f2)
    assert len(events) == 2 and isinstance(events[0], link.Fault)
    assert events[1] == link.Frame(link.APDU_COMMAND, 2, b"\x01\x02")


def test_every_single_bit_flip_is_reported_never_delivered():
    payload = bytes.fromhex("00A404000E325041592E5359532E444446303100")
    wire = link.encode_frame(link.APDU_COMMAND, 9, payload)
    good = link.encode_frame(link.APDU_COMMAND, 10, b"\x90\x00")
    for i in range(1, len(wire) - 1):  # inside the frame, delimiters kept
        for bit in range(8):
            bad = bytearray(wire)
            bad[i] ^= 1 << bit
            events = link.decode_frames(bytes(bad) + good)
            frames = [e for e in events if isinstance(e, link.Frame)]
            assert frames == [link.Frame(link.APDU_COMMAND, 10, b"\x90\x00")], (i, bit, events)
            assert _faults(events), (i, bit)


def test_flipped_payload_bit_is_a_crc_fault():
    wire = bytearray(link.encode_frame(link.APDU_COMMAND, 1, b"\x11\x22\x33"))
    wire[-3] ^= 0x04  # a CRC byte, still non-zero
    events = link.decode_frames(bytes(wire))
    assert len(events) == 1 and events[0].kind == link.FAULT_CRC


def test_over_long_frame_is_one_fault_then_back_in_step():
    dec = link.Decoder(max_payload=64)
    limit = link.max_encoded(64)
    events = dec.feed(b"\x00" + b"\x41" * (limit + 500))
    assert events == []
    events = dec.feed(b"\x42" * 100 + link.encode_frame(link.APDU_COMMAND, 3, b"ok"))
    assert events[0] == link.Fault(link.FAULT_TOO_LONG, limit + 600)
    assert events[1:] == [link.Frame(link.APDU_COMMAND, 3, b"ok")]
    # a well-formed frame above this decoder's maximum
    big = link.encode_frame(link.APDU_RESPONSE, 4, bytes(range(1, 101)))
    assert [e.kind for e in dec.feed(big)] == [link.FAULT_TOO_LONG]


def test_exact_maximum_frame_is_accepted():
    dec = link.Decoder(max_payload=300)
    payload = bytes([0x5A]) * 300
    assert dec.feed(link.encode_frame(link.APDU_RESPONSE, 1, payload, 300)) == [link.Frame(2, 1, payload)]


def test_length_field_must_agree():
    body = bytearray(b"\x01\x00\x00\x03\xaa\xbb")  # announces 3 bytes, carries 2
    crc = link.crc16(body)
    body += bytes((crc >> 8, crc & 0xFF))
    events = link.decode_frames(b"\x00" + link.cobs_encode(body) + b"\x00")
    assert events == [link.Fault(link.FAULT_FRAMING, len(link.cobs_encode(body)))]


def test_runts_and_empty_frames():
    assert link.decode_frames(b"\x00\x00\x00") == []
    events = link.decode_frames(b"\x00\x01\x01\x00\x02\x05\x00")
    assert [e.kind for e in events] == [link.FAULT_FRAMING, link.FAULT_FRAMING]


def test_want_never_reads_past_a_frame():
    frames = [link.encode_frame(link.APDU_COMMAND, i, bytes([0, 1, 2, 0, 0]) + bytes([7]) * (i * 100))
              for i in range(4)]
    stream = b"".join(frames)
    ends = []
    total = 0
    for f in frames:
        total += len(f)
        ends.append(total)
    dec = link.Decoder()
    pos = 0
    got = []
    reads = 0
    while pos < len(stream):
        n = dec.want()
        assert n >= 1
        chunk = stream[pos:pos + n]
        pos += len(chunk)
        reads += 1
        for e in dec.feed(chunk):
            assert isinstance(e, link.Frame)
            got.append(e)
            assert pos == ends[len(got) - 1], (pos, ends)
    assert len(got) == 4
    assert reads < len(stream) // 4


def _noisy_stream():
    # Frames among garbage: short ones, ones with FF blocks (runs of 254 and
    # more non-zero bytes), a corrupted one, a runt; and where each piece ends.
    pieces = [
        b"\x13\x37",
        link.encode_frame(link.APDU_COMMAND, 1, bytes.fromhex("00A404000E325041592E5359532E444446303100")),
        link.encode_frame(link.APDU_RESPONSE, 2, bytes([0x5A]) * 300 + b"\x00" + bytes([0x11]) * 254),
        b"\x00\xfe\x01\x02",
        link.encode_frame(link.LOG, 3, bytes(range(1, 256)) * 2),
        link.encode_frame(link.ATR, 4, b""),
    ]
    bad = bytearray(link.encode_frame(link.APDU_COMMAND, 5, b"\x01\x02\x03"))
    bad[3] ^= 0x40
    pieces += [bytes(bad), b"\x00\x01\x00", link.encode_frame(link.APDU_RESPONSE, 6, bytes(600))]
    ends = []
    total = 0
    for piece in pieces:
        total += len(piece)
        ends.append(total)
    return b"".join(pieces), ends


def test_any_chunking_gives_the_same_events():
    data, ends = _noisy_stream()
    whole = link.Decoder().feed(data)
    frames = [e for e in whole if isinstance(e, link.Frame)]
    assert [(f.type, f.seq) for f in frames] == [(1, 1), (2, 2), (0x30, 3), (0x13, 4), (2, 6)]
    assert frames[1].payload == bytes([0x5A]) * 300 + b"\x00" + bytes([0x11]) * 254
    assert frames[2].payload == bytes(range(1, 256)) * 2 and frames[4].payload == bytes(600)
    assert [e.kind for e in whole if isinstance(e, link.Fault)] == [
        link.FAULT_FRAMING, link.FAULT_FRAMING, link.FAULT_CRC, link.FAULT_FRAMING]
    for size in (1, 2, 3, 5, 8, 13, 64, 255, 1000):
        dec = link.Decoder()
        events = []
        for i in range(0, len(data), size):
            events += dec.feed(data[i:i + size])
        assert events == whole, size
    # one piece per read: each frame whole in its chunk
    dec = link.Decoder()
    events = []
    start = 0
    for end in ends:
        events += dec.feed(data[start:end])
        start = end
    assert events == whole
    # bytearray and memoryview chunks
    assert link.Decoder().feed(bytearray(data)) == whole
    assert link.Decoder().feed(memoryview(data)) == whole


def test_cobs_decode_into_ff_blocks_and_bad_runs():
    for raw in (bytes([7]) * 254, bytes([7]) * 255, bytes([7]) * 254 + b"\x00" + bytes([8]) * 600,
                b"\x00" * 3 + bytes([9]) * 508):
        enc = link.cobs_encode(raw)
        dst = bytearray(len(enc))
        assert link.cobs_decode_into(enc, len(enc), dst) == len(raw)
        assert bytes(dst[:len(raw)]) == raw
    dst = bytearray(300)
    assert link.cobs_decode_into(b"\xff" + bytes([1]) * 200, 201, dst) == -1  # an FF block cut short
    assert link.cobs_decode_into(b"\x02\x01\x00\x05", 4, dst) == -1  # a 00 code byte


def test_error_and_info_payloads():
    code, text = link.parse_error(link.error_payload(link.FAULT_CRC, "bad CRC"))
    assert code == link.FAULT_CRC and text == "bad CRC"
    assert link.parse_error(b"") == (0, "")
    info = link.parse_info(link.info_payload([("version", "1.0"), ("mem_free", 1234)]))
    assert info == {"version": "1.0", "mem_free": "1234"}


# --- devlink: the firmware's dispatcher, with a stand-in card ---

class _Card:
    def __init__(self):
        self.calls = 0
        self.events = []

    def power_on(self):
        self.events.append("on")

    def power_off(self):
        self.events.append("off")

    def process(self, apdu):
        self.calls += 1
        if apdu == b"boom":
            raise RuntimeError("bug")
        return bytes([self.calls]) + b"\x90\x00"


def _serve(dev, data):
    out = []
    dev.receive(data, lambda b: out.append(bytes(b)))
    return link.decode_frames(b"".join(out))


def test_pseudo_atr():
    assert devlink.pseudo_atr() == bytes.fromhex("3B80800101")
    assert devlink.pseudo_atr(b"\x01\x02") == bytes.fromhex("3B8280010102") + bytes((0x82 ^ 0x80 ^ 0x01 ^ 0x01 ^ 0x02,))
    _raises(lambda: devlink.pseudo_atr(bytes(16)), ValueError)


def test_devlink_power_apdu_and_power_off():
    card = _Card()
    dev = devlink.DevLink(card, devlink.pseudo_atr(), "visa")
    assert _serve(dev, link.encode_frame(link.APDU_COMMAND, 1, b"\x00\xa4")) == [
        link.Frame(link.ERROR, 1, link.error_payload(link.ERR_NOT_POWERED, "send POWER_ON first"))]
    assert _serve(dev, link.encode_frame(link.POWER_ON, 2)) == [link.Frame(link.ATR, 2, bytes.fromhex("3B80800101"))]
    assert _serve(dev, link.encode_frame(link.APDU_COMMAND, 3, b"\x00\xa4")) == [
        link.Frame(link.APDU_RESPONSE, 3, b"\x01\x90\x00")]
    assert _serve(dev, link.encode_frame(link.POWER_OFF, 4)) == [link.Frame(link.ATR, 4, b"")]
    assert card.events == ["on", "off"] and card.calls == 1


def test_devlink_resent_apdu_is_answered_without_running_the_card_again():
    card = _Card()
    dev = devlink.DevLink(card, devlink.pseudo_atr())
    _serve(dev, link.encode_frame(link.POWER_ON, 0))
    first = _serve(dev, link.encode_frame(link.APDU_COMMAND, 5, b"\x80\xae"))
    again = _serve(dev, link.encode_frame(link.APDU_COMMAND, 5, b"\x80\xae"))
    assert first == again == [link.Frame(link.APDU_RESPONSE, 5, b"\x01\x90\x00")]
    assert card.calls == 1 and dev.duplicates == 1
    # a new seq runs the card again, even for the same bytes
    assert _serve(dev, link.encode_frame(link.APDU_COMMAND, 6, b"\x80\xae"))[0].payload == b"\x02\x90\x00"


def test_devlink_naks_garbage_and_corrupt_frames():
    dev = devlink.DevLink(_Card(), devlink.pseudo_atr())
    bad = bytearray(link.encode_frame(link.POWER_ON, 1))
    bad[-2] ^= 0x10
    events = _serve(dev, b"\x00\x33\x44" + bytes(bad) + link.encode_frame(link.POWER_ON, 2))
    assert [e.type for e in events] == [link.ERROR, link.ERROR, link.ATR]
    assert link.parse_error(events[0].payload)[0] == link.FAULT_FRAMING
    assert link.parse_error(events[1].payload)[0] == link.FAULT_CRC
    assert events[0].seq == 0 and dev.faults == 2 and dev.powered


def test_devlink_card_exception_is_6f00_and_a_log_line():
    dev = devlink.DevLink(_Card(), devlink.pseudo_atr())
    _serve(dev, link.encode_frame(link.POWER_ON, 0))
    events = _serve(dev, link.encode_frame(link.APDU_COMMAND, 1, b"boom"))
    assert [e.type for e in events] == [link.LOG, link.APDU_RESPONSE]
    assert "RuntimeError" in events[0].payload.decode() and b"boom" not in events[0].payload
    assert events[1].payload == b"\x6f\x00"


def test_devlink_info_unsupported_and_ignored_types():
    dev = devlink.DevLink(_Card(), devlink.pseudo_atr(), "mastercard")
    info = _serve(dev, link.encode_frame(link.DEVICE_INFO_REQUEST, 9))
    assert info[0].type == link.DEVICE_INFO and info[0].seq == 9
    fields = link.parse_info(info[0].payload)
    assert fields["profile"] == "mastercard" and fields["version"] == devlink.VERSION
    assert int(fields["mem_free"]) >= 0 and fields["max_payload"] == "1024" and fields["impl"]
    assert _serve(dev, link.encode_frame(link.APDU_RESPONSE, 3, b"\x90\x00")) == [
        link.Frame(link.ERROR, 3, link.error_payload(link.ERR_UNSUPPORTED, "type 0x02"))]
    assert _serve(dev, link.encode_frame(link.ERROR, 4, b"\x01") + link.encode_frame(link.LOG, 5, b"x")) == []


def test_devlink_info_says_how_it_reads():
    dev = devlink.DevLink(_Card(), devlink.pseudo_atr(), "visa")
    assert "reader" not in link.parse_info(dev.info())
    dev.reader = "bytes"
    assert link.parse_info(dev.info())["reader"] == "bytes"


class _Trickle:
    # An output stream that takes at most 5 bytes a call, as a non-blocking
    # stream may, and says how many it took.
    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        taken = bytes(data[:5])
        self.data += taken
        return len(taken)


def test_devlink_run_writes_whole_frames_to_a_stream_that_takes_a_few_bytes_a_call():
    import io

    frames = link.encode_frame(link.POWER_ON, 1) + link.encode_frame(link.DEVICE_INFO_REQUEST, 2) \
        + link.encode_frame(link.APDU_COMMAND, 3, bytes(300))
    out = _Trickle()
    assert devlink.run(io.BytesIO(frames), out, _Card()) == 0
    events = link.decode_frames(bytes(out.data))
    assert [(e.type, e.seq) for e in events] == [(link.ATR, 1), (link.DEVICE_INFO, 2), (link.APDU_RESPONSE, 3)]
    assert link.parse_info(events[1].payload)["reader"] in ("want", "bytes", "arrived")


def test_devlink_run_on_streams():
    import io

    frames = link.encode_frame(link.POWER_ON, 1) + b"\x12garbage" + link.encode_frame(link.APDU_COMMAND, 2, b"\x00\xb2")
    out = io.BytesIO()
    assert devlink.run(io.BytesIO(frames), out, _Card()) == 0
    events = link.decode_frames(out.getvalue())
    assert [e.type for e in events] == [link.ATR, link.ERROR, link.APDU_RESPONSE]
    assert events[0].payload == bytes.fromhex("3B80800101")


# --- provisioning: the payloads, and DevLink with a stand-in token ---

def test_crc32_check_value_and_chaining():
    assert crc.crc32(_CHECK) == crc.crc32_portable(_CHECK) == 0xCBF43926
    assert crc.crc32(b"") == 0
    data = bytes(range(256)) * 5
    assert crc.crc32(data[100:], crc.crc32(data[:100])) == crc.crc32(data) == crc.crc32_portable(data)
    assert crc.crc32(bytearray(data)) == crc.crc32(memoryview(data)) == crc.crc32(data)


def test_provision_payloads_round_trip():
    begin = link.provision_begin_payload(6000, 0xDEADBEEF, True)
    assert begin == bytes.fromhex("00001770DEADBEEF01")
    assert link.parse_provision_begin(begin) == (6000, 0xDEADBEEF, True)
    assert link.parse_provision_begin(link.provision_begin_payload(1, 2)) == (1, 2, False)
    assert link.parse_provision_begin(begin[:8]) is None
    assert link.provision_data_payload(1020, b"ab") == bytes.fromhex("000003FC6162")
    assert link.parse_ack(link.ack_payload(3101, "visa")) == (3101, "visa")
    assert link.parse_ack(b"\x00\x00\x01") is None
    assert link.parse_ack(b"\x00\x00\x00\x01\xff") is None
    _raises(lambda: link.provision_begin_payload(1 << 32, 0), link.LinkError)
    assert link.TYPE_NAMES[link.PROVISION_COMMIT] == "PROVISION_COMMIT"
    assert link.PROVISION_CHUNK + 4 == link.MAX_PAYLOAD


class _Token:
    # A stand-in for firmware/main.py's Token: keeps what it was given.
    def __init__(self, card=None, refuse=None):
        self.card = card
        self.refuse = refuse  # a ProvisionError to raise at personalise()
        self.stored = []

    def check(self, force):
        if self.card is not None and not force:
            raise devlink.ProvisionError(link.ERR_ALREADY_PERSONALISED, "already personalised")

    def personalise(self, data, force):
        if self.refuse is not None:
            raise self.refuse
        self.check(force)
        self.stored.append(bytes(data))
        self.card = _Card()
        return self.card

    def info(self):
        return [("board", "test"), ("atc", 7)]


_PERSO = b"0123456789" * 238  # 2380 bytes: three chunks


def _chunks(data, first_seq=2):
    out = b""
    seq = first_seq
    for offset in range(0, len(data), link.PROVISION_CHUNK):
        out += link.encode_frame(link.PROVISION_DATA, seq,
                                 link.provision_data_payload(offset, data[offset:offset + link.PROVISION_CHUNK]))
        seq += 1
    return out, seq


def _begin(data, seq=1, force=False, check=None):
    return link.encode_frame(link.PROVISION_BEGIN, seq, link.provision_begin_payload(
        len(data), crc.crc32(data) if check is None else check, force))


def _codes(events):
    return [(e.type, link.parse_error(e.payload)[0] if e.type == link.ERROR else link.parse_ack(e.payload)[0])
            for e in events]


def test_devlink_provisioning_personalises_the_device():
    token = _Token()
    dev = devlink.DevLink(None, devlink.pseudo_atr(), token=token)
    assert _serve(dev, link.encode_frame(link.APDU_COMMAND, 9, b"\x00\xa4")) == [
        link.Frame(link.ERROR, 9, link.error_payload(link.ERR_NOT_PERSONALISED, "not personalised"))]
    info = link.parse_info(_serve(dev, link.encode_frame(link.DEVICE_INFO_REQUEST, 10))[0].payload)
    assert info["personalised"] == "0" and info["board"] == "test" and info["atc"] == "7"
    data, seq = _chunks(_PERSO)
    events = _serve(dev, _begin(_PERSO) + data + link.encode_frame(link.PROVISION_COMMIT, seq))
    assert _codes(events) == [(link.PROVISION_ACK, 0), (link.PROVISION_ACK, 1020), (link.PROVISION_ACK, 2040),
                              (link.PROVISION_ACK, 2380), (link.PROVISION_ACK, 2380)]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert token.stored == [_PERSO] and dev.card is token.card
    info = link.parse_info(_serve(dev, link.encode_frame(link.DEVICE_INFO_REQUEST, 11))[0].payload)
    assert info["personalised"] == "1"
    # the new card is unpowered until POWER_ON, then it answers
    assert _codes(_serve(dev, link.encode_frame(link.APDU_COMMAND, 12, b"\x00\xa4"))) == [
        (link.ERROR, link.ERR_NOT_POWERED)]
    _serve(dev, link.encode_frame(link.POWER_ON, 13))
    assert _serve(dev, link.encode_frame(link.APDU_COMMAND, 14, b"\x00\xa4"))[0].payload == b"\x01\x90\x00"


def test_devlink_provisioning_resends_are_answered_again():
    token = _Token()
    dev = devlink.DevLink(None, devlink.pseudo_atr(), token=token)
    first = _begin(_PERSO, 1)
    data, seq = _chunks(_PERSO)
    frames = link.decode_frames(data)
    chunks = b"".join([link.encode_frame(f.type, f.seq, f.payload) * 2 for f in frames])
    commit = link.encode_frame(link.PROVISION_COMMIT, seq)
    events = _serve(dev, first + first + chunks + commit + commit)
    assert _codes(events) == [(link.PROVISION_ACK, 0), (link.PROVISION_ACK, 0), (link.PROVISION_ACK, 1020),
                              (link.PROVISION_ACK, 1020), (link.PROVISION_ACK, 2040), (link.PROVISION_ACK, 2040),
                              (link.PROVISION_ACK, 2380), (link.PROVISION_ACK, 2380), (link.PROVISION_ACK, 2380),
                              (link.PROVISION_ACK, 2380)]
    assert events[-1] == events[-2] and link.parse_ack(events[-1].payload)[1] == ""
    assert token.stored == [_PERSO]  # the resent COMMIT did not personalise twice
    # a COMMIT with another seq is not a resend: nothing to commit
    assert _codes(_serve(dev, link.encode_frame(link.PROVISION_COMMIT, seq + 1))) == [
        (link.ERROR, link.ERR_OUT_OF_ORDER)]
    # nor after a power event: a new session
    _serve(dev, link.encode_frame(link.POWER_ON, 1))
    assert _codes(_serve(dev, commit)) == [(link.ERROR, link.ERR_OUT_OF_ORDER)]


def _refused(dev, frames):
    # The codes of every answer, and the device has no transfer left over.
    events = _serve(dev, frames)
    assert dev._perso is None
    return _codes(events)


def test_devlink_refuses_a_damaged_or_misordered_transfer():
    token = _Token()
    dev = devlink.DevLink(None, devlink.pseudo_atr(), token=token)
    data, seq = _chunks(_PERSO)
    commit = link.encode_frame(link.PROVISION_COMMIT, seq)
    # a CRC over the whole that does not match
    assert _refused(dev, _begin(_PERSO, check=crc.crc32(_PERSO) ^ 1) + data + commit)[-1] == (
        link.ERROR, link.ERR_INTEGRITY)
    # COMMIT before every byte arrived
    first = link.encode_frame(link.PROVISION_DATA, 2, link.provision_data_payload(0, _PERSO[:1020]))
    assert _refused(dev, _begin(_PERSO) + first + commit) == [
        (link.PROVISION_ACK, 0), (link.PROVISION_ACK, 1020), (link.ERROR, link.ERR_INTEGRITY)]
    # an offset past what has arrived (a gap): refused, and the transfer is dropped
    gap = link.encode_frame(link.PROVISION_DATA, 2, link.provision_data_payload(1020, _PERSO[1020:2040]))
    assert _refused(dev, _begin(_PERSO) + gap + commit) == [
        (link.PROVISION_ACK, 0), (link.ERROR, link.ERR_OUT_OF_ORDER), (link.ERROR, link.ERR_OUT_OF_ORDER)]
    # bytes past the announced length
    over = link.encode_frame(link.PROVISION_DATA, 2, link.provision_data_payload(0, _PERSO[:101]))
    assert _refused(dev, _begin(_PERSO[:100]) + over) == [
        (link.PROVISION_ACK, 0), (link.ERROR, link.ERR_OUT_OF_ORDER)]
    # DATA or COMMIT with no BEGIN, a malformed BEGIN or DATA, an empty personalisation
    assert _refused(dev, first) == [(link.ERROR, link.ERR_OUT_OF_ORDER)]
    assert _refused(dev, commit) == [(link.ERROR, link.ERR_OUT_OF_ORDER)]
    assert _refused(dev, link.encode_frame(link.PROVISION_BEGIN, 1, b"\x00\x01")) == [
        (link.ERROR, link.ERR_BAD_REQUEST)]
    assert _refused(dev, _begin(_PERSO) + link.encode_frame(link.PROVISION_DATA, 2, b"\x00")) == [
        (link.PROVISION_ACK, 0), (link.ERROR, link.ERR_BAD_REQUEST)]
    assert _refused(dev, _begin(b"")) == [(link.ERROR, link.ERR_BAD_REQUEST)]
    assert token.stored == [] and dev.card is None


def test_devlink_refuses_an_oversize_personalisation_before_buffering():
    dev = devlink.DevLink(None, devlink.pseudo_atr(), token=_Token())
    frame = link.encode_frame(link.PROVISION_BEGIN, 1,
                              link.provision_begin_payload(link.PROVISION_MAX + 1, 0))
    events = _serve(dev, frame)
    assert _codes(events) == [(link.ERROR, link.ERR_TOO_LARGE)] and dev._perso is None
    assert "24577" in link.parse_error(events[0].payload)[1]
    huge = link.encode_frame(link.PROVISION_BEGIN, 2, link.provision_begin_payload(0xFFFFFFFF, 0))
    assert _codes(_serve(dev, huge)) == [(link.ERROR, link.ERR_TOO_LARGE)]
    # a token whose store takes less says so, and that is the limit
    token = _Token()
    token.capacity = 2000
    dev = devlink.DevLink(None, devlink.pseudo_atr(), token=token)
    events = _serve(dev, _begin(_PERSO))
    assert _codes(events) == [(link.ERROR, link.ERR_TOO_LARGE)] and dev._perso is None
    assert link.parse_error(events[0].payload)[1] == "2380 bytes, at most 2000"
    assert _codes(_serve(dev, _begin(_PERSO[:2000], 3))) == [(link.PROVISION_ACK, 0)]


def test_devlink_already_personalised_needs_force():
    old = _Card()
    token = _Token(card=old)
    dev = devlink.DevLink(old, devlink.pseudo_atr(), "old", token=token)
    assert _refused(dev, _begin(_PERSO)) == [(link.ERROR, link.ERR_ALREADY_PERSONALISED)]
    data, seq = _chunks(_PERSO)
    events = _serve(dev, _begin(_PERSO, force=True) + data + link.encode_frame(link.PROVISION_COMMIT, seq))
    assert _codes(events)[-1] == (link.PROVISION_ACK, len(_PERSO))
    assert dev.card is token.card and dev.card is not old and token.stored == [_PERSO]


def test_devlink_a_refusal_from_the_token_leaves_the_device_as_it_was():
    old = _Card()
    token = _Token(card=old, refuse=devlink.ProvisionError(link.ERR_BAD_PROFILE, "applications: at least one"))
    dev = devlink.DevLink(old, devlink.pseudo_atr(), "old", token=token)
    _serve(dev, link.encode_frame(link.POWER_ON, 1))
    data, seq = _chunks(_PERSO)
    events = _serve(dev, _begin(_PERSO, force=True) + data + link.encode_frame(link.PROVISION_COMMIT, seq))
    assert events[-1] == link.Frame(link.ERROR, seq,
                                    link.error_payload(link.ERR_BAD_PROFILE, "applications: at least one"))
    assert dev.card is old and dev.profile_id == "old" and dev.powered and dev._perso is None
    assert _serve(dev, link.encode_frame(link.APDU_COMMAND, 40, b"\x00\xa4"))[0].type == link.APDU_RESPONSE


def test_devlink_without_a_token_takes_no_provisioning():
    dev = devlink.DevLink(_Card(), devlink.pseudo_atr())
    assert _codes(_serve(dev, _begin(_PERSO))) == [(link.ERROR, link.ERR_UNSUPPORTED)]
    info = link.parse_info(dev.info())
    assert info["personalised"] == "1" and "board" not in info
