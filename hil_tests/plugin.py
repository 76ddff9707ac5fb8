"""The ``emvkit.hil`` pytest plugin: ``--dut``, the ``dut`` fixture, the markers and the report sections.

Installed with emvkit (entry point ``pytest11``), so any project's tests can ask for the ``dut`` fixture,
and the scenario catalogue runs from anywhere::

    pytest --pyargs emvkit.hil --dut emu:        # or: python -m emvkit.hil --dut emu:

Where the DUT comes from, first match wins: the test's parameter
(``@pytest.mark.parametrize("dut", ["mpy:"], indirect=True)``), then
``--dut URL``, then ``emu:``. A failing scenario's report carries its last taps step by step and the
files its traces were saved to (also as JUnit properties ``dut_trace``).
"""

from __future__ import annotations

import re
from collections.abc import Generator
from pathlib import Path

import pytest

from emvkit.hil.dut import DEFAULT_DUT, Dut
from emvkit.terminal.errors import EmvkitError
from emvkit.terminal.transport import make_transport

DUT_KEY = pytest.StashKey[Dut]()
TRACE_DIR_KEY = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "emvkit hardware-in-the-loop scenarios")
    group.addoption("--dut", metavar="URL", default=None,
                    help=f"the device under test: emu:, mpy:, pcsc:0, ... (default {DEFAULT_DUT})")
    group.addoption("--dut-card", metavar="NAME", default=None,
                    help="real readers only: the built-in profile (visa, mastercard, ...) the card on the "
                         "reader was personalised with, so scenarios asking for that card run")
    group.addoption("--dut-traces", metavar="DIR", default=None,
                    help="where a failing scenario's traces are saved (default: a folder under pytest's "
                         "temporary directory)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "card(name, cdcvm=False): the built-in card the scenario taps when it names none; "
                   "cdcvm=True: the wearable's on-device verification has just succeeded (emu: only)")
    config.addinivalue_line(
        "markers", "faults(*faults): faults the scenario needs, as URL options (corrupt=9F4B: also the "
                   "default of dut.open) or bare kinds (tear, sw, corrupt, latency); skipped where the DUT "
                   "cannot inject them")


def _dut_url(config: pytest.Config) -> str:
    url: str | None = config.getoption("--dut", default=None)
    return url or DEFAULT_DUT


def pytest_sessionstart(session: pytest.Session) -> None:
    """A --dut no transport handles stops the run before any scenario."""
    url = _dut_url(session.config)
    try:
        make_transport(url)  # creates, does not open
    except EmvkitError as exc:
        raise pytest.UsageError(f"--dut {url}: {exc}") from exc


def pytest_report_header(config: pytest.Config) -> str:
    return Dut(_dut_url(config), reader_card=config.getoption("--dut-card", default=None)).describe()


@pytest.fixture
def dut(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Dut:
    """The device under test, set up with the scenario's markers; skips what it cannot do."""
    url = getattr(request, "param", None) or _dut_url(request.config)
    card_marker = request.node.get_closest_marker("card")
    faults_marker = request.node.get_closest_marker("faults")
    card = card_marker.args[0] if card_marker is not None and card_marker.args else None
    cdcvm = bool(card_marker.kwargs.get("cdcvm", False)) if card_marker is not None else False
    declared: tuple[str, ...] = faults_marker.args if faults_marker is not None else ()
    device = Dut(url, reader_card=request.config.getoption("--dut-card", default=None), card=card,
                 faults="&".join(f for f in declared if "=" in f), cdcvm=cdcvm)
    device.require(card, "&".join(declared), cdcvm)
    request.node.stash[DUT_KEY] = device
    request.node.stash[TRACE_DIR_KEY] = _trace_dir(request.config, tmp_path_factory)
    return device


def _trace_dir(config: pytest.Config, factory: pytest.TempPathFactory) -> Path:
    chosen: str | None = config.getoption("--dut-traces", default=None)
    return Path(chosen) if chosen else factory.getbasetemp() / "dut-traces"


def _save_traces(item: pytest.Item, device: Dut) -> list[Path]:
    """The failing scenario's last traces as trace files (mode 0600: they hold card data)."""
    folder = item.stash.get(TRACE_DIR_KEY, None)
    if folder is None or not device.traces:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-150:]
    paths = []
    for i, trace in enumerate(device.traces, 1):
        path = folder / f"{stem}.{i}.json"
        trace.save(path)
        paths.append(path)
    return paths


@pytest.fixture
def profile_dir(dut: Dut, tmp_path: Path) -> Path:
    """Where a scenario writes the profile of a card it personalises; skips on DUTs that cannot load one."""
    dut.require(card=tmp_path)
    return tmp_path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    """A failed scenario's report shows its last taps on the DUT, step by step."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    device = item.stash.get(DUT_KEY, None)
    if report.failed and device is not None and device.log:
        report.sections.append(("DUT taps", "\n\n".join(device.log)))
        paths = _save_traces(item, device)
        if paths:
            report.sections.append(("DUT traces", "\n".join(str(p) for p in paths)))
            item.user_properties.extend(("dut_trace", str(p)) for p in paths)  # JUnit reads them at teardown
