"""The distribution installs one import namespace, ``emvkit``.

The repository keeps its top-level folders (``terminal/``, ``firmware/``, ``hil_tests/``); the build
backend maps them to ``emvkit.terminal``, ``emvkit.firmware`` and ``emvkit.hil``. These tests check the
mapping lists every package, that nothing installs a top-level ``terminal`` or ``firmware``, and that a
whole import of the package loads each source file once, under one name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from tests.conftest import ROOT

FOLDERS = {"terminal": "emvkit.terminal", "firmware": "emvkit.firmware", "hil_tests": "emvkit.hil"}


def test_every_package_folder_is_mapped_into_the_namespace() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {prefix: folder for folder, prefix in FOLDERS.items()}
    found = set()
    for folder, prefix in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([prefix, *rel.parts]))
    assert found, "no packages found"
    assert sorted(config["packages"]) == sorted(found)


# Imports every module of the namespace, then reports what sys.modules holds.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
import emvkit.terminal, emvkit.firmware, emvkit.hil
for pkg in (emvkit.terminal, emvkit.firmware, emvkit.hil):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        last = info.name.split(".")[-1]
        if last.startswith("test_") or last in ("conftest", "__main__"):
            continue
        importlib.import_module(info.name)
files = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if path and ("/terminal/" in path or "/firmware/" in path or "/hil_tests/" in path):
        files.setdefault(path, []).append(name)
print(json.dumps({"top": sorted(n for n in sys.modules if n.split(".")[0] in ("terminal", "firmware", "hil_tests")),
                  "files": files}))
"""


def test_a_whole_import_loads_each_file_once_under_the_emvkit_name() -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True, cwd="/",
                          timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["top"] == []
    assert len(report["files"]) > 60
    for path, names in report["files"].items():
        assert len(names) == 1 and names[0].startswith("emvkit."), (path, names)


def test_no_top_level_terminal_or_firmware_outside_the_repository() -> None:
    for name in ("terminal", "firmware", "hil_tests"):
        done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd="/",
                              timeout=60)
        assert done.returncode != 0 and "No module named" in done.stderr, (name, done.stderr)


# One Visa and one Mastercard tap on the emulator with the card's random source pinned; prints the
# responses and which modular exponentiation ran.
_TAPS = """
import json, sys
if sys.argv[1] == "without":
    sys.modules["gmpy2"] = None  # as if the 'fast' extra were not installed
from emvkit.firmware.crypto import provider
from emvkit.terminal.config_files import load_config
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
out = {"powmod": provider.backend_powmod(), "taps": []}
for card in ("visa", "mastercard"):
    with open_transport(f"emu:{card}?rng=counting") as t:
        request = TransactionRequest(amount=1234, random=lambda n: bytes(n))
        tap = run_transaction(t, load_config(), request)
    out["taps"].append([tap.result.outcome.outcome.value, tap.result.oda_result,
                        [(e.response or b"").hex() for e in tap.trace.exchanges]])
print(json.dumps(out))
"""


def test_without_gmpy2_the_card_falls_back_to_pow_with_the_same_answers() -> None:
    runs = {}
    for mode in ("with", "without"):
        done = subprocess.run([sys.executable, "-c", _TAPS, mode], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        runs[mode] = json.loads(done.stdout)
    assert runs["with"]["powmod"] == "gmpy2"
    assert runs["without"]["powmod"] == "pow"
    assert [t[:2] for t in runs["without"]["taps"]] == [["Approved", "successful"]] * 2
    assert runs["without"]["taps"] == runs["with"]["taps"]
