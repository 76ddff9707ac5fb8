"""Reading the terminal's configuration files: the TOML file, and the CA key
and revocation files it names (relative to the TOML file; ``builtin`` is the
built-in test cards' CA keys).

The kernel parses what is read here
(:func:`emvkit.terminal.kernel.config.config_from_toml`,
:meth:`~emvkit.terminal.kernel.capk.CapkStore.from_json`,
:meth:`~emvkit.terminal.kernel.capk.RevocationList.from_json`) and reads no
file itself. Every fault is a :class:`ConfigError` naming the file.
``docs/terminal-config.md`` documents the format.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.kernel.capk import CapkStore, RevocationList
from emvkit.terminal.kernel.config import TerminalConfig, config_from_toml
from emvkit.terminal.perso.builtin import capk_path

__all__ = ["DEFAULT_CONFIG", "load_capks", "load_config", "load_revocations"]

# The built-in configuration, matching the built-in test cards.
DEFAULT_CONFIG = Path(__file__).resolve().parent / "kernel" / "default_terminal.toml"


def load_config(path: str | Path | None = None) -> TerminalConfig:
    """Load a terminal configuration file (the built-in default when None),
    with the CA keys and revocations of the files it names."""
    source = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {source}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    config = config_from_toml(doc, "built-in config" if path is None else str(source))
    for name in config.capk_files:
        for key in load_capks(capk_path() if name == "builtin" else source.parent / name):
            config.capks.add(key)
    for name in config.revocation_files:
        for rid, index, serial in load_revocations(source.parent / name):
            config.revocations.add(rid, index, serial)
    return config


def load_capks(path: str | os.PathLike[str]) -> CapkStore:
    """Read a CA key file (JSON, the format of :mod:`emvkit.terminal.kernel.capk`)."""
    return CapkStore.from_json(_read_json(path), os.fspath(path))


def load_revocations(path: str | os.PathLike[str]) -> RevocationList:
    """Read a revocation list file (JSON, the format of :mod:`emvkit.terminal.kernel.capk`)."""
    return RevocationList.from_json(_read_json(path), os.fspath(path))


def _read_json(path: str | os.PathLike[str]) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            doc: object = json.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{os.fspath(path)}: not valid JSON: {exc}") from None
    return doc
