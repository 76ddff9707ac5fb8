# The token's USB-serial dev link: the card application behind the framing
# of firmware/link.py. For the MicroPython unix port (and any Python):
#
#   micropython firmware/devlink.py PROFILE.json [os|counting] [--tty /dev/pts/N]
#
# With --tty the link runs on that terminal device (opened read/write and
# put in raw mode; under MicroPython also VMIN 0, so that a read returns what
# has arrived); otherwise on stdin/stdout in binary, blocking or not.
# MICROPYPATH must hold the directory above firmware/ (".frozen:<repo root>").
#
# DevLink is the protocol without I/O: receive(bytes, write) serves every
# frame the bytes complete. run() is the loop around it, which never asks
# its stream for a byte that has not arrived (see "reading" below); the host
# emulator (terminal/emulator/serial_server.py) drives the same DevLink
# from its own sockets and ptys.
#
# Requests and answers (the answer carries the request's seq):
#   POWER_ON, RESET  -> ATR (the card's pseudo-ATR); the card is powered
#   POWER_OFF        -> ATR with an empty payload; the card is unpowered
#   APDU_COMMAND     -> APDU_RESPONSE (ERROR ERR_NOT_POWERED when unpowered)
#   DEVICE_INFO_REQUEST -> DEVICE_INFO ("key=value" lines: version, profile,
#                       impl, mem_free, max_payload, personalised; reader,
#                       under run(); board, atc, store from the token)
#   PROVISION_BEGIN, PROVISION_DATA, PROVISION_COMMIT -> PROVISION_ACK
#                       (with a token, below; ERR_UNSUPPORTED without one)
#   anything else    -> ERROR ERR_UNSUPPORTED (ERROR and LOG are ignored)
# A request that runs the heap out (MemoryError) is answered ERROR
# ERR_TOO_LARGE "not enough memory ...", the transfer in progress dropped and
# the heap collected: the link never goes silent for lack of memory.
# A run of bytes that is not a valid frame is answered with a NAK: an ERROR
# frame, seq 0, whose code is the fault kind; the host resends its request.
# A resent APDU (same seq, same bytes as the last one) is answered from the
# last response without running the card again: an APDU is not idempotent
# (GENERATE AC, the ATC), so a retry must not execute twice.
#
# Provisioning. A token (firmware/main.py's Token: the store behind the
# card) makes the device personalisable: BEGIN announces the length, the
# CRC-32 of the whole and the force flag, and token.stage(length, force)
# opens a transfer; DATA carries offset and bytes, which go straight into
# the store's staging slot (transfer.write: the personalisation is never
# held whole on the heap); COMMIT checks length and the CRC of the bytes as
# stored, and transfer.commit() parses them from the store, builds the card,
# makes the record current and returns the new card, or raises
# ProvisionError(code, text) having changed nothing current. Nothing staged
# counts before that (store.Staging); any error drops the transfer (start
# again with BEGIN). A token with no stage() gets the bytes buffered here and
# handed whole to token.personalise(data, force). Resends are safe: a DATA at an offset
# already held is written again, a BEGIN resent with its seq is answered
# again, and a COMMIT resent with its seq after it succeeded is answered from
# the first answer (the device is personalised by then: without this, a lost
# ACK would turn into "already personalised").

import sys

from . import __version__, link
from .crc import crc32
from .iso7816 import SW_NO_PRECISE_DIAGNOSIS, pseudo_atr, sw_bytes

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

import gc

TYPE_CHECKING = False  # True for the type checker only: what follows costs a device nothing
if TYPE_CHECKING:
    from typing import Protocol

    class Transfer(Protocol):
        # A personalisation on its way in (Token.stage, or a _Buffer).
        def write(self, offset: int, data) -> None: ...
        def crc(self) -> int: ...
        def commit(self): ...

VERSION = __version__  # emvkit's version, kept in firmware/__init__.py
_NO_PRECISE_DIAGNOSIS = sw_bytes(SW_NO_PRECISE_DIAGNOSIS)  # the answer when the card fails


def mem_free() -> int:
    # Free heap on MicroPython (after a collection); 0 where the interpreter does not say.
    f = getattr(gc, "mem_free", None)
    if f is None:
        return 0
    gc.collect()
    return f()


class ProvisionError(Exception):
    # A personalisation the token refuses; `code` is a link ERR_* code.
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class DevLink:
    # card: the card application (None: not personalised, APDUs are refused
    # with ERR_NOT_PERSONALISED). token: what makes provisioning possible
    # (None: PROVISION_* are unsupported), an object with
    #   check(force)                  raises ProvisionError when it would refuse any
    #                                 personalisation (already personalised, no store)
    #   stage(length, force)          (optional) -> a transfer: write(offset, data),
    #                                 crc() of what it holds, commit() -> the new card
    #   personalise(data, force)      -> the new card, or raises ProvisionError
    #   info()                        -> [(key, value), ...] for DEVICE_INFO
    #   capacity (optional)           the largest personalisation it takes
    def __init__(self, card, atr: bytes, profile_id: str = "", max_payload: int = link.MAX_PAYLOAD,
                 token=None) -> None:
        self.card = card
        self.atr = bytes(atr)
        self.profile_id = profile_id
        self.max_payload = max_payload
        self.token = token
        self._perso = None  # type: Transfer | None  # the transfer in progress (Token.stage, or a _Buffer)
        self._perso_length = 0
        self._perso_crc = 0
        self._perso_force = False
        self._perso_held = 0
        self._begin_seq = -1
        self._commit_seq = -1  # the seq of the last COMMIT that succeeded, and its answer
        self._commit_ack = b""
        self.decoder = link.Decoder(max_payload)
        self.writer = link.FrameWriter(max_payload)
        self.powered = False
        self._last_seq = -1
        self._last_command = b""
        self._last_response = b""
        self._log_seq = 0
        # counters, for tests and DEVICE_INFO
        self.frames = 0
        self.faults = 0
        self.duplicates = 0
        self.reader = ""  # how run() reads its stream (DEVICE_INFO "reader"): arrived, bytes or want

    def want(self) -> int:
        # Bytes a blocking reader can ask for next (see link.Decoder.want).
        return self.decoder.want()

    def receive(self, data, write) -> None:
        # Serve every frame completed by `data`; `write` takes each answer
        # (a bytes-like object valid only during the call).
        for event in self.decoder.feed(data):
            if isinstance(event, link.Frame):
                self.frames += 1
                starved = False
                try:
                    self.handle(event, write)
                except MemoryError:
                    starved = True  # answered below, once the exception (and what it holds) is gone
                if starved:
                    self._out_of_memory(event, write)
            else:
                self.faults += 1
                write(self.writer.encode(link.ERROR, 0, link.error_payload(event.kind, link.FAULT_NAMES[event.kind])))

    def handle(self, frame, write) -> None:
        t = frame.type
        if t == link.APDU_COMMAND:
            self._apdu(frame, write)
        elif t == link.POWER_ON or t == link.RESET:
            self._hook("power_on" if t == link.POWER_ON else "reset", write)
            self.powered = True
            self._forget()
            write(self.writer.encode(link.ATR, frame.seq, self.atr))
        elif t == link.POWER_OFF:
            self._hook("power_off", write)
            self.powered = False
            self._forget()
            write(self.writer.encode(link.ATR, frame.seq, b""))
        elif t == link.DEVICE_INFO_REQUEST:
            write(self.writer.encode(link.DEVICE_INFO, frame.seq, self.info()))
        elif t == link.PROVISION_BEGIN or t == link.PROVISION_DATA or t == link.PROVISION_COMMIT:
            self._provision(frame, write)
        elif t == link.ERROR or t == link.LOG:
            pass  # never answer an error with an error
        else:
            self._error(link.ERR_UNSUPPORTED, frame.seq, "type 0x%02X" % t, write)

    def info(self) -> bytes:
        items = [
            ("version", VERSION),
            ("profile", self.profile_id),
            ("impl", sys.implementation.name),
            ("mem_free", mem_free()),
            ("max_payload", self.max_payload),
            ("personalised", 0 if self.card is None else 1),
        ]
        if self.reader:
            items.append(("reader", self.reader))
        if self.token is not None:
            items += self.token.info()
        return link.info_payload(items)

    def log(self, text: str, write) -> None:
        # One LOG line to the host. Never with APDU bodies: they hold card data.
        self._log_seq = (self._log_seq + 1) & 0xFF
        data = text.encode()[:self.max_payload]
        write(self.writer.encode(link.LOG, self._log_seq, data))

    def _apdu(self, frame, write) -> None:
        if self.card is None:
            self._error(link.ERR_NOT_PERSONALISED, frame.seq, "not personalised", write)
            return
        if not self.powered:
            self._error(link.ERR_NOT_POWERED, frame.seq, "send POWER_ON first", write)
            return
        command = frame.payload
        if frame.seq == self._last_seq and command == self._last_command:
            # The host resent a request whose answer it did not get.
            self.duplicates += 1
            write(self.writer.encode(link.APDU_RESPONSE, frame.seq, self._last_response))
            return
        try:
            response = bytes(self.card.process(command))
        except Exception as exc:
            self.log("card raised %s on a %d-byte C-APDU; answering 6F00" % (type(exc).__name__, len(command)),
                     write)
            response = _NO_PRECISE_DIAGNOSIS
        if not 2 <= len(response) <= self.max_payload:
            self.log("card returned a %d-byte R-APDU; answering 6F00" % len(response), write)
            response = _NO_PRECISE_DIAGNOSIS
        self._last_seq = frame.seq
        self._last_command = command
        self._last_response = response
        write(self.writer.encode(link.APDU_RESPONSE, frame.seq, response))

    # --- provisioning ---

    def _provision(self, frame, write) -> None:
        if self.token is None:
            self._error(link.ERR_UNSUPPORTED, frame.seq, "no provisioning on this device", write)
            return
        t = frame.type
        try:
            if t == link.PROVISION_BEGIN:
                held = self._begin(frame)
                text = ""
            elif t == link.PROVISION_DATA:
                held = self._data(frame.payload)
                text = ""
            elif self._perso is None and frame.seq == self._commit_seq and not frame.payload:
                write(self.writer.encode(link.PROVISION_ACK, frame.seq, self._commit_ack))  # a resent COMMIT
                return
            else:
                held, text = self._commit(frame.payload)
                self._commit_ack = link.ack_payload(held, text)
                self._commit_seq = frame.seq
        except ProvisionError as exc:
            self._drop_transfer()
            self._error(exc.code, frame.seq, exc.text, write)
            return
        write(self.writer.encode(link.PROVISION_ACK, frame.seq, link.ack_payload(held, text)))

    def _begin(self, frame) -> int:
        begin = link.parse_provision_begin(frame.payload)
        if begin is None:
            raise ProvisionError(link.ERR_BAD_REQUEST, "PROVISION_BEGIN: length (4) | CRC-32 (4) | flags (1)")
        length, crc, force = begin
        if self._perso is not None and frame.seq == self._begin_seq and length == self._perso_length \
                and crc == self._perso_crc and force == self._perso_force:
            return self._perso_held  # the same BEGIN again: its answer was lost
        self._drop_transfer()
        self._commit_seq = -1
        if length == 0:
            raise ProvisionError(link.ERR_BAD_REQUEST, "an empty personalisation")
        limit = getattr(self.token, "capacity", link.PROVISION_MAX)  # what its store takes
        if limit > link.PROVISION_MAX:
            limit = link.PROVISION_MAX
        if length > limit:
            raise ProvisionError(link.ERR_TOO_LARGE, "%d bytes, at most %d" % (length, limit))
        self.token.check(force)  # refused before a byte is taken
        stage = getattr(self.token, "stage", None)
        gc.collect()
        self._perso = stage(length, force) if stage is not None else _Buffer(self.token, length, force)
        self._perso_length = length
        self._perso_crc = crc
        self._perso_force = force
        self._perso_held = 0
        self._begin_seq = frame.seq
        return 0

    def _data(self, payload) -> int:
        transfer = self._perso
        if transfer is None:
            raise ProvisionError(link.ERR_OUT_OF_ORDER, "PROVISION_DATA without PROVISION_BEGIN")
        if len(payload) < 4:
            raise ProvisionError(link.ERR_BAD_REQUEST, "PROVISION_DATA: offset (4) | bytes")
        offset = (payload[0] << 24) | (payload[1] << 16) | (payload[2] << 8) | payload[3]
        n = len(payload) - 4
        if offset > self._perso_held:
            raise ProvisionError(link.ERR_OUT_OF_ORDER, "offset %d: %d bytes held" % (offset, self._perso_held))
        if offset + n > self._perso_length:
            raise ProvisionError(link.ERR_OUT_OF_ORDER, "bytes %d to %d: past the announced %d"
                                 % (offset, offset + n, self._perso_length))
        transfer.write(offset, memoryview(payload)[4:])
        if offset + n > self._perso_held:
            self._perso_held = offset + n
        return self._perso_held

    def _commit(self, payload) -> tuple:
        transfer = self._perso
        if transfer is None:
            raise ProvisionError(link.ERR_OUT_OF_ORDER, "PROVISION_COMMIT without PROVISION_BEGIN")
        if payload:
            raise ProvisionError(link.ERR_BAD_REQUEST, "PROVISION_COMMIT takes no payload")
        length = self._perso_length
        if self._perso_held != length:
            raise ProvisionError(link.ERR_INTEGRITY, "%d of %d bytes arrived" % (self._perso_held, length))
        if transfer.crc() != self._perso_crc:
            raise ProvisionError(link.ERR_INTEGRITY, "CRC-32 mismatch")
        self._perso = None  # the token owns the bytes now
        try:
            card = transfer.commit()
        except (ProvisionError, MemoryError):
            raise
        except Exception as exc:  # a bug in the token: nothing was personalised
            raise ProvisionError(link.ERR_STORE, "personalisation failed: %s" % type(exc).__name__)
        profile = getattr(card, "profile", None)
        self.card = card
        self.atr = pseudo_atr(getattr(profile, "atr_historical", b""))
        self.profile_id = getattr(profile, "id", "")
        self.powered = False
        self._forget()
        return length, self.profile_id

    def _drop_transfer(self) -> None:
        self._perso = None
        self._perso_held = 0
        self._begin_seq = -1

    def _forget(self) -> None:
        # Power events end a session: no resent APDU or COMMIT can follow.
        self._last_seq = -1
        self._last_command = b""
        self._last_response = b""
        self._commit_seq = -1

    def _out_of_memory(self, frame, write) -> None:
        # The heap ran out while a request was served: what a transfer held
        # is dropped (the current personalisation stays: nothing staged
        # counts before COMMIT), the heap collected, and the request answered
        # instead of the link going silent.
        provisioning = self._perso is not None or frame.type == link.PROVISION_COMMIT
        self._drop_transfer()
        gc.collect()
        if frame.type == link.ERROR or frame.type == link.LOG:
            return
        self._error(link.ERR_TOO_LARGE, frame.seq, "not enough memory for this personalisation (the current one "
                    "stays)" if provisioning else "not enough memory for this request", write)

    def _error(self, code: int, seq: int, text: str, write) -> None:
        write(self.writer.encode(link.ERROR, seq, link.error_payload(code, text)))

    def _hook(self, name: str, write) -> None:
        hook = getattr(self.card, name, None)
        if hook is None:
            return
        try:
            hook()
        except Exception as exc:
            self.log("card %s() raised %s" % (name, type(exc).__name__), write)


class _Buffer:
    # A transfer held on the heap, for a token with no stage(): the whole
    # is handed to token.personalise(data, force) at COMMIT.
    def __init__(self, token, length: int, force: bool) -> None:
        self.token = token
        self.data = bytearray(length)
        self.force = force

    def write(self, offset: int, data) -> None:
        self.data[offset:offset + len(data)] = data

    def crc(self) -> int:
        return crc32(self.data)

    def commit(self):
        return self.token.personalise(self.data, self.force)


def run(stream_in, stream_out, card, atr: "bytes | None" = None, profile_id: str = "",
        partial_reads: bool = False, token=None) -> int:
    # Serve the link until the input ends (EOF, or an error such as EIO on
    # a pty whose other side closed); returns 0. partial_reads: the caller
    # knows that stream_in.readinto() returns what has arrived instead of
    # waiting for a full buffer (a tty set to VMIN 0; a non-blocking stream
    # is found out anyway, see _poll_reader). card None: not personalised;
    # token: see DevLink.
    profile = getattr(card, "profile", None)
    if atr is None:
        atr = pseudo_atr(getattr(profile, "atr_historical", b""))
    if not profile_id:
        profile_id = getattr(profile, "id", "")
    dev = DevLink(card, atr, profile_id, token=token)
    write = _writer(stream_out)
    read = _file_reader(stream_in, dev) or _poll_reader(stream_in, dev, partial_reads) or _want_reader(stream_in, dev)
    while True:
        data = read()
        if not data:
            return 0
        dev.receive(data, write)


# --- reading: never ask for a byte that has not arrived ---
#
# A blocking read(n) (MicroPython's stream read and readinto, on the unix port
# and on boards) waits until all n bytes are there. After garbage (a COBS code
# byte hit by noise, a frame cut short) nobody knows how many bytes are
# coming: a read of the block that garbage announced would wait until the
# host resends, or for ever. poll() only says that at least one byte is
# there, never how many. So the readers (DevLink.reader, in DEVICE_INFO) are:
#
# - "arrived": a stream whose read returns what has arrived (CPython's
#   unbuffered files; a non-blocking descriptor; a tty set to VMIN 0): wait
#   with poll, then one read of up to _READ_LIMIT bytes (the decoder takes a
#   frame in as many pieces as it comes);
# - "bytes": a blocking stream (a board's USB CDC stdin, a pty master passed
#   as a blocking stdin): wait, then one byte at a time while poll says more
#   is there (about 1 us a byte on the unix port);
# - "want": a stream that cannot be polled: blocking reads of Decoder.want()
#   bytes, which never wait past the end of a well-formed frame (after
#   garbage, though, they may wait until the host resends).

_READ_LIMIT = const(256)  # bytes read at a time: a small buffer for a small heap (a frame is at most 1037)
_WRITE_WAIT_MS = const(2000)  # a host that takes no bytes for this long loses the rest of a frame


def _poller(stream, event: int = 0):
    # A select.poll with `stream` registered for `event` (POLLIN by default),
    # or None when the stream cannot be polled.
    try:
        import select

        poller = select.poll()
        poller.register(stream, event or select.POLLIN)
        poller.poll(0)
    except Exception:
        return None
    return poller


def _file_reader(stream, dev: DevLink, limit: int = 4096):
    # CPython: an unbuffered file's read(n) is one read() call, which returns
    # what has arrived. (Through a BufferedReader, bytes would sit in its
    # buffer where poll() cannot see them: use the raw file under it.) On a
    # non-blocking descriptor read() returns None while nothing is there:
    # poll first. None on MicroPython, whose read(n) waits for all n bytes,
    # and for streams that are no file.
    if sys.implementation.name == "micropython":
        return None
    raw = getattr(stream, "raw", stream)
    try:
        raw.fileno()
    except Exception:
        return None
    poller = _poller(raw)
    dev.reader = "arrived"

    def read():
        while True:
            if poller is not None:
                poller.poll()
            try:
                data = raw.read(limit)
            except OSError:  # EIO: the other side of the pty closed
                return b""
            if data is not None:
                return data
            if poller is None:
                return b""

    return read


def _poll_reader(stream, dev: DevLink, partial: bool = False, limit: int = _READ_LIMIT):
    # A pollable stream (MicroPython). With `partial`, or once the stream
    # turns out to be non-blocking: poll, then one readinto of what has
    # arrived. Otherwise one byte at a time while poll says more is there.
    # How a non-blocking stream is found out: when nothing is waiting, the
    # reader waits by reading one byte; a non-blocking stream answers that
    # read with None at once, and on a blocking stream the read is the wait
    # itself. None when the stream cannot be polled.
    poller = _poller(stream)
    if poller is None:
        return None
    poll = poller.poll
    readinto = stream.readinto
    one = bytearray(1)
    buf = bytearray(limit)
    view = memoryview(buf)
    dev.reader = "arrived" if partial else "bytes"

    def read_arrived():
        while True:
            poll(-1)
            try:
                n = readinto(buf)
            except OSError:  # EIO: the other side of the pty closed
                return view[:0]
            if n is not None:
                return view[:n]  # n == 0: the end of the input

    def read():
        if dev.reader == "arrived":
            return read_arrived()
        n = 0
        if not poll(0):
            try:
                k = readinto(one)  # the wait for the next byte
            except OSError:
                return view[:0]
            if k is None:  # a non-blocking stream: from now on, read what has arrived
                dev.reader = "arrived"
                return read_arrived()
            if not k:
                return view[:0]
            buf[0] = one[0]
            n = 1
        while n < limit and poll(0):
            try:
                k = readinto(one)
            except OSError:  # EIO: the other side of the pty closed
                k = 0
            if not k:
                break
            buf[n] = one[0]
            n += 1
        return view[:n]

    return read


def _want_reader(stream, dev: DevLink):
    # For streams that cannot be polled: blocking reads of DevLink.want()
    # bytes, which never wait past the end of a well-formed frame. After
    # garbage a read may wait for bytes nobody sends until the host resends.
    dev.reader = "want"

    def read():
        try:
            return stream.read(dev.want())
        except OSError:
            return b""

    return read


# --- writing ---

def _writer(stream):
    # write(data) puts all of data on the stream. A non-blocking stream may
    # take part of it, or nothing (None): the rest goes once poll says the
    # stream takes bytes again; a host that takes none for _WRITE_WAIT_MS
    # loses the rest of the frame (it times out and resends). CPython writes
    # to the unbuffered file under a BufferedWriter.
    raw = getattr(stream, "raw", stream)
    put = raw.write
    flush = [getattr(raw, "flush", None)]
    waiter = []  # type: list  # the POLLOUT poller, made the first time a write comes up short

    def write(data) -> None:
        done = put(data)
        if done is None or done < len(data):
            rest(data, done or 0)
        if flush[0] is not None:
            try:
                flush[0]()
            except OSError:
                # MicroPython's FileIO.flush() is fsync(), which a tty refuses
                # (EINVAL); its writes are unbuffered anyway.
                flush[0] = None

    def rest(data, done: int) -> None:
        if not waiter:
            import select

            waiter.append(_poller(raw, select.POLLOUT))
        poller = waiter[0]
        view = memoryview(data)
        size = len(data)
        while done < size:
            if poller is not None and not poller.poll(_WRITE_WAIT_MS):
                return
            k = put(view[done:])
            if not k and poller is None:
                return  # cannot wait on this stream: give up rather than spin
            done += k or 0

    return write


def _raw_mode(fd: int, partial_reads: bool = False) -> None:
    # No echo, no line editing, no CR/LF translation: 8-bit clean. With
    # partial_reads (MicroPython), also VMIN 0 and VTIME 0: a read returns
    # what has arrived at once (0 bytes when none: the reader polls first).
    try:
        import termios
    except ImportError:
        return
    setraw = getattr(termios, "setraw", None)  # the MicroPython unix port
    if setraw is None:
        import tty  # CPython

        setraw = tty.setraw
    setraw(fd)
    if partial_reads:
        # MicroPython's tcgetattr gives VMIN and VTIME as ints, the other
        # control characters as bytes (and has no VMIN/VTIME constants).
        attrs = termios.tcgetattr(fd)
        cc = attrs[6]
        for i in range(len(cc)):
            if isinstance(cc[i], int):
                cc[i] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)


def open_tty(path: str):
    # Unbuffered read/write. CPython needs buffering=0 (a tty cannot seek,
    # so a buffered r+b file fails); MicroPython's files are unbuffered, and
    # their read(n) waits for n bytes unless the tty has VMIN 0. Returns
    # (file, partial_reads).
    if sys.implementation.name == "micropython":
        f = open(path, "r+b")
        partial = True
    else:
        f = open(path, "r+b", buffering=0)
        partial = False
    _raw_mode(f.fileno(), partial)
    return f, partial


def _usage() -> int:
    sys.stderr.write("usage: devlink.py PROFILE.json [os|counting] [--tty DEVICE]\n")
    return 2


def main(argv: list) -> int:
    import json

    from .payapp.card import Card
    from .payapp.rng import source

    args = list(argv[1:])
    tty = None
    if "--tty" in args:
        i = args.index("--tty")
        if i + 1 >= len(args):
            return _usage()
        tty = args[i + 1]
        del args[i:i + 2]
    if not 1 <= len(args) <= 2:
        return _usage()
    with open(args[0]) as f:
        doc = json.load(f)
    card = Card(doc, rng=source(args[1] if len(args) > 1 else None))
    if tty is not None:
        stream, partial = open_tty(tty)
        try:
            return run(stream, stream, card, partial_reads=partial)
        finally:
            stream.close()
    try:
        import micropython

        micropython.kbd_intr(-1)  # 0x03 in a frame must not raise KeyboardInterrupt
    except (ImportError, AttributeError):
        pass
    return run(sys.stdin.buffer, sys.stdout.buffer, card)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
