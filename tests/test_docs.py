"""The docs' command sequences run as written, and the docs name no machine's paths.

A block is runnable when the line before its fence is ``<!-- runnable -->``. Its
lines starting with ``$ `` are commands (one ending in a backslash goes on on the
next line); the lines after one, up to the next, are the output it shows (stdout
and stderr together). The runnable blocks of a file run in order in one shell, in
a temporary directory (``.venv`` and the source folders linked in,
``XDG_STATE_HOME``/``XDG_DATA_HOME`` inside it, the venv's bin first on PATH), so
later blocks see the files and background jobs of earlier ones. Every command
must exit 0 (a doc shows a failure as ``cmd; echo $?``). Shown output is compared
line by line: a line ``...`` stands for any number of lines, ``...`` inside a line
for any text, trailing spaces do not count; a command that shows nothing is not
compared. A command ending in ``&`` (before any ``# comment``) runs in the
background with its output in a file: the next command starts once that output
shows what the doc shows (emvkit's servers print their banner only once they
listen), or has a first line when the doc shows none.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import HANG_S, ROOT, within

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = "<!-- runnable -->"
LINKED = (".venv", "terminal", "firmware", "tests", "bench", "hil_tests", "docs")
_RC = "__DOCS_RC__"


@dataclass
class Command:
    line: int
    text: str
    shown: list[str] = field(default_factory=list)


def runnable_commands(path: Path) -> list[Command]:
    """The commands of ``path``'s runnable blocks, in order, each with the output it shows."""
    commands: list[Command] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == MARKER and i + 1 < len(lines) and lines[i + 1].lstrip().startswith("```"):
            indent = len(lines[i + 1]) - len(lines[i + 1].lstrip())
            i += 2
            first = len(commands)
            while i < len(lines) and not lines[i].lstrip().startswith("```"):
                text = lines[i][indent:]
                if text.startswith("$ "):
                    commands.append(Command(i + 1, text[2:]))
                    while commands[-1].text.endswith("\\") and i + 1 < len(lines):  # continued on the next line
                        i += 1
                        commands[-1].text += "\n" + lines[i][indent:]
                elif len(commands) > first:
                    commands[-1].shown.append(text)
                i += 1
        i += 1
    return commands


def matches(shown: list[str], got: str) -> bool:
    """``got`` against the shown lines, ``...`` a wildcard (a whole line: any lines)."""
    pattern = []
    for line in shown:
        line = line.rstrip()
        if line == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append(".*?".join(re.escape(part) for part in line.split("...")) + r"[ \t]*\n")
    text = "\n".join(line.rstrip() for line in got.splitlines()) + "\n"
    return re.fullmatch("".join(pattern), text, ) is not None


def _code(command: str) -> str:
    """The command without a trailing ``# comment`` (one after spaces, with no quote in it)."""
    return re.sub(r"\s+#[^'\"]*$", "", command).rstrip()


def is_background(command: str) -> bool:
    code = _code(command)
    return code.endswith("&") and not code.endswith("&&")


class Shell:
    """One bash for a file's commands, in ``cwd``; each command's output read up to a status line."""

    def __init__(self, cwd: Path) -> None:
        env = {**os.environ, "XDG_STATE_HOME": str(cwd / ".state"), "XDG_DATA_HOME": str(cwd / ".data"),
               "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}", "NO_COLOR": "1",
               "COLUMNS": "80"}
        self.cwd = cwd
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.background = 0

    def run(self, command: str, shown: list[str]) -> tuple[int, str]:
        """Run ``command``: (its status, its output). A background one is waited for until its output shows
        the ``shown`` lines (a server's banner comes once it listens), or has a first line when none are shown;
        its output is then what it has said so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if is_background(command):
            self.background += 1
            log = self.cwd / f".background-{self.background}"
            script = f"{_code(command)[:-1]} < /dev/null > {log.name} 2>&1 &\necho; echo {_RC}0\n"
        else:
            log = None
            script = f"{{ {command}\n}} < /dev/null 2>&1; echo; echo {_RC}$?\n"
        self.proc.stdin.write(script.encode())
        self.proc.stdin.flush()
        out = b""
        bound = within(HANG_S, command)
        while (_RC.encode() + b"") not in out or not out.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], bound.left())
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
            assert chunk, f"{command!r}: no status within {HANG_S:g} s (a hang); got {out.decode()!r}"
            out += chunk
        text, _, status = out.decode().rpartition(_RC)
        text = text[:-1] if text.endswith("\n") else text  # the echo before the status line
        if log is not None:
            def said() -> str:
                return log.read_text(errors="replace") if log.exists() else ""

            def ready() -> bool:
                return matches([*shown, "..."], said()) if shown else said().endswith("\n")

            with contextlib.suppress(AssertionError):  # not there in time: compared (and reported) below
                bound.until(ready)
            text = said()
        return int(status.strip()), text

    def close(self) -> None:
        """End the shell and whatever it left running (its own process group, nothing else)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(b"kill $(jobs -p) 2>/dev/null; wait; exit 0\n")
            self.proc.stdin.close()
            self.proc.wait(HANG_S)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)


def _files() -> list[Path]:
    return [path for path in DOCS if runnable_commands(path)]


@pytest.mark.slow  # about 20 s: servers, perso's RSA keys, a hundred emvkit starts
@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_runnable_blocks_run_as_written(path: Path, tmp_path: Path) -> None:
    for name in LINKED:
        (tmp_path / name).symlink_to(ROOT / name)
    shell = Shell(tmp_path)
    try:
        for command in runnable_commands(path):
            status, got = shell.run(command.text, command.shown)
            where = f"{path.name}:{command.line}: $ {command.text}"
            assert status == 0, f"{where}\nexit status {status}\n{got}"
            if command.shown and not is_background(command.text):
                assert matches(command.shown, got), f"{where}\nshown:\n" + "\n".join(command.shown) + \
                    f"\ngot:\n{got}"
            elif command.shown:  # a background job: its first lines
                assert matches([*command.shown, "..."], got), f"{where}\nshown:\n" + "\n".join(command.shown) + \
                    f"\ngot:\n{got}"
    finally:
        shell.close()


def test_some_blocks_are_runnable() -> None:
    names = {path.name for path in _files()}
    assert {"README.md", "cli.md", "host.md"} <= names, names


def test_the_parser_reads_blocks_and_wildcards() -> None:
    assert matches(["a ... c", "...", "z"], "a b c\nx\ny\nz\n")
    assert matches(["a"], "a  \n")
    assert not matches(["a", "b"], "a\nc\n")
    assert not matches(["a"], "a\nb\n")
    assert is_background("emvkit host serve &   # the host") and is_background("x &")
    assert not is_background("a && b") and not is_background("echo '# &'")
    assert matches(["...", "b"], "b\n")


# --- no machine's paths ---------------------------------------------------------------------------------

# An absolute path under these names one machine's files; docs use relative paths, ~, or placeholders.
MACHINE_PATH = re.compile(r"(?<![\w.~$])/(?:work|home|root|tmp)/[\w.-]+")
# Placeholders that are clearly not a machine's: /home/you/..., /tmp/… as a scratch copy the text sets up.
PLACEHOLDER = re.compile(r"/home/(?:you|user|USER)\b")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_docs_name_no_machine_path(path: Path) -> None:
    found = [f"{path.name}:{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1)
             if any(not PLACEHOLDER.match(m.group(0)) for m in MACHINE_PATH.finditer(line))]
    assert not found, "\n".join(found)


# --- usages as --help prints them ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["tap"], ["watch"], ["host", "serve"]], ids=" ".join)
def test_cli_md_usage_is_the_help_usage(command: list[str]) -> None:
    """docs/cli.md's usage block of a command is what ``--help`` prints at 80 columns."""
    from tests.conftest import venv_tool

    env = {**os.environ, "COLUMNS": "80"}
    help_text = subprocess.run([venv_tool("emvkit"), *command, "--help"], capture_output=True, text=True, env=env,
                               timeout=HANG_S, check=True).stdout
    usage = help_text.split("\n\n", 1)[0].strip("\n")
    text = (ROOT / "docs" / "cli.md").read_text()
    head = f"usage: emvkit {' '.join(command)} ["
    start = text.index(head)
    block = text[start:text.index("\n```", start)]
    documented = "\n".join(line for line in block.splitlines())
    assert documented.startswith(usage) and documented[len(usage):len(usage) + 1] in ("", "\n"), (
        f"docs/cli.md:\n{documented}\n--help:\n{usage}")


def test_the_parser_finds_marked_blocks_only(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```\n$ not this\n```\n<!-- runnable -->\n```\n$ echo a \\\n  b\na b\n$ true\n```\n"
                    "text\n<!-- runnable -->\n  ```\n  $ echo c\n  c\n  ```\n")
    found = [(c.text, c.shown) for c in runnable_commands(page)]
    assert found == [("echo a \\\n  b", ["a b"]), ("true", []), ("echo c", ["c"])]
