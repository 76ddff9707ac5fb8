"""The host secret: the keys of the keyed PAN hash (HMAC-SHA-256).

The authorisation log, the blocked-PAN list and the velocity history find a
card by ``HMAC-SHA-256(key, PAN digits)``, never by the PAN and never by an
unkeyed hash (which anyone can reverse by trying the few billion PANs of a
BIN: PCI DSS 4.0 requirement 3.5.1.1 asks for keyed cryptographic hashes).
The key lives in a file of its own, mode 0600, never in the database:

    {"format": "emvkit-host-secret", "version": 1,
     "keys": [{"id": 1, "hmac_sha256": "<64 hex digits>"}, ...]}

The key with the highest id is current: new cards are logged under it.
:meth:`HostSecret.rotate` adds a key and keeps the old ones, so cards and
blocked PANs hashed under an older key are still recognised
(:meth:`HostSecret.pan_hashes` gives a PAN's hash under every key, newest
first). A file that its group or other users can access is refused, as ssh
refuses such private keys. The secret never appears in a repr, a log line or
an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.secretfile import read_private, write_private

__all__ = ["FORMAT", "HostSecret"]

FORMAT = "emvkit-host-secret"
_KEY_BYTES = 32


@dataclass(frozen=True)
class HostSecret:
    """HMAC-SHA-256 keys by id; the highest id is current."""

    keys: dict[int, bytes] = field(repr=False)
    path: Path | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("a host secret needs at least one key")

    @property
    def current(self) -> int:
        return max(self.keys)

    def pan_hash(self, pan: str) -> str:
        """The PAN's keyed hash under the current key, lower-case hex."""
        return _hmac(self.keys[self.current], pan)

    def pan_hashes(self, pan: str) -> list[str]:
        """The PAN's keyed hash under every key, newest first."""
        return [_hmac(self.keys[k], pan) for k in sorted(self.keys, reverse=True)]

    # --- making and keeping one ---

    @classmethod
    def ephemeral(cls) -> HostSecret:
        """A fresh key held in memory only (a log in memory)."""
        return cls({1: os.urandom(_KEY_BYTES)})

    @classmethod
    def load(cls, path: str | Path) -> HostSecret:
        """Read a secret file; refuse one that group or others can access."""
        path = Path(path)
        if path.is_symlink():  # the secret is a file of its own, never reached through a link
            raise ConfigError(f"{path}: cannot read the host secret (a symbolic link)")
        try:
            doc = json.loads(read_private(path, "host secret").decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ConfigError(f"{path}: not an emvkit host secret file (not JSON)") from None
        try:
            if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != 1:
                raise ValueError
            keys = {int(e["id"]): bytes.fromhex(e["hmac_sha256"]) for e in doc["keys"]}
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{path}: not an emvkit host secret file (\"format\": \"{FORMAT}\")") from None
        if not keys or any(len(k) != _KEY_BYTES for k in keys.values()) or min(keys) < 1:
            raise ConfigError(f"{path}: a host secret key is {_KEY_BYTES} bytes with an id of 1 or more")
        return cls(keys, path)

    @classmethod
    def open(cls, path: str | Path) -> tuple[HostSecret, bool]:
        """The secret in ``path``, created (mode 0600) when there is no such
        file; True when it was created."""
        path = Path(path)
        if path.exists() or path.is_symlink():
            return cls.load(path), False
        secret = cls({1: os.urandom(_KEY_BYTES)}, path)
        try:
            secret._save(path, exclusive=True)
        except FileExistsError:  # another host process created it meanwhile: use theirs
            return cls.load(path), False
        return secret, True

    def rotate(self) -> HostSecret:
        """A new current key, the old ones kept; written back to the file."""
        if self.path is None:
            raise ConfigError("a host secret in memory cannot be rotated")
        keys = dict(self.keys)
        keys[self.current + 1] = os.urandom(_KEY_BYTES)
        rotated = HostSecret(keys, self.path)
        rotated._save(self.path, exclusive=False)
        return rotated

    def _save(self, path: Path, exclusive: bool) -> None:
        doc: dict[str, Any] = {"format": FORMAT, "version": 1,
                               "keys": [{"id": k, "hmac_sha256": v.hex()} for k, v in sorted(self.keys.items())]}
        try:
            write_private(path, json.dumps(doc, indent=1) + "\n", exclusive=exclusive)
        except FileExistsError:
            raise
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write the host secret ({exc.strerror})") from None


def _hmac(key: bytes, pan: str) -> str:
    return hmac.new(key, pan.encode("ascii"), hashlib.sha256).hexdigest()
