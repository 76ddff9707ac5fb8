"""The token on the QEMU boards: the images, built once per session from ``$MPY_DIR``.

``make test MPY_DIR=DIR`` (and CI, from the shared source tree) runs this folder; without a source
tree ``make test`` says in one line that it did not, and a bare ``pytest tests/token`` skips, saying why.
The images go where ``emvkit token build`` puts them by default (``build/token/BOARD/build``), so the
``qemu:`` transport finds them without an ``image=`` option, and a second run only re-freezes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from emvkit.terminal.token.build import build
from tests.conftest import ROOT

BOARDS = ("qemu_m3", "qemu_m0plus")
IMAGES = ROOT / "build" / "token"


@pytest.fixture(scope="session")
def mpy_dir() -> Path:
    text = os.environ.get("MPY_DIR")
    if not text:
        pytest.skip("no MicroPython source tree: run make test MPY_DIR=DIR (see docs/token.md)")
    path = Path(text)
    if not (path / "ports" / "qemu" / "Makefile").is_file():
        pytest.fail(f"MPY_DIR={text} is not a MicroPython source tree with ports/qemu")
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: make token-debs installs it")
    return path


@pytest.fixture(scope="session")
def images(mpy_dir: Path) -> dict[str, Path]:
    """Both QEMU images, built (or brought up to date) from the firmware in this checkout."""
    return {name: build(mpy_dir, name, IMAGES).elf for name in BOARDS}


@pytest.fixture
def qemu_env(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment in which qemu:BOARD finds the session's images."""
    monkeypatch.setenv("EMVKIT_TOKEN_IMAGES", str(IMAGES))
    return dict(os.environ)


SMALL_HEAP = 48 * 1024  # bytes: the goal, every built-in card completes within it


@pytest.fixture(scope="session")
def small_heap_images(mpy_dir: Path) -> dict[str, Path]:
    """Both QEMU images with a 48 KB GC heap (``build(..., heap=)``: ``build/token/BOARD-heap49152``)."""
    return {name: build(mpy_dir, name, IMAGES, heap=SMALL_HEAP).elf for name in BOARDS}
