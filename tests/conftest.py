"""Shared test helpers."""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def venv_tool(name: str) -> str:
    """A console tool installed next to the running interpreter (or on PATH)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make test`, which installs the dev extras")
    return found


@pytest.fixture(autouse=True)
def _private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh $XDG_STATE_HOME per test: `emvkit emulate --profile NAME` keeps the card's state there,
    never in the user's own directory, and no two tests share a card's counters (or its lock)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))


# Modules whose tests start services (pcscd), ptys, nfcpy links or subprocess servers: marked slow, so
# `make test-fast` (and the pre-commit hook) leaves them out; `make test` runs everything.
SLOW_MODULES = frozenset({"test_pcsc", "test_vpcd", "test_nfc", "test_serial", "test_hil_plugin",
                          "test_emulator_state", "test_token_provision"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def serving_line(proc: subprocess.Popen[bytes], timeout: float = 15) -> tuple[str, str]:
    """(banner, address): ``emvkit emulate``'s first stderr line and the address of its "serving on" line,
    read unbuffered; AssertionError when none comes within ``timeout`` seconds."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            break
        seen += chunk
        match = re.search(rb"^serving on (\S+)$", seen, re.MULTILINE)
        if match:
            return seen.decode().splitlines()[0], match.group(1).decode()
    raise AssertionError(f"no 'serving on' line within {timeout} s: {seen!r}")
