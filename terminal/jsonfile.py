"""Reading a file given by a user (JSON, TOML or text): every fault is one ConfigError line.

Every user file goes through :func:`read_user_file`, which reads at most
:data:`MAX_FILE_BYTES` (so ``/dev/zero`` or a huge file ends with an error
instead of filling memory), and every JSON or TOML document through
:func:`parse_json` / :func:`parse_toml`, which refuse documents nested deeper
than :data:`MAX_DEPTH` (no ``RecursionError`` from the parser or from the code
that walks the document). Messages name the file.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emvkit.terminal.errors import ConfigError

__all__ = [
    "MAX_DEPTH", "MAX_FILE_BYTES", "UserFile", "parse_json", "parse_toml", "read_json", "read_text", "read_toml",
    "read_user_file",
]

# The largest user file read (profiles, configurations, CA keys and traces are a few KB to a few hundred KB).
MAX_FILE_BYTES = 4 * 1024 * 1024
# The deepest nesting of arrays and objects (tables) a document may have (real ones have fewer than 10).
MAX_DEPTH = 64


@dataclass(frozen=True)
class UserFile:
    """A file's bytes and the mode it had when read (from the same open file)."""

    path: Path
    data: bytes
    mode: int


def read_user_file(path: str | os.PathLike[str], what: str = "file", limit: int = MAX_FILE_BYTES) -> UserFile:
    """Read at most ``limit`` bytes; a longer (or endless) file is a ``ConfigError``."""
    source = Path(path)
    try:
        with open(source, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {source}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigError(f"{what} {source} is larger than {limit // (1024 * 1024)} MB")
    return UserFile(source, data, mode)


def decode_text(file: UserFile, what: str = "file") -> str:
    try:
        return file.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {what} {file.path}: not UTF-8 text (byte {exc.start})") from None


def read_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """A UTF-8 text file, bounded as :func:`read_user_file`."""
    return decode_text(read_user_file(path, what), what)


def parse_json(text: str | bytes, where: str) -> object:
    """A JSON document no deeper than :data:`MAX_DEPTH`; ``where`` names its file in messages."""
    try:
        doc: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise ConfigError(f"{where}: JSON nested deeper than {MAX_DEPTH} levels") from None
    _check_depth(doc, where, "JSON")
    return doc


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """A TOML document no deeper than :data:`MAX_DEPTH`; ``where`` names its file in messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: TOML nested deeper than {MAX_DEPTH} levels") from None
    _check_depth(doc, where, "TOML")
    return doc


def read_json(path: str | os.PathLike[str], what: str = "file") -> object:
    """The parsed document; ``ConfigError`` when the file cannot be read, is
    too large, is not JSON (naming the file and the line) or is nested too deeply."""
    file = read_user_file(path, what)
    return parse_json(decode_text(file, what), str(file.path))


def read_toml(path: str | os.PathLike[str], what: str = "file") -> dict[str, Any]:
    """As :func:`read_json`, for TOML."""
    file = read_user_file(path, what)
    return parse_toml(decode_text(file, what), str(file.path))


def _check_depth(doc: object, where: str, kind: str) -> None:
    """Walk the document without recursion: a parser with a high recursion
    limit must not hand a 900-level document to code that recurses."""
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: list[object] = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where}: {kind} nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)
