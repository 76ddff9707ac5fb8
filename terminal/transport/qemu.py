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
  second of emulated time), and with a front end how long the reader waits for the card in its field;
* ``front-end=pn532``: the token on the air. The board boots with ``frontend=pn532`` and the simulated
  PN532 on its second UART (:func:`emvkit.terminal.token.front_end.start_front_end`, as
  ``emvkit token run --front-end pn532`` starts it); the card is provisioned over the dev link, then the
  APDUs go over the air: ``nfc:udp`` -> nfcpy -> the simulated chip -> UART1 -> the firmware's PN532
  driver -> the card application.

:meth:`QemuTransport.open` boots the image (:class:`emvkit.terminal.token.qemu.QemuToken`), starts the
firmware, provisions the card, and opens the ``serial:`` transport on the board's pty; APDUs, the
ATR and removal are that transport's, or with a front end those of the ``nfc:`` transport on the
chip's RF side (the ATR built from the ATS; removal and field-off as nfcpy reports them).
:meth:`~QemuTransport.close` deselects the card (front end), stops the chip and QEMU.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.perso.builtin import card_source
from emvkit.terminal.token.boards import BOARDS
from emvkit.terminal.token.front_end import FRONT_ENDS, FrontEnd, start_front_end
from emvkit.terminal.token.provision import load_personalisation, provision
from emvkit.terminal.token.qemu import QemuToken, boot_code
from emvkit.terminal.transport.base import BaseTransport, Transport
from emvkit.terminal.transport.serial import SerialTransport
from emvkit.terminal.transport.serial import from_url as serial_from_url

__all__ = ["QemuTransport", "default_image", "from_url"]

DEFAULT_IMAGES = "build/token"
DEFAULT_TIMEOUT = 30.0
_OPTIONS = frozenset({"card", "image", "store", "rng", "timeout", "front-end"})


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
                 rng: str | None = None, timeout: float = DEFAULT_TIMEOUT, front_end: str | None = None,
                 url: str = "qemu:") -> None:
        super().__init__()
        self.board = board
        self.image = image
        self.card = card
        self.store = store
        self.rng = rng
        self.timeout = timeout
        self.front_end = front_end
        self.url = url
        self._token: QemuToken | None = None
        self._link: SerialTransport | None = None
        self._chip: FrontEnd | None = None
        self._air: Transport | None = None  # the nfc: transport, with a front end
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def open(self) -> None:
        perso = load_personalisation(self.card) if self.card is not None else None  # bad profile: before booting
        store = self.store
        if store is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="emvkit-qemu-")
            store = Path(self._tmp.name) / "store.bin"
        boot = boot_code(*(["--rng", self.rng] if self.rng is not None else []))  # the firmware's own option
        front = {"frontend": self.front_end} if self.front_end else {}
        self._token = QemuToken(self.image, self.board, store=store, args=front, nfc_uart=bool(self.front_end))
        try:
            self._token.start()
            if self.front_end:  # the chip listens before the driver wakes it
                self._chip = start_front_end(self.front_end, self._token.nfc_pty)
            self._token.boot(boot)
            self._link = serial_from_url(f"serial:{self._token.pty}?timeout={self.timeout}")
            self._link.open()
            if perso is not None:
                provision(self._link, perso, force=True)
                self._link.reset()  # the provisioned card, powered afresh
            if self._chip is not None:
                from emvkit.terminal.transport.nfc import from_url as nfc_from_url  # nfcpy: only here

                self._air = nfc_from_url(f"{self._chip.nfc_url}?timeout={self.timeout}")
                self._air.open()  # polls until the driver has armed the chip with the card
        except BaseException:
            self.close()
            raise
        self._atr = (self._air or self._link).atr
        super().open()

    def close(self) -> None:
        air, self._air = self._air, None
        chip, self._chip = self._chip, None
        link, self._link = self._link, None
        token, self._token = self._token, None
        try:
            if air is not None:
                air.close()
            if link is not None:
                link.close()
        finally:
            try:
                if chip is not None:
                    chip.close()
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

    @property
    def chip(self) -> FrontEnd | None:
        """The simulated front-end chip while open with one (its RF side at ``chip.nfc_url``)."""
        return self._chip

    @property
    def air(self) -> Transport | None:
        """The ``nfc:`` transport that carries the APDUs while open with a front end."""
        return self._air

    def card_present(self) -> bool:
        if self.front_end:
            return self._air is not None and self._air.card_present()
        return self._link is not None and self._link.card_present()

    def _transmit(self, command: bytes) -> bytes:
        carrier = self._air if self.front_end else self._link
        assert carrier is not None
        return carrier.transmit(command)


def _card(spec: str, url: str) -> Path:
    try:
        return card_source(spec)
    except ConfigError as exc:
        raise ConfigError(f"{url}: card={exc}") from None


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
    front_end = options.get("front-end") or None
    if front_end is not None and front_end not in FRONT_ENDS:
        raise ConfigError(f"{url}: front-end={front_end!r}: one of {', '.join(FRONT_ENDS)}")
    return QemuTransport(board, image=image, card=card, store=store, rng=rng, timeout=timeout, front_end=front_end,
                         url=url)
