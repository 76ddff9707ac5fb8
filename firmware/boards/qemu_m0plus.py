# The token on QEMU's mps2-an385 running ARMv6-M code (the RP2040's
# instruction set): ports/qemu BOARD=MPS2_AN385 BOARD_VARIANT=M0PLUS, built
# with -mcpu=cortex-m0plus and mpy-cross -march=armv6m. QEMU still emulates a
# Cortex-M3 (the machine allows no other CPU): the image holds no Thumb-2-only
# instruction, but the timing is the M3's. See qemu_mps2.py.

from .qemu_mps2 import *  # noqa: F403 (the shared QEMU board)

NAME = "qemu_m0plus"
CPU = "cortex-m0plus"
