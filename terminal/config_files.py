"""Reading the terminal's configuration files: the TOML file, and the CA key
and revocation files it names (relative to the TOML file; ``builtin`` is the
built-in test cards' CA keys), merged with the CA keys the user imported and
those shipped with emvkit (:mod:`emvkit.terminal.capk`: the configuration's
keys first, then imported, then built-in production, then built-in test keys).

The kernel parses what is read here
(:func:`emvkit.terminal.kernel.config.config_from_toml`,
:meth:`~emvkit.terminal.kernel.capk.CapkStore.from_json`,
:meth:`~emvkit.terminal.kernel.capk.RevocationList.from_json`) and reads no
file itself. Every fault is a :class:`ConfigError` naming the file; files are
read by :mod:`emvkit.terminal.jsonfile` (size and nesting limits).
``docs/terminal-config.md`` documents the format.
"""

from __future__ import annotations

import os
from pathlib import Path

from emvkit.terminal.capk import add_known_keys
from emvkit.terminal.jsonfile import read_json, read_toml
from emvkit.terminal.kernel.capk import CapkStore, RevocationList
from emvkit.terminal.kernel.config import TerminalConfig, config_from_toml
from emvkit.terminal.perso.builtin import capk_path

__all__ = ["DEFAULT_CONFIG", "load_capks", "load_config", "load_revocations"]

# The built-in configuration, matching the built-in test cards.
DEFAULT_CONFIG = Path(__file__).resolve().parent / "kernel" / "default_terminal.toml"


def load_config(path: str | Path | None = None, *, known_keys: bool = False) -> TerminalConfig:
    """Load a terminal configuration file (the built-in default when None),
    with the CA keys and revocations of the files it names and, with
    ``known_keys``, the imported and built-in CA keys where the
    configuration has no key of the same RID and index."""
    source = Path(path) if path is not None else DEFAULT_CONFIG
    doc = read_toml(source, "terminal configuration")
    config = config_from_toml(doc, "built-in config" if path is None else str(source))
    for name in config.capk_files:
        for key in load_capks(capk_path() if name == "builtin" else source.parent / name):
            config.capks.add(key)
    for name in config.revocation_files:
        for rid, index, serial in load_revocations(source.parent / name):
            config.revocations.add(rid, index, serial)
    if known_keys:
        add_known_keys(config.capks)
    return config


def load_capks(path: str | os.PathLike[str]) -> CapkStore:
    """Read a CA key file (JSON, the format of :mod:`emvkit.terminal.kernel.capk`)."""
    return CapkStore.from_json(read_json(path, "CA key file"), os.fspath(path))


def load_revocations(path: str | os.PathLike[str]) -> RevocationList:
    """Read a revocation list file (JSON, the format of :mod:`emvkit.terminal.kernel.capk`)."""
    return RevocationList.from_json(read_json(path, "revocation list"), os.fspath(path))
