# The token on QEMU's mps2-an385 (Cortex-M3, ARMv7-M): MicroPython's
# ports/qemu BOARD=MPS2_AN385 as it is. See qemu_mps2.py.

from .qemu_mps2 import (
    LINK,
    NFC_ACK_MS,
    STORE_MOUNT,
    front_end,
    link_streams,
    nfc_bus,
    random_bytes,
    reset,
    store_device,
    ticks_diff,
    ticks_ms,
)

__all__ = [
    "CPU",
    "LINK",
    "NAME",
    "NFC_ACK_MS",
    "STORE_MOUNT",
    "front_end",
    "link_streams",
    "nfc_bus",
    "random_bytes",
    "reset",
    "store_device",
    "ticks_diff",
    "ticks_ms",
]

NAME = "qemu_m3"
CPU = "cortex-m3"
