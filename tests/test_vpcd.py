"""The vpcd bridge, the private pcscd and the contactless pseudo-ATR.

Three layers: ATR vectors (pure); the bridge against a fake vpcd written here
(exact wire bytes, no pcscd); and end to end, pyscard and scriptor (pcsc-tools)
in subprocesses -> a private pcscd -> vpcd -> VpcdBridge -> a test card.
The end-to-end tests fail when pcscd or vpcd is not installed (`make test` installs them).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emvkit.firmware import tlv
from emvkit.terminal.emulator.pcscd import PcscdUnavailable, PrivatePcscd
from emvkit.terminal.emulator.vpcd import VpcdBridge
from emvkit.terminal.iso7816 import ATRError, contactless_atr, parse_atr
from tests.conftest import HANG_S, within

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
# FCI of the PPSE (EMV Book B §3.3): DF name 2PAY.SYS.DDF01, one entry for Visa credit/debit.
PPSE_FCI = bytes.fromhex("6F23840E325041592E5359532E4444463031A511BF0C0E610C4F07A0000000031010870101")
FAULTY_COMMAND = bytes.fromhex("80EE000000")  # the test card raises on INS EE
SW_OK = b"\x90\x00"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_NO_PRECISE_DIAGNOSIS = b"\x6f\x00"


# --- ATR --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("historical", "expected"),
    [
        (b"", "3B 80 80 01 01"),
        # TCK = 81 ^ 80 ^ 01 ^ 80 = 80
        (b"\x80", "3B 81 80 01 80 80"),
        # TCK = 82 ^ 80 ^ 01 ^ 12 ^ 34 = 25
        (b"\x12\x34", "3B 82 80 01 12 34 25"),
    ],
)
def test_contactless_atr(historical: bytes, expected: str) -> None:
    atr = contactless_atr(historical)
    assert atr == bytes.fromhex(expected)
    parsed = parse_atr(atr)
    assert parsed.historical_bytes == historical
    assert parsed.interface_bytes == {"TD1": 0x80, "TD2": 0x01}
    assert parsed.protocols == (0, 1)
    assert parsed.tck == atr[-1] and parsed.tck_valid


def test_contactless_atr_rejects_too_many_historical_bytes() -> None:
    with pytest.raises(ATRError):
        contactless_atr(bytes(16))


def test_parse_pcsc_part3_storage_card_atr() -> None:
    # PC/SC Part 3 §3.1.3.2.3.1 example: a MIFARE Classic 1K behind a PC/SC reader.
    atr = parse_atr(bytes.fromhex("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00 6A"))
    assert (atr.ts, atr.t0) == (0x3B, 0x8F)
    assert atr.historical_bytes == bytes.fromhex("80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00")
    assert atr.tck == 0x6A and atr.tck_valid


def test_parse_t0_only_atr_has_no_tck() -> None:
    # TB1 = 00, TC1 = 00, no TD1 (so T=0 only, no TCK), 8 historical bytes.
    atr = parse_atr(bytes.fromhex("3B 68 00 00 00 73 C8 40 13 00 90 00"))
    assert atr.interface_bytes == {"TB1": 0x00, "TC1": 0x00}
    assert atr.protocols == (0,)
    assert atr.tck is None and atr.tck_valid
    assert atr.historical_bytes == bytes.fromhex("00 73 C8 40 13 00 90 00")


def test_parse_interface_bytes_over_several_groups() -> None:
    # T0 90 (TA1, TD1, no historical bytes), TA1 96, TD1 81 (T=1, TD2 follows),
    # TD2 31 (TA3, TB3 follow; T=1), TA3 FE, TB3 45, then TCK.
    body = bytes.fromhex("90 96 81 31 FE 45")
    tck = 0
    for byte in body:
        tck ^= byte
    atr = parse_atr(b"\x3b" + body + bytes((tck,)))
    assert atr.interface_bytes == {"TA1": 0x96, "TD1": 0x81, "TD2": 0x31, "TA3": 0xFE, "TB3": 0x45}
    assert atr.protocols == (1, 1)


@pytest.mark.parametrize(
    "bad",
    [
        "3B",  # T0 missing
        "3C 00",  # bad TS
        "3B 80 80",  # TD2 missing
        "3B 82 80 01 12",  # historical byte missing
        "3B 80 80 01",  # TCK missing though T=1 is indicated
        "3B 80 80 01 02",  # wrong TCK
        "3B 00 00",  # trailing byte
        "3B" + " 00" * 33,  # too long
    ],
)
def test_parse_atr_rejects(bad: str) -> None:
    with pytest.raises(ATRError):
        parse_atr(bytes.fromhex(bad))


def test_parse_atr_can_skip_tck_check() -> None:
    atr = parse_atr(bytes.fromhex("3B 80 80 01 02"), check_tck=False)
    assert atr.tck == 0x02 and not atr.tck_valid


# --- the bridge against a fake vpcd -------------------------------------------------------------


class PPSECard:
    """Answers SELECT PPSE with an FCI, raises on INS EE, 6D00 otherwise; counts power events."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.powered_on = threading.Event()

    def power_on(self) -> None:
        self.events.append("power_on")
        self.powered_on.set()

    def reset(self) -> None:
        self.events.append("reset")

    def power_off(self) -> None:
        self.events.append("power_off")

    def process(self, command_apdu: bytes) -> bytes:
        if command_apdu == SELECT_PPSE:
            return PPSE_FCI + SW_OK
        if command_apdu[1:2] == b"\xee":
            raise RuntimeError("card bug")
        return SW_INS_NOT_SUPPORTED


class FakeVpcd:
    """The reader side of the vpcd protocol, on a loopback port."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(HANG_S)
        self.port: int = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(HANG_S)
        return self.conn

    def send(self, payload: bytes) -> None:
        assert self.conn is not None
        # Like Debian's vpcd: length and payload in two writes.
        self.conn.sendall(struct.pack(">H", len(payload)))
        self.conn.sendall(payload)

    def receive(self) -> bytes:
        assert self.conn is not None
        header = self._exactly(2)
        return self._exactly(struct.unpack(">H", header)[0])

    def exchange(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.receive()

    def expect_removal(self) -> None:
        """Read until the bridge half-closes (as vpcd would at its next poll), then close."""
        assert self.conn is not None
        while self.conn.recv(4096):
            pass
        self.conn.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()

    def _exactly(self, n: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("bridge closed the connection")
            data += chunk
        return data


@pytest.fixture
def fake_vpcd() -> Iterator[FakeVpcd]:
    vpcd = FakeVpcd()
    yield vpcd
    vpcd.close()


def start_bridge(card: PPSECard, port: int, removal_timeout: float = 0.5) -> tuple[VpcdBridge, threading.Thread]:
    bridge = VpcdBridge(card, port=port, removal_timeout=removal_timeout)
    thread = threading.Thread(target=bridge.run, name="vpcd-bridge", daemon=True)
    thread.start()
    return bridge, thread


def stop_bridge(bridge: VpcdBridge, thread: threading.Thread, vpcd: FakeVpcd | None = None) -> None:
    bridge.close()
    if vpcd is not None and vpcd.conn is not None:
        vpcd.expect_removal()
    thread.join(HANG_S)
    assert not thread.is_alive(), f"the bridge did not stop within {HANG_S:g} s"


def test_bridge_protocol(fake_vpcd: FakeVpcd) -> None:
    card = PPSECard()
    bridge, thread = start_bridge(card, fake_vpcd.port)
    try:
        conn = fake_vpcd.accept()
        fake_vpcd.send(b"\x01")  # power on: no answer
        fake_vpcd.send(b"\x02")  # reset: no answer
        assert fake_vpcd.exchange(b"\x04") == contactless_atr()
        assert fake_vpcd.exchange(SELECT_PPSE) == PPSE_FCI + SW_OK
        assert fake_vpcd.exchange(bytes.fromhex("00B2010C00")) == SW_INS_NOT_SUPPORTED
        # Two messages in one segment, the second split across two.
        select = struct.pack(">H", len(SELECT_PPSE)) + SELECT_PPSE
        conn.sendall(b"\x00\x01\x04" + select[:3])
        assert fake_vpcd.receive() == contactless_atr()  # answered: the 3 bytes after it wait in the bridge
        conn.sendall(select[3:])
        assert fake_vpcd.receive() == PPSE_FCI + SW_OK
        fake_vpcd.send(b"\x00")  # power off
        assert fake_vpcd.exchange(b"\x04") == contactless_atr()  # the queue is in step
        assert card.events == ["power_on", "reset", "power_off"]
    finally:
        stop_bridge(bridge, thread, fake_vpcd)


def test_bridge_survives_card_exception(fake_vpcd: FakeVpcd, caplog: pytest.LogCaptureFixture) -> None:
    bridge, thread = start_bridge(PPSECard(), fake_vpcd.port)
    try:
        fake_vpcd.accept()
        assert fake_vpcd.exchange(FAULTY_COMMAND) == SW_NO_PRECISE_DIAGNOSIS
        assert fake_vpcd.exchange(SELECT_PPSE) == PPSE_FCI + SW_OK
    finally:
        stop_bridge(bridge, thread, fake_vpcd)
    assert "card raised" in caplog.text


def test_bridge_logs_no_apdu_data_at_info(fake_vpcd: FakeVpcd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="emvkit.vpcd")
    bridge, thread = start_bridge(PPSECard(), fake_vpcd.port)
    try:
        fake_vpcd.accept()
        fake_vpcd.exchange(SELECT_PPSE)
        fake_vpcd.exchange(FAULTY_COMMAND)
    finally:
        stop_bridge(bridge, thread, fake_vpcd)
    assert "card inserted" in caplog.text
    for secret in (SELECT_PPSE, PPSE_FCI[:8]):
        assert secret.hex() not in caplog.text.lower().replace(" ", "")


def test_bridge_reconnects_after_drop(fake_vpcd: FakeVpcd) -> None:
    card = PPSECard()
    bridge, thread = start_bridge(card, fake_vpcd.port)
    try:
        first = fake_vpcd.accept()
        assert fake_vpcd.exchange(b"\x04") == contactless_atr()
        first.close()
        fake_vpcd.accept()
        assert fake_vpcd.exchange(SELECT_PPSE) == PPSE_FCI + SW_OK
        assert "power_off" in card.events  # the drop is a removal
    finally:
        stop_bridge(bridge, thread, fake_vpcd)


def test_bridge_stops_promptly_without_vpcd(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="emvkit.vpcd")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    # Its first pause between attempts is poll_interval / 4: far longer than the wait below.
    bridge = VpcdBridge(PPSECard(), port=port, poll_interval=8 * HANG_S)
    thread = threading.Thread(target=bridge.run, name="vpcd-bridge", daemon=True)
    thread.start()
    within(HANG_S, "the bridge trying vpcd").until(lambda: "waiting for vpcd" in caplog.text)
    bridge.close()  # interrupts the pause
    thread.join(HANG_S)
    assert not thread.is_alive()


def test_bridge_honours_external_stop_event(fake_vpcd: FakeVpcd) -> None:
    bridge = VpcdBridge(PPSECard(), port=fake_vpcd.port)
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
    thread.start()
    fake_vpcd.accept()
    assert fake_vpcd.exchange(b"\x04") == contactless_atr()
    with within(HANG_S, "the bridge stopping on its stop event"):
        stop.set()
        fake_vpcd.expect_removal()
        thread.join(HANG_S)
    assert not thread.is_alive()


def test_bridge_stop_is_bounded_when_vpcd_ignores_the_removal(fake_vpcd: FakeVpcd,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="emvkit.vpcd")
    bridge, thread = start_bridge(PPSECard(), fake_vpcd.port, removal_timeout=0.3)
    fake_vpcd.accept()
    assert fake_vpcd.exchange(b"\x04") == contactless_atr()
    bridge.close()  # the fake vpcd neither reads nor closes: the bridge gives up after removal_timeout
    thread.join(HANG_S)
    assert not thread.is_alive()
    assert "vpcd did not notice the removal within 0.3 s" in caplog.text


def test_serve_forever_stops_on_sigterm(fake_vpcd: FakeVpcd) -> None:
    port = fake_vpcd.port
    code = textwrap.dedent(
        f"""
        import sys
        from emvkit.terminal.emulator.vpcd import serve_forever
        class Card:
            def process(self, apdu): return b"\\x90\\x00"
        sys.exit(serve_forever(Card(), port={port}))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        # A connection to vpcd comes from run(), which starts once the handlers are in place.
        fake_vpcd.accept()
        assert fake_vpcd.exchange(b"\x04") == contactless_atr()
        proc.send_signal(signal.SIGTERM)
        fake_vpcd.expect_removal()
        assert proc.wait(HANG_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- end to end through pcscd -------------------------------------------------------------------

READER = "Virtual PCD 00 00"

# A PC/SC client run in a subprocess, so libpcsclite reads PCSCLITE_CSOCK_NAME from its
# environment. Argument: JSON {"apdus": [hex...], "wait_removal": seconds}. Prints one JSON line
# after the exchanges and, with wait_removal, a second once the reader reports the card gone.
CLIENT = textwrap.dedent(
    """
    import json, sys, time
    from smartcard import scard as s

    def check(rv, what):
        if rv != s.SCARD_S_SUCCESS:
            raise SystemExit(f"{what}: {s.SCardGetErrorMessage(rv)}")

    def wait_for(ctx, reader, flag, seconds):
        deadline, state = time.monotonic() + seconds, s.SCARD_STATE_UNAWARE
        while time.monotonic() < deadline:
            rv, states = s.SCardGetStatusChange(ctx, 100, [(reader, state)])
            if rv == s.SCARD_S_SUCCESS:
                state = states[0][1] & ~s.SCARD_STATE_CHANGED
                if state & flag:
                    return True
            elif rv != s.SCARD_E_TIMEOUT:
                check(rv, "SCardGetStatusChange")
        return False

    args = json.loads(sys.argv[1])
    reader = args.get("reader", "Virtual PCD 00 00")
    rv, ctx = s.SCardEstablishContext(s.SCARD_SCOPE_USER)
    check(rv, "SCardEstablishContext")
    rv, readers = s.SCardListReaders(ctx, [])
    check(rv, "SCardListReaders")
    result = {"readers": readers}
    if not wait_for(ctx, reader, s.SCARD_STATE_PRESENT, 10):
        raise SystemExit("no card after 10 s")
    rv, card, protocol = s.SCardConnect(
        ctx, reader, s.SCARD_SHARE_SHARED, s.SCARD_PROTOCOL_T0 | s.SCARD_PROTOCOL_T1)
    check(rv, "SCardConnect")
    rv, _, _, _, atr = s.SCardStatus(card)
    check(rv, "SCardStatus")
    result["atr"] = bytes(atr).hex()
    result["responses"] = []
    for apdu in args.get("apdus", []):
        rv, response = s.SCardTransmit(card, protocol, list(bytes.fromhex(apdu)))
        check(rv, "SCardTransmit")
        result["responses"].append(bytes(response).hex())
    check(s.SCardDisconnect(card, s.SCARD_LEAVE_CARD), "SCardDisconnect")
    print(json.dumps(result), flush=True)
    if args.get("wait_removal"):
        removed = wait_for(ctx, reader, s.SCARD_STATE_EMPTY, args["wait_removal"])
        print(json.dumps({"removed": removed}), flush=True)
    s.SCardReleaseContext(ctx)
    """
)


@pytest.fixture(scope="module")
def pcscd() -> Iterator[PrivatePcscd]:
    try:
        with PrivatePcscd() as daemon:
            yield daemon
    except PcscdUnavailable as exc:
        # `make test` installs pcscd and vsmartcard-vpcd: their absence is a failure, not a skip.
        pytest.fail(str(exc))


@pytest.fixture
def card() -> PPSECard:
    return PPSECard()


def start_inserted_bridge(card: PPSECard, pcscd: PrivatePcscd) -> tuple[VpcdBridge, threading.Thread]:
    """Start a bridge and wait until pcscd has powered the card: it has seen the insertion."""
    bridge, thread = start_bridge(card, pcscd.vpcd_port)
    if not card.powered_on.wait(HANG_S):
        stop_bridge(bridge, thread)
        raise AssertionError(f"pcscd did not power the card within {HANG_S:g} s\n" + pcscd.log_path.read_text())
    return bridge, thread


@pytest.fixture
def bridge(pcscd: PrivatePcscd, card: PPSECard) -> Iterator[VpcdBridge]:
    bridge, thread = start_inserted_bridge(card, pcscd)
    yield bridge
    stop_bridge(bridge, thread)


def client_env(pcscd: PrivatePcscd) -> dict[str, str]:
    return {**os.environ, **pcscd.env}


def run_client(pcscd: PrivatePcscd, *apdus: bytes) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, json.dumps({"apdus": [a.hex() for a in apdus]})],
        env=client_env(pcscd),
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert done.returncode == 0, done.stderr + "\n" + pcscd.log_path.read_text()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_private_pcscd_is_isolated(pcscd: PrivatePcscd) -> None:
    assert pcscd.socket_path.is_socket()
    assert pcscd.env == {"PCSCLITE_CSOCK_NAME": str(pcscd.socket_path)}
    if os.geteuid() == 0:
        assert not pcscd.shared  # root can always make a private mount namespace
    if not pcscd.shared:
        assert pcscd.socket_path.parent != Path("/run/pcscd")
        # Outside its namespace, /run/pcscd is not the private daemon's.
        system_pid = Path("/run/pcscd/pcscd.pid")
        assert not system_pid.exists() or system_pid.read_text().strip() != str(pcscd.pid)
        # Inside it, the work directory covers /run/pcscd and an empty one the USB drivers.
        mount_points = {line.split()[4] for line in Path(f"/proc/{pcscd.pid}/mountinfo").open()}
        assert "/run/pcscd" in mount_points
        assert "/usr/lib/pcsc/drivers" in mount_points or not Path("/usr/lib/pcsc/drivers").is_dir()


def test_pyscard_selects_ppse(pcscd: PrivatePcscd, bridge: VpcdBridge, card: PPSECard) -> None:
    result = run_client(pcscd, SELECT_PPSE, bytes.fromhex("00B2010C00"))
    assert READER in result["readers"]
    assert result["atr"] == contactless_atr().hex()
    assert result["responses"] == [(PPSE_FCI + SW_OK).hex(), SW_INS_NOT_SUPPORTED.hex()]
    assert "power_on" in card.events


def test_card_exception_answers_6f00_through_pcscd(pcscd: PrivatePcscd, bridge: VpcdBridge) -> None:
    result = run_client(pcscd, FAULTY_COMMAND, SELECT_PPSE)
    assert result["responses"] == [SW_NO_PRECISE_DIAGNOSIS.hex(), (PPSE_FCI + SW_OK).hex()]


def test_scriptor_selects_ppse(pcscd: PrivatePcscd, bridge: VpcdBridge, tmp_path: Path) -> None:
    assert Path("/usr/bin/scriptor").exists(), "pcsc-tools is not installed (make test installs it)"
    script = tmp_path / "select.scriptor"
    script.write_text("reset\n" + SELECT_PPSE.hex(" ").upper() + "\nexit\n")
    done = subprocess.run(
        ["scriptor", "-r", READER, str(script)],
        env=client_env(pcscd),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "90 00" in done.stdout, done.stdout


def test_closing_bridge_removes_card(pcscd: PrivatePcscd, card: PPSECard) -> None:
    bridge, thread = start_inserted_bridge(card, pcscd)
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, json.dumps({"apdus": [SELECT_PPSE.hex()], "wait_removal": HANG_S})],
        env=client_env(pcscd),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        first = json.loads(client.stdout.readline())
        assert first["responses"] == [(PPSE_FCI + SW_OK).hex()]
        stop_bridge(bridge, thread)
        second = json.loads(client.stdout.readline())
        # vpcd dropped the card before the bridge stopped, so pcscd reports it (the client's wait is a
        # hang bound; pcscd sees it at its next poll).
        assert second["removed"], second
        assert client.wait(HANG_S) == 0
    finally:
        stop_bridge(bridge, thread)
        if client.poll() is None:
            client.kill()
            client.wait()


def test_bridge_reconnects_after_pcscd_restart(pcscd: PrivatePcscd, card: PPSECard) -> None:
    bridge, thread = start_inserted_bridge(card, pcscd)
    try:
        run_client(pcscd, SELECT_PPSE)
        powered_before = card.events.count("power_on")
        card.powered_on.clear()
        pcscd.restart()
        assert card.powered_on.wait(HANG_S), "the new pcscd did not power the card"
        result = run_client(pcscd, SELECT_PPSE)
        assert result["responses"] == [(PPSE_FCI + SW_OK).hex()]
        assert card.events.count("power_on") > powered_before
        assert thread.is_alive()
    finally:
        stop_bridge(bridge, thread)


def test_new_bridge_right_after_close_is_a_new_card(pcscd: PrivatePcscd) -> None:
    # Without the removal handshake, pcscd would still show the old card and the client's
    # commands would go to its dead socket.
    first, first_thread = start_inserted_bridge(PPSECard(), pcscd)
    stop_bridge(first, first_thread)
    second_card = PPSECard()
    second, second_thread = start_bridge(second_card, pcscd.vpcd_port)
    try:
        result = run_client(pcscd, SELECT_PPSE)
        assert result["responses"] == [(PPSE_FCI + SW_OK).hex()]
        assert "power_on" in second_card.events
    finally:
        stop_bridge(second, second_thread)


# --- `emvkit emulate`: the real card application behind pcscd ---------------------------------


@pytest.fixture
def emulated_visa(pcscd: PrivatePcscd) -> Iterator[subprocess.Popen[str]]:
    emvkit = Path(sys.executable).parent / "emvkit"
    proc = subprocess.Popen(
        [str(emvkit), "emulate", "--profile", "visa", "--vpcd", f"127.0.0.1:{pcscd.vpcd_port}"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None and "emulating visa" in proc.stderr.readline()
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(HANG_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_emulate_cli_serves_the_card_to_pyscard(pcscd: PrivatePcscd, emulated_visa: subprocess.Popen[str]) -> None:
    aid = bytes.fromhex("A0000000031010")
    select_aid = bytes((0x00, 0xA4, 0x04, 0x00, len(aid))) + aid + b"\x00"
    result = run_client(pcscd, SELECT_PPSE, select_aid)
    ppse, fci = (bytes.fromhex(r) for r in result["responses"])
    assert ppse[-2:] == SW_OK and fci[-2:] == SW_OK
    assert tlv.find_value(tlv.decode(ppse[:-2]), 0x4F) == aid
    assert tlv.find_value(tlv.decode(fci[:-2]), 0x84) == aid
    assert tlv.find_value(tlv.decode(fci[:-2]), 0x9F38) is not None  # the PDOL
    assert result["atr"] == contactless_atr().hex()


def test_emulate_cli_answers_scriptor_and_stops_on_sigterm(
    pcscd: PrivatePcscd, emulated_visa: subprocess.Popen[str], tmp_path: Path
) -> None:
    run_client(pcscd)  # waits until pcscd sees the card (scriptor does not wait)
    script = tmp_path / "select.scriptor"
    script.write_text("reset\n" + SELECT_PPSE.hex(" ").upper() + "\nexit\n")
    done = subprocess.run(["scriptor", "-r", READER, str(script)], env=client_env(pcscd),
                          capture_output=True, text=True, timeout=15, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "90 00" in done.stdout and "32 50 41 59" in done.stdout  # 2PAY... in the FCI
    emulated_visa.send_signal(signal.SIGTERM)
    assert emulated_visa.wait(HANG_S) == 0
