"""A token on its dev link: opened by port URL, and what it says about itself (DEVICE_INFO).

The port is any URL the ``serial:`` transport takes (``serial:/dev/ttyACM0``,
``serial:/dev/pts/5``, ``serial:socket://127.0.0.1:9000``); a bare device path
gets ``serial:`` put in front. The fields are those of
:mod:`emvkit.firmware.devlink` and :class:`emvkit.firmware.main.Token` (see
docs/serial-link.md): a device without a store (the host emulator) leaves
``board``, ``store`` and ``atc`` out, and they read as empty and 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emvkit.firmware import link
from emvkit.terminal.errors import ConfigError, TransportError
from emvkit.terminal.transport.serial import SerialTransport, from_url

__all__ = ["TokenInfo", "link_url", "open_link", "read_info"]


def link_url(port: str) -> str:
    """``port`` as a ``serial:`` URL."""
    if not port:
        raise ConfigError("--port: name the token's port, e.g. serial:/dev/ttyACM0")
    if port.startswith("serial:"):
        return port
    if ":" in port.split("/", 1)[0] and "://" not in port:
        raise ConfigError(f"--port: a serial: URL or a device path, not {port!r}")
    return "serial:" + port


def open_link(port: str) -> SerialTransport:
    """The token's dev link, open (the token powered on)."""
    transport = from_url(link_url(port))
    transport.open()
    return transport


@dataclass(frozen=True)
class TokenInfo:
    """DEVICE_INFO, typed; ``fields`` holds every key as sent."""

    version: str
    board: str
    implementation: str
    free_heap: int
    store: str  # ok, empty, corrupt, none; "" when the device does not say
    personalised: bool
    profile: str
    atc: int
    perso_max: int  # the largest personalisation it takes
    fields: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "board": self.board,
            "implementation": self.implementation,
            "free_heap": self.free_heap,
            "store": self.store,
            "personalised": self.personalised,
            "profile": self.profile,
            "atc": self.atc,
            "perso_max": self.perso_max,
        }


def _int(fields: dict[str, str], key: str, default: int, url: str) -> int:
    text = fields.get(key)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise TransportError(f"{url}: DEVICE_INFO {key}={text!r} is not a number") from None


def read_info(transport: SerialTransport) -> TokenInfo:
    """Ask the token what it is (one DEVICE_INFO request)."""
    fields = transport.device_info().fields
    url = transport.url
    return TokenInfo(
        version=fields.get("version", ""),
        board=fields.get("board", ""),
        implementation=fields.get("impl", ""),
        free_heap=_int(fields, "mem_free", 0, url),
        store=fields.get("store", ""),
        personalised=_int(fields, "personalised", 1 if fields.get("profile") else 0, url) != 0,
        profile=fields.get("profile", ""),
        atc=_int(fields, "atc", 0, url),
        perso_max=_int(fields, "perso_max", link.PROVISION_MAX, url),
        fields=dict(fields),
    )
