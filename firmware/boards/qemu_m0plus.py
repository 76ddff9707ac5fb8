# The token on QEMU's mps2-an385 running ARMv6-M code (the RP2040's
# instruction set): ports/qemu BOARD=MPS2_AN385 BOARD_VARIANT=M0PLUS, built
# with -mcpu=cortex-m0plus and mpy-cross -march=armv6m. QEMU still emulates a
# Cortex-M3 (the machine allows no other CPU): the image holds no Thumb-2-only
# instruction, but the timing is the M3's. See qemu_mps2.py.

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

NAME = "qemu_m0plus"
CPU = "cortex-m0plus"
