"""Shared test helpers."""

from __future__ import annotations

import itertools
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def venv_tool(name: str) -> str:
    """A console tool installed next to the running interpreter (or on PATH)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make test`, which installs the dev extras")
    return found


@pytest.fixture(autouse=True)
def _private_state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh $XDG_STATE_HOME per test: `emvkit emulate --profile NAME` keeps the card's state there,
    never in the user's own directory, and no two tests share a card's counters (or its lock). The same for
    $XDG_DATA_HOME, where `emvkit capk import` keeps the CA public keys tap, watch and info use."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))


class within:  # a clause: `with within(60, "watch stopping"):`
    """A hang detector, never a speed check: the one place a test bounds wall-clock time.

    ``seconds`` is a generous upper bound on something that should take a
    fraction of it, chosen so that it holds on a loaded 2-core machine; passing
    it means "hung" (or waited for a timeout the test made longer than the
    bound), not "slow". ``with within(60, "watch stopping on SIGINT"):`` fails
    when the block took longer; ``until(condition)`` polls for an event that
    leaves no other trace (a thread's state, a file, a counter) up to the bound;
    ``left()`` is what remains, for a blocking call's own timeout.
    """

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def until(self, condition: Callable[[], object], interval: float = 0.01) -> None:
        """Return as soon as ``condition()`` is true; AssertionError when the bound passes first."""
        while not condition():
            if self.expired():
                raise AssertionError(f"{self.what}: not seen within {self.seconds:g} s (a hang)")
            time.sleep(interval)  # a poll interval, not a wait for readiness

    def __enter__(self) -> within:
        self.deadline = time.monotonic() + self.seconds
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None and self.expired():
            raise AssertionError(f"{self.what}: not done within {self.seconds:g} s (a hang)")


HANG_S = 60.0  # the usual bound: what takes milliseconds alone takes seconds beside other CPU-bound jobs


# Modules whose tests start services (pcscd), ptys, nfcpy links or subprocess servers: marked slow, so
# `make test-fast` (and the pre-commit hook) leaves them out; `make test` runs everything.
SLOW_MODULES = frozenset({"test_pcsc", "test_vpcd", "test_nfc", "test_serial", "test_hil_plugin",
                          "test_emulator_state", "test_token_provision", "test_host_kill"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def serving_line(proc: subprocess.Popen[bytes], timeout: float = HANG_S) -> tuple[str, str]:
    """(banner, address): ``emvkit emulate``'s first stderr line and the address of its "serving on" line,
    read unbuffered; AssertionError when none comes within ``timeout`` seconds."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            break
        seen += chunk
        match = re.search(rb"^serving on (\S+)$", seen, re.MULTILINE)
        if match:
            return seen.decode().splitlines()[0], match.group(1).decode()
    raise AssertionError(f"no 'serving on' line within {timeout} s: {seen!r}")


# --- a throwaway PostgreSQL cluster (the issuer host's shared log) ---

def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server of its own (Debian's `postgresql` package, which `make setup` installs): a data
    directory and unix-socket directory in a temporary folder, a free port, run as the `postgres` user when
    the tests run as root (the server refuses root). Yields a URL prefix; stopped at the end of the session."""
    pg_bin = _postgres_bin()
    if pg_bin is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; `make setup` installs it)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (the dev extra has it)")
    base = Path(tempfile.mkdtemp(prefix="emvkit-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    data = base / "data"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run([*as_user, str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -k {base} -c listen_addresses='' -c max_connections=60"
    subprocess.run([*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"),
                    "-w", "-t", "60", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@/{{db}}?host={base}&port={port}"
    finally:
        subprocess.run([*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server: its URL."""
    import psycopg

    name = f"emvkit_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_cluster.format(db="postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return postgres_cluster.format(db=name)


_databases = itertools.count(1)
