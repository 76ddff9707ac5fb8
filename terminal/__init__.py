"""emvkit host-side terminal stack."""

__version__ = "0.1.0"
