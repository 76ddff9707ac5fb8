# The token on QEMU's mps2-an385 (Cortex-M3, ARMv7-M): MicroPython's
# ports/qemu BOARD=MPS2_AN385 as it is. See qemu_mps2.py.

from .qemu_mps2 import *  # noqa: F403 (the shared QEMU board)

NAME = "qemu_m3"
CPU = "cortex-m3"
