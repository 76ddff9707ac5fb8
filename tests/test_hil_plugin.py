"""The ``emvkit.hil`` pytest plugin, used as another project would: from a folder outside the repository.

Each run is a separate pytest process in ``tmp_path`` (no conftest, no ini of ours): the plugin comes
from the installed entry point alone.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import ROOT

_USER_SCENARIOS = '''
import pytest

from emvkit.terminal.kernel.outcome import Outcome


@pytest.mark.card("visa")
def test_my_own_scenario(dut):
    tap = dut.tap(1000)
    assert tap.result.outcome.outcome is Outcome.APPROVED


def test_a_failing_scenario_attaches_its_trace(dut):
    dut.tap(1000, card="mastercard")
    assert False, "failed on purpose"
'''


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_a_users_own_scenarios_get_the_dut_fixture_and_failed_traces(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(_USER_SCENARIOS)
    traces = tmp_path / "traces"
    # per-testcase properties are in the xunit1 JUnit family (pytest leaves them out of xunit2)
    done = _pytest(tmp_path, "--dut", "emu:", "--dut-traces", str(traces), "--junitxml", "report.xml",
                   "-o", "junit_family=xunit1", "-q")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 passed" in done.stdout
    assert "DUT taps" in done.stdout and "DUT traces" in done.stdout
    saved = sorted(traces.glob("*.json"))
    assert len(saved) == 1 and "test_a_failing_scenario" in saved[0].name
    assert stat.S_IMODE(saved[0].stat().st_mode) == 0o600
    assert '"format": "emvkit-trace"' in saved[0].read_text()
    root = ET.parse(tmp_path / "report.xml").getroot()
    props = [(p.get("name"), p.get("value")) for p in root.iter("property")]
    assert props == [("dut_trace", str(saved[0]))]


def test_the_catalogue_runs_from_any_folder_with_junit(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "emvkit.hil", "--dut", "emu:", "-q", "-p", "no:cacheprovider",
                           "--junitxml", "hil.xml"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    suite = ET.parse(tmp_path / "hil.xml").getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("tests", "0")) > 100
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
    # the same scenarios as a run inside the repository collects
    inside = _pytest(ROOT, "hil_tests", "--collect-only", "-q")
    assert f"{suite.get('tests')} tests collected" in inside.stdout, inside.stdout[-500:]


def test_a_bad_dut_stops_the_run_before_any_scenario(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(_USER_SCENARIOS)
    done = _pytest(tmp_path, "--dut", "nosuchscheme:x", "-q")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "--dut nosuchscheme:x" in done.stderr
