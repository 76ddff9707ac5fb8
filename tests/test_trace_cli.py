"""``emvkit trace show|convert``, ``--timeline``, ``--html`` (checked in headless Chromium), and the
trace files of ``tap --trace`` / ``watch --trace DIR``: created before the card is touched.

The built-in emulated Visa card's PAN is 4761739001010119 (terminal/perso/profiles/visa.json).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from emvkit.terminal.cli import main
from emvkit.terminal.transport.emu import EmulatorTransport
from emvkit.terminal.transport.trace import load_trace, read_trace_file
from tests.conftest import venv_tool

PAN = "4761739001010119"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def trace_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "t.json"
    assert main(["tap", "--reader", "emu:visa", "--trace", str(path)]) == 0
    capsys.readouterr()
    return path


def test_show_names_each_apdu_and_masks_the_pan(trace_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "show", str(trace_json)]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^\s*\d+\. ", out, re.M)) == len(load_trace(trace_json).exchanges) == 7
    for name in ("SELECT PPSE", "SELECT A0000000031010", "GET PROCESSING OPTIONS", "READ RECORD 1.1"):
        assert name in out
    assert "R-APDU SW 9000 normal processing" in out
    assert "50 Application Label [11] \"VISA CREDIT\"" in out
    assert PAN not in out and "476173******0119" in out
    assert main(["trace", "show", "--reveal", str(trace_json)]) == 0
    assert PAN in capsys.readouterr().out


def test_timeline_in_the_terminal(trace_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "show", "--timeline", str(trace_json)]) == 0
    out = capsys.readouterr().out
    assert "Timeline against the 500 ms budget" in out
    assert len(re.findall(r"estimated tap at +\d+ kbit/s", out)) == 4
    assert len(re.findall(r"^ {15}\[[# |]{51}\]$", out, re.M)) == 7  # one bar per APDU


def test_timeline_air_time_of_a_select_at_106_kbits() -> None:
    """One short exchange worked by hand: SELECT PPSE (20 bytes) in one I-block of 23 bytes with PCB and
    CRC_A, answered by 6F..9000 (20 bytes) in an I-block of 23 bytes; 1 etu = 128 / 13.56 MHz."""
    from emvkit.terminal.timeline import apdu_air_s

    command = bytes.fromhex("00A404000E325041592E5359532E444446303100")
    response = bytes.fromhex("6F0A840E325041592E5359532E4444463031") + b"\x90\x00"
    etu = 128 / 13.56e6
    frames = (2 + 9 * 23) * etu + (2 + 9 * 23) * etu
    # the reader's frame ends in CRC_A 0x42 (E0 42 on the air: parity of 0x42 is 1), card -> reader 1172 / fc
    delays = (9 * 128 + 84) / 13.56e6 + 1172 / 13.56e6
    assert apdu_air_s(command, response, 106) == pytest.approx(frames + delays, rel=1e-9)
    assert apdu_air_s(command, response, 848) < apdu_air_s(command, response, 106) / 4


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make debs installs it)")
def test_html_report_in_headless_chromium(trace_json: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "r.html"
    assert main(["trace", "show", str(trace_json), "--html", str(page)]) == 0
    html = page.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert CHROMIUM is not None
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=True)
    dom = done.stdout
    assert len(re.findall(r'<g class="apdu" id="apdu-\d+"', dom)) == 7
    assert 'id="budget-line"' in dom and "500 ms budget" in dom
    assert len(re.findall(r'<g class="estimate-row"', dom)) == 4
    # the script ran: only the 106 kbit/s air bars are shown
    assert re.search(r'<rect class="air" data-rate="212"[^>]*style="display: none;"', dom)
    assert not re.search(r'<rect class="air" data-rate="106"[^>]*style="display: none;"', dom)
    assert "Application Label" in dom and "476173******0119" in dom and PAN not in dom


def test_convert_and_malformed_files_are_one_line_exit_2(tmp_path: Path, trace_json: Path) -> None:
    emvkit = venv_tool("emvkit")
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(b"\x0a\x0d\x0d\x0a\x00\x00")
    for args in (["trace", "show", str(bad)], ["trace", "convert", str(bad), str(tmp_path / "x.json")],
                 ["trace", "show", str(tmp_path / "missing.json")], ["trace", "show", str(tmp_path / "t.bin")]):
        done = subprocess.run([emvkit, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, args
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "x.json").exists()
    done = subprocess.run([emvkit, "trace", "convert", str(trace_json), str(tmp_path / "t.pcap")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert [e.command for e in read_trace_file(tmp_path / "t.pcap").exchanges] == \
        [e.command for e in load_trace(trace_json).exchanges]


class _Counting:
    """Counts what reaches the emulated card (the real card application still answers)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = self.apdus = 0
        real_open, real_transmit = EmulatorTransport.open, EmulatorTransport._transmit

        def counted_open(transport: EmulatorTransport) -> None:
            self.opened += 1
            real_open(transport)

        def counted_transmit(transport: EmulatorTransport, command: bytes) -> bytes:
            self.apdus += 1
            return real_transmit(transport, command)

        monkeypatch.setattr(EmulatorTransport, "open", counted_open)
        monkeypatch.setattr(EmulatorTransport, "_transmit", counted_transmit)


def test_trace_to_a_missing_directory_fails_before_the_card_is_touched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    card = _Counting(monkeypatch)
    assert main(["tap", "--reader", "emu:visa", "--trace", str(tmp_path / "nowhere" / "t.pcapng")]) == 2
    assert "no directory" in capsys.readouterr().err
    assert (card.opened, card.apdus) == (0, 0)
    assert main(["watch", "--reader", "emu:visa", "--count", "1", "--trace", str(tmp_path / "nowhere")]) == 2
    assert (card.opened, card.apdus) == (0, 0)
    assert main(["tap", "--reader", "emu:visa", "--trace", str(tmp_path / "t.json")]) == 0
    assert card.apdus == 7  # the counter counts


def test_tap_writes_the_trace_of_a_failed_transaction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "torn.pcapng"
    main(["tap", "--reader", "emu:visa?tear=3", "--trace", str(path)])
    assert "OUTCOME" in capsys.readouterr().out
    trace = read_trace_file(path)
    assert len(trace.exchanges) == 4 and trace.exchanges[-1].response is None  # torn before command 4
    assert trace.exchanges[-1].error and trace.meta["reader"] == "emu:visa?tear=3"
    assert path.stat().st_mode & 0o777 == 0o600


def test_watch_writes_one_trace_per_tap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "--reader", "emu:visa", "--count", "2", "--trace", str(tmp_path),
                 "--trace-format", "pcapng"]) == 0
    files = sorted(tmp_path.iterdir())
    assert [re.fullmatch(r"tap-\d{8}-\d{6}-000[12]\.pcapng", f.name) is not None for f in files] == [True, True]
    assert all(len(read_trace_file(f).exchanges) == 7 and f.stat().st_mode & 0o777 == 0o600 for f in files)
