"""Transports opened by URL.

``open_transport("scheme:rest")`` imports ``emvkit.terminal.transport.<scheme>`` and
calls its ``from_url(url)``; adding a scheme means adding a module that defines
``from_url``. The transport comes back open; use it as a context manager to
close it.
"""

from __future__ import annotations

import importlib
import re

from emvkit.terminal.errors import UnknownScheme
from emvkit.terminal.transport.base import BaseTransport, Transport

__all__ = ["BaseTransport", "Transport", "make_transport", "open_transport"]

_SCHEME = re.compile(r"^([a-z][a-z0-9_]*):")


def make_transport(url: str) -> Transport:
    """Create (but do not open) the transport for ``url``."""
    match = _SCHEME.match(url)
    if match is None:
        raise UnknownScheme(f"{url!r} is not a transport URL (expected scheme:...)")
    scheme = match.group(1)
    try:
        module = importlib.import_module(f"emvkit.terminal.transport.{scheme}")
    except ModuleNotFoundError as exc:
        if exc.name != f"emvkit.terminal.transport.{scheme}":
            raise UnknownScheme(f"transport {scheme!r} needs a missing package: {exc.name}") from exc
        raise UnknownScheme(f"no transport for scheme {scheme!r} in {url!r}") from exc
    factory = getattr(module, "from_url", None)
    if factory is None:
        raise UnknownScheme(f"no transport for scheme {scheme!r} in {url!r}")
    transport: Transport = factory(url)
    return transport


def open_transport(url: str) -> Transport:
    """Create and open the transport for ``url``."""
    transport = make_transport(url)
    transport.open()
    return transport
