# The token's boot: the card application behind the dev link, its
# personalisation and its state in the board's store. Board-agnostic: what
# differs between boards (the link's streams, the store's block device, the
# clock) comes from the board module (firmware/boards/).
#
#   micropython -m firmware.main --store DIR [--tty DEVICE] [--rng os|counting]
#
# runs it on the MicroPython unix port (the "unix" board: the store is the
# folder DIR, the link stdin/stdout or DEVICE). A device image calls main()
# from its boot script: `from firmware import main; main.main()`.
#
# What happens:
# 1. board = boards.current() (the unix board on a host OS);
# 2. the store is mounted (littlefs on board.store_device(), formatted when
#    it does not mount, and only then; see boards.mount_store);
# 3. the personalisation, a card profile as JSON, is read from the SlotFile
#    STORE/perso, and the card is built from it with its state on the
#    SlotFile STORE/state (store.CardStore). No personalisation in the store:
#    the one frozen into the image (firmware/_card.py), if any; else the
#    device is not personalised: it answers DEVICE_INFO and provisioning,
#    and an APDU gets an ERROR "not personalised";
# 4. the dev link runs on the board's streams (devlink.run): for ever on a
#    device, until the input ends on the unix board. A board whose
#    front_end() names an NFC chip (QEMU: the semihosting word
#    frontend=pn532) also gets the card on the air: one loop polls the dev
#    link and the chip's driver (firmware/nfc/) in turn, neither waiting for
#    its side, so the token stays provisionable while it waits for a tap.
# Nothing here raises to the REPL on a device: a store that cannot be
# mounted or read is DEVICE_INFO store=corrupt, and provisioning still runs.
#
# The card state is bound to the card: each state record starts with the
# card's identity (PAN and PSN). A personalisation for another card finds no
# state of its own and starts from its profile's "state" (so provisioning
# writes one record, the personalisation, and a power cut leaves the old
# card with its state or the new one with its initial state); the same card
# provisioned again (with force) keeps its state, its ATC included.

import json
import sys

from . import devlink, link
from .devlink import ProvisionError

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

PERSO_FILE = "perso"
STATE_FILE = "state"
_MAX_PROBLEM = const(160)  # the longest error text sent back
_LINK_CHUNK = const(64)  # dev-link bytes taken before the front end's turn


def _usage() -> int:
    sys.stderr.write("usage: main.py --store DIR [--tty DEVICE] [--rng os|counting]\n")
    return 2


def _problem(exc) -> str:
    # One line about a profile the card refuses, never quoting a secret: a
    # message about "secrets..." keeps its field and reason only (an int()
    # error on CPython quotes the hex it could not read).
    text = str(exc) or type(exc).__name__
    if text.startswith("secrets"):
        text = ": ".join(text.split(": ")[:2])
    return text.replace("\n", " ")[:_MAX_PROBLEM]


def _collect() -> None:
    try:
        import gc
    except ImportError:
        return
    gc.collect()


# --- the card a profile makes ---

def card_from_profile(doc: dict, rng=None, clock=None, release: bool = False, parts=None):
    # The card a personalisation document makes (a MemoryStore for its
    # state), or ProvisionError(ERR_BAD_PROFILE) saying why not in one line:
    # the Profile checks (applications, a known scheme, secrets, keys) and
    # a valid initial state. The host checks a file with this very function
    # before it sends it. release, parts: the document may be taken apart
    # as it is parsed, its applications and secrets parsed one at a time
    # (payapp.profile.Profile): the token's way on a small heap.
    from .payapp.card import Card
    from .payapp.profile import Profile
    from .payapp.state import CardState
    from .store import decode_state, encode_state

    if not isinstance(doc, dict):
        raise ProvisionError(link.ERR_BAD_PROFILE, "not a JSON object")
    try:
        profile = Profile(doc, release, parts)
        card = Card(profile, rng=rng, clock=clock)
        decode_state(encode_state(CardState.from_dict(profile.initial_state)), "state")
    except MemoryError:
        raise ProvisionError(link.ERR_TOO_LARGE, "not enough memory for this profile")
    except Exception as exc:
        raise ProvisionError(link.ERR_BAD_PROFILE, _problem(exc))
    return card


def identity(card) -> bytes:
    # What binds a state record to its card: PAN and PSN.
    return ("%s/%s" % (card.secrets.pan, card.secrets.psn)).encode()[:255]


class BoundSlot:
    # The state SlotFile seen by one card: each record is len | identity |
    # payload; a record of another card reads as none (a fresh state).
    def __init__(self, slot_file, ident: bytes) -> None:
        self.slot_file = slot_file
        self.path = slot_file.path
        self.prefix = bytes((len(ident),)) + ident

    def read(self) -> "bytes | None":
        data = self.slot_file.read()
        n = len(self.prefix)
        if data is None or len(data) < n or data[:n] != self.prefix:
            return None
        return data[n:]

    def write(self, payload) -> None:
        self.slot_file.write(self.prefix + bytes(payload))


# --- the token: its store and the card built from it ---

class Token:
    # What DevLink asks of a token (devlink.DevLink: check(force),
    # stage(length, force), personalise(data, force), info()), on a store at `root` (a folder:
    # None when the board has none or it cannot be mounted). store_status:
    # "ok", "empty" (no personalisation stored), "corrupt" (the store or what
    # it holds cannot be read), "none" (no store on this board).
    def __init__(self, board: str = "", root: "str | None" = None, rng=None, clock=None, opener=open,
                 store_status: str = "") -> None:
        self.board = board
        self.rng = rng
        self.clock = clock
        self.card = None
        self.source = "none"  # where the personalisation came from: store, frozen, none
        self.perso_file = None
        self.state_file = None
        self.capacity = 0  # the largest personalisation the store takes
        self.store_status = store_status or ("none" if root is None else "empty")
        if root is not None:
            from .store import PERSO_SLOT_SIZE, STATE_SLOT_SIZE, SlotFile

            self.perso_file = SlotFile(root + "/" + PERSO_FILE, PERSO_SLOT_SIZE, opener)
            self.state_file = SlotFile(root + "/" + STATE_FILE, STATE_SLOT_SIZE, opener)
            self.capacity = min(self.perso_file.capacity, link.PROVISION_MAX)

    @property
    def personalised(self) -> bool:
        return self.card is not None

    def load(self, frozen: "str | None" = None) -> None:
        # The personalisation in the store (else `frozen`, the JSON text of
        # an image's built-in card): builds the card. Never raises. The
        # record is parsed as it is read from the store (_card_from_record):
        # its bytes are never all on the heap.
        card = None
        source = "none"
        if self.perso_file is not None:
            try:
                stream = self.perso_file.reader()  # StoreError: a file with no valid record
                if stream is not None:
                    with stream:
                        card = self._card_from_record(stream)
                    source = "store"
            except Exception:
                self.store_status = "corrupt"  # or a record that is not a profile (any more)
                return
        if card is None:
            if frozen is None:
                return
            try:
                card = self._card(json.loads(frozen))
            except Exception:
                return
            source = "frozen"
        self.source = source
        self.card = card
        if source == "store":
            self.store_status = "ok"
        try:
            card.store.load()
        except Exception:
            self.store_status = "corrupt"  # the card's state cannot be read

    def info(self) -> list:
        atc = 0
        if self.card is not None:
            try:
                atc = self.card.store.load().atc
            except Exception:
                pass
        return [("board", self.board), ("store", self.store_status), ("perso", self.source), ("atc", atc),
                ("perso_max", self.capacity)]

    def check(self, force: bool = False) -> None:
        # Raises ProvisionError when any personalisation would be refused:
        # no store, a personalised token or a damaged store without force.
        if self.perso_file is None:
            raise ProvisionError(link.ERR_STORE, "no store on this device")
        if self.card is not None and not force:
            raise ProvisionError(link.ERR_ALREADY_PERSONALISED, "already personalised")
        if self.store_status == "corrupt" and not force:
            raise ProvisionError(link.ERR_STORE, "the store is damaged (force replaces what it holds)")

    def personalise(self, data, force: bool = False):
        # Checks `data` (the profile JSON), writes it to the store and
        # returns the new card; or raises ProvisionError having changed
        # nothing: stage() and Transfer.commit() with the whole at once.
        transfer = self.stage(len(data), force)
        transfer.write(0, data)
        return transfer.commit()

    def stage(self, length: int, force: bool = False) -> "Transfer":
        # A personalisation of `length` bytes, written to the store as its
        # pieces arrive (devlink: PROVISION_DATA) and made current by
        # Transfer.commit() only; ProvisionError when it would be refused
        # whatever it holds. With force, a damaged file of the store (no
        # valid record: SlotFile refuses to read or write it) is emptied
        # first: it held nothing that could be used.
        self.check(force)
        perso_file = self.perso_file
        if perso_file is None:
            raise ProvisionError(link.ERR_STORE, "no store on this device")  # (check() said so already)
        if length > self.capacity:
            raise ProvisionError(link.ERR_TOO_LARGE, "%d bytes, at most %d" % (length, self.capacity))
        try:
            _usable(perso_file)
            staging = perso_file.stage(length)
        except MemoryError:
            raise  # the dev link answers it (devlink.DevLink: "not enough memory")
        except Exception as exc:
            raise ProvisionError(link.ERR_STORE, "cannot write the personalisation: %s" % type(exc).__name__)
        return Transfer(self, staging)

    def _commit(self, staging):
        # The staged profile, parsed from the store, builds the new card; the
        # record becomes current (SlotFile: the one moment of change; a
        # power cut leaves the old record or the new one) only then.
        _collect()
        try:
            with staging.reader() as stream:
                card = self._card_from_record(stream)
        except ProvisionError:
            raise
        except MemoryError:
            raise ProvisionError(link.ERR_TOO_LARGE, "not enough memory to parse %d bytes" % staging.length)
        except OSError as exc:
            raise ProvisionError(link.ERR_STORE, "cannot read the personalisation: %s" % type(exc).__name__)
        except Exception:
            raise ProvisionError(link.ERR_BAD_PROFILE, "not JSON")
        _collect()
        try:
            staging.commit()
        except MemoryError:
            raise  # the dev link answers it (devlink.DevLink: "not enough memory")
        except Exception as exc:
            raise ProvisionError(link.ERR_STORE, "cannot write the personalisation: %s" % type(exc).__name__)
        self.card = card
        self.source = "store"
        self.store_status = "ok"
        try:
            _usable(self.state_file)
            card.store.load()  # the same card keeps its state; another starts from its profile's
        except Exception:
            self.store_status = "corrupt"
        return card

    def _card_from_record(self, stream):
        # The card of the profile on `stream` (a store.PayloadReader): the
        # document without its applications and secrets first, then each
        # application in turn, then the secrets (store.json_spans), so that
        # no more than one of them is ever parsed on the heap. Each part's
        # text goes into one buffer, taken before the parts are parsed
        # (later the heap is in pieces too small for it). ProvisionError as
        # _card; the errors of json (MemoryError, ValueError) and of the store.
        from .payapp import card  # noqa: F401  # the card's modules first: they stay, the documents go
        from .store import json_spans

        _collect()
        apps = json_spans(stream, b"applications")
        stream.restart()
        secrets = json_spans(stream, b"secrets", False)
        skip = sorted(apps + secrets)
        size = stream.size
        for start, end in skip:
            size -= end - start - 1
        for start, end in skip:
            if end - start > size:
                size = end - start
        text = bytearray(size)
        doc = _parse_part(stream, text, skip)
        listed = doc.get("applications") if isinstance(doc, dict) else None
        if not apps or not isinstance(listed, list) or len(listed) != len(apps) \
                or (secrets and doc.get("secrets") != 0):
            doc = None  # (a key given twice, say): the whole document at once
            text = bytearray(0)
            stream.restart()
            return self._card(json.load(stream))

        def part(key: str, i: int):
            if key == "secrets" and not secrets:
                return 0  # a document that says "secrets": 0
            span = secrets[0] if key == "secrets" else apps[i]
            return _parse_part(stream, text, None, span[0], span[1])

        return self._card(doc, part)

    def _card(self, doc, parts=None):
        from .payapp.state import CardState
        from .store import CardStore

        card = card_from_profile(doc, self.rng, self.clock, release=True, parts=parts)
        if self.state_file is not None:
            initial = CardState.from_dict(card.profile.initial_state)
            card.store = CardStore(BoundSlot(self.state_file, identity(card)), initial)  # type: ignore[arg-type]
        return card


class Transfer:
    # A personalisation on its way into the store (Token.stage): what
    # devlink's PROVISION_DATA and PROVISION_COMMIT drive.
    def __init__(self, token: Token, staging) -> None:
        self.token = token
        self.staging = staging

    def write(self, offset: int, data) -> None:
        try:
            self.staging.write(offset, data)
        except MemoryError:
            raise  # the dev link answers it (devlink.DevLink: "not enough memory")
        except Exception as exc:
            raise ProvisionError(link.ERR_STORE, "cannot write the personalisation: %s" % type(exc).__name__)

    def crc(self) -> int:
        # CRC-32 of the bytes as stored (-1 when the store cannot give them back).
        try:
            crc = self.staging.crc()
        except MemoryError:
            raise
        except Exception:
            crc = None
        return -1 if crc is None else crc

    def commit(self):
        # The new card, or ProvisionError having changed nothing.
        return self.token._commit(self.staging)


def _parse_part(stream, text: bytearray, skip=None, start: int = 0, end: int = -1):
    # The JSON value of a part of `stream` (store.PayloadReader.restart),
    # read into `text`, the rest of which is filled with spaces (JSON's
    # whitespace): json.loads takes it as it is, with no copy.
    stream.restart(skip, start, end)
    view = memoryview(text)
    n = 0
    while n < len(text):
        k = stream.readinto(view[n:])
        if not k:
            break
        n += k
    for i in range(n, len(text)):
        text[i] = 0x20
    return json.loads(text)  # type: ignore[type-var]  # a bytearray: both interpreters take it, the stubs say str or bytes


def _usable(slot_file) -> None:
    # A SlotFile that can be read and written: one with no valid record in
    # it (damaged, or not a store) is emptied.
    from .store import StoreError

    try:
        slot_file.check()
    except StoreError:
        slot_file.opener(slot_file.path, "wb").close()
        slot_file.check()


def _exists(path: str) -> bool:
    import os

    try:
        os.stat(path)
    except OSError:
        return False
    return True


# --- boot ---

def current_board():
    # The running board's module; on a host OS (the unix port, CPython) the
    # unix board.
    from . import boards

    try:
        return boards.current()
    except (OSError, ImportError):
        if sys.platform in ("linux", "darwin"):
            from .boards import unix

            return unix
        raise


def open_store(board) -> tuple:
    # (root folder or None, store status) for the board's store.
    from . import boards

    try:
        root = boards.mount_store(board)
    except Exception:
        mount = getattr(board, "STORE_MOUNT", None)
        if mount and _exists(mount):
            return mount, ""  # mounted before (main run again in one session)
        return None, "corrupt"
    return root, ""


def _clock(board):
    # Seconds for the card's CDCVM window: time.time() where the port has
    # it, else the board's ticks (the QEMU port has no time.time()).
    import time

    if hasattr(time, "time"):
        return time.time
    ticks = board.ticks_ms
    return lambda: ticks() / 1000


def _frozen_card() -> "str | None":
    try:
        from . import _card  # type: ignore  # an image built with EMVKIT_CARD

        return _card.PROFILE
    except ImportError:
        return None


def open_token(board, rng=None) -> Token:
    # rng None: the board's random source (the QEMU port has no os.urandom),
    # else the platform's.
    if rng is None:
        rng = getattr(board, "random_bytes", None)
    root, status = open_store(board)
    token = Token(board.NAME, root, rng=rng, clock=_clock(board), store_status=status)
    token.load(_frozen_card())
    _collect()
    return token


def serve(board, token: Token) -> int:
    # The dev link on the board's streams: until the input ends on a host
    # (SERVE_FOREVER False), for ever on a device, where nothing may end
    # the loop (a bug is swallowed and the link starts again; the card's
    # state is in the store, the token keeps the card).
    stream_in, stream_out = board.link_streams()
    partial = getattr(board, "LINK_PARTIAL_READS", False)
    if not getattr(board, "SERVE_FOREVER", True):
        return devlink.run(stream_in, stream_out, token.card, partial_reads=partial, token=token)
    while True:
        try:
            devlink.run(stream_in, stream_out, token.card, partial_reads=partial, token=token)
        except Exception:  # a device never falls into the REPL
            pass
        _collect()


# --- the dev link and an NFC front end, polled in turn ---

def front_end_driver(board, token: Token):
    # The driver of the board's NFC front end, or None when it has none.
    which = getattr(board, "front_end", None)
    name = which() if which is not None else None
    if name not in ("pn532", "pn7150", "pn7160"):
        return None
    rng = getattr(board, "random_bytes", None)
    nfcid1 = rng(3) if rng is not None else b"\x01\x02\x03"
    if name != "pn532":  # PN7150/PN7160: NCI over I2C; the board's nfc_reset() pulses VEN
        from .nfc.nci import NciTarget

        return NciTarget(board.nfc_bus(), lambda: token.card, b"\x08" + nfcid1, ven=getattr(board, "nfc_reset", None),
                         ticks_ms=board.ticks_ms, ticks_diff=board.ticks_diff)
    from .nfc.pn532 import Pn532Target

    return Pn532Target(board.nfc_bus(), lambda: token.card, nfcid1, ticks_ms=board.ticks_ms,
                       ticks_diff=board.ticks_diff, ack_ms=getattr(board, "NFC_ACK_MS", 100))


def serve_with_front_end(board, token: Token, driver) -> int:
    # For ever: the bytes the dev link has (one at a time while poll says
    # more: a blocking stream's read waits for all it is asked for), then
    # one poll of the front end's driver. Provisioning changes token.card,
    # which the driver takes at its next arming.
    import select

    from .iso7816 import pseudo_atr

    stream_in, stream_out = board.link_streams()
    card = token.card
    profile = getattr(card, "profile", None)
    dev = devlink.DevLink(card, pseudo_atr(getattr(profile, "atr_historical", b"")), getattr(profile, "id", ""),
                          token=token)
    dev.reader = "bytes"
    poller = select.poll()
    poller.register(stream_in, select.POLLIN)
    one = bytearray(1)
    buf = bytearray(_LINK_CHUNK)

    def write(data) -> None:
        stream_out.write(data)

    while True:
        try:
            n = 0
            while n < _LINK_CHUNK and poller.poll(0):
                if not stream_in.readinto(one):
                    break
                buf[n] = one[0]
                n += 1
            if n:
                dev.receive(memoryview(buf)[:n], write)
            driver.poll()
        except Exception:  # a device never falls into the REPL
            _collect()


def _args(argv: list) -> "dict | None":
    out = {"store": None, "tty": None, "rng": None}
    i = 1
    while i < len(argv):
        key = argv[i][2:] if argv[i].startswith("--") else ""
        if key not in out or i + 1 >= len(argv):
            return None
        out[key] = argv[i + 1]
        i += 2
    return out


def main(argv: "list | None" = None) -> int:
    from .payapp.rng import source

    args = _args(getattr(sys, "argv", []) if argv is None else argv)  # a device may have no argv
    if args is None or args["rng"] not in (None, "os", "counting"):
        return _usage()
    board = current_board()
    configure = getattr(board, "configure", None)
    if configure is not None:
        configure(store=args["store"], tty=args["tty"])
    token = open_token(board, None if args["rng"] is None else source(args["rng"]))
    driver = front_end_driver(board, token)
    if driver is not None:
        return serve_with_front_end(board, token, driver)
    return serve(board, token)


if __name__ == "__main__":
    sys.exit(main())
