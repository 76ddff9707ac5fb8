"""The emulated card's persistent state on the host: state files, ``emvkit emulate --state``,
``emu:...?state=FILE``, and ``kill -9`` in the middle of taps.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from emvkit.firmware import link, tlv
from emvkit.firmware.payapp.state import CardState
from emvkit.firmware.store import STATE_SLOT_SIZE, encode_record
from emvkit.terminal.config_files import load_config
from emvkit.terminal.emulator.state import StateFile, default_state_path, shown_path, state_dir
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from tests.conftest import serving_line, venv_tool

PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")
SELECT_VISA = bytes.fromhex("00A4040007A000000003101000")
GET_ATC = bytes.fromhex("80CA9F3600")
CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F37049F35019F3403")


# --- StateFile and the default places ---


def test_default_state_places(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_path("visa") == tmp_path / "xdg" / "emvkit" / "visa.state"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")  # not absolute: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "emvkit"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_path("mastercard") == tmp_path / "home" / ".local" / "state" / "emvkit" / "mastercard.state"
    assert default_state_path("cards/my card.json") == Path("cards/my card.state")
    assert default_state_path("/x/token") == Path("/x/token.state")


def test_state_file_is_private_locked_and_released(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "visa.state"
    state = StateFile(path, make_dir=True)
    store = state.open(CardState(atc=5))
    assert store.load().atc == 5
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    with pytest.raises(ConfigError, match="in use"):
        StateFile(path).open(CardState())
    store.save(store.load())
    state.close()
    again = StateFile(path)
    assert again.open(CardState()).load().atc == 5
    again.close()


def _corrupt_files(tmp_path: Path) -> list[tuple[Path, str]]:
    garbage = tmp_path / "garbage.state"
    garbage.write_bytes(b'{"format": "emvkit-card"}\n')
    nonsense = tmp_path / "nonsense.state"  # a good record whose payload is not a card state
    nonsense.write_bytes(encode_record(0, b'{"atc":"one"}'))
    long_garbage = tmp_path / "long.state"
    long_garbage.write_bytes(os.urandom(STATE_SLOT_SIZE + 100))
    directory = tmp_path / "dir.state"
    directory.mkdir()
    return [(garbage, "no valid record"), (nonsense, "atc must be an integer"), (long_garbage, "no valid record"),
            (directory, "cannot open the state file")]


def test_emulate_refuses_a_corrupt_state_file_and_leaves_it_alone(tmp_path: Path) -> None:
    for path, words in _corrupt_files(tmp_path):
        before = (path.read_bytes(), path.stat().st_mtime_ns) if path.is_file() else None
        result = subprocess.run([venv_tool("emvkit"), "emulate", "--profile", "visa", "--tcp", "127.0.0.1:0",
                                 "--state", str(path)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"emvkit emulate: error: {path}: ") and words in result.stderr, result.stderr
        if before is not None:
            assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_emu_refuses_a_corrupt_state_file(tmp_path: Path) -> None:
    for path, words in _corrupt_files(tmp_path):
        with pytest.raises(ConfigError, match=words):
            open_transport(f"emu:visa?state={path}")


# --- emu:...?state=FILE ---


def _quick_gpo_atc(card_url: str) -> int:
    """One qVSDC GPO on a fresh transport; the ATC of its cryptogram."""
    with open_transport(card_url) as card:
        card.transmit(PPSE)
        fci = tlv.decode(card.transmit(SELECT_VISA)[:-2])
        pdol = tlv.find_value(fci, 0x9F38) or b""
        response = card.transmit(_gpo(tlv.build_dol(pdol, _terminal_data(b"\x01\x02\x03\x04"))))
    assert response[-2:] == b"\x90\x00"
    return int.from_bytes(tlv.flatten(tlv.decode(response[:-2]))[0x9F36], "big")


def test_emu_state_keeps_the_atc_across_transport_opens(tmp_path: Path) -> None:
    path = tmp_path / "visa.state"
    assert [_quick_gpo_atc(f"emu:visa?state={path}") for _ in range(3)] == [1, 2, 3]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [_quick_gpo_atc("emu:visa") for _ in range(2)] == [1, 1]  # the in-memory default
    held = open_transport(f"emu:visa?state={path}")
    with pytest.raises(ConfigError, match="in use"):
        open_transport(f"emu:visa?state={path}")
    held.close()
    assert _quick_gpo_atc(f"emu:visa?state={path}") == 4


# --- emvkit emulate --tcp with a state file, as a subprocess ---


@contextmanager
def emulator(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    proc = subprocess.Popen([venv_tool("emvkit"), "emulate", "--profile", "visa", "--tcp", "127.0.0.1:0", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        banner, address = serving_line(proc)
        yield banner, address, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()


def _tap_atc(address: str) -> int:
    """A kernel tap through serial:socket://; the card's ATC after it."""
    with open_transport(f"serial:socket://{address}?timeout=5") as card:
        tap = run_transaction(card, load_config(), TransactionRequest(amount=1234))
        assert not tap.result.error, tap.result.error
        response = card.transmit(GET_ATC)
    return int.from_bytes(response[3:5], "big")


def test_emulate_keeps_a_builtin_cards_state_in_the_users_state_directory(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "xdg"))
    path = tmp_path / "xdg" / "emvkit" / "visa.state"
    atcs = []
    for _ in range(2):
        with emulator(env=env) as (banner, address, proc):
            assert banner == f"emulating visa on tcp 127.0.0.1:0 (state {path}); stop with Ctrl-C"
            atcs.append(_tap_atc(address))
            atcs.append(_tap_atc(address))
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
    assert atcs == [1, 2, 3, 4]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with emulator("--state", "none", env=env) as (banner, address, _):
        assert "(state in memory)" in banner
        assert _tap_atc(address) == 1


def test_a_second_emulator_on_the_same_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "visa.state"
    with emulator("--state", str(path)) as (_, address, _):
        second = subprocess.run([venv_tool("emvkit"), "emulate", "--profile", "visa", "--tcp", "127.0.0.1:0",
                                 "--state", str(path)], capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert second.stderr == f"emvkit emulate: error: {path}: the state file is in use (another emulator " \
                                "runs this card)\n"
        assert _tap_atc(address) == 1


# --- kill -9 ---


def _gpo(pdol_data: bytes) -> bytes:
    body = tlv.encode_tlv(0x83, pdol_data)
    return bytes((0x80, 0xA8, 0x00, 0x00, len(body))) + body + b"\x00"


def _terminal_data(un: bytes, quick: bool = True) -> dict[int, bytes]:
    return {
        # TTQ: qVSDC (byte 1 bit 6) or not: then the card answers AIP/AFL and waits for GENERATE AC.
        0x9F66: bytes.fromhex("36004000" if quick else "16004000"),
        0x9F02: bytes.fromhex("000000000500"), 0x9F03: bytes(6), 0x9F1A: bytes.fromhex("0250"), 0x95: bytes(5),
        0x5F2A: bytes.fromhex("0978"), 0x9A: bytes.fromhex("260102"), 0x9C: b"\x00", 0x9F37: un,
        0x9F35: b"\x22", 0x9F34: bytes.fromhex("1F0302"),
    }


class _Killed(Exception):
    """The emulator was killed at the planned point."""


@dataclass
class _Terminal:
    """A terminal on the link framing over TCP (what ``serial:socket://`` speaks), APDU by APDU.

    It speaks the frames itself so that it can send a command and kill the
    emulator before the answer comes back. ``kill_after`` APDUs are answered;
    then the emulator gets SIGKILL, after the next command was sent when
    ``in_flight``; an answer that still arrives counts as one that reached the
    terminal.
    """

    proc: subprocess.Popen[bytes]
    sock: socket.socket
    kill_after: int
    in_flight: bool
    answered: int = 0
    seq: int = 0
    decoder: link.Decoder = field(default_factory=link.Decoder)

    def request(self, ftype: int, payload: bytes = b"") -> bytes:
        self.seq = (self.seq + 1) & 0xFF
        kill_now = ftype == link.APDU_COMMAND and self.answered == self.kill_after
        if kill_now and not self.in_flight:
            self._kill()
            raise _Killed(b"")
        self.sock.sendall(link.encode_frame(ftype, self.seq, payload))
        if kill_now:
            self._kill()
        answer = self._answer()
        if ftype == link.APDU_COMMAND:
            self.answered += 1
        if kill_now:
            raise _Killed(answer)
        return answer

    def _kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def _answer(self) -> bytes:
        while True:
            try:
                data = self.sock.recv(4096)
            except ConnectionResetError:
                data = b""
            if not data:
                if self.proc.poll() is not None:
                    return b""  # killed: no answer
                raise AssertionError("the emulator closed the link")
            for event in self.decoder.feed(data):
                if isinstance(event, link.Frame) and event.seq == self.seq and event.type != link.LOG:
                    assert event.type in (link.ATR, link.APDU_RESPONSE), event
                    return bytes(event.payload)


def _cryptogram(response: bytes) -> tuple[int, bytes] | None:
    """(ATC, AC) of a response carrying an application cryptogram."""
    if len(response) <= 2 or response[-2:] != b"\x90\x00":
        return None
    found = tlv.flatten(tlv.decode(response[:-2]))
    if 0x9F26 not in found:
        return None
    return int.from_bytes(found[0x9F36], "big"), found[0x9F26]


def _transactions(terminal: _Terminal, rng: random.Random, seen: list[tuple[int, bytes]]) -> None:
    """Transactions until the emulator is killed: qVSDC (the cryptogram in the GPO response) or the
    GENERATE AC path (GPO, records, then the cryptogram); every cryptogram that reaches us goes to ``seen``."""

    def apdu(command: bytes) -> bytes:
        try:
            response = terminal.request(link.APDU_COMMAND, command)
        except _Killed as killed:
            hit = _cryptogram(killed.args[0])
            if hit:
                seen.append(hit)
            raise
        hit = _cryptogram(response)
        if hit:
            seen.append(hit)
        return response

    while True:
        quick = rng.random() < 0.5
        data = _terminal_data(rng.randbytes(4), quick)
        apdu(PPSE)
        fci = tlv.decode(apdu(SELECT_VISA)[:-2])
        gpo = apdu(_gpo(tlv.build_dol(tlv.find_value(fci, 0x9F38) or b"", data)))
        afl = tlv.flatten(tlv.decode(gpo[:-2]))[0x94]
        for i in range(0, len(afl), 4):
            for number in range(afl[i + 1], afl[i + 2] + 1):
                apdu(bytes((0x00, 0xB2, number, (afl[i] & 0xF8) | 4, 0x00)))
        if not quick:
            body = tlv.build_dol(CDOL1, data)
            apdu(bytes((0x80, 0xAE, 0x40, 0x00, len(body))) + body + b"\x00")


KILLS = 100


def test_kill_9_never_releases_two_cryptograms_under_one_atc(tmp_path: Path) -> None:
    rng = random.Random(20260102)
    path = tmp_path / "visa.state"
    seen: list[tuple[int, bytes]] = []
    rounds: list[int] = []  # cryptograms seen per emulator run
    in_flight_kills = 0
    for _ in range(KILLS):
        in_flight = rng.random() < 0.5
        in_flight_kills += in_flight
        before = len(seen)
        with emulator("--state", str(path)) as (_, address, proc):
            host, port = address.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                terminal = _Terminal(proc, sock, kill_after=rng.randrange(0, 24), in_flight=in_flight)
                terminal.request(link.POWER_ON)
                with pytest.raises(_Killed):
                    _transactions(terminal, rng, seen)
            assert proc.wait(10) == -signal.SIGKILL
        rounds.append(len(seen) - before)
    atcs = [atc for atc, _ in seen]
    assert len(set(atcs)) == len(atcs), "two cryptograms under one ATC"
    assert atcs == sorted(atcs), "an ATC went backwards across a restart"
    assert len(seen) > KILLS and sum(1 for n in rounds if n == 0) < KILLS // 2
    assert in_flight_kills > KILLS // 4
    with emulator("--state", str(path)) as (_, address, _):
        assert _tap_atc(address) > atcs[-1]
    print(f"kill -9: {KILLS} kills ({in_flight_kills} with a command in flight), {len(seen)} cryptograms, "
          f"{len(set(atcs))} distinct ATCs, last ATC {atcs[-1]}")


def test_messages_show_a_path_under_home_as_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home" / "someone"
    monkeypatch.setenv("HOME", str(home))
    inside = home / ".local" / "state" / "emvkit" / "visa.state"
    assert shown_path(inside) == "~/.local/state/emvkit/visa.state"
    outside = tmp_path / "elsewhere" / "card.state"
    assert shown_path(outside) == str(outside)
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"not a store, not empty" * 10)
    with pytest.raises(ConfigError) as caught:
        StateFile(inside).open(CardState())
    assert str(caught.value).startswith("~/.local/state/emvkit/visa.state: ")
