"""Bad input at the command line: one line on stderr, exit status 2, never a traceback.

Each case runs ``emvkit`` as a subprocess, as a user would. Files the cases
need (deeply nested documents, profiles with loose modes) are made in the
test's temporary folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from emvkit.terminal.config_files import DEFAULT_CONFIG
from emvkit.terminal.currency import CurrencyError, lookup, parse_amount
from emvkit.terminal.emulator.faults import FaultPlan
from emvkit.terminal.endpoints import (
    free_udp_port,
    parse_host_port,
    parse_tcp_url,
    parse_udp_path,
    port_service_name,
)
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.perso.builtin import load_builtin
from emvkit.terminal.transport import open_transport
from tests.conftest import venv_tool

DEEP = 100_000  # levels of nesting: far beyond any parser's recursion limit


def emvkit(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([venv_tool("emvkit"), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def assert_one_line_error(run: subprocess.CompletedProcess[str], command: str, *mentions: str) -> str:
    """Exit status 2, nothing on stdout, exactly one line on stderr naming the command and ``mentions``."""
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert run.stdout == "", run.stdout
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"emvkit {command}: error: "), lines[0]
    for mention in mentions:
        assert mention in lines[0], lines[0]
    return lines[0]


def private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# --- user files: size and nesting limits (defect 2) ----------------------------------------------------


def deep_json(tmp: Path) -> Path:
    return private(tmp / "deep.json", "[" * DEEP + "]" * DEEP)


def deep_profile(tmp: Path) -> Path:
    return private(tmp / "deep-profile.json", '{"secrets": ' + "[" * DEEP + "]" * DEEP + "}")


def deep_toml(tmp: Path) -> Path:
    return private(tmp / "deep.toml", "a = " + "[" * DEEP + "]" * DEEP + "\n")


def config_naming(tmp: Path, key: str) -> Path:
    """The built-in configuration, naming the deep file as its CA keys or its revocation list."""
    deep_json(tmp)
    text = DEFAULT_CONFIG.read_text().replace('capk_files = ["builtin"]', f'{key} = ["deep.json"]', 1)
    assert key in text
    return private(tmp / "names.toml", text)


FILE_CASES: list[tuple[str, Callable[[Path], list[str]], str, str]] = [
    ("profile", lambda t: ["tap", "--reader", f"emu:{deep_profile(t)}"], "tap", "deeper than"),
    ("emulate profile", lambda t: ["emulate", "--card", str(deep_profile(t)), "--serial", "pty"], "emulate",
     "deeper than"),
    ("--config", lambda t: ["tap", "--config", str(deep_toml(t))], "tap", "deeper than"),
    ("capk_files", lambda t: ["tap", "--config", str(config_naming(t, "capk_files"))], "tap", "deeper than"),
    ("revocation_files", lambda t: ["tap", "--config", str(config_naming(t, "revocation_files"))], "tap",
     "deeper than"),
    ("scripted trace", lambda t: ["tap", "--reader", f"scripted:{deep_json(t)}"], "tap", "deeper than"),
    ("--ca", lambda t: ["perso", "--scheme", "visa", "--ca", str(deep_json(t)), "--out", str(t / "o.json")],
     "perso", "deeper than"),
    ("--from-profile", lambda t: ["host", "keys", "--from-profile", str(deep_profile(t)), "--out",
                                  str(t / "k.json")], "host", "deeper than"),
    ("--keys", lambda t: ["host", "serve", "--port", "0", "--db", str(t / "h.sqlite"), "--keys",
                          str(deep_json(t))], "host", "deeper than"),
    ("--config /dev/zero", lambda t: ["tap", "--config", "/dev/zero"], "tap", "larger than"),
]


@pytest.mark.parametrize(("make", "command", "mention"), [c[1:] for c in FILE_CASES],
                         ids=[c[0] for c in FILE_CASES])
def test_user_files_are_bounded(tmp_path: Path, make: Callable[[Path], list[str]], command: str,
                                mention: str) -> None:
    assert_one_line_error(emvkit(*make(tmp_path)), command, mention)


# --- secret files: refused when group or others can access them (defect 10) ----------------------------


def loose_profile(tmp: Path) -> Path:
    return private(tmp / "card.json", json.dumps(load_builtin("visa")), 0o666)


def loose_ca(tmp: Path) -> Path:
    out = tmp / "first.json"
    run = emvkit("perso", "--scheme", "visa", "--out", str(out))
    assert run.returncode == 0, run.stderr
    ca = tmp / "first.ca.json"
    assert ca.stat().st_mode & 0o777 == 0o600
    ca.chmod(0o644)
    return ca


SECRET_CASES: list[tuple[str, Callable[[Path], tuple[list[str], Path]]]] = [
    ("tap", lambda t: (["tap", "--reader", f"emu:{loose_profile(t)}"], t / "card.json")),
    ("emulate", lambda t: (["emulate", "--card", str(loose_profile(t)), "--serial", "pty"], t / "card.json")),
    ("host keys", lambda t: (["host", "keys", "--from-profile", str(loose_profile(t)), "--out",
                              str(t / "k.json")], t / "card.json")),
    ("perso", lambda t: (["perso", "--scheme", "visa", "--ca", str(loose_ca(t)), "--out", str(t / "o.json")],
                         t / "first.ca.json")),
]


@pytest.mark.parametrize("make", [c[1] for c in SECRET_CASES], ids=[c[0] for c in SECRET_CASES])
def test_secret_files_others_can_read_are_refused(tmp_path: Path,
                                                  make: Callable[[Path], tuple[list[str], Path]]) -> None:
    args, path = make(tmp_path)
    assert_one_line_error(emvkit(*args), args[0], f"chmod 600 {path}")


def test_a_profile_without_secrets_may_be_world_readable(tmp_path: Path) -> None:
    doc = load_builtin("visa")
    del doc["secrets"]
    path = private(tmp_path / "public.json", json.dumps(doc), 0o644)
    run = emvkit("tap", "--reader", f"emu:{path}", "--host", "none")
    assert "accessible to other users" not in run.stderr
    assert "Traceback" not in run.stderr


def test_host_keys_out_replaces_a_symlink_and_leaves_its_target(tmp_path: Path) -> None:
    target = private(tmp_path / "victim.txt", "keep me\n", 0o644)
    link = tmp_path / "keys.json"
    link.symlink_to(target)
    run = emvkit("host", "keys", "--builtin", "--out", str(link))
    assert run.returncode == 0, run.stderr
    assert target.read_text() == "keep me\n"
    assert not link.is_symlink()
    assert os.stat(link).st_mode & 0o777 == 0o600


# --- the profile's state block (defect 3) --------------------------------------------------------------


STATE_CASES = [({"atc": "abc"}, "state.atc must be an integer"), ({"atc": 1.5}, "state.atc must be an integer"),
               ({"log": ["not hex"]}, "state.log[0] must be a hex string")]


def profile_with_state(tmp: Path, state: object) -> Path:
    doc = load_builtin("visa")
    doc["state"] = state
    return private(tmp / "card.json", json.dumps(doc))


@pytest.mark.parametrize(("state", "mention"), STATE_CASES, ids=[m for _, m in STATE_CASES])
def test_a_bad_state_block_is_one_line(tmp_path: Path, state: dict[str, object], mention: str) -> None:
    path = profile_with_state(tmp_path, state)
    assert_one_line_error(emvkit("tap", "--reader", f"emu:{path}"), "tap", mention)
    assert_one_line_error(emvkit("emulate", "--card", str(path), "--serial", "pty"), "emulate", mention)


def test_token_provisioning_refuses_a_bad_state_block(tmp_path: Path) -> None:
    from emvkit.terminal.token.provision import load_personalisation

    with pytest.raises(ConfigError, match=r"not a card profile a token takes: state\.atc must be an integer"):
        load_personalisation(profile_with_state(tmp_path, {"atc": "abc"}))


# --- fault injection values (defect 4) -----------------------------------------------------------------


FAULTS = [("latency=-1", "latency"), ("latency=nan", "latency"), ("latency=inf", "latency"),
          ("latency=1e9", "latency"), ("latency=10001", "latency"), ("sw=A8:FFFFF", "sw"), ("sw=A8:69", "sw"),
          ("sw=1A8:6985", "sw"), ("sw=A8", "sw"), ("tear=-1", "tear"), ("tear=1e3", "tear"), ("corrupt=9", "corrupt"),
          ("corrupt=zz", "corrupt")]


@pytest.mark.parametrize(("query", "mention"), FAULTS, ids=[q for q, _ in FAULTS])
def test_fault_values_out_of_range_are_refused(query: str, mention: str) -> None:
    with pytest.raises(ConfigError, match=f"fault {mention}="):
        FaultPlan.from_query(query)


@pytest.mark.parametrize("query", ["latency=-1", "latency=nan", "sw=A8:FFFFF", "latency=1e9"])
def test_fault_values_at_the_command_line(query: str) -> None:
    assert_one_line_error(emvkit("tap", "--reader", f"emu:visa?{query}", "--host", "none"), "tap",
                          query.split("=")[0])


def test_fault_values_in_range_are_kept() -> None:
    plan = FaultPlan.from_query("tear=0&sw=a8:6985,B2:6A83&corrupt=9F4B&latency=10000")
    assert plan.tear_after == 0 and plan.corrupt_tag == 0x9F4B and plan.latency_ms == 10000.0
    assert plan.force_sw == {0xA8: 0x6985, 0xB2: 0x6A83}
    assert FaultPlan.from_query("latency=0.5").latency_ms == 0.5


# --- amounts (defect 5) --------------------------------------------------------------------------------


EUR, JPY = lookup("EUR"), lookup("JPY")
BAD_AMOUNTS = ["NaN", "nan", "Infinity", "1e3", " 1", "1 ", "\uff11\uff12", "\u0661", "+1", "-1", "1.234", "1.",
               ".5", "1,00", "0x10", "1_000", "", "1000000000000", "9999999999.999"]


@pytest.mark.parametrize("text", BAD_AMOUNTS, ids=[repr(t) for t in BAD_AMOUNTS])
def test_amounts_are_ascii_digits_with_the_currencys_decimals(text: str) -> None:
    with pytest.raises(CurrencyError, match="amount"):
        parse_amount(text, EUR)


def test_amounts_in_minor_units() -> None:
    assert parse_amount("12.34", EUR) == 1234
    assert parse_amount("12.3", EUR) == 1230
    assert parse_amount("12", EUR) == 1200
    assert parse_amount("0", EUR) == 0
    assert parse_amount("0009999999999.99", EUR) == 999_999_999_999
    assert parse_amount("1500", JPY) == 1500
    with pytest.raises(CurrencyError, match="no decimals"):
        parse_amount("15.00", JPY)


@pytest.mark.parametrize("text", ["NaN", "1e3", " 1", "\uff11\uff12"], ids=["NaN", "1e3", "space", "full-width"])
def test_bad_amounts_at_the_command_line(text: str) -> None:
    assert_one_line_error(emvkit("tap", "--reader", "emu:visa", "--amount", text), "tap", "amount")
    assert_one_line_error(emvkit("tap", "--reader", "emu:visa", "--other-amount", text), "tap", "amount")


# --- hosts and ports (defect 5) and banners after validation (defect 6) ----------------------------------


def test_host_and_port_forms() -> None:
    assert parse_host_port("8583", "--x") == ("127.0.0.1", 8583)
    assert parse_host_port("example.org:1", "--x") == ("example.org", 1)
    assert parse_host_port("[::1]:65535", "--x") == ("::1", 65535)
    assert parse_host_port("0", "--x", listen=True) == ("127.0.0.1", 0)
    assert parse_host_port(":80", "--x") == ("127.0.0.1", 80)
    assert parse_tcp_url("tcp://[::1]", "--host", 8583) == ("::1", 8583)
    assert parse_tcp_url("tcp://10.0.0.1:9/", "--host", 8583) == ("10.0.0.1", 9)
    assert parse_udp_path("udp:127.0.0.1:50000", "--nfc", 54321) == ("127.0.0.1", 50000)
    assert parse_udp_path("udp", "--nfc", 54321) == ("localhost", 54321)


def test_a_udp_port_the_services_database_names_is_refused_and_never_chosen() -> None:
    # nfcpy's udp driver reads the port back through getnameinfo(), so a named port cannot open
    named = socket.getservbyname("domain", "tcp")
    with pytest.raises(ConfigError, match=r"port 53 is named 'domain'.*choose another port"):
        parse_udp_path(f"udp:127.0.0.1:{named}", "--nfc", 54321)
    with pytest.raises(ConfigError, match="named 'domain'"):
        open_transport(f"nfc:udp:127.0.0.1:{named}")
    with pytest.raises(ValueError, match="invalid literal for int"):
        import nfc.clf.udp
        nfc.clf.udp.Device("127.0.0.1", named)
    assert all(port_service_name(free_udp_port()) is None for _ in range(20))


BAD_ENDPOINTS = ["99999", "65536", "0", "-1", "\uff18\uff10", "1e3", " 80", "host:", "[::1", "[::1]:",
                 "[nonsense]:80", "a b:80", "::1:80"]


@pytest.mark.parametrize("text", BAD_ENDPOINTS, ids=[repr(t) for t in BAD_ENDPOINTS])
def test_bad_host_ports_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--x: "):
        parse_host_port(text, "--x")


@pytest.mark.parametrize("url", ["tcp://[::1", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:0", "http://h:1",
                                 "tcp://h:1/path", "tcp://user@h:1"])
def test_bad_tcp_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="--host: "):
        parse_tcp_url(url, "--host", 8583)


ENDPOINT_CASES = [
    (["tap", "--reader", "emu:visa", "--host", "tcp://[::1"], "tap", "IPv6"),
    (["tap", "--reader", "emu:visa", "--host", "tcp://127.0.0.1:99999"], "tap", "99999"),
    (["tap", "--reader", "nfc:udp:127.0.0.1:99999"], "tap", "99999"),
    (["emulate", "--profile", "visa", "--nfc", "udp:127.0.0.1:99999"], "emulate", "99999"),
    (["emulate", "--profile", "visa", "--vpcd", "127.0.0.1:99999"], "emulate", "99999"),
    (["emulate", "--profile", "visa", "--vpcd", "no-such-host.invalid:35963"], "emulate", "no-such-host.invalid"),
    (["emulate", "--profile", "visa", "--tcp", "99999"], "emulate", "99999"),
    (["emulate", "--profile", "visa", "--tcp", "abc"], "emulate", "--tcp"),
    (["emulate", "--profile", "visa", "--tcp", "192.0.2.1:5555"], "emulate", "192.0.2.1"),
    (["emulate", "--profile", "visa", "--serial", "/no/such/tty"], "emulate", "/no/such/tty"),
    (["emulate", "--profile", "visa", "--nfc", "no-such-device"], "emulate", "no-such-device"),
    (["host", "serve", "--port", "99999"], "host", "--port"),
]


@pytest.mark.parametrize(("args", "command", "mention"), ENDPOINT_CASES,
                         ids=[" ".join(a) for a, _, _ in ENDPOINT_CASES])
def test_bad_endpoints_are_one_line_before_any_banner(tmp_path: Path, args: list[str], command: str,
                                                      mention: str) -> None:
    if args[:2] == ["host", "serve"]:
        args = [*args, "--db", str(tmp_path / "h.sqlite")]
    assert_one_line_error(emvkit(*args), command, mention)


@pytest.mark.parametrize(("store", "mention"), [("nodir/store.bin", "no folder"), (".", "not a regular file")])
def test_token_run_refuses_a_store_it_cannot_write_before_its_banner(tmp_path: Path, store: str,
                                                                     mention: str) -> None:
    image = tmp_path / "firmware.elf"
    image.write_bytes(b"\x7fELF")  # refused before QEMU would read it
    run = emvkit("token", "run", "--board", "qemu_m3", "--image", str(image), "--store", str(tmp_path / store))
    assert_one_line_error(run, "token run", mention)


# --- perso date fields: strict YYMM / MMYY with a real month (defect 5) ----------------------------------


PERSO_DATES = [("--issuer-cert-expiry", "9999"), ("--issuer-cert-expiry", "0030"), ("--icc-cert-expiry", "1330"),
               ("--expiry", "3000"), ("--expiry", "3013"), ("--expiry", "\uff13\uff10\uff11\uff12"),
               ("--expiry", "301"), ("--icc-cert-expiry", " 1230"), ("--pan", "\uff14" * 16), ("--psn", "\uff10\uff11")]


@pytest.mark.parametrize(("option", "value"), PERSO_DATES, ids=[f"{o} {v!r}" for o, v in PERSO_DATES])
def test_perso_fields_are_strict(tmp_path: Path, option: str, value: str) -> None:
    out = tmp_path / "card.json"
    assert_one_line_error(emvkit("perso", "--scheme", "visa", option, value, "--out", str(out)), "perso")
    assert not out.exists()


HOST_RULES = [("--max-amount", "1" * 28), ("--max-amount", "1000000000000"), ("--max-amount", "-1"),
              ("--velocity", "3/1e999"), ("--velocity", "3/nan"), ("--velocity", "3/inf"), ("--velocity", "0/60")]


@pytest.mark.parametrize(("option", "value"), HOST_RULES, ids=[f"{o} {v}" for o, v in HOST_RULES])
def test_host_rule_options_are_checked(tmp_path: Path, option: str, value: str) -> None:
    run = emvkit("host", "serve", "--port", "0", "--db", str(tmp_path / "h.sqlite"), f"{option}={value}")
    assert_one_line_error(run, "host", option)


def test_an_unknown_option_shows_the_sub_commands_usage() -> None:
    run = emvkit("tap", "--bogus")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("usage: emvkit tap ")
    assert run.stderr.splitlines()[-1] == "emvkit tap: error: unrecognized arguments: --bogus"


def test_watch_without_pcscd_is_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=str(tmp_path / "no-pcscd.comm"))
    run = subprocess.run([venv_tool("emvkit"), "watch", "--reader", "pcsc:"], capture_output=True, text=True,
                         timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert_one_line_error(run, "watch", "pcscd is not running")


def test_token_provisioning_refuses_a_profile_others_can_read(tmp_path: Path) -> None:
    from emvkit.terminal.token.provision import load_personalisation

    path = loose_profile(tmp_path)
    with pytest.raises(ConfigError, match=f"run: chmod 600 {path}"):
        load_personalisation(path)
