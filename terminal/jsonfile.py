"""Reading a JSON file given by a user: every fault is one ConfigError line."""

from __future__ import annotations

import json
from pathlib import Path

from emvkit.terminal.errors import ConfigError

__all__ = ["read_json"]


def read_json(path: str | Path, what: str = "file") -> object:
    """The parsed document; ``ConfigError`` when the file cannot be read or
    is not JSON (naming the file and, for bad JSON, the line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {what} {path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        doc: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    return doc
