"""ISO 8583 front end: the codec, malformed messages, and the TCP server.

Valid requests for the load-style tests are built with pyemv from the
built-in Mastercard card's issuer key (independent of the host code), so any
number of distinct ATCs is at hand without running the card.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import iso8583
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyemv import cvn as pyemv_cvn

import emvkit.terminal.cli as cli
from emvkit.firmware import tlv
from emvkit.terminal.config_files import load_config
from emvkit.terminal.errors import ConfigError, TransportError
from emvkit.terminal.host.api import AuthorisationRequest, AuthorisationResponse
from emvkit.terminal.host.authlog import AuthLog
from emvkit.terminal.host.client import TcpAuthoriser, parse_url
from emvkit.terminal.host.iso8583 import (
    SPEC,
    MessageFormatError,
    de35_to_track2,
    decode_request,
    decode_response,
    encode_format_error,
    encode_request,
    encode_response,
    frame,
    response_mti,
    track2_to_de35,
)
from emvkit.terminal.host.issuer import IssuerHost
from emvkit.terminal.host.keys import IssuerKeys
from emvkit.terminal.host.rules import RESPONSE_CODES, Rules
from emvkit.terminal.host.server import ServerThread, answer
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.perso.builtin import load_builtin
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from tests.conftest import HANG_S, within
from tests.test_host import online

ROOT = Path(__file__).resolve().parent.parent
MC = load_builtin("mastercard")
MC_PAN = MC["secrets"]["pan"]
_MC_CVN16 = pyemv_cvn.MasterCardCVN16(*(bytes.fromhex(MC["secrets"]["imk_ac"]),) * 3, pan=MC_PAN,
                                      psn=MC["secrets"]["psn"])


def mc_request(atc: int, amount: int = 1000, stan: int = 1, terminal_id: str = "TERM0001") -> AuthorisationRequest:
    """A genuine Mastercard CVN 16 authorisation request for ``atc`` (pyemv)."""
    terminal = {0x9F02: bytes.fromhex(f"{amount:012d}"), 0x9F03: bytes(6), 0x9F1A: bytes.fromhex("0250"),
                0x95: bytes(5), 0x5F2A: bytes.fromhex("0978"), 0x9A: bytes.fromhex("261127"), 0x9C: b"\x00",
                0x9F37: (atc * 2654435761 % 2**32).to_bytes(4, "big")}
    iad = bytes.fromhex("0110A00000000000") + bytes(10)
    atc_bytes = atc.to_bytes(2, "big")
    ac = _MC_CVN16.generate_ac(**{f"tag_{t:x}": v for t, v in terminal.items()}, tag_82=bytes.fromhex("1980"),
                               tag_9f36=atc_bytes, cvr=iad[2:8])
    icc = {0x9F26: ac, 0x9F27: b"\x80", 0x9F10: iad, 0x82: bytes.fromhex("1980"), 0x9F36: atc_bytes, **terminal}
    return AuthorisationRequest(pan=MC_PAN, amount=amount, currency=bytes.fromhex("0978"), icc_data=icc, psn="01",
                                track2=bytes.fromhex(MC_PAN + "D30122010000000000000F"), stan=stan,
                                terminal_id=terminal_id)


@pytest.fixture
def host() -> Iterator[IssuerHost]:
    with IssuerHost.builtin() as h:
        yield h


@pytest.fixture
def server(host: IssuerHost) -> Iterator[ServerThread]:
    with ServerThread(host) as s:
        yield s


# --- codec ---


def test_request_round_trip() -> None:
    request = mc_request(5, amount=123456, stan=42)
    message = encode_request(request)
    assert message[:4] == b"0100"
    int(message[4:20], 16)  # the bitmap: 16 hex characters
    assert decode_request(message) == request
    financial = replace(request, mti="0200", processing_code="090000", pos_entry_mode="071")
    assert decode_request(encode_request(financial)) == financial


def test_request_fields_on_the_wire() -> None:
    doc, _ = iso8583.decode(encode_request(mc_request(5, stan=42)), SPEC)
    assert doc["2"] == MC_PAN
    assert (doc["3"], doc["4"], doc["11"], doc["22"], doc["23"], doc["41"], doc["49"]) == \
        ("000000", "000000001000", "000042", "072", "001", "TERM0001", "978")
    assert doc["35"] == MC_PAN + "=30122010000000000000"
    assert len(doc["7"]) == 10 and doc["7"].isdigit()
    icc = tlv.flatten(tlv.decode(bytes.fromhex(doc["55"])))
    assert icc[0x9F36] == b"\x00\x05"


_TAGS = (0x9F26, 0x9F27, 0x9F10, 0x9F37, 0x9F36, 0x95, 0x9A, 0x9C, 0x9F02, 0x5F2A, 0x82, 0x9F1A, 0x84, 0x9F6E)


@settings(max_examples=150, deadline=None)
@given(
    pan=st.text("0123456789", min_size=12, max_size=19),
    amount=st.integers(0, 10**12 - 1),
    stan=st.integers(0, 999_999),
    terminal_id=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", max_size=8),
    psn=st.none() | st.text("0123456789", min_size=2, max_size=2),
    icc=st.dictionaries(st.sampled_from(_TAGS), st.binary(max_size=40), max_size=len(_TAGS)),
    currency=st.text("0123456789", min_size=3, max_size=3),
    mti=st.sampled_from(["0100", "0200"]),
)
def test_request_round_trip_property(pan: str, amount: int, stan: int, terminal_id: str, psn: str | None,
                                     icc: dict[int, bytes], currency: str, mti: str) -> None:
    request = AuthorisationRequest(pan=pan, amount=amount, currency=bytes.fromhex("0" + currency), icc_data=icc,
                                   psn=psn, mti=mti, stan=stan, terminal_id=terminal_id,
                                   track2=bytes.fromhex(pan + "D2512" + ("" if len(pan) % 2 else "F")))
    decoded = decode_request(encode_request(request))
    other = icc.get(0x9F03, b"").hex()
    assert decoded == replace(request, amount_other=int(other) if other.isdigit() else 0)


@pytest.mark.parametrize(("track2", "de35"), [
    ("4761739001010119D30122010000000000000F", "4761739001010119=30122010000000000000"),
    ("5413330089010012D3012201000000000000", "5413330089010012=3012201000000000000"),
    ("6212345678901232123D2512", "6212345678901232123=2512"),
])
def test_de35_is_track2_with_the_iso7813_separator(track2: str, de35: str) -> None:
    assert track2_to_de35(bytes.fromhex(track2)) == de35
    assert de35_to_track2(de35) == bytes.fromhex(track2)


@pytest.mark.parametrize("bad", ["4761739001010119", "47617390=0101=0119", "4761A39001010119=3012", "1" * 38 + "="])
def test_bad_de35(bad: str) -> None:
    with pytest.raises(MessageFormatError, match="DE 35"):
        de35_to_track2(bad)


def test_response_round_trip() -> None:
    request = mc_request(1, stan=77)
    approved = AuthorisationResponse(approved=True, response_code="00", arc=b"00",
                                     issuer_authentication_data=bytes(range(8)) + b"00", icc_data={})
    message = encode_response(approved, request)
    assert message[:4] == b"0110"
    response, stan = decode_response(message)
    assert stan == 77
    assert response == replace(approved, icc_data={0x91: bytes(range(8)) + b"00"})
    doc, _ = iso8583.decode(message, SPEC)
    assert "2" not in doc and "35" not in doc  # cardholder data is not echoed
    declined = AuthorisationResponse(approved=False, response_code="61", arc=b"61", reason="amount 9000 is above")
    response, _ = decode_response(encode_response(declined, replace(request, mti="0200")))
    assert (response.approved, response.response_code, response.arc, response.reason) == \
        (False, "61", b"61", "amount 9000 is above")


def test_response_mti() -> None:
    assert [response_mti(m) for m in ("0100", "0200", "0800", "0110", "01x0", "")] == \
        ["0110", "0210", "0810", None, None, None]


# --- malformed messages: a "30" answer and a log row ---


def _request_doc(**changes: str | None) -> dict[str, str]:
    doc, _ = iso8583.decode(encode_request(mc_request(9, stan=123)), SPEC)
    out = dict(doc)
    for key, value in changes.items():
        if value is None:
            out.pop(key.lstrip("_"), None)
        else:
            out[key.lstrip("_")] = value
    return out


def _encode(doc: dict[str, str]) -> bytes:
    return bytes(iso8583.encode(dict(doc), SPEC)[0])


MALFORMED = {
    "bad bitmap": (b"0100" + b"ZZ" * 8 + b"161234567890123456", "the bitmap"),
    "bad amount": (_encode(_request_doc(_4="00000000ABCD")), "DE 4 must be 12 digits"),
    "bad STAN": (_encode(_request_doc(_11="12345X")), "DE 11 must be 6 digits"),
    "missing DE 55": (_encode(_request_doc(_55=None)), "missing DE 55"),
    "missing DE 2 and 4": (_encode(_request_doc(_2=None, _4=None)), "missing DE 2, 4"),
    "DE 55 not TLV": (_encode(_request_doc(_55="9F2608AABB")), "DE 55 is not BER-TLV"),
    "bad track 2": (_encode(_request_doc(_35="4761739001010119D3012")), "DE 35"),
    "field too long": (b"0100" + b"4000000000000000" + b"25" + b"1" * 25, "DE 2"),
    "truncated": (encode_request(mc_request(9))[:-5], "DE 55"),
    "trailing bytes": (encode_request(mc_request(9)) + b"XYZ", "Extra data"),
    "network message": (b"0800" + b"0000000000000000", "MTI 0800 is not an authorisation"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_message_gets_a_format_error(host: IssuerHost, case: str) -> None:
    message, words = MALFORMED[case]
    reply = answer(host, message)
    assert reply is not None
    doc, _ = iso8583.decode(reply, SPEC)
    assert doc["t"] == ("0810" if case == "network message" else "0110")
    assert doc["39"] == "30"
    assert words in doc["63"]
    row = host.log.entries()[-1]
    assert (row.response_code, row.mti) == ("30", message[:4].decode())
    assert words in row.reason
    assert row.pan_hmac is None and row.pan_masked is None


def test_format_error_echoes_what_was_readable(host: IssuerHost) -> None:
    reply = answer(host, _encode(_request_doc(_55=None)))
    assert reply is not None
    doc, _ = iso8583.decode(reply, SPEC)
    assert (doc["11"], doc["41"], doc["4"]) == ("000123", "TERM0001", "000000001000")
    assert host.log.entries()[-1].stan == 123


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00garbage", b"ABCD", b"01", os.urandom(64) + b"\xff"])
def test_unreadable_mti_gets_no_answer_but_is_logged(host: IssuerHost, garbage: bytes) -> None:
    assert answer(host, garbage) is None
    row = host.log.entries()[-1]
    assert (row.response_code, row.mti) == ("30", None)


def test_random_bytes_never_raise(host: IssuerHost) -> None:
    rng = random.Random(8583)
    valid = encode_request(mc_request(3))
    for _ in range(300):
        message = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            message[rng.randrange(len(message))] = rng.randrange(256)
        reply = answer(host, bytes(message))
        if reply is not None:
            assert decode_response(reply)[0].response_code in RESPONSE_CODES


def test_encode_format_error_needs_an_mti() -> None:
    assert encode_format_error(MessageFormatError("garbage")) is None


# --- TCP ---


def _exchange(sock: socket.socket, message: bytes) -> bytes:
    sock.sendall(frame(message))
    return _read_frame(sock)


def _read_frame(sock: socket.socket) -> bytes:
    header = _read(sock, 2)
    return _read(sock, int.from_bytes(header, "big"))


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _connect(server: ServerThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return sock


def test_tcp_authorisation_the_card_accepts(server: ServerThread) -> None:
    tx = online("mastercard")
    with TcpAuthoriser(server.url) as client:
        response = client.authorise(tx.request)
        assert response.response_code == "00"
        assert tx.second_generate_ac(response)[0x9F27] == b"\x40"
        visa = online("visa")
        response = client.authorise(visa.request)
        assert visa.second_generate_ac(response)[0x9F27] == b"\x40"


def test_kernel_goes_online_over_iso8583(server: ServerThread, host: IssuerHost) -> None:
    with TcpAuthoriser(server.url) as client, open_transport("emu:mastercard") as transport:
        tap = run_transaction(transport, load_config(), TransactionRequest(amount=6000), authoriser=client)
    assert tap.result.outcome.outcome is Outcome.APPROVED
    assert [r.response_code for r in host.log.entries()] == ["00"]


def test_tcp_malformed_messages_are_answered_and_the_server_lives(server: ServerThread, host: IssuerHost) -> None:
    with _connect(server) as sock:
        for message, _words in MALFORMED.values():
            doc, _ = iso8583.decode(_exchange(sock, message), SPEC)
            assert doc["39"] == "30"
        assert decode_response(_exchange(sock, encode_request(mc_request(1))))[0].response_code == "00"
    with _connect(server) as sock:  # an unreadable MTI: logged, the connection is closed
        sock.sendall(frame(b"\xff\xff\xff\xffjunk"))
        assert sock.recv(10) == b""
    with _connect(server) as sock:  # a zero-length frame: closed too
        sock.sendall(b"\x00\x00")
        assert sock.recv(10) == b""
    with _connect(server) as sock:  # a frame over the limit
        sock.sendall(b"\xff\xff" + b"0" * 100)
        assert sock.recv(10) == b""
    with TcpAuthoriser(server.url) as client:
        assert client.authorise(mc_request(2)).response_code == "00"
    codes = [r.response_code for r in host.log.entries()]
    assert codes.count("30") == len(MALFORMED) + 3
    assert codes.count("00") == 2


def test_an_answer_leaves_only_after_its_row_is_committed(tmp_path: Path) -> None:
    db = tmp_path / "host.sqlite"
    with IssuerHost(IssuerKeys.builtin(), log=AuthLog(db)) as host:
        with ServerThread(host) as server, TcpAuthoriser(server.url) as client:
            for atc in range(1, 4):
                assert client.authorise(mc_request(atc)).response_code == "00"
                with sqlite3.connect(db) as reader:  # another connection sees only committed rows
                    assert reader.execute("SELECT COUNT(*) FROM authorisations").fetchone()[0] == atc
        assert host.authorise(mc_request(4)).response_code == "00"  # in-process: each row commits on its own
        with sqlite3.connect(db) as reader:
            assert reader.execute("SELECT COUNT(*) FROM authorisations").fetchone()[0] == 4


def _buffered(server: ServerThread) -> int:
    """The bytes the host holds of its one connection's incomplete frame (0 with no connection yet)."""
    return sum(len(connection.buffer) for connection in list(server.server.connections))


def test_tcp_split_and_pipelined_frames(server: ServerThread) -> None:
    with _connect(server) as sock:
        framed = frame(encode_request(mc_request(1, stan=1)))
        sent = 0
        for part in (framed[:1], framed[1:7]):
            sock.sendall(part)
            sent += len(part)
            # the host has read this part on its own, a frame still incomplete
            within(HANG_S, "the partial frame read").until(lambda n=sent: _buffered(server) == n)
        sock.sendall(framed[7:])
        assert decode_response(_read_frame(sock))[1] == 1
        sock.sendall(b"".join(frame(encode_request(mc_request(atc, stan=atc))) for atc in range(2, 12)))
        stans = [decode_response(_read_frame(sock))[1] for _ in range(10)]
        assert stans == list(range(2, 12))


def test_concurrent_terminals() -> None:
    clients, per_client = 16, 25
    # One card, many terminals: ATCs may overtake each other by more than
    # the default window on the way in, which is not what this test is about.
    host = IssuerHost(IssuerKeys.builtin(), Rules(atc_window=clients * per_client))
    atcs = iter(range(1, clients * per_client + 1))
    lock = threading.Lock()
    results: list[str] = []
    server = ServerThread(host).start()

    def terminal(n: int) -> None:
        with TcpAuthoriser(server.url, timeout=10) as client:
            for _ in range(per_client):
                with lock:
                    atc = next(atcs)
                response = client.authorise(mc_request(atc, terminal_id=f"T{n:07d}"))
                with lock:
                    results.append(response.response_code)

    threads = [threading.Thread(target=terminal, args=(n,)) for n in range(clients)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        server.stop()
    assert results == ["00"] * (clients * per_client)
    rows = host.log.entries()
    assert len(rows) == clients * per_client
    assert len({r.terminal_id for r in rows}) == clients


# --- the client's failures are TransportErrors, bounded in time ---


def test_client_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError, match="cannot connect"):
        TcpAuthoriser(f"tcp://127.0.0.1:{port}").authorise(mc_request(1))


def test_client_times_out_on_a_silent_host() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = TcpAuthoriser(f"tcp://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        with within(HANG_S, "the client's timeout"), pytest.raises(TransportError, match=r"no answer within 0\.3 s"):
            client.authorise(mc_request(1))


def test_client_rejects_a_garbled_or_mismatched_answer() -> None:
    replies = [frame(b"0110ZZZZ"), frame(encode_response(AuthorisationResponse(True, "00", b"00"),
                                                         mc_request(1, stan=999)))]

    issuer = IssuerHost.builtin()  # answers the reversal the client sends after each answer it cannot use

    def fake_host(listener: socket.socket) -> None:
        # A request gets the next bad reply and its connection closed; a reversal is answered and the
        # connection kept (the client sends its next request on it).
        reversals, expected = 0, len(replies)
        while reversals < expected:
            conn, _ = listener.accept()
            with conn:
                while True:
                    try:
                        message = _read_frame(conn)
                    except ConnectionError:
                        break
                    if message[:4] in (b"0400", b"0420"):
                        reversals += 1
                        reversal = answer(issuer, message)
                        assert reversal is not None
                        conn.sendall(frame(reversal))
                        if reversals == expected:
                            break
                    else:
                        conn.sendall(replies.pop(0))
                        break

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        thread = threading.Thread(target=fake_host, args=(listener,), daemon=True)
        thread.start()
        client = TcpAuthoriser(f"tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=2)
        with pytest.raises(TransportError, match="malformed answer"):
            client.authorise(mc_request(1, stan=5))
        with pytest.raises(TransportError, match="STAN"):
            client.authorise(mc_request(1, stan=5))
        thread.join(5)
    assert client.pending == []
    assert [(r.mti, r.response_code) for r in issuer.log.entries()] == [("0400", "25"), ("0400", "25")]


def test_client_reconnects_after_the_host_restarts(host: IssuerHost) -> None:
    with ServerThread(host) as first:
        port = first.port
        client = TcpAuthoriser(first.url)
        assert client.authorise(mc_request(1)).response_code == "00"
    with pytest.raises(TransportError):
        client.authorise(mc_request(2))
    with ServerThread(host, port=port):
        assert client.authorise(mc_request(3)).response_code == "00"
    client.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8583", "tcp://", "tcp://host:notaport", "127.0.0.1:8583"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_url(url)


def test_default_port() -> None:
    assert parse_url("tcp://localhost") == ("localhost", 8583)


# --- the command line ---

_CLI = "import sys, emvkit.terminal.cli as c\nsys.exit(c.main(sys.argv[1:]))\n"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_host_serve_stops_gracefully(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "host.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", _CLI, "host", "serve", "--port", "0", "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on tcp://127.0.0.1:" in line, line + (proc.stderr.read() if proc.stderr else "")
        url = line.split("listening on ", 1)[1].split()[0]
        with TcpAuthoriser(url) as client:
            assert client.authorise(mc_request(1)).response_code == "00"
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err
    assert IssuerKeys.builtin().find(MC_PAN) is not None
    with IssuerHost.builtin(str(db)) as reopened:
        assert [r.response_code for r in reopened.log.entries()] == ["00"]
        assert reopened.authorise(mc_request(1)).response_code == "63"  # the replay window came back


def test_host_serve_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-c", _CLI, "host", "serve", "--port", str(port),
                               "--db", str(tmp_path / "h.sqlite")], capture_output=True, text=True, cwd=ROOT,
                              timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("emvkit host: error: cannot listen on")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_host_keys_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    profile_path = tmp_path / "card.json"
    profile_path.write_text(json.dumps(load_builtin("unionpay")))
    profile_path.chmod(0o600)  # the profile holds the card's keys
    out = tmp_path / "keys.json"
    assert cli.main(["host", "keys", "--from-profile", str(profile_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "621234******1232" in printed and "6212345678901232" not in printed
    assert "D95220B5" not in printed  # never the key
    assert os.stat(out).st_mode & 0o777 == 0o600
    keys = IssuerKeys.load(out)
    assert [k.cryptogram_version for k in keys] == ["upi"]
    assert cli.main(["host", "keys", "--out", str(out)]) == 2
    assert "give at least one --from-profile" in capsys.readouterr().err
