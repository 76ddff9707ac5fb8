"""The token's boot and provisioning end to end: ``firmware.main`` under the real MicroPython on a pty.

The firmware (``micropython -m firmware.main --store DIR``) gets a pty's master as
its stdin/stdout; the host side, ``emvkit token provision|info`` (run in this
process through the CLI's ``main``) and the kernel's ``serial:`` transport, opens
the slave. The test holds a slave descriptor for the whole test, so the firmware
keeps running while commands come and go; closing it at the end makes the
firmware read EIO and exit 0. Every wait is bounded; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import tty
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from emvkit.firmware import link
from emvkit.terminal.cli import main
from emvkit.terminal.config_files import load_capks, load_config
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.emulator.serial_server import PtyLinkServer
from emvkit.terminal.kernel.config import TerminalConfig
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import Tap, run_transaction
from emvkit.terminal.token import flash
from emvkit.terminal.token.boards import board
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.serial import SerialTransport, TokenRefused
from tests.conftest import ROOT, venv_tool

MAIN = ["-m", "firmware.main"]


def micropython_env() -> dict[str, str]:
    return dict(os.environ, MICROPYPATH=f".frozen:{ROOT}")


@contextmanager
def token_firmware(store: Path) -> Iterator[str]:
    """``firmware.main`` on a pty master with its store in ``store``; yields the slave's path."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    proc = subprocess.Popen([venv_tool("micropython"), *MAIN, "--store", str(store)], stdin=master, stdout=master,
                            stderr=subprocess.PIPE, env=micropython_env(), cwd=ROOT)
    os.close(master)  # the firmware holds the only master
    try:
        yield os.ttyname(slave)
    finally:
        os.close(slave)  # nobody has the slave open now: the firmware reads EIO and ends
        try:
            status = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise
        finally:
            assert proc.stderr is not None
            errors = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
        assert status == 0, errors
        assert errors == ""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def info(capsys: pytest.CaptureFixture[str], port: str) -> dict[str, Any]:
    status, out, err = cli(capsys, "token", "info", "--port", f"serial:{port}", "--json")
    assert status == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def provision(capsys: pytest.CaptureFixture[str], port: str, card: Path, *more: str) -> tuple[int, str, str]:
    return cli(capsys, "token", "provision", "--port", f"serial:{port}", "--card", str(card), *more)


def assert_one_error_line(status: int, out: str, err: str, *words: str) -> None:
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("emvkit token provision: error: "), err
    for word in words:
        assert word in err, err


def perso(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, *more: str) -> Path:
    out = tmp_path / f"{name}.json"
    status, _, err = cli(capsys, "perso", "--scheme", "visa", "--out", str(out), *more)
    assert status == 0, err
    return out


def config_for(*capk_files: Path) -> TerminalConfig:
    config = load_config()
    for path in capk_files:
        for key in load_capks(path):
            config.capks.add(key)
    return config


def tap(port: str, config: TerminalConfig) -> Tap:
    transport = open_transport(f"serial:{port}")
    try:
        return run_transaction(transport, config, TransactionRequest(amount=1234))
    finally:
        transport.close()


def assert_approved_with_fdda(result: Tap) -> int:
    """The ATC of an approved fDDA transaction."""
    assert result.result.outcome.outcome is Outcome.APPROVED, (result.result.outcome, result.result.error)
    assert (result.result.oda, result.result.oda_result) == ("fDDA", "successful")
    return int.from_bytes(result.result.atc, "big")


@pytest.fixture
def cards(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> dict[str, Path]:
    """Two Visa cards under one new CA (card_a.json, card_b.json) and the CA public key."""
    a = perso(capsys, tmp_path, "card_a")
    b = perso(capsys, tmp_path, "card_b", "--ca", str(tmp_path / "card_a.ca.json"))
    return {"a": a, "b": b, "capk": tmp_path / "card_a.capk.json"}


def test_provision_tap_refusals_force_and_restart(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                  cards: dict[str, Path]) -> None:
    store = tmp_path / "store"
    config = config_for(cards["capk"])
    secrets = json.loads(cards["a"].read_text())["secrets"]
    with token_firmware(store) as port:
        before = info(capsys, port)
        assert (before["board"], before["store"], before["personalised"], before["atc"]) == ("unix", "empty", False, 0)
        assert before["version"] and before["free_heap"] > 0 and before["implementation"] == "micropython"

        status, out, err = provision(capsys, port, cards["a"])
        assert status == 0, err
        assert out.count("\n") == 1 and "profile visa" in out and secrets["pan"][-4:] in out
        for secret in (secrets["pan"], secrets["icc_mk_ac"], secrets["icc_rsa"]["p"][:16]):
            assert secret not in out + err
        after = info(capsys, port)
        assert (after["store"], after["personalised"], after["profile"], after["atc"]) == ("ok", True, "visa", 0)

        first = tap(port, config)
        atc = assert_approved_with_fdda(first)
        assert first.result.pan == secrets["pan"]
        assert info(capsys, port)["atc"] == atc >= 1

        # A second provisioning without --force is refused: the token is unchanged.
        unchanged = info(capsys, port)
        assert_one_error_line(*provision(capsys, port, cards["b"]), "already personalised", "--force")
        now = info(capsys, port)
        assert {**now, "free_heap": 0} == {**unchanged, "free_heap": 0}
        assert tap(port, config).result.pan == secrets["pan"]

        # With --force the other card replaces it, and starts from its own state.
        status, out, err = provision(capsys, port, cards["b"], "--force")
        assert status == 0, err
        assert info(capsys, port)["atc"] == 0
        other = tap(port, config)
        assert assert_approved_with_fdda(other) == 1
        assert other.result.pan == json.loads(cards["b"].read_text())["secrets"]["pan"]
        atc_before_restart = info(capsys, port)["atc"]

    # The firmware again, on the same store: the same card, its ATC goes on.
    with token_firmware(store) as port:
        rebooted = info(capsys, port)
        assert (rebooted["personalised"], rebooted["store"], rebooted["atc"]) == (True, "ok", atc_before_restart)
        assert assert_approved_with_fdda(tap(port, config)) == atc_before_restart + 1
        assert info(capsys, port)["atc"] == atc_before_restart + 1


def _garbage(path: Path, text: str) -> None:
    path.write_bytes(b"\x00\x13\x37 not a profile \xff\xfe")


def _truncated(path: Path, text: str) -> None:
    path.write_text(text[: len(text) // 2])


def _unknown_scheme(path: Path, text: str) -> None:
    doc = json.loads(text)
    doc["applications"][0]["scheme"] = "diners"
    path.write_text(json.dumps(doc))


def _no_secrets(path: Path, text: str) -> None:
    doc = json.loads(text)
    del doc["secrets"]
    path.write_text(json.dumps(doc))


def _bad_key(path: Path, text: str) -> None:
    doc = json.loads(text)
    doc["secrets"]["icc_rsa"]["q"] = "XY" + doc["secrets"]["icc_rsa"]["q"]
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize(("spoil", "words"), [
    (_garbage, ("not UTF-8",)),
    (_truncated, ("invalid JSON at line",)),
    (_unknown_scheme, ("applications[0].scheme: one of visa, mastercard, unionpay",)),
    (_no_secrets, ("no secrets",)),
    (_bad_key, ("secrets.icc_rsa",)),
], ids=["garbage", "truncated", "unknown-scheme", "no-secrets", "bad-key"])
def test_a_bad_profile_is_one_line_and_nothing_is_sent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cards: dict[str, Path], spoil: Any, words: tuple[str, ...]
) -> None:
    bad = tmp_path / "bad.json"
    spoil(bad, cards["b"].read_text())
    bad.chmod(0o600)  # a profile with secrets must be private
    secrets = json.loads(cards["b"].read_text())["secrets"]
    with token_firmware(tmp_path / "store") as port:
        assert provision(capsys, port, cards["a"])[0] == 0
        before = info(capsys, port)
        for extra in ((), ("--force",)):
            status, out, err = provision(capsys, port, bad, *extra)
            assert_one_error_line(status, out, err, str(bad), *words)
            assert secrets["icc_rsa"]["q"][:16] not in err and secrets["icc_mk_ac"] not in err
        after = info(capsys, port)
        assert (after["profile"], after["atc"], after["store"]) == (before["profile"], before["atc"], "ok")


def test_a_missing_file_and_a_bad_port_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     cards: dict[str, Path]) -> None:
    assert_one_error_line(*provision(capsys, "/dev/null", tmp_path / "none.json"), "cannot read card profile")
    assert_one_error_line(*cli(capsys, "token", "provision", "--port", "emu:visa", "--card", str(cards["a"])),
                          "--port")
    status, _, err = cli(capsys, "token", "info", "--port", str(tmp_path / "no-such-tty"))
    assert status == 2 and err.startswith("emvkit token info: error: ") and err.count("\n") == 1


# --- corrupt provisioning frames, straight to the firmware ---

def _store_files(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.iterdir())}


def _refusal(transport: SerialTransport, ftype: int, payload: bytes) -> int:
    with pytest.raises(TokenRefused) as refused:
        transport.request(ftype, payload, link.PROVISION_ACK)
    return refused.value.code


def _ack(transport: SerialTransport, ftype: int, payload: bytes) -> int:
    parsed = link.parse_ack(transport.request(ftype, payload, link.PROVISION_ACK).payload)
    assert parsed is not None
    held: int = parsed[0]
    return held


def test_corrupt_provisioning_frames_are_refused_and_change_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cards: dict[str, Path]
) -> None:
    store = tmp_path / "store"
    data = json.dumps(json.loads(cards["b"].read_text()), separators=(",", ":")).encode()
    crc = zlib.crc32(data)
    chunk = link.PROVISION_CHUNK

    def begin(length: int = len(data), check: int = crc) -> bytes:
        return link.provision_begin_payload(length, check, True)

    def send_all(transport: SerialTransport) -> None:
        for offset in range(0, len(data), chunk):
            _ack(transport, link.PROVISION_DATA, link.provision_data_payload(offset, data[offset:offset + chunk]))

    with token_firmware(store) as port:
        assert provision(capsys, port, cards["a"])[0] == 0
        config = config_for(cards["capk"])
        atc = assert_approved_with_fdda(tap(port, config))
        before, files = info(capsys, port), _store_files(store)
        with open_transport(f"serial:{port}") as opened:
            assert isinstance(opened, SerialTransport)
            t = opened
            # the CRC over the whole does not match
            assert _ack(t, link.PROVISION_BEGIN, begin(check=crc ^ 0x80)) == 0
            send_all(t)
            assert _refusal(t, link.PROVISION_COMMIT, b"") == link.ERR_INTEGRITY
            # an offset past what has arrived, then a COMMIT of the dropped transfer
            assert _ack(t, link.PROVISION_BEGIN, begin()) == 0
            assert _refusal(t, link.PROVISION_DATA, link.provision_data_payload(chunk, data[chunk:2 * chunk])) \
                == link.ERR_OUT_OF_ORDER
            assert _refusal(t, link.PROVISION_COMMIT, b"") == link.ERR_OUT_OF_ORDER
            # bytes past the announced length
            assert _ack(t, link.PROVISION_BEGIN, begin(length=100, check=zlib.crc32(data[:100]))) == 0
            assert _refusal(t, link.PROVISION_DATA, link.provision_data_payload(0, data[:101])) \
                == link.ERR_OUT_OF_ORDER
            # a COMMIT before every byte arrived
            assert _ack(t, link.PROVISION_BEGIN, begin()) == 0
            assert _ack(t, link.PROVISION_DATA, link.provision_data_payload(0, data[:chunk])) == chunk
            assert _refusal(t, link.PROVISION_COMMIT, b"") == link.ERR_INTEGRITY
            # oversize: refused at BEGIN, before any buffering
            assert _refusal(t, link.PROVISION_BEGIN, begin(length=link.PROVISION_MAX + 1)) == link.ERR_TOO_LARGE
            assert _refusal(t, link.PROVISION_BEGIN, begin(length=before["perso_max"] + 1)) == link.ERR_TOO_LARGE
            assert _refusal(t, link.PROVISION_DATA, link.provision_data_payload(0, b"{")) == link.ERR_OUT_OF_ORDER
            # intact frames, a CRC that matches, but not a profile: refused at COMMIT
            junk = b'{"format": "emvkit-card", "version": 1}'
            assert _ack(t, link.PROVISION_BEGIN, link.provision_begin_payload(len(junk), zlib.crc32(junk), True)) == 0
            assert _ack(t, link.PROVISION_DATA, link.provision_data_payload(0, junk)) == len(junk)
            assert _refusal(t, link.PROVISION_COMMIT, b"") == link.ERR_BAD_PROFILE
            # an APDU still runs the old card
            assert t.transmit(bytes.fromhex("00A404000E325041592E5359532E444446303100"))[-2:] == b"\x90\x00"
        after = info(capsys, port)
        assert (after["profile"], after["atc"], after["store"]) == (before["profile"], atc, "ok")
        # Nothing current changed: the refused transfers were staged in the other slot of the perso file
        # (store.Staging), past the current record, which is the whole of what the file held before.
        now = _store_files(store)
        assert now.keys() == files.keys() and now["state"] == files["state"]
        assert now["perso"][:len(files["perso"])] == files["perso"] and len(now["perso"]) > len(files["perso"])
        assert assert_approved_with_fdda(tap(port, config)) == atc + 1


def test_an_unpersonalised_token_refuses_apdus(tmp_path: Path) -> None:
    with token_firmware(tmp_path / "store") as port, open_transport(f"serial:{port}") as t:
        with pytest.raises(TokenRefused, match="not personalised") as refused:
            t.transmit(bytes.fromhex("00A404000E325041592E5359532E444446303100"))
        assert refused.value.code == link.ERR_NOT_PERSONALISED


def test_the_host_emulator_cannot_be_provisioned(capsys: pytest.CaptureFixture[str],
                                                  cards: dict[str, Path]) -> None:
    server = PtyLinkServer(open_card("visa"), poll_interval=0.05)
    server.open()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        doc = info(capsys, server.path)
        assert (doc["personalised"], doc["profile"], doc["board"], doc["atc"]) == (True, "visa", "", 0)
        assert_one_error_line(*provision(capsys, server.path, cards["a"], "--force"),
                              "this device cannot be provisioned")
    finally:
        server.close()
        thread.join(5)
    assert not thread.is_alive()


def test_firmware_main_usage_error() -> None:
    result = subprocess.run([venv_tool("micropython"), *MAIN, "--store"], capture_output=True, text=True,
                            env=micropython_env(), cwd=ROOT, timeout=30)
    assert result.returncode == 2 and result.stderr.startswith("usage: main.py --store DIR")


# --- flash ---

def test_flash_dry_run_rpi_pico2_copies_to_the_bootsel_drive(capsys: pytest.CaptureFixture[str],
                                                           tmp_path: Path) -> None:
    image = tmp_path / "token.uf2"
    image.write_bytes(b"UF2\n" * 64)
    drive = tmp_path / "RP2350"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v1.0\nModel: Raspberry Pi RP2350\nBoard-ID: RP2350\n")
    status, out, err = cli(capsys, "token", "flash", "--board", "rpi_pico2", "--image", str(image),
                           "--drive", str(drive), "--dry-run")
    assert status == 0, err
    assert out == f"cp {image} {drive / 'token.uf2'}\n"
    assert not (drive / "token.uf2").exists()
    status, out, err = cli(capsys, "token", "flash", "--board", "rpi_pico2", "--image", str(image),
                           "--drive", str(drive))
    assert status == 0, err
    assert (drive / "token.uf2").read_bytes() == image.read_bytes()
    (drive / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    status, out, err = cli(capsys, "token", "flash", "--board", "rpi_pico2", "--image", str(image),
                           "--drive", str(drive), "--dry-run")
    assert status == 2 and "not a RP2350 BOOTSEL drive" in err


def test_flash_rpi_pico2_without_a_drive_uses_picotool(tmp_path: Path) -> None:
    image = tmp_path / "token.uf2"
    image.write_bytes(b"UF2\n")
    plan = flash.plan(board("rpi_pico2"), image, mounts=[], which=lambda name: None)
    assert [s.describe() for s in plan.steps] == [f"picotool load -x {image}"]
    assert "picotool" in plan.missing
    with pytest.raises(flash.FlashError, match="picotool is not installed"):
        flash.execute(plan)
    found = flash.plan(board("rpi_pico2"), image, mounts=[], which=lambda name: f"/opt/bin/{name}")
    assert not found.missing
    ran: list[list[str]] = []
    flash.execute(found, run=lambda argv: ran.append(argv) or 0)
    assert ran == [["/opt/bin/picotool", "load", "-x", str(image)]]


def test_flash_dry_run_esp32s3_prints_the_esptool_command(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    image = tmp_path / "token.bin"
    image.write_bytes(b"\xe9" + bytes(100))
    status, out, err = cli(capsys, "token", "flash", "--board", "esp32s3", "--image", str(image),
                           "--port", "serial:/dev/ttyACM0", "--dry-run")
    assert status == 0, err
    assert out.count("\n") == 1
    assert out.endswith(f"--chip esp32s3 --port /dev/ttyACM0 write-flash 0x0 {image}\n")
    assert out.split()[0].endswith("esptool") or out.split()[:3][1:] == ["-m", "esptool"]


def test_flash_esp32s3_without_esptool_says_what_to_install(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    image = tmp_path / "token.bin"
    image.write_bytes(b"\xe9")
    monkeypatch.setattr(flash.shutil, "which", lambda name: None)
    monkeypatch.setattr(flash.importlib.util, "find_spec", lambda name: None)
    status, out, err = cli(capsys, "token", "flash", "--board", "esp32s3", "--image", str(image))
    assert (status, out) == (2, "")
    assert err == "emvkit token flash: error: esptool is not installed: pip install esptool\n"


def test_flash_qemu_unknown_board_and_missing_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, out, err = cli(capsys, "token", "flash", "--board", "qemu_m3", "--image", "fw.elf", "--dry-run")
    assert status == 0 and "emvkit token run" in out
    status, out, err = cli(capsys, "token", "flash", "--board", "pico", "--image", "fw.uf2")
    assert status == 2 and err.count("\n") == 1
    assert all(name in err for name in ("qemu_m3", "qemu_m0plus", "rpi_pico2", "esp32s3"))
    status, out, err = cli(capsys, "token", "flash", "--board", "esp32s3", "--image", str(tmp_path / "none.bin"))
    assert status == 2 and "no image file" in err


def test_a_profile_parsed_one_application_at_a_time_serves_what_the_whole_document_makes(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # The token parses a stored profile in parts (store.json_array_spans: the document without its
    # applications, then each application); a label full of JSON's structural characters must not
    # move a part's boundary. The reference: the card made from the whole document on CPython.
    from emvkit.firmware.payapp.card import Card
    from emvkit.terminal.perso.builtin import profile_path

    doc = json.loads(profile_path("unionpay").read_text())
    label = 'UP "2" ]}{[, \\'
    doc["applications"][1]["label"] = label
    path = tmp_path / "unionpay.json"
    path.write_text(json.dumps(doc, indent=1))
    path.chmod(0o600)
    reference = Card(json.loads(path.read_text()))
    commands = [bytes.fromhex("00A404000E325041592E5359532E444446303100")]
    for app in doc["applications"]:
        aid = bytes.fromhex(app["aid"])
        commands.append(bytes((0x00, 0xA4, 0x04, 0x00, len(aid))) + aid + b"\x00")
        commands += [bytes((0x00, 0xB2, r["record"], (r["sfi"] << 3) | 4, 0x00)) for r in app["records"]]
    with token_firmware(tmp_path / "store") as port:
        status, _, err = cli(capsys, "token", "provision", "--port", f"serial:{port}", "--card", str(path))
        assert status == 0, err
        with open_transport(f"serial:{port}") as t:
            answers = [t.transmit(c) for c in commands]
    assert label.encode() in answers[0]
    assert answers == [reference.process(c) for c in commands]
    assert all(a[-2:] == b"\x90\x00" for a in answers)
