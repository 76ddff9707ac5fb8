"""The ``qemu:`` transport: the token image booted under QEMU, provisioned, reached over its dev link.

``qemu:m3`` / ``qemu:m0plus`` (or the board's full name, ``qemu:qemu_m3``) with options in the query:

* ``card=NAME|PATH``: a built-in card or a profile file, written to the token after boot (the token's
  own provisioning over the dev link, ``--force``); without it the token keeps what its store holds;
* ``image=PATH``: the image (default ``build/token/BOARD/build/firmware.elf``, where
  ``emvkit token build`` puts it; ``$EMVKIT_TOKEN_IMAGES`` replaces ``build/token``);
* ``store=PATH``: the file backing the board's flash, kept; by default a new temporary one, removed
  on close, so every open is a fresh token;
* ``rng=counting``: the card's random source pinned to ``01 02 03 ...`` (for byte-for-byte
  comparisons with ``emu:``; the firmware's ``--rng`` option, given at boot);
* ``timeout=S``: the dev link's per-request timeout (default 30 s: an RSA signature takes about a
  second of emulated time).

:meth:`QemuTransport.open` boots the image (:class:`emvkit.terminal.token.qemu.QemuToken`), starts the
firmware, provisions the card, and opens the ``serial:`` transport on the board's pty; APDUs, the
ATR and removal are that transport's. :meth:`~QemuTransport.close` stops QEMU.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.perso.builtin import builtin_names, profile_path
from emvkit.terminal.token.boards import BOARDS
from emvkit.terminal.token.provision import load_personalisation, provision
from emvkit.terminal.token.qemu import QemuToken, boot_code
from emvkit.terminal.transport.base import BaseTransport
from emvkit.terminal.transport.serial import SerialTransport
from emvkit.terminal.transport.serial import from_url as serial_from_url

__all__ = ["QemuTransport", "default_image", "from_url"]

DEFAULT_IMAGES = "build/token"
DEFAULT_TIMEOUT = 30.0
_OPTIONS = frozenset({"card", "image", "store", "rng", "timeout"})


def board_name(text: str) -> str:
    """``m3`` → ``qemu_m3``; a QEMU board's full name as it is; anything else is a ConfigError."""
    name = text if text.startswith("qemu_") else f"qemu_{text}"
    if name not in BOARDS or not BOARDS[name].qemu_machine:
        boards = ", ".join(n.removeprefix("qemu_") for n, b in BOARDS.items() if b.qemu_machine)
        raise ConfigError(f"qemu:{text}: not a QEMU board (one of {boards})")
    return name


def default_image(board: str) -> Path:
    """Where ``emvkit token build`` puts the board's image (``$EMVKIT_TOKEN_IMAGES`` or ``build/token``)."""
    return Path(os.environ.get("EMVKIT_TOKEN_IMAGES") or DEFAULT_IMAGES) / board / "build" / "firmware.elf"


class QemuTransport(BaseTransport):
    def __init__(self, board: str, *, image: Path, card: Path | None = None, store: Path | None = None,
                 rng: str | None = None, timeout: float = DEFAULT_TIMEOUT, url: str = "qemu:") -> None:
        super().__init__()
        self.board = board
        self.image = image
        self.card = card
        self.store = store
        self.rng = rng
        self.timeout = timeout
        self.url = url
        self._token: QemuToken | None = None
        self._link: SerialTransport | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def open(self) -> None:
        perso = load_personalisation(self.card) if self.card is not None else None  # bad profile: before booting
        store = self.store
        if store is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="emvkit-qemu-")
            store = Path(self._tmp.name) / "store.bin"
        boot = boot_code(*(["--rng", self.rng] if self.rng is not None else []))  # the firmware's own option
        self._token = QemuToken(self.image, self.board, store=store)
        try:
            self._token.start()
            self._token.boot(boot)
            self._link = serial_from_url(f"serial:{self._token.pty}?timeout={self.timeout}")
            self._link.open()
            if perso is not None:
                provision(self._link, perso, force=True)
                self._link.reset()  # the provisioned card, powered afresh
        except BaseException:
            self.close()
            raise
        self._atr = self._link.atr
        super().open()

    def close(self) -> None:
        link, self._link = self._link, None
        token, self._token = self._token, None
        try:
            if link is not None:
                link.close()
        finally:
            if token is not None:
                token.stop()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
            super().close()

    @property
    def pty(self) -> str | None:
        return None if self._token is None else self._token.pty

    def card_present(self) -> bool:
        return self._link is not None and self._link.card_present()

    def _transmit(self, command: bytes) -> bytes:
        assert self._link is not None
        return self._link.transmit(command)


def _card(spec: str, url: str) -> Path:
    if spec in builtin_names():
        return profile_path(spec)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"{url}: card={spec!r} is neither a built-in card ({', '.join(builtin_names())}) "
                          "nor a profile file")
    return path


def from_url(url: str) -> QemuTransport:
    rest = url.removeprefix("qemu:")
    spec, _, query = rest.partition("?")
    if not spec:
        raise ConfigError(f"{url}: name the board, e.g. qemu:m3 or qemu:m0plus")
    board = board_name(spec)
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ConfigError(f"{url}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(_OPTIONS))})")
    rng = options.get("rng") or None
    if rng not in (None, "os", "counting"):
        raise ConfigError(f"{url}: rng={rng!r}: os or counting")
    try:
        timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
    except ValueError:
        raise ConfigError(f"{url}: timeout={options['timeout']!r} is not a number of seconds") from None
    if not 0 < timeout <= 3600:
        raise ConfigError(f"{url}: timeout={timeout} out of range (0, 3600]")
    image = Path(options["image"]) if options.get("image") else default_image(board)
    if not image.is_file():
        raise ConfigError(f"{url}: no image {image} (build one: emvkit token build --board {board} --mpy-dir DIR)")
    card = _card(options["card"], url) if options.get("card") else None
    store = Path(options["store"]) if options.get("store") else None
    return QemuTransport(board, image=image, card=card, store=store, rng=rng, timeout=timeout, url=url)
