"""Network endpoints given by a user: TCP and UDP ports, ``HOST:PORT``, ``tcp://HOST:PORT``, ``udp:HOST:PORT``.

The one place where the CLI and the transports read a host and a port. A
port is ASCII digits in 0..65535 (0, "any free port", only where something
listens); a host is a name, an IPv4 address or an IPv6 address in brackets
(``[::1]:8583``). Every fault is one :class:`~emvkit.terminal.errors.ConfigError`
line naming the option and the value.
"""

from __future__ import annotations

import ipaddress
import socket

from emvkit.terminal.errors import ConfigError

__all__ = ["MAX_PORT", "check_port", "free_udp_port", "parse_host_port", "parse_port", "parse_tcp_url",
           "parse_udp_path", "port_service_name"]

MAX_PORT = 65535


def check_port(port: int, what: str, *, listen: bool = False) -> int:
    """``port`` when it is a TCP/UDP port: 1..65535, or 0 (any free port) when ``listen``."""
    low = 0 if listen else 1
    if not low <= port <= MAX_PORT:
        raise ConfigError(f"{what}: port {port} is out of range {low}..{MAX_PORT}")
    return port


def parse_port(text: str, what: str, *, listen: bool = False) -> int:
    """A port number written in ASCII digits, checked by :func:`check_port`."""
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        low = 0 if listen else 1
        raise ConfigError(f"{what}: port {text!r} is not a number {low}..{MAX_PORT}")
    return check_port(int(text), what, listen=listen)


def _host(text: str, what: str, whole: str) -> str:
    if text.startswith("["):
        inner = text[1:-1] if text.endswith("]") else None
        try:
            ipaddress.IPv6Address(inner or "")
        except ValueError:
            raise ConfigError(f"{what}: {whole!r}: not an IPv6 address in brackets") from None
        return inner or ""
    if not text or any(c.isspace() or c in "[]/?#@" for c in text) or not text.isascii() or ":" in text:
        raise ConfigError(f"{what}: {whole!r}: not a host name or address (IPv6 goes in brackets: [::1])")
    return text


def parse_host_port(text: str, what: str, *, default_host: str = "127.0.0.1", default_port: int | None = None,
                    listen: bool = False) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``PORT`` or ``:PORT`` (on ``default_host``); ``HOST`` alone when
    ``default_port`` is given. Returns (host, port)."""
    if text.isascii() and text.isdigit():
        return default_host, parse_port(text, what, listen=listen)
    if (text.startswith("[") and text.endswith("]")) or ":" not in text:
        if default_port is None:
            raise ConfigError(f"{what}: expected HOST:PORT, got {text!r}")
        return _host(text, what, text), default_port
    host, _, port = text.rpartition(":")
    return (_host(host, what, text) if host else default_host), parse_port(port, what, listen=listen)


def parse_tcp_url(url: str, what: str, default_port: int) -> tuple[str, int]:
    """(host, port) of ``tcp://HOST[:PORT]`` (a trailing ``/`` allowed), a port to connect to."""
    scheme, sep, rest = url.partition("://")
    if scheme != "tcp" or not sep:
        raise ConfigError(f"{what}: {url!r} is not a tcp://HOST:PORT address")
    return parse_host_port(rest.removesuffix("/"), what, default_port=default_port)


def parse_udp_path(path: str, what: str, default_port: int, *, listen: bool = False) -> tuple[str, int]:
    """(host, port) of nfcpy's ``udp``, ``udp:HOST`` or ``udp:HOST:PORT`` device path."""
    scheme, _, rest = path.partition(":")
    if scheme != "udp":
        raise ConfigError(f"{what}: {path!r} is not a udp:HOST:PORT path")
    if not rest:
        host, port = "localhost", default_port
    else:
        host, port = parse_host_port(rest, what, default_host="localhost", default_port=default_port, listen=listen)
    name = port_service_name(port)
    if name is not None:
        # nfcpy's udp driver turns the port back into text with getnameinfo() and reads that as a number,
        # so a port the system's services database names ends in "invalid literal for int()".
        raise ConfigError(f"{what}: port {port} is named {name!r} in the system's services database, which "
                          "nfcpy's udp driver cannot open; choose another port")
    return host, port


def port_service_name(port: int) -> str | None:
    """The service name the system gives ``port`` (what getnameinfo() returns for it), or None."""
    if port == 0:
        return None
    try:
        service = socket.getnameinfo(("127.0.0.1", port), socket.NI_NUMERICHOST)[1]
    except (OSError, OverflowError):
        return None
    return None if service.isdigit() else service


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port free on ``host`` at the time of asking that nfcpy's udp driver can open (one without a
    service name, see :func:`parse_udp_path`)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
        if port_service_name(port) is None:
            return port
    raise OSError(f"no free unnamed UDP port on {host}")
