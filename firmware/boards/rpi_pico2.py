# The token on a Raspberry Pi Pico 2 (RP2350, Cortex-M33; MicroPython's rp2
# port, BOARD=RPI_PICO2). Written from MicroPython's documentation
# (docs.micropython.org/en/latest/rp2/quickref.html, library/rp2.Flash.html,
# library/machine.UART.html): it cannot be built or run here (the rp2 port
# needs the pico-sdk). The ARMv6-M QEMU image (qemu_m0plus) stands in for the
# RP2040's instruction set; the RP2350 runs Thumb-2.
#
# - Dev link: USB CDC, i.e. the REPL's sys.stdin.buffer / sys.stdout.buffer
#   (the default); or, with LINK_UART = True, UART0 on GP0 (TX) and GP1 (RX)
#   at 115200 baud, whose reads return what has arrived.
# - Store: the flash filesystem. The port's boot script already mounts
#   rp2.Flash() (littlefs v2) at "/", so the store is "/" (STORE_PREMOUNTED);
#   store_device() is that block device, for a board that formats it itself.
# - Clock: time.ticks_ms() (time.time() runs from the RTC, not set at power-up).

import sys

from .mcu import reset, ticks_diff, ticks_ms  # noqa: F401 (the board interface)

NAME = "rpi_pico2"
CPU = "cortex-m33"
LINK_UART = False
LINK = "uart0 gp0/gp1 115200" if LINK_UART else "usb-cdc (stdin/stdout)"
LINK_PARTIAL_READS = LINK_UART
STORE_PREMOUNTED = True
STORE_MOUNT = "/"


def store_device():
    import rp2

    return rp2.Flash()


def link_streams():
    import micropython

    micropython.kbd_intr(-1)  # 0x03 in a frame must not raise KeyboardInterrupt
    if LINK_UART:
        from machine import UART, Pin

        uart = UART(0, 115200, tx=Pin(0), rx=Pin(1))
        return uart, uart
    return sys.stdin.buffer, sys.stdout.buffer


def random_bytes(n: int) -> bytes:
    import os

    return os.urandom(n)  # the chip's hardware random number generator
