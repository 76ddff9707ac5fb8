"""pytest plumbing of the hardware-in-the-loop suite: ``--dut``, the ``dut``
fixture and the two markers (see README.md).

Where the DUT comes from, first match wins: the test's parameter
(``@pytest.mark.parametrize("dut", ["mpy:"], indirect=True)``), then
``--dut URL``, then ``emu:``.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from emvkit.hil.dut import DEFAULT_DUT, Dut
from emvkit.terminal.errors import EmvkitError
from emvkit.terminal.transport import make_transport

DUT_KEY = pytest.StashKey[Dut]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "emvkit hardware-in-the-loop scenarios")
    group.addoption("--dut", metavar="URL", default=None,
                    help=f"the device under test: emu:, mpy:, pcsc:0, ... (default {DEFAULT_DUT})")
    group.addoption("--dut-card", metavar="NAME", default=None,
                    help="real readers only: the built-in profile (visa, mastercard, ...) the card on the "
                         "reader was personalised with, so scenarios asking for that card run")


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
def dut(request: pytest.FixtureRequest) -> Dut:
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
    return device


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
