"""A private pcscd with one vpcd reader, for tests and benchmarks.

pcscd 1.9 has no option for its socket path: it always serves
``/run/pcscd/pcscd.comm`` (and writes ``/run/pcscd/pcscd.pid`` to refuse a
second instance). :class:`PrivatePcscd` therefore runs it as::

    unshare --mount --propagation private sh -c '
        mount --bind /usr/lib/pcsc/drivers/serial/libifdvpcd.so TMPDIR/libifdvpcd.so &&
        mount --bind TMPDIR/no-usb-drivers /usr/lib/pcsc/drivers &&
        mount --bind TMPDIR /run/pcscd &&
        exec pcscd --foreground --config TMPDIR/reader.conf.d'

In its private mount namespace the daemon sees its own ``/run/pcscd`` (the
temporary directory) and no USB reader drivers, so it neither collides with
a system pcscd nor grabs real readers from it; everyone else reaches its
socket at ``TMPDIR/pcscd.comm``. ``unshare`` and ``sh`` both ``exec``, so the
PID we hold is pcscd's, and stopping it by PID also ends the namespace. As
root nothing else is needed (``/run/pcscd`` is created if missing: an empty
directory, as pcscd itself would make). Other users get a user namespace too
(``unshare --map-root-user``), which needs an existing ``/run/pcscd`` and
unprivileged user namespaces. When no namespace can be made and no other
pcscd is running, the daemon falls back to the shared ``/run/pcscd``
(``shared`` becomes true; USB readers are then visible to it).

The reader.conf holds a single vpcd entry (two entries collide) whose
``DEVICENAME /dev/null:PORT`` makes vpcd listen on TCP ``PORT`` for slot 0
(reader ``Virtual PCD 00 00``) and ``PORT + 1`` for slot 1 (``Virtual PCD 00
01``); both ports are chosen free at start.

Pointing a client at it: libpcsclite reads ``PCSCLITE_CSOCK_NAME`` once per
process, on its first ``SCardEstablishContext`` (pyscard's
``smartcard.System.readers()`` and friends included), and keeps that socket
path for the life of the process. So either run the client in a subprocess
with ``env={**os.environ, **pcscd.env}``, or ``os.environ.update(pcscd.env)``
before the process first touches PC/SC (importing ``smartcard`` alone does
not). A client's context does not survive a pcscd restart: establish a new one.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType

from emvkit.terminal.errors import EmvkitError

__all__ = ["PcscdUnavailable", "PrivatePcscd"]

SYSTEM_IPC_DIR = Path("/run/pcscd")
READER_NAME = "Virtual PCD 00 00"
_DRIVER_CANDIDATES = (
    Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so"),
    Path("/usr/local/lib/pcsc/drivers/serial/libifdvpcd.so"),
)
_SYSTEM_VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
_DEFAULT_USB_DRIVER_DIR = Path("/usr/lib/pcsc/drivers")
_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_TCP_LISTEN = "0A"  # state column of /proc/net/tcp


class PcscdUnavailable(EmvkitError):
    """pcscd or the vpcd driver is missing, or the private daemon did not come up."""


class PrivatePcscd:
    """Run a private pcscd with one vpcd reader; a context manager.

    ``with PrivatePcscd() as pcscd:`` starts it (bounded by ``start_timeout``)
    and stops it by PID on exit, whatever happened inside. ``restart()`` keeps
    the directory and ports, so a :class:`~emvkit.terminal.emulator.vpcd.VpcdBridge`
    reconnects by itself. Attributes once started: ``socket_path``,
    ``vpcd_port`` (slot 0), ``env``, ``reader_name``, ``shared``.
    """

    reader_name = READER_NAME

    def __init__(self, *, start_timeout: float = 5.0, debug_log: bool = False) -> None:
        self.start_timeout = start_timeout
        self.debug_log = debug_log
        self.shared = False
        self.vpcd_port = 0
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], PrivatePcscd] | None = None

    @property
    def socket_path(self) -> Path:
        """The pcscd socket clients connect to (``PCSCLITE_CSOCK_NAME``)."""
        if self.shared:
            return SYSTEM_IPC_DIR / "pcscd.comm"
        return self._workdir() / "pcscd.comm"

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point libpcsclite (pyscard, scriptor) at this daemon."""
        return {"PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    @property
    def log_path(self) -> Path:
        """pcscd's stdout and stderr, handy when a test fails."""
        return self._workdir() / "pcscd.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __enter__(self) -> PrivatePcscd:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start pcscd and wait until its socket and vpcd port are up (PcscdUnavailable if not)."""
        if self._process is not None:
            raise PcscdUnavailable("this pcscd is already running")
        pcscd, driver = _find_pcscd(), _find_vpcd_driver()
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="emvkit-pcscd-"))
            self.vpcd_port = _free_port_pair()
        try:
            self._launch(pcscd, driver)
        except BaseException:
            self.close()
            raise

    def stop(self) -> None:
        """Stop the daemon by PID (SIGTERM, then SIGKILL after 2 s); keep the directory."""
        process, self._process = self._process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is not None:
            _terminate(process)
        if self._dir is not None and not self.shared:
            # pcscd removes these on SIGTERM, not when killed; a stale socket would pass for ready.
            for name in ("pcscd.comm", "pcscd.pid"):
                (self._dir / name).unlink(missing_ok=True)

    def restart(self) -> None:
        """Stop and start again on the same socket path and vpcd ports."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the daemon and remove its directory."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _workdir(self) -> Path:
        if self._dir is None:
            raise PcscdUnavailable("this pcscd has not been started")
        return self._dir

    def _launch(self, pcscd: str, driver: Path) -> None:
        workdir = self._workdir()
        pcscd_argv = [pcscd, "--foreground", "--config", str(workdir / "reader.conf.d")]
        if self.debug_log:
            pcscd_argv.append("--debug")
        failures: list[str] = []
        for shared in (False, True):
            if shared:
                if _system_pcscd_running():
                    failures.append(f"shared: another pcscd serves {SYSTEM_IPC_DIR}")
                    break
                argv = self._prepare_shared(pcscd_argv, driver)
            else:
                prepared = self._prepare_namespace(pcscd_argv, driver)
                if isinstance(prepared, str):
                    failures.append(f"namespace: {prepared}")
                    continue
                argv = prepared
            self.shared = shared
            with self.log_path.open("ab") as log_file:
                self._process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
                )
            self._finalizer = weakref.finalize(self, _terminate, self._process)
            problem = self._wait_ready(self._process)
            if problem is None:
                return
            self.stop()
            failures.append(f"{'shared' if shared else 'namespace'}: {problem}")
        raise PcscdUnavailable(
            "could not start a private pcscd: "
            + "; ".join(failures)
            + f"\n--- {self.log_path}:\n"
            + _tail(self.log_path)
        )

    def _prepare_namespace(self, pcscd_argv: list[str], driver: Path) -> list[str] | str:
        """The command that runs pcscd in a private mount namespace, or why there can be none.

        Inside: the vpcd driver is bound into the work directory, the USB
        driver directory is covered by an empty one (so this pcscd leaves real
        readers to the system's), and the work directory covers /run/pcscd.
        """
        unshare = shutil.which("unshare")
        if unshare is None:
            return "no unshare command (util-linux)"
        if os.geteuid() == 0:
            SYSTEM_IPC_DIR.mkdir(parents=True, exist_ok=True)
        elif not SYSTEM_IPC_DIR.is_dir():
            return f"no {SYSTEM_IPC_DIR} to bind over (only root may create it)"
        workdir = self._workdir()
        private_driver = workdir / driver.name
        private_driver.touch()
        no_drivers = workdir / "no-usb-drivers"
        no_drivers.mkdir(exist_ok=True)
        self._write_reader_conf(private_driver)
        mounts = [(driver, private_driver)]
        usb_dir = _usb_driver_dir(pcscd_argv[0])
        if usb_dir is not None and usb_dir.is_dir():
            mounts.append((no_drivers, usb_dir))
        mounts.append((workdir, SYSTEM_IPC_DIR))
        script = " && ".join(
            [f"mount --bind {shlex.quote(str(src))} {shlex.quote(str(dst))}" for src, dst in mounts]
            + ["exec " + shlex.join(pcscd_argv)]
        )
        user_ns = [] if os.geteuid() == 0 else ["--map-root-user"]
        return [unshare, "--mount", "--propagation", "private", *user_ns, "sh", "-c", script]

    def _prepare_shared(self, pcscd_argv: list[str], driver: Path) -> list[str]:
        SYSTEM_IPC_DIR.mkdir(parents=True, exist_ok=True)
        self._write_reader_conf(driver)
        return pcscd_argv

    def _write_reader_conf(self, driver: Path) -> None:
        # One vpcd entry only: two collide. Slot 0 listens on vpcd_port, slot 1 on vpcd_port + 1.
        conf_dir = self._workdir() / "reader.conf.d"
        conf_dir.mkdir(exist_ok=True)
        (conf_dir / "vpcd").write_text(
            'FRIENDLYNAME "Virtual PCD"\n'
            f"DEVICENAME   /dev/null:{self.vpcd_port}\n"
            f"LIBPATH      {driver}\n"
            f"CHANNELID    {self.vpcd_port}\n"
        )

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> str | None:
        """Return None once the socket exists and vpcd listens, else what went wrong."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            status = process.poll()
            if status is not None:
                return f"pcscd exited with status {status}"
            if self.socket_path.is_socket() and _tcp_listening(self.vpcd_port):
                return None
            time.sleep(0.01)
        if self.socket_path.is_socket():
            return f"vpcd is not listening on port {self.vpcd_port} after {self.start_timeout} s"
        return f"no socket at {self.socket_path} after {self.start_timeout} s"


def _find_pcscd() -> str:
    path = shutil.which("pcscd") or shutil.which("pcscd", path=os.pathsep.join(_SBIN_DIRS))
    if path is None:
        raise PcscdUnavailable("pcscd is not installed (Debian package 'pcscd')")
    return path


def _usb_driver_dir(pcscd: str) -> Path | None:
    """pcscd's USB driver directory, from the ``usbdropdir=`` of ``pcscd --version``."""
    try:
        version = subprocess.run([pcscd, "--version"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return _DEFAULT_USB_DRIVER_DIR
    for word in version.split():
        if word.startswith("usbdropdir="):
            return Path(word.partition("=")[2])
    return _DEFAULT_USB_DRIVER_DIR


def _find_vpcd_driver() -> Path:
    candidates = list(_DRIVER_CANDIDATES)
    if _SYSTEM_VPCD_CONF.is_file():
        for line in _SYSTEM_VPCD_CONF.read_text().splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "LIBPATH" and value.strip():
                candidates.insert(0, Path(value.strip()))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise PcscdUnavailable("the vpcd reader driver is not installed (Debian package 'vsmartcard-vpcd')")


def _free_port_pair() -> int:
    """A port P such that P and P + 1 are both free on the loopback and any address now."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("", 0))
            port: int = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("", port + 1))
                except OSError:
                    continue
                return port
    raise PcscdUnavailable("found no two consecutive free TCP ports for vpcd")


def _tcp_listening(port: int) -> bool:
    """Whether some socket listens on TCP ``port`` (read from /proc, without connecting).

    Connecting would not do: vpcd takes any connection for a card insertion.
    """
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows, None)
                for row in rows:
                    fields = row.split()
                    if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == _TCP_LISTEN:
                        return True
        except OSError:
            continue
    return False


def _system_pcscd_running() -> bool:
    path = SYSTEM_IPC_DIR / "pcscd.comm"
    if not path.is_socket():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(2.0)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
