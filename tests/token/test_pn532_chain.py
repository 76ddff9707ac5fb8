"""The token on the air: ``emvkit tap --reader nfc:udp:...`` -> nfcpy -> the simulated PN532 -> the QEMU
board's second UART -> the firmware's PN532 driver -> the card application.

``emvkit token run --front-end pn532`` boots the board with ``frontend=pn532`` and the chip simulator on
UART1's pty; its stdout names the dev link (first line) and the nfc: URL to tap (second line). The token
is provisioned over the dev link while the driver already polls the chip, then tapped over the air.

The ``qemu:BOARD?front-end=pn532`` transport does the same in-process (one start-up of the chip, shared
with ``token run``); over it the HIL scenarios run on the chain and must pass as under ``mpy:``.
"""

from __future__ import annotations

import datetime
import json
import select
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from emvkit.terminal.config_files import load_config
from emvkit.terminal.endpoints import free_udp_port
from emvkit.terminal.errors import CardRemoved
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.qemu import QemuTransport
from tests.conftest import venv_tool
from tests.token.test_qemu_token import (
    _outcomes,
    emvkit,
    expected_cryptogram,
    info,
    process_gone,
    tap,
    terminal_config,
)

SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")


@contextmanager
def token_on_air(board: str, image: Path, store: Path) -> Iterator[tuple[str, str, int]]:
    """``emvkit token run --front-end pn532``; yields (serial URL, nfc URL, QEMU pid); stops it with SIGTERM."""
    proc = subprocess.Popen([venv_tool("emvkit"), "token", "run", "--board", board, "--image", str(image),
                             "--store", str(store), "--front-end", "pn532"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "emvkit token run printed no URL within 60 s"
        lines = [proc.stdout.readline().strip(), proc.stdout.readline().strip()]  # printed one after the other
        serial, nfc = lines
        assert serial.startswith("serial:/dev/pts/"), (lines, proc.stderr.read() if proc.poll() is not None else "")
        assert nfc.startswith("nfc:udp:127.0.0.1:"), lines
        banner = proc.stderr.readline()
        yield serial, nfc, int(banner.split("QEMU pid ")[1].split(")")[0])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait(30)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


@pytest.mark.parametrize(("board", "scheme", "oda"),
                         [("qemu_m3", "visa", "fDDA"), ("qemu_m0plus", "mastercard", "CDA")])
def test_provision_over_the_dev_link_then_tap_over_the_pn532(images: dict[str, Path], tmp_path: Path, board: str,
                                                              scheme: str, oda: str) -> None:
    card = tmp_path / "card.json"
    done = emvkit("perso", "--scheme", scheme, "--out", str(card))
    assert done.returncode == 0, done.stderr
    config = terminal_config(tmp_path, tmp_path / "card.capk.json")
    profile: dict[str, Any] = json.loads(card.read_text())

    with token_on_air(board, images[board], tmp_path / "store.bin") as (serial, nfc, qemu_pid):
        assert info(serial)["personalised"] is False
        done = emvkit("token", "provision", "--port", serial, "--card", str(card))
        assert done.returncode == 0, done.stderr
        atcs = []
        for n in (1, 2):  # the driver arms the chip again after each tap
            result = tap(f"{nfc}?timeout=20", config, tmp_path / f"t{n}.json")
            assert (result["outcome"], result["oda"], result["oda_result"]) == ("Approved", oda, "successful")
            trace = json.loads((tmp_path / f"t{n}.json").read_text())
            assert bytes.fromhex(result["cryptogram"]) == expected_cryptogram(profile, trace, scheme)
            atcs.append(int(result["atc"], 16))
        assert atcs[1] > atcs[0]
        after = info(serial)  # the dev link still answers, and saw the taps' ATC
        assert (after["board"], after["personalised"], after["atc"]) == (board, True, atcs[1])
    assert process_gone(qemu_pid), "QEMU outlived emvkit token run"


# --- the qemu: transport with the front end ----------------------------------------------------------------


def test_token_run_with_the_rf_port_taken_is_one_line_and_leaves_no_qemu(images: dict[str, Path],
                                                                           tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", free_udp_port()))
        port = taken.getsockname()[1]
        done = emvkit("token", "run", "--board", "qemu_m3", "--image", str(images["qemu_m3"]),
                      "--store", str(tmp_path / "store.bin"), "--front-end", "pn532", "--nfc", f"udp:127.0.0.1:{port}")
    assert (done.returncode, done.stdout) == (2, ""), done
    assert done.stderr.splitlines() == [
        f"emvkit token run: error: the simulated pn532 did not start on udp:127.0.0.1:{port}: the simulated chip's "
        f"RF side did not start: udp port {port} is in use (another listener?)"]


def test_the_qemu_transport_with_the_front_end_carries_every_apdu_over_the_chip(qemu_env: dict[str, str]) -> None:
    transport = open_transport("qemu:m3?card=visa&front-end=pn532")
    assert isinstance(transport, QemuTransport)
    with transport:
        assert transport.chip is not None and transport.air is not None
        assert transport.atr == transport.air.atr and transport.atr[:1] == b"\x3b"  # built from the ATS
        chip = transport.chip.link.chip
        request = TransactionRequest(amount=1234, date=datetime.date(2026, 6, 15))
        done = run_transaction(transport, load_config(), request)
        assert (done.result.outcome.outcome, done.result.oda_result) == (Outcome.APPROVED, "successful")
        apdus = len(done.trace.exchanges)
        assert apdus >= 6
        assert chip.log.count("cmd 8E") == apdus  # each R-APDU handed to the chip with TgSetData
        transport.chip.simulator.close()  # the field goes: the reader loses the card
        assert transport.card_present() is False
        with pytest.raises(CardRemoved):
            transport.transmit(SELECT_PPSE)


def test_the_hil_scenarios_pass_over_the_pn532_chain_as_under_micropython(qemu_env: dict[str, str],
                                                                          tmp_path: Path) -> None:
    on_air = _outcomes("qemu:m3?front-end=pn532", tmp_path / "chain.xml")
    under_micropython = _outcomes("mpy:", tmp_path / "mpy.xml")
    assert sum(1 for o in on_air.values() if o == "passed") > 60
    assert on_air == under_micropython
