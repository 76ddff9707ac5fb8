# ARM semihosting from MicroPython on Cortex-M: host files and the emulator's
# command line, for the token under QEMU (firmware/boards/qemu_mps2.py).
#
# A semihosting call (Arm, "Semihosting for AArch32 and AArch64", release 2.0,
# github.com/ARM-software/abi-aa, semihosting/semihosting.rst): on M-profile
# the instruction BKPT 0xAB (Thumb halfword 0xBEAB), the operation number in
# r0, the address of a parameter block of 32-bit words in r1, the result in
# r0. QEMU answers it when started with -semihosting-config enable=on
# (target=native: files are the host's own, paths relative to QEMU's working
# directory). Without a debugger or QEMU behind it a BKPT is a fault: call
# this only on a semihosted target.
#
# The trap is a function for MicroPython's inline Thumb assembler
# (docs.micropython.org/en/latest/reference/asm_thumb2_index.html), which
# passes a buffer argument as the address of its data. Its source is compiled
# by the device's own compiler when this module is imported, so the file
# itself is plain Python: mpy-cross compiles it for any -march (or none) and
# CPython imports it; available() then says False and every call raises
# OSError(ENODEV).

from array import array

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_SYS_OPEN = const(0x01)
_SYS_CLOSE = const(0x02)
_SYS_WRITE = const(0x05)  # returns the number of bytes NOT written
_SYS_READ = const(0x06)  # returns the number of bytes NOT read
_SYS_SEEK = const(0x0A)  # to an absolute position
_SYS_FLEN = const(0x0C)
_SYS_ERRNO = const(0x13)  # the host's errno of the last failed call
_SYS_GET_CMDLINE = const(0x15)

_EIO = const(5)
_ENODEV = const(19)
_CMDLINE_MAX = const(256)

# SYS_OPEN takes the mode as an index into the ISO C fopen() modes.
_MODES = ("r", "rb", "r+", "r+b", "w", "wb", "w+", "w+b", "a", "ab", "a+", "a+b")

_ASM = """
@micropython.asm_thumb
def trap(r0, r1):
    data(2, 0xBEAB)

@micropython.asm_thumb
def address(r0):
    nop()
"""


def _unavailable(*args):
    raise OSError(_ENODEV)


_trap = _address = _unavailable
try:
    _ns = {}  # type: dict
    exec(_ASM, _ns)
    _trap = _ns["trap"]
    _address = _ns["address"]  # a buffer's address (the identity on what the assembler passes)
except Exception:  # no Thumb inline assembler: CPython, the unix port, Xtensa, RISC-V
    pass

_block = array("I", (0, 0, 0))  # the parameter block, reused by every call


def available() -> bool:
    return _trap is not _unavailable


def _call(op: int, a: int = 0, b: int = 0, c: int = 0) -> int:
    _block[0] = a
    _block[1] = b
    _block[2] = c
    return _trap(op, _block)


def _fail() -> None:
    raise OSError(_call(_SYS_ERRNO) or _EIO)


def open(path: str, mode: str = "rb") -> int:
    # A handle on the host file; OSError (the host's errno) when it cannot.
    name = path.encode() + b"\x00"  # the host reads a C string; the length excludes the NUL
    h = _call(_SYS_OPEN, _address(name), _MODES.index(mode), len(name) - 1)
    if h == -1:
        _fail()
    return h


def close(h: int) -> None:
    if _call(_SYS_CLOSE, h):
        _fail()


def _seek(h: int, pos: int) -> None:
    if _call(_SYS_SEEK, h, pos):
        _fail()


def read_into(h: int, buf, pos: "int | None" = None) -> int:
    # Reads len(buf) bytes from pos (None: where the last call left off, for
    # a device such as /dev/urandom) into buf; returns how many there were.
    if pos is not None:
        _seek(h, pos)
    n = len(buf)
    return n - _call(_SYS_READ, h, _address(buf), n)


def write(h: int, buf, pos: int) -> int:
    # Writes all of buf at pos (past the end of the file extends it).
    _seek(h, pos)
    n = len(buf)
    if _call(_SYS_WRITE, h, _address(buf), n):
        raise OSError(_EIO)
    return n


def length(h: int) -> int:
    n = _call(_SYS_FLEN, h)
    if n < 0:
        _fail()
    return n


def cmdline() -> str:
    # QEMU: the -semihosting-config arg=... values joined by spaces (with no
    # arg=, the kernel file name and -append).
    buf = bytearray(_CMDLINE_MAX)
    if _call(_SYS_GET_CMDLINE, _address(buf), _CMDLINE_MAX):
        raise OSError(_EIO)  # longer than the buffer
    return bytes(buf[: _block[1]]).decode()


# Block device ioctl operations (docs.micropython.org/en/latest/library/vfs.html#vfs.AbstractBlockDev)
_IOCTL_INIT = const(1)
_IOCTL_DEINIT = const(2)
_IOCTL_SYNC = const(3)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)
_ERASE_PIECE = const(256)  # bytes of 0xFF written at a time


class SemihostBlockDevice:
    # MicroPython's extended block protocol (reference/filesystem.html: reads
    # and writes at any offset in a block, erase through ioctl 6, as littlefs
    # wants) over a host file of blocks * block_size bytes. Erased bytes are
    # 0xFF, as on NOR flash: a missing or short host file is extended with
    # them when the device is opened.
    #
    #   bdev = SemihostBlockDevice("/abs/store.bin")
    #   os.VfsLfs2.mkfs(bdev)            # once
    #   os.mount(os.VfsLfs2(bdev), "/store")

    def __init__(self, path: str, block_size: int = 4096, blocks: int = 64) -> None:
        self.path = path
        self.block_size = block_size
        self.blocks = blocks
        self._h = -1
        self._open()

    def _open(self) -> None:
        try:
            self._h = open(self.path, "r+b")
        except OSError:
            self._h = open(self.path, "w+b")  # a new store
        have = length(self._h)
        self._erase(have, self.block_size * self.blocks - have)

    def _erase(self, at: int, n: int) -> None:
        # n bytes of 0xFF at `at`, a piece at a time: no block-sized buffer
        # stays on the heap (4 KB of a small heap).
        erased = b"\xff" * _ERASE_PIECE
        while n > 0:
            k = n if n < _ERASE_PIECE else _ERASE_PIECE
            write(self._h, memoryview(erased)[:k], at)
            at += k
            n -= k

    def readblocks(self, n: int, buf, offset: int = 0) -> None:
        got = read_into(self._h, buf, n * self.block_size + offset)
        for i in range(got, len(buf)):  # the host file was cut short under us: erased
            buf[i] = 0xFF

    def writeblocks(self, n: int, buf, offset: int = 0) -> None:
        write(self._h, buf, n * self.block_size + offset)

    def ioctl(self, op: int, arg: int):
        if op == _IOCTL_INIT:
            if self._h < 0:
                self._open()
            return 0
        if op == _IOCTL_DEINIT:
            if self._h >= 0:
                close(self._h)
                self._h = -1
            return 0
        if op == _IOCTL_SYNC:
            return 0  # each write went to the host file at once
        if op == _IOCTL_BLOCK_COUNT:
            return self.blocks
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == _IOCTL_BLOCK_ERASE:
            self._erase(arg * self.block_size, self.block_size)
            return 0
        return None
