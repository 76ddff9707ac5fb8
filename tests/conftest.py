"""Shared test helpers."""

from __future__ import annotations

import shutil
import sys
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
