"""The host bounds its connections: idle ones and slow ("slowloris") ones are closed, and beyond the cap a
new one is refused. The tests wait for the socket to close, never for a fixed time."""

from __future__ import annotations

import logging
import select
import socket

import pytest

from emvkit.terminal.host.iso8583 import decode_response, encode_request, frame
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.host.server import ConnectionLimits, ServerThread
from tests.conftest import within
from tests.test_host import online

CLOSE_WAIT_S = 30  # an upper bound on waiting for the server's move, never a measured duration


def closed(sock: socket.socket, timeout: float = CLOSE_WAIT_S) -> bool:
    """True once the peer closes (EOF or reset), False if ``timeout`` passes first."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True


def test_an_idle_connection_is_closed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "emvkit.host")
    with ServerThread(IssuerHost.builtin(), limits=ConnectionLimits(idle_timeout=0.2, frame_timeout=30)) as server, \
            socket.create_connection(("127.0.0.1", server.port)) as sock:
        assert closed(sock)
    assert "closing the idle connection" in caplog.text


def test_a_slowloris_client_is_closed_however_it_trickles(caplog: pytest.LogCaptureFixture) -> None:
    message = frame(encode_request(online("visa").request))
    limits = ConnectionLimits(idle_timeout=30, frame_timeout=0.5)
    with ServerThread(IssuerHost.builtin(), limits=limits) as server, \
            socket.create_connection(("127.0.0.1", server.port)) as sock:
        sent = 0
        while sent < len(message):  # one byte, then wait up to 50 ms for the server to hang up
            try:
                sock.sendall(message[sent:sent + 1])
            except ConnectionError:
                break
            sent += 1
            if closed(sock, 0.05):
                break
        else:
            pytest.fail("the whole message went through a byte at a time without the server hanging up")
        assert sent < len(message)
    assert "closing the slow connection" in caplog.text


def test_beyond_the_cap_a_connection_is_refused_and_the_others_work(caplog: pytest.LogCaptureFixture) -> None:
    host = IssuerHost.builtin()
    with ServerThread(host, limits=ConnectionLimits(max_connections=2)) as server:
        first = socket.create_connection(("127.0.0.1", server.port))
        second = socket.create_connection(("127.0.0.1", server.port))
        try:
            request = online("mastercard").request
            first.sendall(frame(encode_request(request)))  # answered: both are accepted by now
            second.sendall(frame(encode_request(request)))
            for sock in (first, second):
                header = sock.recv(2)
                body = b""
                while len(body) < int.from_bytes(header, "big"):
                    body += sock.recv(4096)
                assert decode_response(body)[0].response_code in ("00", "63")
            with socket.create_connection(("127.0.0.1", server.port)) as third:
                assert closed(third)
            assert "connections open (the limit)" in caplog.text
            second.close()
            within(CLOSE_WAIT_S, "the server seeing the second connection go").until(
                lambda: len(server.server.connections) < 2)
            with socket.create_connection(("127.0.0.1", server.port)) as fourth:  # a place again
                fourth.sendall(frame(encode_request(online("unionpay").request)))
                assert fourth.recv(2) != b""
        finally:
            first.close()
            second.close()
