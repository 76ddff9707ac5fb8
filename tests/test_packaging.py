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
