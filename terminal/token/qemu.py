"""Booting a token image under ``qemu-system-arm``, its UART on a pty.

::

    with QemuToken(result.elf, "qemu_m3", store=Path("store.bin")) as token:
        token.boot()  # runs the firmware's main on the REPL UART
        transport = from_url(f"serial:{token.pty}")

The command line::

    qemu-system-arm -machine mps2-an385 -nographic -monitor null -no-reboot
        -serial pty -semihosting-config enable=on,target=native,arg=store=/abs/store.bin
        [-icount shift=0] -kernel firmware.elf

* UART0 goes to a new pty; QEMU names it on its output ("char device
  redirected to /dev/pts/N (label serial0)"). The pty is put in raw mode and
  held open until stop(), so QEMU never sees it hang up between users.
* ``nfc_uart=True`` adds a second ``-serial pty``: UART1, where the image's
  NFC front end talks to its chip (``frontend=pn532`` in ``args``; the host's
  chip simulator opens :attr:`QemuToken.nfc_pty`). It is put in raw mode too
  (no echo, no line discipline) before anyone writes to it.
* The store: the image's firmware/boards/qemu_mps2.py reads ``store=PATH``
  from the semihosting command line (each ``arg=`` is a word of it) and opens
  PATH on the host through semihosting (target=native: the host's own files).
  The path is made absolute (QEMU resolves a relative one against its own
  working directory); it may not hold spaces (the words are split on them);
  commas are doubled, as QEMU's option syntax wants.
* ``-icount shift=0``: one guest instruction per emulated nanosecond, so
  ``time.ticks_us()`` deltas count instructions (x1000).
* ``-no-reboot``: ``machine.reset()`` ends QEMU.
* MicroPython's QEMU port starts no boot script: it runs the REPL on UART0
  (ports/qemu/main.c), and no frozen main.py or boot.py is run either.
  :meth:`QemuToken.boot` enters the raw REPL (Ctrl-A),
  sends the boot code and Ctrl-D, and returns once the REPL answers "OK": from
  then on the UART is the program's.

stop() (also on leaving the ``with``) terminates QEMU, kills it if it has not
ended within ``timeout``, and reaps it; on Linux QEMU also gets SIGTERM when
the thread that started it ends, so no QEMU outlives its owner.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import tty
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from emvkit.terminal.errors import ConfigError, EmvkitError
from emvkit.terminal.token.boards import TokenBoard, board

__all__ = ["DEFAULT_BOOT", "QemuError", "QemuToken", "boot_code"]

QEMU = "qemu-system-arm"
QEMU_HINT = "install qemu-system-arm, e.g. make token-debs"
DEFAULT_BOOT = "from firmware import main; main.main()"
_PTY = re.compile(r"char device redirected to (\S+)")
_LABEL = re.compile(r"\(label (\w+)\)")
_RAW_REPL = b"raw REPL; CTRL-B to exit\r\n>"
_OUTPUT_LINES = 50  # lines of QEMU's own output kept for errors
_RETRY = 0.25  # seconds between two attempts to reach the raw REPL



def boot_code(*options: str) -> str:
    """The boot line that starts the firmware with command-line ``options`` (``--rng counting``, ...)."""
    if not options:
        return DEFAULT_BOOT
    return f"from firmware import main; main.main({['main', *options]!r})"

class QemuError(EmvkitError):
    """QEMU is missing, did not start, or the image did not come up on its UART."""


class QemuToken:
    """One QEMU running a token image; a context manager."""

    def __init__(
        self,
        image: Path,
        board_name: str | TokenBoard = "qemu_m3",
        *,
        store: Path | None = None,
        args: Mapping[str, str] | None = None,
        icount: bool = False,
        extra: Sequence[str] = (),
        qemu: str = QEMU,
        start_timeout: float = 10.0,
        nfc_uart: bool = False,
    ) -> None:
        self.board = board(board_name) if isinstance(board_name, str) else board_name
        if not self.board.qemu_machine:
            raise ConfigError(f"{self.board.name} is not a QEMU board")
        self.image = image
        self.store = store
        self.args = dict(args or {})
        self.icount = icount
        self.extra = tuple(extra)
        self.qemu = qemu
        self.start_timeout = start_timeout
        self.nfc_uart = nfc_uart
        self.pty: str | None = None
        self.nfc_pty: str | None = None  # UART1's pty, with nfc_uart
        self._ptys: dict[str, str] = {}  # QEMU's label (serial0, serial1) -> pty
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd = -1
        self._nfc_fd = -1
        self._output: deque[str] = deque(maxlen=_OUTPUT_LINES)
        self._pty_seen = threading.Event()

    def command(self) -> list[str]:
        words = []
        if self.store is not None:
            words.append(("store", str(self.store.resolve())))
        words += sorted(self.args.items())
        cmd = [self.qemu, "-machine", self.board.qemu_machine, "-nographic", "-monitor", "null", "-no-reboot",
               "-serial", "pty"]
        if self.nfc_uart:
            cmd += ["-serial", "pty"]
        config = "enable=on,target=native"
        for key, value in words:
            if any(c.isspace() for c in key + value):
                raise ConfigError(f"semihosting argument {key}={value!r}: no spaces allowed")
            config += ",arg=" + f"{key}={value}".replace(",", ",,")
        cmd += ["-semihosting-config", config]
        if self.icount:
            cmd += ["-icount", "shift=0"]
        return [*cmd, *self.extra, "-kernel", str(self.image)]

    # --- starting and stopping ---

    def start(self) -> str:
        """Start QEMU; returns the pty of the token's UART."""
        if self._proc is not None:
            raise QemuError("QEMU is already running")
        if not self.image.is_file():
            raise QemuError(f"no image {self.image}")
        if self.store is not None:
            self._check_store(self.store)
        if shutil.which(self.qemu) is None:
            raise QemuError(f"no {self.qemu}: {QEMU_HINT}")
        self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        threading.Thread(target=self._drain, name="qemu-output", daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while not self._pty_seen.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                why = "exited" if self._proc.poll() is not None else "gave no pty in time"
                self.stop()
                raise QemuError(f"QEMU {why}: {self.last_output()}")
        assert self.pty is not None
        self._fd = os.open(self.pty, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._fd)
        if self.nfc_pty is not None:  # held open too: QEMU drops what it writes to a pty nobody holds
            self._nfc_fd = os.open(self.nfc_pty, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self._nfc_fd)
        return self.pty

    @staticmethod
    def _check_store(store: Path) -> None:
        """The board's flash file must be one the firmware can open for writing: checked here, because
        through semihosting a store it cannot open only shows as a token that forgets."""
        if store.exists() and not store.is_file():
            raise QemuError(f"store {store}: not a regular file")
        folder = store.resolve().parent
        if not folder.is_dir():
            raise QemuError(f"store {store}: no folder {folder}")
        if not os.access(store if store.exists() else folder, os.W_OK):
            raise QemuError(f"store {store}: not writable")

    def _drain(self) -> None:
        # QEMU's own output (stderr merged): the pty line, warnings. Read to
        # the end so that QEMU never blocks on a full pipe.
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._output.append(line)
            m = _PTY.search(line)
            if m:
                label = _LABEL.search(line)
                self._ptys[label.group(1) if label else f"serial{len(self._ptys)}"] = m.group(1)
                if len(self._ptys) == (2 if self.nfc_uart else 1):
                    self.pty = self._ptys.get("serial0")
                    self.nfc_pty = self._ptys.get("serial1")
                    self._pty_seen.set()

    def last_output(self) -> str:
        """QEMU's last lines of output, on one line."""
        return " | ".join(line for line in self._output if line) or "(no output)"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop QEMU (terminate, then kill); returns its exit status (None if it never ran)."""
        for fd in (self._fd, self._nfc_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._nfc_fd = -1
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def __enter__(self) -> QemuToken:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- the REPL ---

    def boot(self, code: str = DEFAULT_BOOT, timeout: float = 30.0) -> None:
        """Run ``code`` through the raw REPL; returns when it has started (the REPL said OK)."""
        # What the guest writes while nobody holds the pty is lost (the banner,
        # perhaps): ask again every _RETRY seconds rather than wait for a prompt.
        deadline = time.monotonic() + timeout
        while True:
            self.write(b"\r\x01")  # end any line, then Ctrl-A: the raw REPL
            try:
                self._expect(_RAW_REPL, min(deadline, time.monotonic() + _RETRY), "the raw REPL")
                break
            except QemuError:
                if time.monotonic() >= deadline or not self.running:
                    raise
        self.write(code.encode() + b"\x04")
        self._expect(b"OK", deadline, "the raw REPL's OK")

    def write(self, data: bytes) -> None:
        """Bytes to the token's UART."""
        if self._fd < 0:
            raise QemuError("QEMU is not running")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def read(self, timeout: float) -> bytes:
        """What the UART has sent within ``timeout`` seconds (b"" when nothing came)."""
        if self._fd < 0:
            raise QemuError("QEMU is not running")
        ready, _, _ = select.select([self._fd], [], [], timeout)
        return os.read(self._fd, 4096) if ready else b""

    def _expect(self, marker: bytes, deadline: float, what: str) -> bytes:
        # Reads one byte at a time, so nothing after the marker is taken from
        # the UART (it belongs to whoever reads next).
        seen = b""
        while not seen.endswith(marker):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._fd], [], [], max(left, 0))
            if not ready:
                if not self.running:
                    raise QemuError(f"QEMU exited waiting for {what}: {self.last_output()}")
                raise QemuError(f"no {what} from the token: {seen[-80:]!r}")
            seen += os.read(self._fd, 1)
        return seen


def _die_with_parent() -> None:
    # In the child before exec: SIGTERM when the parent thread ends (Linux prctl PR_SET_PDEATHSIG).
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
