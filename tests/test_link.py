"""Property tests of the serial link framing (emvkit.firmware.link) on CPython.

The decoder is checked against a small independent reference written here
from the frame format (COBS per Cheshire & Baker, CRC-16/CCITT-FALSE through
CPython's ``binascii.crc_hqx``), so "never yields a frame with a bad CRC" is
checked by code that shares nothing with the decoder.
"""

from __future__ import annotations

import binascii
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from emvkit.firmware import link

frame_types = st.integers(0, 255)
seqs = st.integers(0, 255)
payloads = st.binary(max_size=link.MAX_PAYLOAD)
small_payloads = st.binary(max_size=300)
frames = st.tuples(frame_types, seqs, small_payloads)


def reference_decode(data: bytes, max_payload: int = link.MAX_PAYLOAD) -> list[object]:
    """Every completed run between 00 delimiters, decoded the slow obvious way."""
    out: list[object] = []
    for segment in data.split(b"\x00")[:-1]:  # the last run has no closing delimiter yet
        if not segment:
            continue
        if len(segment) > link.max_encoded(max_payload):
            out.append(link.Fault(link.FAULT_TOO_LONG, len(segment)))
            continue
        body = _reference_cobs_decode(segment)
        if body is None or len(body) < 6:
            out.append(link.Fault(link.FAULT_FRAMING, len(segment)))
        elif binascii.crc_hqx(body[:-2], 0xFFFF) != int.from_bytes(body[-2:], "big"):
            out.append(link.Fault(link.FAULT_CRC, len(segment)))
        elif int.from_bytes(body[2:4], "big") != len(body) - 6:
            out.append(link.Fault(link.FAULT_FRAMING, len(segment)))
        else:
            out.append(link.Frame(body[0], body[1], body[4:-2]))
    return out


def _reference_cobs_decode(segment: bytes) -> bytes | None:
    out = bytearray()
    i = 0
    while i < len(segment):
        code = segment[i]
        block = segment[i + 1 : i + code]
        if len(block) != code - 1:
            return None
        out += block
        i += code
        if code != 0xFF and i < len(segment):
            out.append(0)
    return bytes(out)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(frame_types, seqs, payloads)
@settings(max_examples=300, deadline=None)
def test_round_trip(ftype: int, seq: int, payload: bytes) -> None:
    wire = link.encode_frame(ftype, seq, payload)
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    assert len(wire) <= link.max_wire(link.MAX_PAYLOAD)
    assert link.decode_frames(wire) == [link.Frame(ftype, seq, payload)]
    assert bytes(link.FrameWriter().encode(ftype, seq, payload)) == wire
    assert reference_decode(wire) == [link.Frame(ftype, seq, payload)]


@given(st.binary(max_size=3000))
@settings(max_examples=300, deadline=None)
def test_cobs_round_trip(data: bytes) -> None:
    encoded = link.cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert link.cobs_decode(encoded) == data
    assert _reference_cobs_decode(encoded) == data


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_crc_table_matches_binascii(data: bytes) -> None:
    assert link.crc16_portable(data) == binascii.crc_hqx(data, 0xFFFF) == link.crc16(data)


@given(st.binary(max_size=3000), st.lists(st.integers(0, 10_000), max_size=20))
@settings(max_examples=500, deadline=None)
def test_random_bytes_never_raise_and_match_the_reference(data: bytes, cuts: list[int]) -> None:
    decoder = link.Decoder()
    events: list[object] = []
    for chunk in _chunks(data, cuts):
        events += decoder.feed(chunk)
    assert events == reference_decode(data)
    for event in events:
        assert isinstance(event, link.Fault | link.Frame)


@given(st.lists(st.sampled_from([b"\x00", b"\x01", b"\x02", b"\xff", b"\x05\x11"]), max_size=400),
       st.integers(8, 300))
@settings(max_examples=300, deadline=None)
def test_structured_noise_matches_the_reference(parts: list[bytes], max_payload: int) -> None:
    data = b"".join(parts)
    assert link.Decoder(max_payload).feed(data) == reference_decode(data, max_payload)


@st.composite
def noisy_streams(draw: st.DrawFn) -> list[tuple[bytes, bytes, bytes, link.Frame | None]]:
    """(garbage, frame wire, corrupted wire, expected frame or None when corrupted) per frame."""
    out: list[tuple[bytes, bytes, bytes, link.Frame | None]] = []
    for ftype, seq, payload in draw(st.lists(frames, min_size=1, max_size=8)):
        garbage = draw(st.binary(max_size=40))
        wire = link.encode_frame(ftype, seq, payload)
        if draw(st.booleans()):
            position = draw(st.integers(1, len(wire) - 2))  # inside the frame, not a delimiter
            bit = draw(st.integers(0, 7))
            bad = bytearray(wire)
            bad[position] ^= 1 << bit
            out.append((garbage, wire, bytes(bad), None))
        else:
            out.append((garbage, wire, wire, link.Frame(ftype, seq, payload)))
    return out


@given(noisy_streams())
@settings(max_examples=400, deadline=None)
def test_garbage_and_bit_flips_every_intact_frame_recovered_every_corrupted_one_reported(
    stream: list[tuple[bytes, bytes, bytes, link.Frame | None]],
) -> None:
    decoder = link.Decoder()
    for garbage, _wire, sent, expected in stream:
        # garbage, then the frame's opening delimiter: only faults can come out
        before = decoder.feed(garbage) + decoder.feed(sent[:1])
        assert all(isinstance(e, link.Fault) for e in before)
        events = decoder.feed(sent[1:])
        if expected is not None:
            assert events == [expected]
        else:
            assert events, "a corrupted frame went unreported"
            assert all(isinstance(e, link.Fault) for e in events), events


@given(st.lists(frames, min_size=1, max_size=6), st.binary(max_size=30))
@settings(max_examples=200, deadline=None)
def test_want_reads_never_cross_a_frame_end(items: list[tuple[int, int, bytes]], garbage: bytes) -> None:
    wires = [link.encode_frame(t, s, p) for t, s, p in items]
    stream = b"".join(wires)
    ends = []
    total = 0
    for wire in wires:
        total += len(wire)
        ends.append(total)
    decoder = link.Decoder()
    pos = 0
    got: list[object] = []
    while pos < len(stream):
        chunk = stream[pos : pos + decoder.want()]
        pos += len(chunk)
        for event in decoder.feed(chunk):
            got.append(event)
            assert pos == ends[len(got) - 1]
    assert got == [link.Frame(t, s, p) for t, s, p in items]


@given(st.integers(1, 5000), st.integers(16, 1024))
@settings(max_examples=100, deadline=None)
def test_over_long_runs_are_one_fault_then_back_in_step(extra: int, max_payload: int) -> None:
    decoder = link.Decoder(max_payload)
    size = link.max_encoded(max_payload) + extra
    ok = link.encode_frame(link.APDU_RESPONSE, 1, b"\x90\x00", max_payload)
    events = decoder.feed(b"\x00" + b"\x7e" * size + ok)
    assert events == [link.Fault(link.FAULT_TOO_LONG, size), link.Frame(link.APDU_RESPONSE, 1, b"\x90\x00")]


# --- the decoder's two paths (a whole frame in one chunk, a run kept across chunks) and FF blocks ---

runs = st.builds(lambda byte, n: bytes([byte]) * n, st.integers(1, 255), st.integers(240, 600))
long_runs = st.lists(st.one_of(st.binary(max_size=8), runs), max_size=4).map(
    lambda parts: b"".join(parts)[: link.MAX_PAYLOAD]
)
"""Payloads with runs of 254 and more non-zero bytes: COBS blocks with code FF, which stand for no 00."""


@given(frame_types, seqs, long_runs)
@settings(max_examples=200, deadline=None)
def test_ff_blocks_round_trip_through_every_path(ftype: int, seq: int, payload: bytes) -> None:
    wire = link.encode_frame(ftype, seq, payload)
    expected = [link.Frame(ftype, seq, payload)]
    assert reference_decode(wire) == expected
    assert bytes(link.FrameWriter().encode(ftype, seq, payload)) == wire
    assert link.Decoder().feed(wire) == expected  # whole: decoded straight from the chunk
    decoder = link.Decoder()
    assert decoder.feed(wire[: len(wire) // 2]) == []
    assert decoder.feed(wire[len(wire) // 2 :]) == expected  # kept across chunks


@given(st.binary(max_size=253))
@settings(max_examples=300, deadline=None)
def test_in_place_stuffing_is_cobs(body: bytes) -> None:
    buf = bytearray(len(body) + 2)
    buf[2:] = body
    link._stuff_in_place(buf, 1, len(body) + 2)
    assert bytes(buf[1:]) == link.cobs_encode(body)


@given(st.binary(min_size=1, max_size=600).map(lambda b: b.replace(b"\x00", b"\x01")))
@settings(max_examples=300, deadline=None)
def test_cobs_decode_into_matches_the_reference_on_any_run(run: bytes) -> None:
    """Any run of non-zero bytes (what the decoder sees between delimiters), valid COBS or not."""
    dst = bytearray(len(run))
    n = link.cobs_decode_into(run, len(run), dst)
    expected = _reference_cobs_decode(run)
    assert (n < 0) == (expected is None)
    if expected is not None:
        assert bytes(dst[:n]) == expected


@st.composite
def streams_with_frames(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """Frames (some with FF blocks, some corrupted) among garbage, and where each piece ends."""
    parts: list[bytes] = []
    ends: list[int] = []
    total = 0
    for ftype, seq, payload in draw(st.lists(st.tuples(frame_types, seqs, st.one_of(small_payloads, long_runs)),
                                             min_size=1, max_size=6)):
        garbage = draw(st.binary(max_size=20))
        wire = bytearray(link.encode_frame(ftype, seq, payload))
        if draw(st.integers(0, 4)) == 0:
            wire[draw(st.integers(1, len(wire) - 2))] ^= 1 << draw(st.integers(0, 7))
        for piece in (garbage, bytes(wire)):
            parts.append(piece)
            total += len(piece)
            ends.append(total)
    return b"".join(parts), ends


@given(streams_with_frames(), st.lists(st.integers(0, 20_000), max_size=25), st.booleans())
@settings(max_examples=400, deadline=None)
def test_any_chunking_gives_the_same_events(stream: tuple[bytes, list[int]], cuts: list[int], aligned: bool) -> None:
    """Random chunkings, and chunks cut at every piece (a whole frame in one read), match the reference."""
    data, ends = stream
    expected = reference_decode(data)
    chunks = _chunks(data, ends) if aligned else _chunks(data, cuts)
    decoder = link.Decoder()
    events: list[object] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    assert events == expected
    assert link.Decoder().feed(data) == expected
