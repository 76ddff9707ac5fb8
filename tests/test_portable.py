"""The portable core's own tests, on CPython and under the real MicroPython.

Each module in tests/portable/*_cases.py holds plain ``test_*`` functions. They
run here under pytest, and again under the MicroPython unix port through
tests/portable/run.py. Every file under firmware/ must also compile with
mpy-cross.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, venv_tool

PORTABLE = ROOT / "tests" / "portable"
CASE_MODULES = sorted(p.stem for p in PORTABLE.glob("*_cases.py"))

sys.path.insert(0, str(PORTABLE))


def _cases() -> list[tuple[str, Callable[[], None]]]:
    out = []
    for name in CASE_MODULES:
        module = importlib.import_module(name)
        names = [attr for attr in sorted(dir(module)) if attr.startswith("test_")]
        out += [(f"{name}.{attr}", getattr(module, attr)) for attr in names]
    return out


@pytest.mark.parametrize(("name", "case"), _cases(), ids=[n for n, _ in _cases()])
def test_portable_case_on_cpython(name: str, case: Callable[[], None]) -> None:
    case()


@pytest.mark.parametrize("module", CASE_MODULES)
def test_portable_cases_under_micropython(module: str) -> None:
    env = dict(os.environ, MICROPYPATH=f".frozen:{ROOT}:{PORTABLE}")
    result = subprocess.run(
        [venv_tool("micropython"), str(PORTABLE / "run.py"), module],
        capture_output=True, text=True, env=env, timeout=120, cwd=PORTABLE,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout + result.stderr
    passed = int(summary.split()[0])
    expected = sum(1 for n, _ in _cases() if n.startswith(module + "."))
    assert summary == f"{expected} passed, 0 failed", result.stdout
    assert passed > 0


FIRMWARE_FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "firmware").rglob("*.py"))


@pytest.mark.parametrize("path", FIRMWARE_FILES)
def test_mpy_cross_compiles(path: str, tmp_path: Path) -> None:
    out = tmp_path / "out.mpy"
    result = subprocess.run(
        [venv_tool("mpy-cross"), "-o", str(out), str(ROOT / path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
