"""Writing a token image to a board (``emvkit token flash``).

* ``rpi_pico2``: the RP2350 in BOOTSEL mode shows up as a USB drive whose
  ``INFO_UF2.TXT`` names the chip; the ``.uf2`` image is copied onto it and the
  board reboots into it. Without such a drive, ``picotool load -x IMAGE``
  (``-x``: run it once loaded).
* ``esp32s3``: ``esptool --chip esp32s3 [--port PORT] write-flash 0x0 IMAGE``
  (esptool 5 spells its commands with dashes; MicroPython's ESP32-S3 images
  start at offset 0).
* QEMU boards have nothing to flash: booting the image is ``emvkit token run``.

:func:`plan` works out the steps without changing anything (``--dry-run``
prints them); :func:`execute` carries them out.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from emvkit.terminal.errors import EmvkitError
from emvkit.terminal.token.boards import TokenBoard

__all__ = ["FlashError", "FlashPlan", "FlashStep", "execute", "find_bootsel_drives", "plan"]

PICOTOOL_HINT = "picotool is not installed: build it from github.com/raspberrypi/picotool (or apt install picotool)"
ESPTOOL_HINT = "esptool is not installed: pip install esptool"
_MOUNT_ROOTS = ("/media", "/run/media", "/mnt", "/Volumes")


# How each port's boards take an image, and the chip name the tool (or the
# UF2 drive's INFO_UF2.TXT) uses for each board. (A candidate for columns of
# the board table, terminal/token/boards.py.)
_METHODS = {"rp2": "uf2", "esp32": "esptool"}
_CHIPS = {"rpi_pico2": "RP2350", "esp32s3": "esp32s3"}


class FlashError(EmvkitError):
    """The image cannot be written (missing tool, no board, a tool that failed)."""


@dataclass(frozen=True)
class FlashStep:
    """A command to run, or a file to copy onto a drive."""

    argv: tuple[str, ...] = ()
    copy: tuple[Path, Path] | None = None

    def describe(self) -> str:
        if self.copy is not None:
            return shlex.join(["cp", str(self.copy[0]), str(self.copy[1])])
        return shlex.join(self.argv)


@dataclass(frozen=True)
class FlashPlan:
    board: TokenBoard
    steps: list[FlashStep] = field(default_factory=list)
    note: str = ""  # what to say besides (or instead of) the steps
    missing: str = ""  # a tool the steps need that is not installed: the hint


def _mount_points() -> Iterable[Path]:
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 1:
                    yield Path(parts[1].replace("\\040", " "))
    except OSError:
        pass
    for root in _MOUNT_ROOTS:
        base = Path(root)
        try:
            for child in base.iterdir():
                yield child
                if child.is_dir() and root in ("/media", "/run/media"):
                    yield from child.iterdir()  # /media/USER/RP2350
        except OSError:
            continue


def is_bootsel_drive(path: Path, chip: str) -> bool:
    """A mounted UF2 bootloader drive of ``chip`` (its INFO_UF2.TXT names it)."""
    try:
        info = (path / "INFO_UF2.TXT").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return chip.upper() in info.upper()


def find_bootsel_drives(chip: str, mounts: Iterable[Path] | None = None) -> list[Path]:
    found: list[Path] = []
    for mount in _mount_points() if mounts is None else mounts:
        if mount not in found and is_bootsel_drive(mount, chip):
            found.append(mount)
    return found


def _esptool(which: Callable[[str], str | None]) -> tuple[list[str], bool]:
    found = which("esptool")
    if found:
        return [found], True
    if importlib.util.find_spec("esptool") is not None:
        return [sys.executable, "-m", "esptool"], True
    return ["esptool"], False


def _device(port: str | None) -> str | None:
    if port is None:
        return None
    return port[len("serial:"):] if port.startswith("serial:") else port


def plan(
    board: TokenBoard,
    image: Path,
    *,
    port: str | None = None,
    drive: Path | None = None,
    which: Callable[[str], str | None] | None = None,
    mounts: Iterable[Path] | None = None,
) -> FlashPlan:
    """The steps that write ``image`` to ``board``; changes nothing. ``FlashError`` when there is no way.

    ``which`` finds a tool on PATH (``shutil.which``); ``mounts`` are the mount points searched for a
    BOOTSEL drive (the machine's, from /proc/mounts and the usual media folders).
    """
    which = which or shutil.which
    if board.qemu_machine:
        return FlashPlan(board, note=f"nothing to flash: a QEMU board is flashed by booting it, "
                                     f"emvkit token run --board {board.name} --image {image}")
    method = _METHODS.get(board.port)
    chip = _CHIPS.get(board.name)
    if method is None or chip is None:
        raise FlashError(f"{board.name}: no way to flash it from here ({board.flashing or 'unknown'})")
    if not image.is_file():
        raise FlashError(f"no image file {image}")
    if method == "uf2":
        return _plan_uf2(board, chip, image, drive, which, mounts)
    argv, installed = _esptool(which)
    device = _device(port)
    argv += ["--chip", chip] + (["--port", device] if device else [])
    argv += ["write-flash", "0x0", str(image)]
    return FlashPlan(board, [FlashStep(tuple(argv))], missing="" if installed else ESPTOOL_HINT)


def _plan_uf2(board: TokenBoard, chip: str, image: Path, drive: Path | None, which: Callable[[str], str | None],
              mounts: Iterable[Path] | None) -> FlashPlan:
    if drive is not None and not is_bootsel_drive(drive, chip):
        raise FlashError(f"{drive} is not a {chip} BOOTSEL drive (no INFO_UF2.TXT naming {chip})")
    drives = [drive] if drive is not None else find_bootsel_drives(chip, mounts)
    if drives:
        if image.suffix.lower() != ".uf2":
            raise FlashError(f"{image}: a BOOTSEL drive takes a .uf2 image")
        note = f"{len(drives)} {chip} drives are mounted; using the first" if len(drives) > 1 else ""
        return FlashPlan(board, [FlashStep(copy=(image, drives[0] / image.name))], note=note)
    picotool = which("picotool")
    return FlashPlan(board, [FlashStep(("picotool" if picotool is None else picotool, "load", "-x", str(image)))],
                     note=f"no {chip} BOOTSEL drive is mounted: loading with picotool",
                     missing="" if picotool else PICOTOOL_HINT)


def execute(flash_plan: FlashPlan, run: Callable[[list[str]], int] | None = None) -> None:
    """Carry the plan out; ``FlashError`` (one line) when a tool is missing or fails."""
    if flash_plan.missing:
        raise FlashError(flash_plan.missing)
    for step in flash_plan.steps:
        if step.copy is not None:
            _copy(*step.copy)
            continue
        status = (run or _run)(list(step.argv))
        if status != 0:
            raise FlashError(f"{Path(step.argv[0]).name} failed (exit status {status}): {step.describe()}")


def _run(argv: list[str]) -> int:
    try:
        return subprocess.run(argv, check=False).returncode
    except OSError as exc:
        raise FlashError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc


def _copy(source: Path, target: Path) -> None:
    # The drive takes the image block by block and reboots the board once the
    # last one is written, so the drive may be gone by the time of the sync:
    # an error there, after every byte was written, is not a failure.
    try:
        with open(source, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 64 * 1024)
            dst.flush()
            try:
                os.fsync(dst.fileno())
            except OSError:
                pass
    except OSError as exc:
        raise FlashError(f"cannot copy {source} to {target}: {exc.strerror or exc}") from exc
