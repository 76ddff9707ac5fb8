"""Typed errors of the terminal stack.

EMV outcomes (declined, try another interface, ...) are values, never
exceptions. Exceptions are for broken links, protocol violations and bad
input; every one a CLI user can meet derives from :class:`EmvkitError` or is a
:class:`emvkit.firmware.tlv.TLVError`.
"""

from emvkit.firmware.tlv import TLVError

__all__ = [
    "APDUError",
    "CardRemoved",
    "ConfigError",
    "EmvkitError",
    "ScriptMismatch",
    "TLVError",
    "TransportError",
    "UnknownScheme",
]


class EmvkitError(Exception):
    """Base of every error emvkit raises on purpose."""


class ConfigError(EmvkitError):
    """A configuration file, profile or option is malformed."""


class APDUError(EmvkitError):
    """A command or response APDU that violates ISO 7816-4."""


class TransportError(EmvkitError):
    """The link to the card failed."""


class CardRemoved(TransportError):
    """The card left the field (or was pulled) before the exchange finished."""


class ScriptMismatch(TransportError):
    """A scripted transport received a command other than the one scripted."""


class UnknownScheme(TransportError):
    """No transport module handles this URL scheme."""
