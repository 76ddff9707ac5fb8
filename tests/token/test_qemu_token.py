"""The wearable token on the QEMU boards, as a user drives it: build, run, perso, provision, tap.

Every step is the ``emvkit`` command in a subprocess. Cryptograms are recomputed with pyemv from the
profile's issuer master key and the data the terminal sent (the trace), independently of emvkit's crypto.
"""

from __future__ import annotations

import datetime
import json
import os
import select
import signal
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyemv import cvn as pyemv_cvn

from emvkit.firmware import tlv
from emvkit.terminal.config_files import load_config
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from tests.conftest import ROOT, venv_tool

DEFAULT_CONFIG = ROOT / "terminal" / "kernel" / "default_terminal.toml"
PINNED_DATE = "2026-06-15"


def emvkit(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([venv_tool("emvkit"), *args], capture_output=True, text=True, timeout=timeout)


@dataclass
class RunningToken:
    url: str
    qemu_pid: int
    proc: subprocess.Popen[str]


@contextmanager
def token_run(board: str, image: Path, store: Path) -> Iterator[RunningToken]:
    """``emvkit token run`` in the background; yields once it printed the serial: URL; stops it with SIGTERM."""
    proc = subprocess.Popen([venv_tool("emvkit"), "token", "run", "--board", board, "--image", str(image),
                             "--store", str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "emvkit token run printed no URL within 60 s"
        url = proc.stdout.readline().strip()
        assert url.startswith("serial:/dev/pts/"), (url, proc.stderr.read() if proc.poll() is not None else "")
        banner = proc.stderr.readline()
        pid = int(banner.split("QEMU pid ")[1].split(")")[0])
        yield RunningToken(url, pid, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists (a zombie still counts as there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def info(url: str) -> dict[str, Any]:
    done = emvkit("token", "info", "--port", url, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def terminal_config(folder: Path, capk: Path) -> Path:
    """The default terminal configuration, also trusting the CA key ``emvkit perso`` wrote for the card."""
    text = DEFAULT_CONFIG.read_text()
    assert 'capk_files = ["builtin"]' in text
    path = folder / "term.toml"
    path.write_text(text.replace('capk_files = ["builtin"]', f'capk_files = ["builtin", "{capk}"]'))
    return path


def tap(url: str, config: Path, trace: Path) -> dict[str, Any]:
    done = emvkit("tap", "--reader", url, "--amount", "10.00", "--config", str(config), "--json", "--host", "none",
                  "--date", PINNED_DATE, "--trace", str(trace))
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- the cryptogram, recomputed with pyemv --------------------------------------------------------------


def _dol_values(dol: bytes, data: bytes) -> dict[int, bytes]:
    values, pos = {}, 0
    for tag, length in tlv.parse_dol(dol):
        values[tag] = data[pos:pos + length]
        pos += length
    assert pos == len(data), "the terminal sent data of another length than the DOL"
    return values


def expected_cryptogram(profile: dict[str, Any], trace: dict[str, Any], scheme: str) -> bytes:
    """The application cryptogram pyemv computes from the issuer master key and the exchanged data."""
    exchanges = [(bytes.fromhex(e["command"]), bytes.fromhex(e["response"])) for e in trace["exchanges"]]
    found: dict[int, bytes] = {}
    terminal: dict[int, bytes] = {}
    for command, response in exchanges:
        found.update(tlv.flatten(tlv.decode(response[:-2])) if len(response) > 2 else {})
        if command[1] == 0xA8 and 0x9F38 in found:  # GET PROCESSING OPTIONS: PDOL data in tag 83
            terminal.update(_dol_values(found[0x9F38], tlv.decode(command[5:-1])[0].value))
        elif command[1] == 0xAE:  # GENERATE AC: CDOL1 data
            terminal.update(_dol_values(found[0x8C], command[5:-1]))
    s = profile["secrets"]
    imk = bytes.fromhex(s["imk_ac"])
    inputs = {f"tag_{tag:x}": terminal[tag] for tag in (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37)}
    if scheme == "visa":
        visa = pyemv_cvn.VisaCVN18(iss_mk_ac=imk, iss_mk_smi=imk, iss_mk_smc=imk, pan=s["pan"], psn=s["psn"])
        return bytes(visa.generate_ac(**inputs, tag_82=found[0x82], tag_9f36=found[0x9F36], tag_9f10=found[0x9F10]))
    mastercard = pyemv_cvn.MasterCardCVN16(iss_mk_ac=imk, iss_mk_smi=imk, iss_mk_smc=imk, pan=s["pan"],
                                           psn=s["psn"])
    iad = found[0x9F10]
    assert iad[:2] == bytes.fromhex("0110"), "CVN 16"
    return bytes(mastercard.generate_ac(**inputs, tag_82=found[0x82], tag_9f36=found[0x9F36], cvr=iad[2:8]))


# --- the journey ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("board", "scheme", "oda"),
                         [("qemu_m3", "visa", "fDDA"), ("qemu_m0plus", "mastercard", "CDA")])
def test_build_run_provision_tap_then_reboot(images: dict[str, Path], tmp_path: Path, board: str, scheme: str,
                                             oda: str) -> None:
    card = tmp_path / "card.json"
    done = emvkit("perso", "--scheme", scheme, "--out", str(card))
    assert done.returncode == 0, done.stderr
    config = terminal_config(tmp_path, tmp_path / "card.capk.json")
    profile = json.loads(card.read_text())
    store = tmp_path / "store.bin"

    with token_run(board, images[board], store) as token:
        assert info(token.url)["personalised"] is False
        done = emvkit("token", "provision", "--port", token.url, "--card", str(card))
        assert done.returncode == 0, done.stderr
        first = tap(token.url, config, tmp_path / "t1.json")
        assert (first["outcome"], first["oda"], first["oda_result"], first["cid"]) == ("Approved", oda,
                                                                                        "successful", "40")
        trace = json.loads((tmp_path / "t1.json").read_text())
        assert bytes.fromhex(first["cryptogram"]) == expected_cryptogram(profile, trace, scheme)
        before = info(token.url)
        assert (before["board"], before["personalised"], before["atc"]) == (board, True, int(first["atc"], 16))
    assert token.proc.returncode == 0
    assert process_gone(token.qemu_pid), "QEMU outlived emvkit token run"

    with token_run(board, images[board], store) as token:  # the same image and flash: the same token
        again = info(token.url)
        assert (again["personalised"], again["profile"], again["atc"]) == (True, before["profile"], before["atc"])
        second = tap(token.url, config, tmp_path / "t2.json")
        assert second["outcome"] == "Approved"
        assert int(second["atc"], 16) > int(first["atc"], 16)
        trace = json.loads((tmp_path / "t2.json").read_text())
        assert bytes.fromhex(second["cryptogram"]) == expected_cryptogram(profile, trace, scheme)


def test_bad_provisioning_is_one_line_and_leaves_the_token_unchanged(images: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    card = tmp_path / "card.json"
    assert emvkit("perso", "--scheme", "visa", "--out", str(card)).returncode == 0
    doc = json.loads(card.read_text())
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(os.urandom(2000))
    truncated = tmp_path / "truncated.json"
    truncated.write_text(card.read_text()[: len(card.read_text()) // 2])
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({**doc, "applications": [{**doc["applications"][0], "scheme": "nosuchscheme"}]}))
    for path in (garbage, truncated, unknown):
        path.chmod(0o600)  # a profile file is refused when others can read it: each must fail for its own fault

    with token_run("qemu_m3", images["qemu_m3"], tmp_path / "store.bin") as token:
        assert emvkit("token", "provision", "--port", token.url, "--card", str(card)).returncode == 0
        state = info(token.url)
        for bad in (garbage, truncated, unknown, card):  # the last: a second provisioning without --force
            done = emvkit("token", "provision", "--port", token.url, "--card", str(bad))
            assert done.returncode == 2, (bad.name, done.stdout, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("emvkit token provision: error: "), (bad.name, lines)
            assert "chmod" not in lines[0], (bad.name, lines)
            assert "Traceback" not in done.stderr
            assert info(token.url) == state, bad.name
        forced = emvkit("token", "provision", "--port", token.url, "--card", str(card), "--force")
        assert forced.returncode == 0, forced.stderr


# --- byte for byte the emulator ------------------------------------------------------------------------------


def _responses(url: str) -> list[bytes]:
    request = TransactionRequest(amount=1234, date=datetime.date(2026, 6, 15),
                                 random=lambda n: bytes(range(1, n + 1)))
    with open_transport(url) as transport:
        tap_ = run_transaction(transport, load_config(), request)
    assert tap_.result.outcome.outcome is Outcome.APPROVED, tap_.result.error
    return [e.response or b"" for e in tap_.trace.exchanges]


@pytest.mark.parametrize("card", ["visa", "mastercard", "unionpay", "wearable", "unionpay-sm"])
@pytest.mark.parametrize("board", ["m3", "m0plus"])
def test_the_token_answers_as_the_emulator_with_the_random_source_pinned(qemu_env: dict[str, str], board: str,
                                                                         card: str) -> None:
    on_token = _responses(f"qemu:{board}?card={card}&rng=counting")
    in_process = _responses(f"emu:{card}?rng=counting")
    assert len(on_token) >= 6
    assert on_token == in_process


# --- the HIL scenarios on the booted board ----------------------------------------------------------------------


def _outcomes(dut: str, report: Path) -> dict[str, str]:
    done = subprocess.run([venv_tool("python"), "-m", "pytest", "hil_tests", "-q", "-p", "no:cacheprovider",
                           "--dut", dut, "--junitxml", str(report)], capture_output=True, text=True, cwd=ROOT,
                          timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcomes[name] = "skipped" if case.find("skipped") is not None else "passed"
    return outcomes


def test_the_hil_scenarios_pass_on_the_booted_board_as_under_micropython(qemu_env: dict[str, str],
                                                                          tmp_path: Path) -> None:
    on_qemu = _outcomes("qemu:m3", tmp_path / "qemu.xml")
    under_micropython = _outcomes("mpy:", tmp_path / "mpy.xml")
    assert sum(1 for o in on_qemu.values() if o == "passed") > 60
    assert on_qemu == under_micropython
