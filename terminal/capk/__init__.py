"""The CA public keys the terminal knows beyond its configuration (EMV 4.3 Book 2 §11.2).

Two sources, merged after the configuration's own keys by
:func:`add_known_keys` (``docs/capk.md``):

- **imported**: the keys a user added with ``emvkit capk import``, kept as one
  JSON file (the ``capk_files`` format of :mod:`emvkit.terminal.kernel.capk`,
  mode 0600) in the user's data directory: ``$XDG_DATA_HOME/emvkit/capk.json``
  (``~/.local/share/emvkit/capk.json`` without it; platformdirs elsewhere);
- **built-in**: the schemes' published CA public keys shipped with emvkit,
  ``production.json`` and ``test.json`` beside this module, each with its
  check value and, in its description, the publication it comes from
  (``README.md`` here lists them).

Precedence, for a (RID, index) more than one source names: the terminal
configuration's keys, then imported keys, then built-in production keys, then
built-in test keys; the first one wins and the others are not used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.jsonfile import parse_json, read_json, read_text
from emvkit.terminal.kernel.capk import CapkStore, CaPublicKey, parse_hex_lines, parse_keys_text
from emvkit.terminal.secretfile import write_private

__all__ = [
    "FORMATS",
    "KnownKey",
    "add_known_keys",
    "builtin_keys",
    "imported_keys",
    "known_keys",
    "read_key_file",
    "remove_imported",
    "save_imported",
    "user_capk_file",
]

SHIPPED_DIR = Path(__file__).resolve().parent
Source = Literal["imported", "production", "test"]
# The file layouts `emvkit capk import` reads (kernel/capk.py documents each).
FORMATS = ("json", "keys", "hex")


@dataclass(frozen=True)
class KnownKey:
    """A CA public key with where it comes from: ``imported``, or built-in ``production`` / ``test``."""

    key: CaPublicKey
    source: Source
    description: str = ""


def user_capk_file() -> Path:
    """Where imported keys are kept: ``emvkit/capk.json`` in the user's data directory."""
    import platformdirs

    return platformdirs.user_data_path("emvkit") / "capk.json"


def _entries(doc: object, where: str) -> list[tuple[CaPublicKey, str]]:
    """The keys of a ``capk_files``-format document, with their descriptions."""
    store = CapkStore.from_json(doc, where)
    descriptions = {}
    for entry in doc if isinstance(doc, list) else [doc]:
        if isinstance(entry, dict) and isinstance(entry.get("description"), str):
            descriptions[(str(entry["rid"]).upper(), str(entry["index"]).upper())] = entry["description"]
    return [(key, descriptions.get((key.rid.hex().upper(), f"{key.index:02X}"), "")) for key in store]


def builtin_keys() -> list[KnownKey]:
    """The shipped keys: production first, then test."""
    out = []
    for source in ("production", "test"):
        path = SHIPPED_DIR / f"{source}.json"
        for key, description in _entries(read_json(path, "built-in CA key file"), str(path)):
            out.append(KnownKey(key, source, description))
    return out


def imported_keys(path: Path | None = None) -> list[KnownKey]:
    """The keys imported so far (none when the file does not exist)."""
    path = path or user_capk_file()
    if not path.exists():
        return []
    return [KnownKey(key, "imported", description)
            for key, description in _entries(read_json(path, "imported CA key file"), str(path))]


def known_keys() -> list[KnownKey]:
    """Imported keys, then built-in production and test keys, in precedence order."""
    return imported_keys() + builtin_keys()


def add_known_keys(store: CapkStore) -> None:
    """Add the imported and built-in keys to ``store`` where its (RID, index) is still free."""
    for known in known_keys():
        if store.get(known.key.rid, known.key.index) is None:
            store.add(known.key)


def read_key_file(path: str | os.PathLike[str], fmt: str | None = None) -> list[CaPublicKey]:
    """The keys of a file in one of :data:`FORMATS`; without ``fmt``, ``.json`` and ``.keys``
    files by their extension and any other file as one key per line hex."""
    source = Path(path)
    if fmt is None:
        fmt = {".json": "json", ".keys": "keys"}.get(source.suffix.lower(), "hex")
    if fmt not in FORMATS:
        raise ConfigError(f"CA key file format: one of {', '.join(FORMATS)}, not {fmt!r}")
    text = read_text(source, "CA key file")
    if fmt == "json":
        return list(CapkStore.from_json(parse_json(text, str(source)), str(source)))
    if fmt == "keys":
        return parse_keys_text(text, str(source))
    return parse_hex_lines(text, str(source))


def _to_json(known: KnownKey) -> dict[str, str]:
    key = known.key
    entry = {"rid": key.rid.hex().upper(), "index": f"{key.index:02X}"}
    if key.algorithm == "sm2":
        entry.update(algorithm="sm2", public_key=key.modulus.hex().upper())
    else:
        entry.update(modulus=key.modulus.hex().upper(), exponent=key.exponent.hex().upper())
    entry["checksum"] = key.compute_checksum().hex().upper()
    if key.expiry is not None:
        entry["expiry"] = key.expiry.isoformat()
    if known.description:
        entry["description"] = known.description
    return entry


def save_imported(keys: list[KnownKey], path: Path | None = None) -> Path:
    """Write the imported keys (mode 0600, atomically), creating the data directory."""
    path = path or user_capk_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps([_to_json(k) for k in keys], indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def remove_imported(rid: bytes, index: int, path: Path | None = None) -> KnownKey | None:
    """Remove an imported key; the key removed, or None when there was none."""
    keys = imported_keys(path)
    kept = [k for k in keys if (k.key.rid, k.key.index) != (rid, index)]
    if len(kept) == len(keys):
        return None
    save_imported(kept, path)
    return next(k for k in keys if (k.key.rid, k.key.index) == (rid, index))
