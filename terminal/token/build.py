"""Building a token image: MicroPython with the firmware frozen in.

::

    result = build(Path("micropython"), "qemu_m0plus", Path("out"), progress=report)
    result.elf  # out/qemu_m0plus/build/firmware.elf

``source`` is a MicroPython source tree (the full tree, or the trimmed one of
``mpy-cross`` and ``ports/qemu``). The stages, each reported to ``progress``
(a :class:`Progress` at its start, one per line of make output, one at its end
with its duration):

1. ``mpy-cross``: ``make -C mpy-cross``, the cross-compiler that freezing uses;
2. ``image``: ``make -C ports/PORT`` with the board's variables
   (:mod:`.boards`), ``BUILD=OUT/BOARD/build``,
   ``FROZEN_MANIFEST=firmware/manifest.py`` (which freezes the package
   ``firmware``; ``profile`` adds the personalisation as ``firmware/_card.py``),
   ``MPY_LIB_DIR`` a folder with only a README.md (the manifest tool wants
   one; the image requires nothing from micropython-lib) and
   ``USER_C_MODULES=firmware/native`` (:func:`native_modules`: the module
   ``_emvnative``, the card's RSA and DES in C) for a board with ``native``,
   and ``MICROPY_HEAP_SIZE=BYTES`` when ``heap`` is given (the QEMU port's
   GC heap; its default is 140 KB);
3. ``check`` (ARMv6-M boards): ``objdump -d`` shows no 32-bit Thumb-2
   instruction besides the six ARMv6-M has (BL, MRS, MSR, DMB, DSB, ISB).

make does not track compiler flags, so each board has its own build folder
(``OUT/BOARD``, or ``OUT/BOARD-heapBYTES`` for an image with another heap size);
a second build of a board recompiles nothing and only re-freezes (about 1 s).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import emvkit.firmware
from emvkit.terminal.errors import EmvkitError
from emvkit.terminal.token.boards import TokenBoard, board

__all__ = [
    "ARMV6M_WIDE",
    "BadHeapSize",
    "BuildFailed",
    "BuildResult",
    "NoSourceTree",
    "NoToolchain",
    "NotBuildable",
    "Progress",
    "TokenBuildError",
    "build",
    "check_source",
    "check_toolchain",
    "firmware_manifest",
    "native_modules",
    "thumb2_instructions",
]

CROSS = "arm-none-eabi-"
TOOLCHAIN_HINT = "install gcc-arm-none-eabi libnewlib-arm-none-eabi, e.g. make token-debs"
ARMV6M_WIDE = frozenset({"bl", "mrs", "msr", "dmb", "dsb", "isb"})  # the 32-bit encodings ARMv6-M has
MIN_HEAP = 16 * 1024  # bytes: less does not hold the firmware's modules
_TAIL = 20  # lines of make output kept for an error
_QUOTE = 200  # characters of it in the error's message
# objdump -d: "   1a2c:\tf000 f87a \tbl\t1b24 <f>" (a 32-bit Thumb instruction is two halfwords)
_NOISE = re.compile(r"^(make(\[\d+\])?: |(CC|AS|LINK|GEN|MPY|QSTR|QSTR updated|Including User C Module) )")
_WIDE = re.compile(r"^\s*[0-9a-f]+:\t[0-9a-f]{4} [0-9a-f]{4}\s*\t(\S+)")


class TokenBuildError(EmvkitError):
    """The token image cannot be built."""


class NoSourceTree(TokenBuildError):
    """The folder is not a MicroPython source tree with the board's port."""


class NoToolchain(TokenBuildError):
    """The ARM cross-compiler (or newlib) is not installed."""


class BadHeapSize(TokenBuildError):
    """A GC heap size the image cannot have."""


class NotBuildable(TokenBuildError):
    """A board that is written for but not built on this machine."""


class BuildFailed(TokenBuildError):
    """make failed (or the image breaks a board rule); ``tail`` holds the last lines of output."""

    def __init__(self, stage: str, reason: str, tail: list[str]) -> None:
        # The message quotes the last line that says something: an error if
        # one says so, not make's own "***" and "Leaving directory" lines, not
        # progress ("CC x.c"). The whole tail stays in `tail`.
        telling = [line.strip() for line in tail if line.strip() and not _NOISE.match(line)]
        errors = [line for line in telling if "error" in line.lower()]
        last = (errors or telling or [line.strip() for line in tail if line.strip()] or [""])[-1]
        if len(last) > _QUOTE:
            last = last[: _QUOTE - 3] + "..."
        super().__init__(f"{stage}: {reason}" + (f": {last}" if last else ""))
        self.stage = stage
        self.tail = tail


@dataclass(frozen=True)
class Progress:
    stage: str  # "mpy-cross", "image", "check"
    event: str  # "start", "line" or "done"
    text: str = ""  # the line (event "line")
    seconds: float = 0.0  # the stage's duration (event "done")


@dataclass(frozen=True)
class BuildResult:
    board: TokenBoard
    build_dir: Path
    elf: Path
    bin: Path
    text: int  # bytes of code and read-only data (frozen firmware included): the flash used
    data: int
    bss: int  # RAM, the GC heap included
    seconds: dict[str, float] = field(default_factory=dict)  # per stage


def firmware_manifest() -> Path:
    """The manifest that freezes the firmware package (firmware/manifest.py)."""
    return Path(emvkit.firmware.__file__).parent / "manifest.py"


def native_modules() -> Path | None:
    """The user C module folder (firmware/native/, with its micropython.mk), or None if not installed."""
    folder = Path(emvkit.firmware.__file__).parent / "native"
    return folder if (folder / "micropython.mk").is_file() else None


def check_source(source: Path, target: TokenBoard) -> None:
    for needed in ("py/mkenv.mk", "mpy-cross/Makefile", f"ports/{target.port}/Makefile"):
        if not (source / needed).is_file():
            raise NoSourceTree(f"{source} is not a MicroPython source tree with ports/{target.port} (no {needed})")


def check_toolchain(which: Callable[[str], str | None] = shutil.which) -> None:
    gcc = which(CROSS + "gcc")
    if gcc is None or which(CROSS + "objdump") is None:
        raise NoToolchain(f"no ARM cross-compiler ({CROSS}gcc): {TOOLCHAIN_HINT}")
    libc = subprocess.run([gcc, "-print-file-name=libc.a"], capture_output=True, text=True, check=False)
    if libc.stdout.strip() == "libc.a":  # gcc prints the bare name when it finds no such file
        raise NoToolchain(f"no newlib for {CROSS}gcc: {TOOLCHAIN_HINT}")


def build(
    source: Path,
    board_name: str | TokenBoard,
    out: Path,
    *,
    profile: Path | None = None,
    extra_manifest: Path | None = None,
    jobs: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    heap: int | None = None,
) -> BuildResult:
    """Build ``board_name``'s image from ``source`` into ``out/BOARD``.

    ``profile``: a card profile (JSON) frozen into the image. ``extra_manifest``:
    a manifest included after the firmware's (e.g. a boot script for tests).
    ``heap``: the GC heap in bytes (a multiple of 1024, at least 16 KB), built
    into ``out/BOARD-heapBYTES``; None keeps the port's own size.
    """
    target = board(board_name) if isinstance(board_name, str) else board_name
    if not target.in_ci:
        raise NotBuildable(f"{target.name} is written for, not built here: the {target.port} port needs its SDK")
    if heap is not None and (heap < MIN_HEAP or heap % 1024):
        raise BadHeapSize(f"heap {heap} bytes: give a multiple of 1024 of at least {MIN_HEAP}")
    source = source.resolve()
    check_source(source, target)
    check_toolchain()
    report = progress or (lambda _p: None)
    jobs = jobs or os.cpu_count() or 1
    work = (out / (target.name if heap is None else f"{target.name}-heap{heap}")).resolve()
    build_dir = work / "build"
    lib_dir = out.resolve() / "mpy-lib"
    lib_dir.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    (lib_dir / "README.md").write_text("A stand-in for micropython-lib: the token image needs nothing from it.\n")
    manifest = firmware_manifest()
    if extra_manifest is not None:
        manifest = work / "manifest.py"
        manifest.write_text(f"include({str(firmware_manifest())!r})\ninclude({str(extra_manifest.resolve())!r})\n")
    env = dict(os.environ)
    env.pop("EMVKIT_CARD", None)
    if profile is not None:
        env["EMVKIT_CARD"] = str(profile.resolve())
        env["EMVKIT_GEN_DIR"] = str(work / "gen")

    seconds: dict[str, float] = {}
    seconds["mpy-cross"] = _make("mpy-cross", [f"-j{jobs}", "-C", str(source / "mpy-cross")], env, report)
    args = [f"-j{jobs}", "-C", str(source / "ports" / target.port), *target.make_args(), f"BUILD={build_dir}",
            f"FROZEN_MANIFEST={manifest}", f"MPY_LIB_DIR={lib_dir}"]
    native = native_modules() if target.native else None
    if native is not None:
        args.append(f"USER_C_MODULES={native}")
    if heap is not None:
        args.append(f"MICROPY_HEAP_SIZE={heap}")
    seconds["image"] = _make("image", args, env, report)
    elf = build_dir / "firmware.elf"
    if target.armv6m_only:
        started = time.monotonic()
        report(Progress("check", "start"))
        wide = thumb2_instructions(elf)
        if wide:
            found = ", ".join(f"{name} x{count}" for name, count in wide.most_common(8))
            raise BuildFailed("check", f"{elf} is not ARMv6-M code: Thumb-2 instructions {found}", [])
        seconds["check"] = time.monotonic() - started
        report(Progress("check", "done", seconds=seconds["check"]))
    text, data, bss = _sizes(elf)
    return BuildResult(target, build_dir, elf, build_dir / "firmware.bin", text, data, bss, seconds)


def _make(stage: str, args: list[str], env: Mapping[str, str], report: Callable[[Progress], None]) -> float:
    started = time.monotonic()
    report(Progress(stage, "start", " ".join(["make", *args])))
    tail: deque[str] = deque(maxlen=_TAIL)
    try:
        proc = subprocess.Popen(["make", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env=dict(env))
    except OSError as exc:
        raise BuildFailed(stage, f"cannot run make ({exc.strerror or exc})", []) from exc
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            report(Progress(stage, "line", line))
    if proc.returncode != 0:
        raise BuildFailed(stage, f"make failed with exit status {proc.returncode}", list(tail))
    elapsed = time.monotonic() - started
    report(Progress(stage, "done", seconds=elapsed))
    return elapsed


def thumb2_instructions(elf: Path, objdump: str = CROSS + "objdump") -> Counter[str]:
    """The 32-bit Thumb instructions in ``elf`` that ARMv6-M does not have, by mnemonic."""
    done = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildFailed("check", f"{objdump} failed", done.stderr.splitlines())
    found: Counter[str] = Counter()
    for line in done.stdout.splitlines():
        m = _WIDE.match(line)
        if m and m.group(1) not in ARMV6M_WIDE:
            found[m.group(1)] += 1
    return found


def _sizes(elf: Path) -> tuple[int, int, int]:
    done = subprocess.run([CROSS + "size", str(elf)], capture_output=True, text=True, check=False)
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) < 2:
        raise BuildFailed("image", f"cannot read the sizes of {elf}", done.stderr.splitlines())
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return text, data, bss
