# What the QEMU boards share (qemu_m3, qemu_m0plus): MicroPython's ports/qemu,
# BOARD=MPS2_AN385, on QEMU's mps2-an385 machine (Arm's MPS2 FPGA image AN385,
# a Cortex-M3; the ARMv6-M image runs on the same machine).
#
# - Dev link: UART0, which is also the REPL. Binary bytes through
#   sys.stdin.buffer / sys.stdout.buffer pass unchanged (0x00, 0x03, 0x0D
#   included; sys.stdin in text mode would turn 0x0D into 0x0A). The port
#   polls the UART, so 0x03 never raises KeyboardInterrupt there; the link
#   disables it anyway, as on a real board.
# - Store: a host file through ARM semihosting (semihost.py), named on QEMU's
#   command line: -semihosting-config enable=on,target=native,arg=store=/abs/path
#   (a path without spaces or commas). No store= word: no store.
# - Clock: ticks only (no RTC; this port has no time.time()).
# - Random: the port has no os.urandom (and its random module starts from the
#   same seed at every boot): random_bytes() reads the host's /dev/urandom
#   through semihosting.
# - reset(): machine.reset() ends QEMU (a semihosting exit).

import sys

from . import semihost

STORE_MOUNT = "/store"
STORE_BLOCK_SIZE = 4096
STORE_BLOCKS = 64  # 256 KB
LINK = "uart0 (REPL UART, stdin/stdout)"


def cmdline_value(key: str) -> "str | None":
    # The value of key=value on the semihosting command line, or None.
    prefix = key + "="
    for word in semihost.cmdline().split():
        if word.startswith(prefix):
            return word[len(prefix) :]
    return None


def store_device():
    path = cmdline_value("store")
    if path is None:
        return None
    return semihost.SemihostBlockDevice(path, STORE_BLOCK_SIZE, STORE_BLOCKS)


_urandom = []  # type: list  # the handle on the host's /dev/urandom, once opened


def random_bytes(n: int) -> bytes:
    if not _urandom:
        _urandom.append(semihost.open("/dev/urandom", "rb"))
    buf = bytearray(n)
    if semihost.read_into(_urandom[0], buf) != n:
        raise OSError(5)  # EIO
    return bytes(buf)


def link_streams():
    import micropython

    micropython.kbd_intr(-1)
    return sys.stdin.buffer, sys.stdout.buffer


def ticks_ms():  # an int modulo 2**30 (time.ticks_ms)
    import time

    return time.ticks_ms()


def ticks_diff(new: int, old: int) -> int:
    import time

    return time.ticks_diff(new, old)


def reset() -> None:
    import machine

    machine.reset()
