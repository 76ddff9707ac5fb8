"""The emulated card's persistent state on the host: a state file per card.

The file is a :class:`emvkit.firmware.store.SlotFile` (two slots of
:data:`~emvkit.firmware.store.STATE_SLOT_SIZE` bytes, CRC-checked records,
tearing-safe; docs/card-application.md, "Persistent state"), read and written
by :class:`~emvkit.firmware.store.CardStore`, the same code the token runs.
On the host it is also:

* private: created with mode 0600 (its directory under the user's state
  directory with 0700); it holds the card's transaction log;
* locked: a :class:`StateFile` holds an exclusive ``flock`` on it while open,
  so two emulators can never run one card's counters (two cryptograms under
  one ATC); the lock goes with the process, even after ``kill -9``;
* checked when opened: a file that is not a card state, or that cannot be
  read, is a :class:`~emvkit.terminal.errors.ConfigError` (one line) and the
  file is left as it is. It is never taken for a fresh card.

``emvkit emulate`` keeps the state beside a profile file (``card.json`` ->
``card.state``) and, for a built-in card, in the user's state directory
(:func:`state_dir`); ``emu:NAME?state=FILE`` uses FILE.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO, Any

from emvkit.firmware.payapp.state import CardState
from emvkit.firmware.store import STATE_SLOT_SIZE, CardStore, SlotFile, StoreError
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.perso.builtin import builtin_names

__all__ = ["StateFile", "default_state_path", "shown_path", "state_dir"]

_FILE_MODE = 0o600
_DIR_MODE = 0o700


def state_dir() -> Path:
    """``$XDG_STATE_HOME/emvkit``, or ``~/.local/state/emvkit`` (XDG Base Directory: a relative value is ignored)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "emvkit"


def shown_path(path: Path) -> str:
    """``path`` for a message: under the user's home folder as ``~/...`` (no user's home in logs or docs)."""
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except (ValueError, RuntimeError, OSError):
        return str(path)


def default_state_path(spec: str) -> Path:
    """Where ``emvkit emulate`` keeps a card's state: ``NAME.state`` in :func:`state_dir` for a built-in card,
    else beside the profile file (``card.json`` -> ``card.state``)."""
    if spec in builtin_names():
        return state_dir() / f"{spec}.state"
    return Path(spec).with_suffix(".state")


def _open_private(path: str, mode: str) -> IO[Any]:
    """``open`` that creates files with mode 0600 (SlotFile's opener)."""
    return open(path, mode, opener=lambda p, flags: os.open(p, flags, _FILE_MODE))


class StateFile:
    """One card's state file: :meth:`open` locks and reads it, :meth:`close` releases it.

    The constructor does no I/O. ``make_dir`` creates a missing parent
    directory (mode 0700), as for the default place under :func:`state_dir`.
    """

    def __init__(self, path: Path | str, *, make_dir: bool = False) -> None:
        self.path = Path(path)
        self.shown = shown_path(self.path)  # for messages: the home folder as ~
        self.make_dir = make_dir
        self._fd: int | None = None

    def open(self, initial: CardState) -> CardStore:
        """Lock the file (creating it, empty, when missing) and load the state; ``initial`` for a fresh file."""
        if self._fd is not None:
            raise ConfigError(f"{self.shown}: the state file is already open")
        try:
            if self.make_dir:
                _make_private_dirs(self.path.parent)
            existed = self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        except OSError as exc:
            raise ConfigError(f"{self.shown}: cannot open the state file: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"{self.shown}: the state file is in use (another emulator runs this card)") from exc
        self._fd = fd
        try:
            if not existed:
                _sync_directory(self.path.parent)
            store = CardStore(SlotFile(str(self.path), STATE_SLOT_SIZE, _open_private), initial)
            store.load()
        except StoreError as exc:
            self.close()
            raise ConfigError(str(exc).replace(str(self.path), self.shown, 1)) from exc
        except OSError as exc:
            self.close()
            raise ConfigError(f"{self.shown}: cannot read the state file: {exc.strerror or exc}") from exc
        return store

    def close(self) -> None:
        """Release the lock (the file stays)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __repr__(self) -> str:
        return f"<StateFile {str(self.path)!r} {'open' if self._fd is not None else 'closed'}>"


def _make_private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parent with mode 0700 (XDG Base Directory)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=_DIR_MODE)


def _sync_directory(path: Path) -> None:
    """Make a new file's directory entry durable (POSIX: fsync the directory)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
