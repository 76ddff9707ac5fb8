"""The boards a token image is made for, and how each is built, run and flashed.

Two run here, under QEMU's ``mps2-an385`` machine (MicroPython's ``ports/qemu``,
``BOARD=MPS2_AN385``): ``qemu_m3`` as MicroPython builds it, and ``qemu_m0plus``,
the same board compiled for ARMv6-M (the RP2040's instruction set) with
``-mcpu=cortex-m0plus`` and ``mpy-cross -march=armv6m``. Both add littlefs v2
(``MICROPY_VFS_LFS2=1``; the port has no clock, so littlefs's timestamps are
0: ``mp_hal_time_ns()`` is defined as 0 through ``CFLAGS_EXTRA``, which
``py/mphal.h`` allows). The ARMv6-M variant also swaps the Thumb-2 GC helper
for the Thumb-1 one and names itself ``BOARD_VARIANT=M0PLUS``, so the image's
``sys.implementation._build`` reads ``MPS2_AN385-M0PLUS`` (what
``firmware/boards/__init__.py`` looks at).

Every board's image also gets emvkit's native crypto arithmetic, the user C
module ``_emvnative`` of ``firmware/native/`` (``USER_C_MODULES=``, passed by
:mod:`.build` for the boards built here), which
``firmware/crypto/provider.py`` picks when the image has it. The ports'
``hashlib.sha1`` cannot be switched on with a make or CFLAGS variable:
``extmod/modhashlib.c`` implements SHA-1 only over axTLS or mbedTLS
(``MICROPY_SSL_AXTLS``/``MICROPY_SSL_MBEDTLS``), neither of which the QEMU
port builds, so SHA-1 stays the firmware's pure one.

The real boards are written only: their ports need SDKs (pico-sdk, ESP-IDF)
that are not here. Their board modules follow MicroPython's documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

from emvkit.terminal.errors import EmvkitError

__all__ = ["BOARDS", "TokenBoard", "UnknownBoard", "board", "board_names"]


class UnknownBoard(EmvkitError):
    """A board name not in :data:`BOARDS`."""


@dataclass(frozen=True)
class TokenBoard:
    """One target of the token image."""

    name: str
    cpu: str
    port: str  # MicroPython port folder under ports/
    mp_board: str  # the port's BOARD=
    variant: str = ""  # BOARD_VARIANT= ("" for none)
    make_vars: tuple[tuple[str, str], ...] = ()  # more NAME=value for the port's make
    mpy_cross_flags: str = ""  # MPY_CROSS_FLAGS= when it differs from the board's own
    qemu_machine: str = ""  # "" for hardware only
    in_ci: bool = False  # built and booted on this machine (else written only)
    armv6m_only: bool = False  # the image must hold no Thumb-2-only instruction
    flashing: str = ""  # how an image gets onto the board
    native: bool = True  # build firmware/native/ (the module _emvnative) into the image

    def make_args(self) -> list[str]:
        """The board's variables for ``make -C ports/PORT``."""
        args = [f"BOARD={self.mp_board}"]
        if self.variant:
            args.append(f"BOARD_VARIANT={self.variant}")
        args += [f"{name}={value}" for name, value in self.make_vars]
        if self.mpy_cross_flags:
            args.append(f"MPY_CROSS_FLAGS={self.mpy_cross_flags}")
        return args


# littlefs v2 on a port without a clock: timestamps 0 (py/mphal.h: "#ifndef mp_hal_time_ns").
_NO_CLOCK = "-D'mp_hal_time_ns()=0ULL'"

BOARDS: dict[str, TokenBoard] = {
    b.name: b
    for b in (
        TokenBoard(
            name="qemu_m3",
            cpu="cortex-m3",
            port="qemu",
            mp_board="MPS2_AN385",
            make_vars=(("MICROPY_VFS_LFS2", "1"), ("CFLAGS_EXTRA", _NO_CLOCK)),
            qemu_machine="mps2-an385",
            in_ci=True,
            flashing="none: booted with qemu-system-arm -kernel firmware.elf (emvkit.terminal.token.qemu)",
        ),
        TokenBoard(
            name="qemu_m0plus",
            cpu="cortex-m0plus",
            port="qemu",
            mp_board="MPS2_AN385",
            variant="M0PLUS",
            make_vars=(
                ("MICROPY_VFS_LFS2", "1"),
                # The last -mcpu wins over the board's -mcpu=cortex-m3; -U first, as -Werror
                # refuses a redefined macro.
                (
                    "CFLAGS_EXTRA",
                    "-mcpu=cortex-m0plus -UMICROPY_HW_MCU_NAME -DMICROPY_HW_MCU_NAME='\"Cortex-M0+\"' " + _NO_CLOCK,
                ),
                ("AFLAGS", "-mthumb -mcpu=cortex-m0plus"),
                ("SRC_BOARD_O", "shared/runtime/gchelper_native.o shared/runtime/gchelper_thumb1.o"),
            ),
            mpy_cross_flags="-march=armv6m",
            qemu_machine="mps2-an385",
            in_ci=True,
            armv6m_only=True,
            flashing="none: booted like qemu_m3 (QEMU still emulates a Cortex-M3)",
        ),
        TokenBoard(
            name="rpi_pico2",
            cpu="cortex-m33",
            port="rp2",
            mp_board="RPI_PICO2",
            flashing="UF2: copy firmware.uf2 to the RP2350's BOOTSEL drive, or picotool load -x",
        ),
        TokenBoard(
            name="esp32s3",
            cpu="xtensa-lx7",
            port="esp32",
            mp_board="ESP32_GENERIC_S3",
            flashing="esptool --chip esp32s3 write-flash 0x0 firmware.bin",
        ),
    )
}


def board_names() -> list[str]:
    return list(BOARDS)


def board(name: str) -> TokenBoard:
    """The board called ``name``; :class:`UnknownBoard` listing the boards otherwise."""
    try:
        return BOARDS[name]
    except KeyError:
        raise UnknownBoard(f"unknown board {name!r}: one of {', '.join(BOARDS)}") from None
