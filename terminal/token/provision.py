"""Provisioning a token: its personalisation (a card profile, keys included) over the dev link.

The profile is read and checked here first, by the very function the token
runs on it (:func:`emvkit.firmware.main.card_from_profile`: the profile's
applications, a known scheme, its secrets and keys, its initial state), so a
file the token would refuse is refused before a byte is sent. What is sent is
the profile as compact JSON: PROVISION_BEGIN (length, CRC-32 of the whole,
force flag), PROVISION_DATA chunks of at most 1020 bytes (offset and bytes),
PROVISION_COMMIT; every request answered with PROVISION_ACK (docs/serial-link.md).
The token checks length and CRC, checks the profile again, refuses a second
personalisation without force, and only then writes it to its store; on any
error it is left as it was.

Messages never quote a secret: a profile's problems name the field, not its value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emvkit.firmware import link
from emvkit.firmware.crc import crc32
from emvkit.firmware.devlink import ProvisionError
from emvkit.firmware.main import card_from_profile
from emvkit.terminal.errors import ConfigError, EmvkitError, TransportError
from emvkit.terminal.perso.builtin import builtin_names, load_builtin, profile_path, read_profile
from emvkit.terminal.tlvdump import mask_pan
from emvkit.terminal.transport.serial import SerialTransport, TokenRefused

__all__ = ["COMMIT_TIMEOUT", "Personalisation", "ProvisionRefused", "load_personalisation", "provision"]

COMMIT_TIMEOUT = 30.0  # seconds for PROVISION_COMMIT: the token parses, checks and writes to flash

# What the CLI adds to the token's own words for each refusal.
_HINTS = {
    link.ERR_ALREADY_PERSONALISED: "the token is already personalised (--force replaces it)",
    link.ERR_TOO_LARGE: "the profile is too large for the token",
    link.ERR_BAD_PROFILE: "the token refused the profile",
    link.ERR_INTEGRITY: "the profile arrived damaged",
    link.ERR_OUT_OF_ORDER: "the token lost track of the transfer",
    link.ERR_STORE: "the token could not store the profile",
    link.ERR_UNSUPPORTED: "this device cannot be provisioned",
}


class ProvisionRefused(EmvkitError):
    """The token refused the personalisation (``code``: the link's ERR_* code); it is unchanged."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Personalisation:
    """A checked profile, ready to send: ``data`` is what goes over the link."""

    path: Path
    data: bytes
    profile_id: str
    schemes: tuple[str, ...]
    masked_pan: str

    @property
    def crc(self) -> int:
        return crc32(self.data)


def load_personalisation(path: Path, limit: int = link.PROVISION_MAX) -> Personalisation:
    """Read and check a card profile; ``ConfigError`` (one line, no secret) if a token would refuse it."""
    doc = _read_profile(path)
    try:
        card = card_from_profile(doc)
    except ProvisionError as exc:
        raise ConfigError(f"{path}: not a card profile a token takes: {exc.text}") from None
    try:
        data = json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if len(data) > limit:
        raise ConfigError(f"{path}: {len(data)} bytes as compact JSON, a token takes at most {limit}")
    profile = card.profile
    return Personalisation(
        path=path,
        data=data,
        profile_id=str(profile.id),
        schemes=tuple(app.scheme for app in profile.applications),
        masked_pan=mask_pan(card.secrets.pan),
    )


def _read_profile(path: Path) -> dict[str, Any]:
    # A built-in card's file is public test data (perso/builtin.py: read without the private-file
    # check, as emu:NAME reads it); any other file is a JSON object, private when it holds secrets.
    for name in builtin_names():
        if path.resolve() == profile_path(name).resolve():
            return load_builtin(name)
    return read_profile(path, "card profile")


def _refused(exc: TokenRefused) -> ProvisionRefused:
    hint = _HINTS.get(exc.code, "the token refused")
    if not exc.text or exc.text in hint:
        return ProvisionRefused(hint, exc.code)
    return ProvisionRefused(f"{hint}: {exc.text}", exc.code)


def provision(
    transport: SerialTransport,
    perso: Personalisation,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Send ``perso`` to the token on ``transport``; returns the profile id the token now runs.

    ``progress(sent, total)`` is called after each acknowledged chunk. A refusal is
    :class:`ProvisionRefused` (the token unchanged); a broken link a ``TransportError``.
    """
    data = perso.data
    total = len(data)
    try:
        _ack(transport.request(link.PROVISION_BEGIN, link.provision_begin_payload(total, perso.crc, force),
                               link.PROVISION_ACK), 0, transport)
        for offset in range(0, total, link.PROVISION_CHUNK):
            chunk = data[offset:offset + link.PROVISION_CHUNK]
            end = offset + len(chunk)
            _ack(transport.request(link.PROVISION_DATA, link.provision_data_payload(offset, chunk),
                                   link.PROVISION_ACK), end, transport)
            if progress is not None:
                progress(end, total)
        answer = transport.request(link.PROVISION_COMMIT, b"", link.PROVISION_ACK,
                                   timeout=max(transport.timeout, COMMIT_TIMEOUT))
    except TokenRefused as exc:
        raise _refused(exc) from None
    return _ack(answer, total, transport) or perso.profile_id


def _ack(frame: link.Frame, held: int, transport: SerialTransport) -> str:
    parsed = link.parse_ack(frame.payload)
    if parsed is None or parsed[0] != held:
        raise TransportError(f"{transport.url}: the token acknowledged {parsed[0] if parsed else '?'} bytes, "
                             f"not {held}")
    text: str = parsed[1]
    return text
