"""``emvkit crypto``: published vectors, pyemv on random inputs, error paths.

The calculator runs the card's own crypto (firmware/crypto/emv.py); pyemv is
the independent reference. Vectors: tests/vectors/host/ (see its README).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyemv import ac as pyemv_ac
from pyemv import kd as pyemv_kd
from pyemv import mac as pyemv_mac
from pyemv import tools as pyemv_tools

import emvkit.terminal.cli as cli

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors" / "host" / "emv_crypto.json"


def load_vectors() -> dict[str, list[dict[str, Any]]]:
    doc: dict[str, Any] = json.loads(VECTORS.read_text())
    assert doc["format"] == "emvkit-cli-vectors" and doc["version"] == 1
    return {"vectors": doc["vectors"], "chains": doc["chains"]}


_LOADED = load_vectors()


Run = Callable[..., str]


@pytest.fixture
def crypto(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``emvkit crypto OP --opt value ...`` in-process; its stdout, stripped."""

    def run(op: str, *extra: str, **options: str) -> str:
        argv = ["crypto", op, *extra]
        for name, value in options.items():
            argv += [f"--{name.replace('_', '-')}", value]
        status = cli.main(argv)
        out, err = capsys.readouterr()
        assert status == 0, err
        assert err == ""
        return out.strip()

    return run


# --- published vectors ---


@pytest.mark.parametrize("vector", _LOADED["vectors"], ids=lambda v: v["id"])
def test_published_vector(crypto: Run, vector: dict[str, Any]) -> None:
    assert crypto(vector["op"], **vector["args"]) == vector["result"]


@pytest.mark.parametrize("chain", _LOADED["chains"], ids=lambda c: c["id"])
def test_published_chain(crypto: Run, chain: dict[str, Any]) -> None:
    mk = crypto("derive-mk", imk=chain["imk"], pan=chain["pan"], psn=chain["psn"], option=chain["option"])
    sk = crypto("session-key", mk=mk, method="csk", atc=chain["atc"])
    data = "".join(chain["data_tags"].values())
    arqc = crypto("arqc", key=sk, data=data, padding="2")
    assert arqc == chain["arqc"]
    assert crypto("arpc", key=sk, arqc=arqc, csu=chain["csu"]) == chain["arpc"]


# --- pyemv on random inputs ---

CASES = 40


def _rng(name: str) -> random.Random:
    return random.Random(f"emvkit-crypto-{name}")


def _h(data: bytes) -> str:
    return data.hex().upper()


def _pan(rng: random.Random, low: int = 12, high: int = 19) -> str:
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(low, high)))


@pytest.mark.parametrize("option", ["a", "b"])
def test_derive_mk_matches_pyemv(crypto: Run, option: str) -> None:
    rng = _rng("mk" + option)
    derive = pyemv_kd.derive_icc_mk_a if option == "a" else pyemv_kd.derive_icc_mk_b
    for _ in range(CASES):
        imk, pan, psn = rng.randbytes(16), _pan(rng), f"{rng.randrange(100):02d}"
        assert crypto("derive-mk", imk=_h(imk), pan=pan, psn=psn, option=option) == _h(derive(imk, pan, psn))


def test_session_keys_match_pyemv(crypto: Run) -> None:
    rng = _rng("sk")
    for _ in range(CASES):
        mk, atc, un = rng.randbytes(16), rng.randbytes(2), rng.randbytes(4)
        assert crypto("session-key", mk=_h(mk), method="csk", atc=_h(atc)) == \
            _h(pyemv_kd.derive_common_sk(mk, atc + bytes(6)))
        assert crypto("session-key", mk=_h(mk), method="skd", atc=_h(atc), un=_h(un)) == \
            _h(pyemv_kd.derive_common_sk(mk, atc + bytes(2) + un))


@pytest.mark.parametrize("padding", [1, 2])
def test_arqc_and_mac_match_pyemv(crypto: Run, padding: int) -> None:
    rng = _rng(f"ac{padding}")
    kind = pyemv_ac.PaddingType.VISA if padding == 1 else pyemv_ac.PaddingType.EMV
    for n in range(CASES):
        # Every length from 1 to 24 bytes (block boundaries), then random ones.
        key, data = rng.randbytes(16), rng.randbytes(n + 1 if n < 24 else rng.randrange(1, 200))
        expected = _h(pyemv_ac.generate_ac(key, data, kind))
        assert crypto("arqc", key=_h(key), data=_h(data), padding=str(padding)) == expected
        assert crypto("mac", key=_h(key), data=_h(data), padding=str(padding)) == \
            _h(pyemv_mac.mac_iso9797_3(key[:8], key[8:], data, padding))


def test_arpc_matches_pyemv(crypto: Run) -> None:
    rng = _rng("arpc")
    for _ in range(CASES):
        key, arqc, arc, csu = rng.randbytes(16), rng.randbytes(8), rng.randbytes(2), rng.randbytes(4)
        prop = rng.randbytes(rng.randrange(9))
        assert crypto("arpc", key=_h(key), arqc=_h(arqc), arc=_h(arc)) == \
            _h(pyemv_ac.generate_arpc_1(key, arqc, arc))
        options = {"key": _h(key), "arqc": _h(arqc), "csu": _h(csu)}
        if prop:
            options["prop"] = _h(prop)
        assert crypto("arpc", **options) == _h(pyemv_ac.generate_arpc_2(key, arqc, csu, prop))


def test_kcv_matches_pyemv(crypto: Run) -> None:
    rng = _rng("kcv")
    for _ in range(CASES):
        key = rng.randbytes(rng.choice([8, 16, 24]))
        assert crypto("kcv", key=_h(key)) == _h(pyemv_tools.key_check_digits(key, 3))


def test_hex_input_may_be_spaced_lowercase_or_prefixed(crypto: Run) -> None:
    assert crypto("kcv", key="01 23 45 67 89 ab cd ef:fe dc ba 98 76 54 32 10") == "08D7B4"
    assert crypto("kcv", key="0x0123456789ABCDEFFEDCBA9876543210") == "08D7B4"


# --- --json ---


def test_json_output(crypto: Run) -> None:
    assert json.loads(crypto("kcv", "--json", key="0123456789ABCDEFFEDCBA9876543210")) == {"kcv": "08D7B4"}
    mk = json.loads(crypto("derive-mk", "--json", imk="0123456789ABCDEFFEDCBA9876543210",
                           pan="12345678901234567", psn="01"))
    assert mk["icc_mk"] == "73AD54688CEF2934B0979857E3C719F1" and mk["option"] == "A" and len(mk["kcv"]) == 6
    arpc = json.loads(crypto("arpc", "--json", key="AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB", arqc="1234567890ABCDEF",
                             csu="00820000", prop="0000"))
    assert arpc["method"] == 2
    assert arpc["issuer_authentication_data"] == arpc["arpc"] + "008200000000"
    arpc = json.loads(crypto("arpc", "--json", key="AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBB", arqc="1234567890ABCDEF",
                             arc="3030"))
    assert arpc == {"arpc": arpc["arpc"], "method": 1, "issuer_authentication_data": arpc["arpc"] + "3030"}


# --- errors: exit 2, one line, no traceback ---

ERRORS = [
    (["kcv", "--key", "0123456789ABCDEFFEDCBA987654321G"], "--key: character 'G' at hex digit 31 is not hex"),
    (["kcv", "--key", "0123456789ABCDEFFEDCBA987654321"], "--key: odd number of hex digits (31)"),
    (["kcv", "--key", "0123456789ABCDEF0123"], "--key: a key of 8 bytes (single) or 16 bytes (double-length) or "
                                                "24 bytes (triple-length) expected, got 10 bytes"),
    (["derive-mk", "--imk", "00" * 8, "--pan", "1234567890123"], "--imk: a key of 16 bytes (double-length) "
                                                                  "expected, got 8 bytes"),
    (["derive-mk", "--imk", "00" * 16, "--pan", "12345X"], "--pan: 1 to 19 decimal digits"),
    (["derive-mk", "--imk", "00" * 16, "--pan", "123456", "--psn", "1"], "--psn: 2 decimal digits"),
    (["session-key", "--mk", "00" * 16, "--method", "skd", "--atc", "0001"], "--un is required with --method skd"),
    (["session-key", "--mk", "00" * 16, "--method", "csk", "--atc", "000001"],
     "--atc: expected 2 bytes (4 hex digits), got 3"),
    (["arqc", "--key", "00" * 16, "--data", "zz"], "--data: character 'z' at hex digit 0 is not hex"),
    (["arpc", "--key", "00" * 16, "--arqc", "00" * 7, "--arc", "3030"], "--arqc: expected 8 bytes (16 hex digits), "
                                                                         "got 7"),
    (["arpc", "--key", "00" * 16, "--arqc", "00" * 8, "--arc", "3030", "--prop", "00"],
     "--prop goes with --csu (ARPC method 2) only"),
    (["arpc", "--key", "00" * 16, "--arqc", "00" * 8, "--csu", "00" * 4, "--prop", "00" * 9],
     "--prop: at most 8 bytes, got 9"),
]


@pytest.mark.parametrize(("argv", "message"), ERRORS, ids=[f"{a[0]} {a[-1][:12]}" for a, _ in ERRORS])
def test_errors_in_process(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert cli.main(["crypto", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"emvkit crypto: error: {message}\n"


@pytest.mark.parametrize("argv", [
    ["arqc", "--key", "00" * 16],  # --data missing
    ["arpc", "--key", "00" * 16, "--arqc", "00" * 8],  # neither --arc nor --csu
    ["arpc", "--key", "00" * 16, "--arqc", "00" * 8, "--arc", "3030", "--csu", "00" * 4],  # both
    ["session-key", "--mk", "00" * 16, "--method", "xyz", "--atc", "0001"],
    ["mac", "--key", "00" * 16, "--data", "00", "--padding", "3"],
])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["crypto", *argv])
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


_CLI = "import sys, emvkit.terminal.cli as c\nsys.exit(c.main(sys.argv[1:]))\n"


@pytest.mark.parametrize(("argv", "lines"), [
    (["kcv", "--key", "XYZ"], 1),  # bad hex
    (["arqc", "--key", "00" * 15, "--data", "00"], 1),  # wrong key length
    (["session-key", "--mk", "00" * 16, "--method", "skd", "--atc", "0001"], 1),  # missing --un
    (["arqc", "--key", "00" * 16], None),  # missing option: argparse's usage, then the error line
])
def test_errors_as_a_process(argv: list[str], lines: int | None) -> None:
    proc = subprocess.run([sys.executable, "-c", _CLI, "crypto", *argv], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    if lines is not None:
        assert len(proc.stderr.strip().splitlines()) == lines
    assert "error:" in proc.stderr.strip().splitlines()[-1]


def test_result_alone_on_stdout_as_a_process() -> None:
    proc = subprocess.run([sys.executable, "-c", _CLI, "crypto", "kcv", "--key", "0123456789ABCDEFFEDCBA9876543210"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "08D7B4\n", "")


def test_empty_data(crypto: Run) -> None:
    # Empty data: padding method 1 gives one zero block, method 2 one 80 00.. block.
    key = bytes(range(16))
    assert crypto("mac", key=key.hex(), data="", padding="1") == _h(pyemv_mac.mac_iso9797_3(key[:8], key[8:], b"", 1))
    assert crypto("mac", key=key.hex(), data="", padding="2") == _h(pyemv_mac.mac_iso9797_3(key[:8], key[8:], b"", 2))
