"""Files that hold keys: read only when private, written private and whole.

:func:`read_private` refuses a file that its group or other users can access
in any way (a key another user could read is a key to replace), with one line
saying how to fix it. :func:`write_private` writes a new file with mode 0600:
it never follows a symbolic link at the destination (the link itself is
replaced), writes a temporary file created exclusively beside it, syncs it to
disk and renames it into place, so a reader sees the old file or the new one,
never a torn one.

Which files: card profiles holding ``secrets``, CA private keys (``perso
--ca``), issuer key files (``host keys``). The built-in test profiles shipped
in the package are public test data (their keys are published with the
project) and are read without this check: a package installed from a wheel may
well be 0644.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.jsonfile import UserFile, read_user_file

__all__ = ["check_private", "read_private", "write_private"]

_PRIVATE_MODE = 0o600


def check_private(file: UserFile, what: str = "key file") -> None:
    """Refuse a file (as read by :func:`~emvkit.terminal.jsonfile.read_user_file`) that
    group or others can access."""
    if file.mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{file.path}: the {what} holds keys and is accessible to other users "
                          f"(mode {stat.S_IMODE(file.mode):04o}); run: chmod 600 {file.path}")


def read_private(path: str | os.PathLike[str], what: str = "key file") -> bytes:
    """The bytes of a file holding keys; ``ConfigError`` when it is not a
    regular file or group or others can access it."""
    file = read_user_file(path, what)
    if not stat.S_ISREG(file.mode):
        raise ConfigError(f"{file.path}: the {what} is not a regular file")
    check_private(file, what)
    return file.data


def write_private(path: str | os.PathLike[str], data: bytes | str, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600 atomically (temporary file, fsync, rename).

    A symbolic link at ``path`` is replaced, never followed. With
    ``exclusive``, an existing ``path`` is left alone and ``FileExistsError``
    raised (the file appears whole, by a hard link, or not at all). Raises
    ``OSError`` (the caller says what it was writing).
    """
    target = Path(path)
    body = data.encode("utf-8") if isinstance(data, str) else data
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _PRIVATE_MODE)
    try:
        try:
            os.fchmod(fd, _PRIVATE_MODE)  # whatever the umask
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(temp, target)
            temp.unlink()
        else:
            os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_dir(target.parent)


def _sync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX: fsync of the directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
