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
# - NFC front end (front_end(), nfc_bus(), nfc_reset()): an NXP PN7150 (or a
#   PN7160 in its I2C version: FRONT_END = "pn7160") on I2C0, SDA GP4, SCL
#   GP5, 400 kHz, chip address 0x28; its IRQ output on GP6 (high while the
#   chip holds a packet for the host), its VEN input on GP7 (low: the chip
#   is off; a low pulse restarts it). Written from the MicroPython rp2
#   quickref (machine.I2C, machine.Pin) and the chips' I2C interface (no
#   status byte: read the 3-byte NCI header, then the payload, while IRQ is
#   high); never run on a board. The 10 ms of the VEN pulse and of the wait
#   after it are generous guesses, not figures checked in the datasheet.
#   FRONT_END = None: the dev link alone.

import sys

from .mcu import reset, ticks_diff, ticks_ms  # noqa: F401 (the board interface)

NAME = "rpi_pico2"
CPU = "cortex-m33"
LINK_UART = False
LINK = "uart0 gp0/gp1 115200" if LINK_UART else "usb-cdc (stdin/stdout)"
LINK_PARTIAL_READS = LINK_UART
STORE_PREMOUNTED = True
STORE_MOUNT = "/"
FRONT_END = "pn7150"
NFC_I2C = 0
NFC_SDA = 4
NFC_SCL = 5
NFC_FREQ = 400_000
NFC_ADDR = 0x28
NFC_IRQ = 6
NFC_VEN = 7


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


def front_end() -> "str | None":
    return FRONT_END


_nfc = []  # type: list  # the one I2cBus, made on first use


def nfc_bus():
    if not _nfc:
        import time

        from machine import I2C, Pin

        from ..nfc.bus import I2cBus

        Pin(NFC_VEN, Pin.OUT, value=1)  # the chip on
        i2c = I2C(NFC_I2C, sda=Pin(NFC_SDA), scl=Pin(NFC_SCL), freq=NFC_FREQ)
        irq = Pin(NFC_IRQ, Pin.IN, Pin.PULL_DOWN)
        _nfc.append(I2cBus(i2c, NFC_ADDR, irq, ticks_ms, ticks_diff, time.sleep_ms))
    return _nfc[0]


def nfc_reset() -> None:
    # A low pulse on VEN: the chip starts again from power-up, holding nothing.
    import time

    from machine import Pin

    ven = Pin(NFC_VEN, Pin.OUT)
    ven.value(0)
    time.sleep_ms(10)
    ven.value(1)
    time.sleep_ms(10)
