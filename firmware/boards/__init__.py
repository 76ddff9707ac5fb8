# Board support for the token: one small module per board, each with
#
#   NAME, CPU        the board's name here and its processor
#   LINK             where the dev link runs (a short description)
#   link_streams()   (reader, writer): binary streams of the dev link, with
#                    Ctrl-C on the link disabled
#   store_device()   the block device of the token's store, or None
#   STORE_MOUNT      where mount_store() makes the store appear
#   random_bytes(n) n unpredictable bytes (the card's random source)
#   ticks_ms(), ticks_diff(new, old), reset()
#
# current() gives the module of the running image. The image says which board
# it is through sys.implementation._build, which MicroPython sets from the
# build's BOARD and BOARD_VARIANT (terminal/token/boards.py builds the ARMv6-M
# QEMU image as BOARD=MPS2_AN385 BOARD_VARIANT=M0PLUS); _machine ("<board>
# with <MCU>") is the second witness.

import sys

# sys.implementation._build -> board module (a variant falls back to its board)
_BUILDS = {
    "MPS2_AN385": "qemu_m3",
    "MPS2_AN385-M0PLUS": "qemu_m0plus",
    "RPI_PICO2": "rpi_pico2",
    "RPI_PICO2_W": "rpi_pico2",
    "ESP32_GENERIC_S3": "esp32s3",
}


def name() -> str:
    build = getattr(sys.implementation, "_build", "")
    found = _BUILDS.get(build) or _BUILDS.get(build.split("-")[0])
    if found == "qemu_m3" and "Cortex-M0" in getattr(sys.implementation, "_machine", ""):
        found = "qemu_m0plus"  # an ARMv6-M build made without the variant name
    if found is None:
        raise OSError("no board module for build %r (%s)" % (build, sys.platform))
    return found


def current():
    # The board module of the running image (imported on first use).
    n = name()
    if n == "qemu_m3":
        from . import qemu_m3

        return qemu_m3
    if n == "qemu_m0plus":
        from . import qemu_m0plus

        return qemu_m0plus
    if n == "rpi_pico2":
        from . import rpi_pico2

        return rpi_pico2
    from . import esp32s3

    return esp32s3


def mount_store(board) -> "str | None":
    # Mounts the board's store (littlefs v2) and returns where, or None when
    # the board has none. A blank or unreadable store is formatted first.
    # Boards whose port already mounts its flash (rp2, esp32: at "/") only
    # say where it is.
    if getattr(board, "STORE_PREMOUNTED", False):
        return board.STORE_MOUNT
    bdev = board.store_device()
    if bdev is None:
        return None
    import vfs  # MicroPython 1.23+ (os.VfsLfs2 and os.mount before)

    # (MicroPython's stubs derive VfsLfs2 from AbstractBlockDev: "abstract")
    try:
        fs = vfs.VfsLfs2(bdev)  # type: ignore[abstract]  # mounts littlefs: OSError when there is none
    except OSError:
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)  # type: ignore[abstract]
    vfs.mount(fs, board.STORE_MOUNT)
    return board.STORE_MOUNT
