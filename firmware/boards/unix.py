# The MicroPython unix port (and CPython) as a board: the token as a host
# process, for tests and development. Same shape as the other board modules
# (see boards/__init__.py), plus configure(), which firmware/main.py calls
# with its command line:
#
#   micropython -m firmware.main --store DIR [--tty DEVICE]
#
# - Dev link: stdin/stdout in binary (Ctrl-C off), or the tty DEVICE, opened
#   read/write in raw mode (under MicroPython also VMIN 0: a read returns
#   what has arrived, LINK_PARTIAL_READS).
# - Store: the host folder DIR (made if missing), files opened directly: no
#   block device, no littlefs. No --store: no store.
# - The process ends when the link's input ends (SERVE_FOREVER False).
# - Random bytes: os.urandom.

import sys

NAME = "unix"
CPU = sys.platform
LINK = "stdin/stdout, or --tty DEVICE"
STORE_PREMOUNTED = True  # boards.mount_store() only says where it is
STORE_MOUNT = None  # type: str | None  # the --store folder
SERVE_FOREVER = False
LINK_PARTIAL_READS = False
_tty = None  # type: str | None


def configure(store: "str | None" = None, tty: "str | None" = None) -> None:
    global STORE_MOUNT, _tty
    _tty = tty
    if store is not None:
        import os

        store = store.rstrip("/") or "/"
        try:
            os.stat(store)
        except OSError:
            os.mkdir(store)
    STORE_MOUNT = store


def store_device():
    return None  # the store is a folder (STORE_MOUNT)


def link_streams() -> tuple:
    global LINK_PARTIAL_READS
    if _tty is not None:
        from ..devlink import open_tty

        stream, LINK_PARTIAL_READS = open_tty(_tty)
        return stream, stream
    try:
        import micropython

        micropython.kbd_intr(-1)  # 0x03 in a frame must not raise KeyboardInterrupt
    except (ImportError, AttributeError):
        pass
    return sys.stdin.buffer, sys.stdout.buffer


def random_bytes(n: int) -> bytes:
    import os

    return os.urandom(n)


def ticks_ms() -> int:
    import time

    f = getattr(time, "ticks_ms", None)
    if f is not None:
        return f()
    return (time.time_ns() // 1000000) & 0x3FFFFFFF  # CPython


def ticks_diff(new: int, old: int) -> int:
    # As MicroPython's: the signed difference of two ticks modulo 2**30.
    return ((new - old + 0x20000000) & 0x3FFFFFFF) - 0x20000000


def reset() -> None:
    sys.exit(0)
