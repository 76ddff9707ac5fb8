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
# - NFC front end (front_end(), nfc_bus()): the semihosting word
#   frontend=pn532 puts a PN532 (firmware/nfc/pn532.py) on UART1, QEMU's
#   second -serial (a second pty, where the host's chip simulator answers).
#   The port has no UART class for UART1: NfcUart drives the CMSDK APB UART
#   through its registers with machine.mem32 (as ports/qemu/uart.c does
#   UART0). Checked against QEMU 7.2's cmsdk-apb-uart by experiment: one
#   byte of receive buffer (STATE b1 until DATA is read; QEMU refills it
#   from the pty afterwards), TX and RX enabled by CTRL b0 and b1, BAUDDIV
#   at least 16. Without frontend=: no front end (the dev link only).

import sys

from . import semihost
from .mcu import reset, ticks_diff, ticks_ms  # noqa: F401 (the board interface)

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_UART1 = const(0x40005000)  # UART0 is 0x40004000 (the REPL, the dev link)
_DATA = const(0x00)
_STATE = const(0x04)
_CTRL = const(0x08)
_BAUDDIV = const(0x10)
_TX_FULL = const(0x01)
_RX_FULL = const(0x02)
_TX_RX_ENABLE = const(0x03)
_SPINS = const(200)  # looks at STATE for the next byte of a burst before readinto returns
FRONT_ENDS = ("pn532",)
# The chip's ACK comes within a few ms (UM0701-02 §6.2.2), but QEMU's clock is
# the host's: a guest starved of CPU by a busy host sees a late ACK. The
# driver waits this long before it sends a command again.
NFC_ACK_MS = 1000

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


def front_end() -> "str | None":
    # The NFC front end QEMU was started with (frontend=NAME), or None.
    name = cmdline_value("frontend")
    return name if name in FRONT_ENDS else None


class NfcUart:
    # UART1 as a bus (firmware/nfc/bus.py): write(), readinto(buf, timeout_ms).
    def __init__(self, base: int = _UART1) -> None:
        import machine

        self.mem = machine.mem32
        self.base = base
        self.mem[base + _BAUDDIV] = 16
        self.mem[base + _CTRL] = _TX_RX_ENABLE

    def write(self, buf) -> None:
        mem = self.mem
        state = self.base + _STATE
        data = self.base + _DATA
        for b in buf:
            while mem[state] & _TX_FULL:
                pass
            mem[data] = b

    def readinto(self, buf, timeout_ms: int = 0) -> int:
        # What arrives now: a byte, and the rest of its burst (QEMU hands
        # over one byte at a time: wait a few looks for the next one).
        import time

        mem = self.mem
        state = self.base + _STATE
        data = self.base + _DATA
        n = 0
        start = time.ticks_ms()
        spins = 0
        limit = len(buf)
        while n < limit:
            if mem[state] & _RX_FULL:
                buf[n] = mem[data] & 0xFF
                n += 1
                spins = 0
            elif n:
                spins += 1
                if spins > _SPINS:
                    break
            elif time.ticks_diff(time.ticks_ms(), start) >= timeout_ms:
                break
        return n


_bus = []  # type: list  # the one NfcUart, made on first use


def nfc_bus():
    if not _bus:
        _bus.append(NfcUart())
    return _bus[0]
