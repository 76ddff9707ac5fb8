# The token's USB-serial dev link: the card application behind the framing
# of firmware/link.py. For the MicroPython unix port (and any Python):
#
#   micropython firmware/devlink.py PROFILE.json [os|counting] [--tty /dev/pts/N]
#
# With --tty the link runs on that terminal device (opened read/write and
# put in raw mode); otherwise on stdin/stdout in binary. MICROPYPATH must
# hold the directory above firmware/ (".frozen:<repo root>").
#
# DevLink is the protocol without I/O: receive(bytes, write) serves every
# frame the bytes complete. run() is the blocking loop around it; the host
# emulator (terminal/emulator/serial_server.py) drives the same DevLink
# from its own sockets and ptys.
#
# Requests and answers (the answer carries the request's seq):
#   POWER_ON, RESET  -> ATR (the card's pseudo-ATR); the card is powered
#   POWER_OFF        -> ATR with an empty payload; the card is unpowered
#   APDU_COMMAND     -> APDU_RESPONSE (ERROR ERR_NOT_POWERED when unpowered)
#   DEVICE_INFO_REQUEST -> DEVICE_INFO ("key=value" lines: version, profile,
#                       impl, mem_free, max_payload)
#   anything else    -> ERROR ERR_UNSUPPORTED (ERROR and LOG are ignored)
# A run of bytes that is not a valid frame is answered with a NAK: an ERROR
# frame, seq 0, whose code is the fault kind; the host resends its request.
# A resent APDU (same seq, same bytes as the last one) is answered from the
# last response without running the card again: an APDU is not idempotent
# (GENERATE AC, the ATC), so a retry must not execute twice.

import sys

from firmware import link

try:
    import gc
except ImportError:
    gc = None

VERSION = "0.1.0"
_SW_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"  # ISO 7816-4 §5.6: the answer when the card fails


def pseudo_atr(historical: bytes = b"") -> bytes:
    # PC/SC Part 3 §3.1.3.2.3 pseudo-ATR of an ISO 14443-4 Type A card:
    # 3B 8n 80 01 <historical bytes> TCK (3B 80 80 01 01 without any).
    # The host's terminal/emulator/atr.contactless_atr builds the same.
    if len(historical) > 15:
        raise ValueError("at most 15 historical bytes fit in an ATR")
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + bytes(historical)
    tck = 0
    for b in body:
        tck ^= b
    return b"\x3b" + body + bytes((tck,))


def mem_free() -> int:
    # Free heap on MicroPython; 0 where the interpreter does not say.
    f = getattr(gc, "mem_free", None)
    return f() if f is not None else 0


class DevLink:
    def __init__(self, card, atr: bytes, profile_id: str = "", max_payload: int = link.MAX_PAYLOAD) -> None:
        self.card = card
        self.atr = bytes(atr)
        self.profile_id = profile_id
        self.max_payload = max_payload
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

    def want(self) -> int:
        # Bytes a blocking reader can ask for next (see link.Decoder.want).
        return self.decoder.want()

    def receive(self, data, write) -> None:
        # Serve every frame completed by `data`; `write` takes each answer
        # (a bytes-like object valid only during the call).
        for event in self.decoder.feed(data):
            if isinstance(event, link.Frame):
                self.frames += 1
                self.handle(event, write)
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
        elif t == link.ERROR or t == link.LOG:
            pass  # never answer an error with an error
        else:
            self._error(link.ERR_UNSUPPORTED, frame.seq, "type 0x%02X" % t, write)

    def info(self) -> bytes:
        return link.info_payload([
            ("version", VERSION),
            ("profile", self.profile_id),
            ("impl", sys.implementation.name),
            ("mem_free", mem_free()),
            ("max_payload", self.max_payload),
        ])

    def log(self, text: str, write) -> None:
        # One LOG line to the host. Never with APDU bodies: they hold card data.
        self._log_seq = (self._log_seq + 1) & 0xFF
        data = text.encode()[:self.max_payload]
        write(self.writer.encode(link.LOG, self._log_seq, data))

    def _apdu(self, frame, write) -> None:
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
            response = _SW_NO_PRECISE_DIAGNOSIS
        if not 2 <= len(response) <= self.max_payload:
            self.log("card returned a %d-byte R-APDU; answering 6F00" % len(response), write)
            response = _SW_NO_PRECISE_DIAGNOSIS
        self._last_seq = frame.seq
        self._last_command = command
        self._last_response = response
        write(self.writer.encode(link.APDU_RESPONSE, frame.seq, response))

    def _forget(self) -> None:
        self._last_seq = -1
        self._last_command = b""
        self._last_response = b""

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


def run(stream_in, stream_out, card, atr: "bytes | None" = None, profile_id: str = "") -> int:
    # Serve the link until the input ends (EOF, or an error such as EIO on
    # a pty whose other side closed); returns 0.
    profile = getattr(card, "profile", None)
    if atr is None:
        atr = pseudo_atr(getattr(profile, "atr_historical", b""))
    if not profile_id:
        profile_id = getattr(profile, "id", "")
    dev = DevLink(card, atr, profile_id)
    put = stream_out.write
    flush = [getattr(stream_out, "flush", None)]

    def write(data) -> None:
        put(data)
        if flush[0] is not None:
            try:
                flush[0]()
            except OSError:
                # MicroPython's FileIO.flush() is fsync(), which a tty refuses
                # (EINVAL); its writes are unbuffered anyway.
                flush[0] = None

    read = _file_reader(stream_in) or _poll_reader(stream_in) or _want_reader(stream_in, dev)
    while True:
        data = read()
        if not data:
            return 0
        dev.receive(data, write)


def _file_reader(stream, limit: int = 4096):
    # CPython: an unbuffered file's read(n) is one read() call, which returns
    # what has arrived. (Through a BufferedReader, bytes would sit in its
    # buffer where poll() cannot see them: use the raw file under it.) None
    # on MicroPython, whose read(n) waits for all n bytes, and for streams
    # that are no file.
    if sys.implementation.name == "micropython":
        return None
    raw = getattr(stream, "raw", stream)
    try:
        raw.fileno()
    except Exception:
        return None

    def read():
        try:
            return raw.read(limit)
        except OSError:  # EIO: the other side of the pty closed
            return b""

    return read


def _poll_reader(stream, limit: int = 256):
    # Reads what has arrived, never more: wait until the stream is readable,
    # then take one byte at a time while poll says more is there (about 1 us
    # a byte on the unix port). A blocking read(n) would wait for n bytes,
    # and after garbage nobody knows how many are coming. None when the
    # stream cannot be polled.
    try:
        import select

        poller = select.poll()
        poller.register(stream, select.POLLIN)
        poller.poll(0)
    except Exception:
        return None
    one = bytearray(1)
    buf = bytearray(limit)
    view = memoryview(buf)
    readinto = stream.readinto

    def read():
        n = 0
        poller.poll(-1)
        while n < limit:
            if n and not poller.poll(0):
                break
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
    def read():
        try:
            return stream.read(dev.want())
        except OSError:
            return b""

    return read


def _raw_mode(fd: int) -> None:
    # No echo, no line editing, no CR/LF translation: 8-bit clean.
    try:
        import termios
    except ImportError:
        return
    setraw = getattr(termios, "setraw", None)  # the MicroPython unix port
    if setraw is None:
        import tty  # CPython

        setraw = tty.setraw
    setraw(fd)


def _open_tty(path: str):
    # Unbuffered read/write. CPython needs buffering=0 (a tty cannot seek,
    # so a buffered r+b file fails); MicroPython's files are unbuffered.
    if sys.implementation.name == "micropython":
        f = open(path, "r+b")
    else:
        f = open(path, "r+b", buffering=0)
    _raw_mode(f.fileno())
    return f


def _usage() -> int:
    sys.stderr.write("usage: devlink.py PROFILE.json [os|counting] [--tty DEVICE]\n")
    return 2


def main(argv: list) -> int:
    import json

    from firmware.payapp.card import Card
    from firmware.payapp.rng import source

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
        stream = _open_tty(tty)
        try:
            return run(stream, stream, card)
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
