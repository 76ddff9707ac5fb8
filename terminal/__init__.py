"""emvkit host-side terminal stack."""

from emvkit.firmware import __version__

__all__ = ["__version__"]
