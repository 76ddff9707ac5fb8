# The token on an ESP32-S3 board (Xtensa LX7; MicroPython's esp32 port,
# BOARD=ESP32_GENERIC_S3). Written from MicroPython's documentation
# (docs.micropython.org/en/latest/esp32/quickref.html, library/esp32.html
# "Flash partitions", library/machine.UART.html): it cannot be built or run
# here (the esp32 port needs ESP-IDF).
#
# - Dev link: the USB serial (native USB CDC or the USB-serial chip), i.e. the
#   REPL's sys.stdin.buffer / sys.stdout.buffer (the default); or, with
#   LINK_UART = True, UART1 on the pins below at 115200 baud.
# - Store: the data partition labelled "vfs", found with
#   esp32.Partition.find(esp32.Partition.TYPE_DATA, label="vfs"). The port's
#   boot script already mounts it (littlefs v2) at "/", so the store is "/"
#   (STORE_PREMOUNTED); store_device() is that partition, a block device.
# - Clock: time.ticks_ms() (time.time() runs from the RTC, not set at power-up).

import sys

from .mcu import reset, ticks_diff, ticks_ms  # noqa: F401 (the board interface)

NAME = "esp32s3"
CPU = "xtensa-lx7"
LINK_UART = False
UART_TX = 17
UART_RX = 18
LINK = "uart1 115200" if LINK_UART else "usb serial (stdin/stdout)"
LINK_PARTIAL_READS = LINK_UART
STORE_PREMOUNTED = True
STORE_MOUNT = "/"
STORE_LABEL = "vfs"


def store_device():
    import esp32

    found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=STORE_LABEL)
    return found[0] if found else None


def link_streams():
    import micropython

    micropython.kbd_intr(-1)  # 0x03 in a frame must not raise KeyboardInterrupt
    if LINK_UART:
        from machine import UART

        uart = UART(1, 115200, tx=UART_TX, rx=UART_RX)
        return uart, uart
    return sys.stdin.buffer, sys.stdout.buffer


def random_bytes(n: int) -> bytes:
    import os

    return os.urandom(n)  # the chip's hardware random number generator
