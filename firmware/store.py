# Tearing-safe persistent storage: the card's state (ATC, counters, log) and,
# with a larger slot, the personalisation.
#
# Portable: runs unchanged on CPython (the host emulator's state file) and on
# MicroPython (a file on the token's littlefs mount).
#
# One file holds two fixed-size slots: slot 0 at offset 0, slot 1 at offset
# slot_size. Each slot holds at most one record (big-endian integers):
#
#   magic    4 bytes  b"EMVS"
#   version  1 byte   1
#   seq      4 bytes  write sequence number: the higher of two valid records wins
#   length   4 bytes  payload length
#   payload  `length` bytes
#   crc      4 bytes  CRC-32 (IEEE 802.3, as zlib and binascii compute it)
#                     over magic..payload
#
# Why a power cut (or a kill) at any point of a write loses nothing that was
# ever acknowledged:
#
# 1. A write goes into the slot that does NOT hold the newest valid record,
#    with seq = newest seq + 1, and touches no byte outside that slot. The
#    newest record, the one the last acknowledged write made, is never
#    overwritten while it is the newest.
# 2. A cut leaves the slot being written as any mix of new bytes and the
#    bytes it held before (in any order: caches and flash pages need not
#    write front to back). The CRC covers every byte before it, so such a mix
#    reads as invalid unless it is exactly the complete new record, or
#    exactly the record the slot held before (older than the newest, so it
#    does not win). A false match needs a CRC-32 collision (2**-32).
# 3. So after a cut, read() returns the newest acknowledged payload or the new
#    one, never anything else; and `write` returns only once the record is
#    durable (flush, then os.fsync where the platform has it; littlefs
#    commits a file on flush), so whatever the caller does after `write`
#    returned (the card releasing a cryptogram under the saved ATC) happens
#    after the record survives any cut.
#
# The slot size is part of a file's format (no record says it): open a file
# with the slot size it was written with, always.
#
# Out of scope: a committed record that rots later (a bit flip in flash)
# reads as invalid and the older slot wins; media that erase more than the
# bytes written (raw flash with a shared erase block) must sit behind a
# filesystem such as littlefs, which never rewrites committed blocks in place.

import json
import os

from .crc import crc32
from .payapp.state import CardState, StateError

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

MAGIC = b"EMVS"
VERSION = const(1)
HEADER_SIZE = const(13)  # magic, version, seq, length
CRC_SIZE = const(4)
OVERHEAD = const(17)  # header + CRC

# Suggested slot sizes: the card state (a built-in card's record is 118
# bytes fresh, at most 577 with a full log) and a personalisation profile
# (compact JSON with the keys: 3.1-5.7 KB for the built-in cards with
# 1024-bit RSA keys; room for 2048-bit ones).
STATE_SLOT_SIZE = const(4096)
PERSO_SLOT_SIZE = const(24576)

_SEQ_MAX = const(0xFFFFFFFF)
_PIECE = const(128)  # bytes read at a time to check a CRC
_ENOENT = const(2)

_fsync = getattr(os, "fsync", None)  # CPython; MicroPython has none


class StoreError(ValueError):
    # A payload that does not fit, or stored content that is not a card state.
    def __init__(self, msg: str) -> None:
        super().__init__(msg)




# --- records ---

def encode_record(seq: int, payload) -> bytes:
    head, tail = _record_ends(seq, payload)
    return head + bytes(payload) + tail


def _record_ends(seq: int, payload) -> tuple:
    # (header, CRC) of a record: SlotFile.write writes them around the
    # payload, so that no copy of a large payload is made on a small heap.
    head = MAGIC + bytes((VERSION,)) + seq.to_bytes(4, "big") + len(payload).to_bytes(4, "big")
    return head, crc32(payload, crc32(head)).to_bytes(4, "big")


def _parse_header(head, slot_size: int):
    # (seq, length) of a plausible header, else None.
    if len(head) != HEADER_SIZE or head[:4] != MAGIC or head[4] != VERSION:
        return None
    length = int.from_bytes(head[9:13], "big")
    if length > slot_size - OVERHEAD:
        return None
    return int.from_bytes(head[5:9], "big"), length


def _torn_first(start) -> bool:
    # Could these first bytes of a file no longer than one slot be what a
    # cut left of the very first write? (That write goes to slot 0, and the
    # second one extends the file past slot 0.) Each header byte is either
    # what the record has there or zero (not written).
    expected = MAGIC + bytes((VERSION,))
    for i in range(min(len(start), len(expected))):
        if start[i] != expected[i] and start[i] != 0:
            return False
    return True


class SlotFile:
    # Two slots in one file; see the argument at the top. `opener(path, mode)`
    # is `open` by default (MicroPython: a path on a littlefs mount, or a
    # VFS's own open); the file is opened per operation and closed after it.
    def __init__(self, path: str, slot_size: int, opener=open) -> None:
        if slot_size <= OVERHEAD:
            raise StoreError("slot size %d leaves no room for a payload" % slot_size)
        self.path = path
        self.slot_size = slot_size
        self.opener = opener
        self._newest = None  # type: tuple | None  # (slot, seq) of the newest valid record; None: not scanned

    @property
    def capacity(self) -> int:
        # The largest payload a slot takes.
        return self.slot_size - OVERHEAD

    def read(self) -> "bytes | None":
        # The newest valid payload; None for a fresh store: no file, an
        # empty one, or the remains of a first write that never completed.
        # A file with no valid record otherwise is not taken for a fresh
        # store (that would reset the counters, or overwrite a file that is
        # not ours): StoreError.
        slot, seq, length = self._scan()
        self._newest = (slot, seq)
        if length < 0:
            return None
        f = self.opener(self.path, "rb")
        try:
            f.seek(slot * self.slot_size + HEADER_SIZE)
            return f.read(length)
        finally:
            f.close()

    def check(self) -> None:
        # StoreError as read(), without reading the payload (its CRC is
        # checked a piece at a time): a small heap need not hold it.
        slot, seq, _ = self._scan()
        self._newest = (slot, seq)

    def reader(self) -> "PayloadReader | None":
        # The newest valid payload as a stream (json.load reads it as it
        # parses, with no copy of it on the heap); None for a fresh store;
        # StoreError as read().
        slot, seq, length = self._scan()
        self._newest = (slot, seq)
        if length < 0:
            return None
        return PayloadReader(self.opener(self.path, "rb"), slot * self.slot_size + HEADER_SIZE, length)

    def write(self, payload) -> None:
        # Durable when this returns. Raises StoreError, before writing
        # anything, when the payload does not fit.
        self._check_fits(len(payload))
        target, seq = self._next()
        head, tail = _record_ends(seq, payload)
        self._newest = None  # unknown until this write is through
        f = self._open_for_write()
        try:
            f.seek(target * self.slot_size)
            f.write(head)
            f.write(payload)
            f.write(tail)
            _sync(f)
        finally:
            f.close()
        self._newest = (target, seq)

    def stage(self, length: int) -> "Staging":
        # A record of `length` payload bytes written piece by piece (see
        # Staging); StoreError, before writing anything, when it does not fit.
        self._check_fits(length)
        target, seq = self._next()
        return Staging(self, target, seq, length)

    def _check_fits(self, length: int) -> None:
        if length > self.capacity:
            raise StoreError("%s: %d bytes do not fit a %d-byte slot (at most %d)"
                             % (self.path, length, self.slot_size, self.capacity))

    def _next(self) -> tuple:
        # (slot, seq) of the next record: the slot that does not hold the newest.
        newest = self._newest
        if newest is None:
            slot, seq, _ = self._scan()
        else:
            slot, seq = newest
        if seq >= _SEQ_MAX:
            raise StoreError("%s: sequence number exhausted" % self.path)
        return 1 - slot, seq + 1  # fresh store: (1, -1) -> slot 0, seq 0

    def _open_for_write(self):
        try:
            return self.opener(self.path, "r+b")
        except OSError as exc:
            if exc.args[0] != _ENOENT:
                raise
            return self.opener(self.path, "w+b")

    def _scan(self) -> tuple:
        # (slot, seq, length) of the newest valid record, or (1, -1, -1).
        # The CRC is checked a piece at a time: no copy of a payload is made.
        try:
            f = self.opener(self.path, "rb")
        except OSError as exc:
            if exc.args[0] == _ENOENT:
                return 1, -1, -1
            raise
        try:
            headers = []
            for slot in (0, 1):
                f.seek(slot * self.slot_size)
                head = f.read(HEADER_SIZE)
                parsed = _parse_header(head, self.slot_size)
                if parsed is not None:
                    headers.append((parsed[0], slot, parsed[1], head))
            # Newest first (slot 0 first on equal seq); the CRC decides.
            headers.sort(key=lambda h: (-h[0], h[1]))
            for seq, slot, length, head in headers:
                base = slot * self.slot_size + HEADER_SIZE
                crc = _crc_of(f, base, length, crc32(head))
                stored = f.read(CRC_SIZE)
                if crc is not None and len(stored) == CRC_SIZE and crc == int.from_bytes(stored, "big"):
                    return slot, seq, length
            size = f.seek(0, 2)
            f.seek(0)
            start = f.read(HEADER_SIZE)
        finally:
            f.close()
        if size == 0 or (size <= self.slot_size and _torn_first(start)):
            return 1, -1, -1
        raise StoreError("%s: no valid record (not a store of %d-byte slots, or damaged)" % (self.path, self.slot_size))


def _sync(f) -> None:
    # Durable: flush, then os.fsync where the platform has it (littlefs
    # commits a file on flush and close).
    f.flush()
    fileno = getattr(f, "fileno", None)
    if _fsync is not None and fileno is not None:
        _fsync(fileno())


def _crc_of(f, start: int, length: int, crc: int = 0) -> "int | None":
    # CRC-32 of `length` bytes of `f` from `start`, read _PIECE bytes at a
    # time, continuing `crc`; None when the file ends first. Leaves f just
    # after them.
    f.seek(start)
    buf = bytearray(_PIECE)
    view = memoryview(buf)
    left = length
    while left > 0:
        n = f.readinto(view[:left] if left < _PIECE else view)
        if not n:
            return None
        crc = crc32(view[:n], crc)
        left -= n
    return crc


class Staging:
    # A record written a piece at a time into the slot the next write takes
    # (SlotFile.stage): a personalisation streamed in as it arrives, never
    # held whole on the heap. write() puts payload bytes at their offset
    # (again, for a resent piece); crc() and reader() read back what the
    # slot holds; commit() writes the header and the CRC, and only then is
    # the record the newest. Until commit() the slot reads as invalid (the
    # argument at the top: the old header no longer matches, or the new one
    # has no CRC yet), so a power cut, or a transfer given up, leaves the
    # newest record as it was. One staging at a time, and no write() to the
    # same file meanwhile.
    def __init__(self, slot_file: SlotFile, target: int, seq: int, length: int) -> None:
        self.slot_file = slot_file
        self.target = target
        self.seq = seq
        self.length = length
        self._base = target * slot_file.slot_size + HEADER_SIZE

    def write(self, offset: int, data) -> None:
        if offset < 0 or offset + len(data) > self.length:
            raise StoreError("%s: bytes %d to %d of a %d-byte record" % (self.slot_file.path, offset,
                                                                        offset + len(data), self.length))
        f = self.slot_file._open_for_write()
        try:
            f.seek(self._base + offset)
            f.write(data)
            f.flush()
        finally:
            f.close()

    def crc(self, start: int = 0) -> "int | None":
        # CRC-32 of the payload as the slot holds it (None: not all there).
        f = self.slot_file.opener(self.slot_file.path, "rb")
        try:
            return _crc_of(f, self._base, self.length, start)
        finally:
            f.close()

    def reader(self) -> "PayloadReader":
        return PayloadReader(self.slot_file.opener(self.slot_file.path, "rb"), self._base, self.length)

    def commit(self) -> None:
        # The header, then the CRC over header and payload as read back:
        # durable when this returns, and from then on the newest record.
        slot_file = self.slot_file
        head = MAGIC + bytes((VERSION,)) + self.seq.to_bytes(4, "big") + self.length.to_bytes(4, "big")
        crc = self.crc(crc32(head))
        if crc is None:
            raise StoreError("%s: the staged record is incomplete" % slot_file.path)
        slot_file._newest = None
        f = slot_file._open_for_write()
        try:
            f.seek(self._base - HEADER_SIZE)
            f.write(head)
            f.seek(self._base + self.length)
            f.write(crc.to_bytes(4, "big"))
            _sync(f)
        finally:
            f.close()
        slot_file._newest = (self.target, self.seq)


try:
    from io import IOBase as _Stream
except ImportError:  # a port without io.IOBase
    _Stream = object  # type: ignore


class PayloadReader(_Stream):
    # `length` bytes of an open file from `start`, as a stream that ends
    # there: json.load(reader) parses a payload straight from the store
    # (MicroPython's json.load reads its stream a byte at a time, and wants
    # the stream to end after the document). `skip`: (start, end) offsets in
    # the payload, in order, each read as the one byte "0" (a document read
    # without the parts json_spans found, parsed one at a time).
    # Closes the file at close() or on leaving a `with`.
    def __init__(self, f, start: int, length: int, skip: "list | None" = None) -> None:
        self.f = f
        self.base = start
        self.size = length
        self.restart(skip)

    def restart(self, skip: "list | None" = None, start: int = 0, end: int = -1) -> None:
        # Read again, from `start` to `end` (offsets in the payload; -1: its
        # end), skipping `skip` as at construction.
        self.pos = start
        self.length = self.size if end < 0 else end  # where the stream ends
        self.skip = skip or []
        self.k = 0  # the next span of skip
        self.f.seek(self.base + start)

    def readinto(self, buf) -> int:
        n = len(buf)
        if self.k < len(self.skip):
            start, end = self.skip[self.k]
            if self.pos == start:  # a skipped part: "0" in its place
                self.k += 1
                self.pos = end
                self.f.seek(self.base + end)
                buf[0] = 0x30
                return 1
            if n > start - self.pos:
                n = start - self.pos
        if n > self.length - self.pos:
            n = self.length - self.pos
        if n <= 0:
            return 0
        got = self.f.readinto(memoryview(buf)[:n]) or 0
        self.pos += got
        return got

    def read(self, n: int = -1) -> bytearray:
        # Up to n bytes (n < 0: the rest), skipping as set, in one buffer:
        # json.loads(reader.read()) parses a part with no garbage per byte,
        # which on a small heap leaves it in pieces too small to use.
        left = self.length - self.pos
        for i in range(self.k, len(self.skip)):
            left -= self.skip[i][1] - self.skip[i][0] - 1  # a skipped part reads as one byte
        if n < 0 or n > left:
            n = left
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.readinto(view[got:])
            if not k:
                break
            got += k
        return buf if got == n else buf[:got]

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def json_spans(stream, key: bytes, elements: bool = True) -> list:
    # [(start, end), ...]: where parts of the JSON text on `stream` lie
    # (offsets from the stream's start): each element of the array that is
    # `key`'s value in the top-level object, or (elements False) that value
    # itself; [] when there is none. Read a piece at a time, so that a large
    # document can be parsed in parts (a card's applications one by one:
    # payapp.profile.Profile) on a small heap. Only the structure is
    # followed (strings, escapes, nesting); json.loads still checks it all.
    spans = []
    buf = bytearray(_PIECE)
    depth = 0
    in_string = escape = False
    name = bytearray()  # the top-level string being read (a key), up to len(key) + 1 bytes
    last = b""  # the last top-level string read
    want = False  # `key` and its ":" were read: its array comes next
    level = 0  # the depth the parts lie at, inside them: 2 (the elements), 1 (the value); 0 elsewhere
    start = -1  # where the current part began
    end = 0  # and where it ends, so far
    pos = 0
    while True:
        n = stream.readinto(buf)
        if not n:
            break
        for i in range(n):
            c = buf[i]
            if in_string:
                if escape:
                    escape = False
                elif c == 0x5C:  # backslash
                    escape = True
                elif c == 0x22:  # quote
                    in_string = False
                    if depth == 1:
                        last = bytes(name)
                elif depth == 1 and len(name) <= len(key):
                    name.append(c)
            elif c in (0x20, 0x09, 0x0A, 0x0D):
                continue
            elif level and depth == level and (c == 0x2C or c == 0x5D or c == 0x7D):  # , ] } after a part
                if start >= 0:
                    spans.append((start, end))
                    start = -1
                if level == 1 or c != 0x2C:
                    level = 0
                if c != 0x2C:
                    depth -= 1
            else:
                if level and depth == level and start < 0:
                    start = pos + i
                if c == 0x22:
                    in_string = True
                    if depth == 1:
                        name = bytearray()
                elif c == 0x3A:  # colon
                    found = depth == 1 and last == key
                    want = found and elements
                    if found and not elements:
                        level = 1
                    continue
                elif c == 0x7B or c == 0x5B:  # { [
                    if want and depth == 1 and c == 0x5B:
                        level = 2
                    depth += 1
                elif c == 0x7D or c == 0x5D:  # } ]
                    depth -= 1
                want = False
            if level and start >= 0 and not in_string:
                end = pos + i + 1
        pos += n
    return spans


# --- the card's store ---


def encode_state(state: CardState) -> bytes:
    # Compact JSON with sorted keys: the same bytes on every interpreter
    # (MicroPython's dicts do not keep insertion order).
    doc = state.to_dict()
    items = ["%s:%s" % (json.dumps(k), json.dumps(doc[k], separators=(",", ":"))) for k in sorted(doc)]
    return ("{" + ",".join(items) + "}").encode()


def decode_state(payload, where: str = "card state") -> CardState:
    # The CardState in a payload; StoreError (one line) if it is not one.
    try:
        doc = json.loads(bytes(payload).decode())
    except (ValueError, UnicodeError):  # MicroPython: ValueError; CPython: JSONDecodeError, a ValueError
        raise StoreError("%s: not JSON" % where)
    if not isinstance(doc, dict):
        raise StoreError("%s: not a JSON object" % where)
    try:
        return CardState.from_dict(doc, where, complete=True)
    except StateError as exc:
        raise StoreError(str(exc))


class CardStore:
    # The card's store (load/save, as MemoryStore) on a SlotFile. `initial`
    # is the state of a fresh store (the profile's "state"); it is copied.
    def __init__(self, slot_file: SlotFile, initial: "CardState | None" = None) -> None:
        self.slot_file = slot_file
        self.initial = initial if initial is not None else CardState()
        self.saves = 0
        self._state = None  # type: CardState | None

    def load(self) -> CardState:
        # Read once; afterwards the card's own (cached) state.
        state = self._state
        if state is None:
            payload = self.slot_file.read()
            if payload is None:
                state = CardState.from_dict(self.initial.to_dict())
            else:
                state = decode_state(payload, "%s: card state" % self.slot_file.path)
            self._state = state
        return state

    def save(self, state: CardState) -> None:
        # Durable when this returns.
        self.slot_file.write(encode_state(state))
        self._state = state
        self.saves += 1
