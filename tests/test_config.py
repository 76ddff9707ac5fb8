"""Terminal configuration loading: the default, and a ConfigError naming the key for every fault."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emvkit.terminal.config_files import DEFAULT_CONFIG, load_config
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.kernel.config import TerminalConfig

VISA_CAPKS = Path(__file__).resolve().parent / "vectors" / "oda" / "visa_test_capks.json"

ONE_APP = '[[application]]\naid = "A0000000031010"\nkernel = 3\n'


def write(tmp_path: Path, text: str, name: str = "terminal.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str) -> TerminalConfig:
    return load_config(write(tmp_path, text))


# --- the default -------------------------------------------------------------------------------


def test_default_configuration() -> None:
    config = load_config()
    assert config.source == "built-in config"
    assert len(config.applications) == 5
    assert len(config.capks) == 4  # one RSA test CA per RID, and the SM2 CA of emu:unionpay-sm
    assert [k.algorithm for k in config.capks].count("sm2") == 1
    assert config.sm_algorithms
    assert [(a.aid.hex().upper(), a.kernel) for a in config.applications] == [
        ("A0000000031010", 3), ("A0000000041010", 2), ("A000000333010101", 7),
        ("A000000333010102", 7), ("A000000333010103", 7)]
    # As default_terminal.toml says: [terminal] and [defaults].
    assert config.terminal_type == 0x22 and config.online_capable
    assert config.capabilities == bytes.fromhex("E068C8")
    assert config.country == bytes.fromhex("0250") and config.currency == bytes.fromhex("0978")
    visa = config.applications[0]
    assert (visa.floor_limit, visa.cvm_required_limit, visa.transaction_limit) == (3000, 5000, 15000)
    assert visa.tac_online == bytes.fromhex("DC4004F800") and visa.tac_default == bytes.fromhex("DC4000A800")
    assert visa.application_version == bytes.fromhex("0096")
    assert config.applications[1].cvm_capability_cvm_required == 0x60
    assert load_config(DEFAULT_CONFIG).source == str(DEFAULT_CONFIG)


def test_minimal_file_takes_the_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, ONE_APP)
    app = config.applications[0]
    assert (app.floor_limit, app.cvm_required_limit, app.transaction_limit) == (0, 0, 0)
    assert app.ttq == bytes.fromhex("36004000")
    assert config.terminal_id == b"EMVKIT01"
    assert len(config.capks) == 4  # capk_files defaults to the built-in keys


def test_defaults_apply_to_every_application(tmp_path: Path) -> None:
    config = load_text(tmp_path, "[defaults]\nfloor_limit = 1000\n" + ONE_APP
                       + '[[application]]\naid = "A0000000041010"\nkernel = 2\nfloor_limit = 2000\n')
    assert [a.floor_limit for a in config.applications] == [1000, 2000]


def test_aid_lengths_at_the_bounds(tmp_path: Path) -> None:
    for aid in ("A000000003", "A0" * 16):  # 5 and 16 bytes
        config = load_text(tmp_path, f'[[application]]\naid = "{aid}"\nkernel = 3\n')
        assert config.applications[0].aid == bytes.fromhex(aid)


def test_terminal_id_is_padded_to_8(tmp_path: Path) -> None:
    config = load_text(tmp_path, '[terminal]\nterminal_id = "POS1"\n' + ONE_APP)
    assert config.terminal_id == b"POS1    "


# --- malformed input: a ConfigError naming the key ------------------------------------------------


@pytest.mark.parametrize(("text", "message"), [
    # wrong types
    ('[terminal]\ntype = 22\n' + ONE_APP, r"terminal\.type: expected str, got 22"),
    ('[terminal]\ncurrency_exponent = "2"\n' + ONE_APP, r"terminal\.currency_exponent: expected int"),
    ('[terminal]\ncurrency_exponent = true\n' + ONE_APP, r"terminal\.currency_exponent: expected int"),
    ('[terminal]\nterminal_id = 12345678\n' + ONE_APP, r"terminal\.terminal_id: expected str"),
    ('terminal = "x"\n' + ONE_APP, r"terminal: expected dict"),
    ('[risk]\nrandom_selection_percent = "5"\n' + ONE_APP, r"risk\.random_selection_percent: expected int"),
    ('[risk]\nrandom_selection_threshold = -1\n' + ONE_APP, r"risk\.random_selection_threshold: amounts are not"),
    (ONE_APP + "floor_limit = 30.0\n", r"application\[0\]\.floor_limit: expected int"),
    (ONE_APP + 'floor_limit = "3000"\n', r"application\[0\]\.floor_limit: expected int"),
    (ONE_APP + "cvm_required_limit = -1\n", r"application\[0\]\.cvm_required_limit: amounts are not negative"),
    (ONE_APP + 'zero_amount_allowed = "yes"\n', r"application\[0\]\.zero_amount_allowed: expected bool"),
    (ONE_APP + "partial_selection = 1\n", r"application\[0\]\.partial_selection: expected bool"),
    ('[[application]]\naid = "A0000000031010"\nkernel = "3"\n', r"application\[0\]\.kernel: expected int"),
    ('[[application]]\naid = "A0000000031010"\nkernel = true\n', r"application\[0\]\.kernel: expected int"),
    ('[[application]]\naid = 10\nkernel = 3\n', r"application\[0\]\.aid: expected str"),
    ('application = "A0000000031010"\n', r"application: expected list"),
    ('capk_files = "builtin"\n' + ONE_APP, r"capk_files: expected list"),
    # bad hex
    ('[terminal]\ncapabilities = "ZZ68C8"\n' + ONE_APP, r"terminal\.capabilities: not hex: 'ZZ68C8'"),
    ('[terminal]\ncountry = "025"\n' + ONE_APP, r"terminal\.country: not hex"),
    (ONE_APP + 'tac_online = "DC4004F80G"\n', r"application\[0\]\.tac_online: not hex"),
    ('[[application]]\naid = "A00000000310XY"\nkernel = 3\n', r"application\[0\]\.aid: not hex"),
    # wrong lengths
    ('[terminal]\ncapabilities = "E068"\n' + ONE_APP, r"terminal\.capabilities: 3 bytes expected, got 2"),
    ('[terminal]\ntype = "2222"\n' + ONE_APP, r"terminal\.type: 1 bytes expected, got 2"),
    ('[terminal]\nadditional_capabilities = "F000F0A0"\n' + ONE_APP,
     r"terminal\.additional_capabilities: 5 bytes expected, got 4"),
    ('[terminal]\ncurrency = "978"\n' + ONE_APP, r"terminal\.currency: not hex"),
    (ONE_APP + 'ttq = "360040"\n', r"application\[0\]\.ttq: 4 bytes expected, got 3"),
    (ONE_APP + 'tac_denial = "00000000"\n', r"application\[0\]\.tac_denial: 5 bytes expected, got 4"),
    (ONE_APP + 'cvm_capability_no_cvm = "0800"\n', r"application\[0\]\.cvm_capability_no_cvm: 1 bytes"),
    ('[[application]]\naid = "A0000000"\nkernel = 3\n', r"application\[0\]\.aid: an AID is 5 to 16 bytes"),
    ('[[application]]\naid = "' + "A0" * 17 + '"\nkernel = 3\n', r"application\[0\]\.aid: an AID is 5 to 16"),
    # unknown keys
    ('colour = "blue"\n' + ONE_APP, r"unknown key\(s\) colour"),
    ('[terminal]\ntyp = "22"\n' + ONE_APP, r"terminal: unknown key\(s\) typ"),
    ('[risk]\npercent = 5\n' + ONE_APP, r"risk: unknown key\(s\) percent"),
    (ONE_APP + "floorlimit = 1\n", r"application\[0\]: unknown key\(s\) floorlimit"),
    ('[defaults]\nflor_limit = 1\n' + ONE_APP, r"application\[0\]: unknown key\(s\) flor_limit"),
    # kernels
    ('[[application]]\naid = "A0000000031010"\nkernel = 4\n', r"application\[0\]\.kernel: one of 2, 3, 7"),
    ('[[application]]\naid = "A0000000031010"\n', r"application\[0\]\.kernel: one of 2, 3, 7"),
    (ONE_APP + '[[application]]\naid = "A0000000041010"\nkernel = 1\n', r"application\[1\]\.kernel: one of"),
    # no applications
    ('[terminal]\ntype = "22"\n', r"at least one \[\[application\]\] is needed"),
    ("application = []\n", r"at least one \[\[application\]\] is needed"),
])
def test_malformed_configuration(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)  # the message names the file too


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.toml"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)  # a directory


@pytest.mark.parametrize("text", ['[terminal\ntype = "22"\n', 'type = "22\n', "a = 1\na = 2\n", "= 3\n"])
def test_invalid_toml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=str(path).replace(".", r"\.")):
        load_config(path)


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "terminal.toml"
    path.write_bytes(b'[terminal]\nterminal_id = "\xff\xfe"\n' + ONE_APP.encode())
    with pytest.raises(ConfigError, match=r"terminal\.toml"):
        load_config(path)


# --- CA public key files ---------------------------------------------------------------------------


def test_capk_file_is_relative_to_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    shutil.copy(VISA_CAPKS, folder / "keys.json")
    path = write(folder, 'capk_files = ["keys.json"]\n' + ONE_APP)
    monkeypatch.chdir(tmp_path)  # not the config's folder
    config = load_config(path)
    assert sorted(k.name for k in config.capks) == ["A000000003/92", "A000000003/95", "A000000003/99"]
    both = load_config(write(folder, 'capk_files = ["builtin", "keys.json"]\n' + ONE_APP, "both.toml"))
    assert len(both.capks) == 7


def test_missing_capk_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'capk_files = ["nowhere.json"]\n' + ONE_APP)
    with pytest.raises(ConfigError, match=r"cannot read .*nowhere\.json"):
        load_config(path)


def test_capk_with_a_wrong_checksum(tmp_path: Path) -> None:
    keys = json.loads(VISA_CAPKS.read_text())
    good = keys[1]["checksum"]
    keys[1]["checksum"] = ("0" if good[0] != "0" else "1") + good[1:]
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    path = write(tmp_path, 'capk_files = ["keys.json"]\n' + ONE_APP)
    with pytest.raises(ConfigError, match=r"keys\.json\[1\]\.checksum: does not match"):
        load_config(path)


def test_inline_capk_errors_name_the_entry(tmp_path: Path) -> None:
    text = ('capk_files = []\n[[capk]]\nrid = "A000000003"\nindex = "92"\nmodulus = "C0FFEE"\n'
            'exponent = "02"\n' + ONE_APP)
    with pytest.raises(ConfigError, match=r"capk\[0\]\.exponent"):
        load_text(tmp_path, text)


def test_a_key_defined_twice(tmp_path: Path) -> None:
    shutil.copy(VISA_CAPKS, tmp_path / "keys.json")
    with pytest.raises(ConfigError, match="A000000003/92 is defined twice"):
        load_text(tmp_path, 'capk_files = ["keys.json", "keys.json"]\n' + ONE_APP)


# --- faults that escape as other exceptions (bugs) -----------------------------------------------------


def test_application_entry_that_is_not_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"application\[0\]"):
        load_text(tmp_path, "application = [1]\n")


def test_capk_file_name_that_is_not_a_string(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="capk_files"):
        load_text(tmp_path, "capk_files = [1]\n" + ONE_APP)


def test_revocation_file_name_that_is_not_a_string(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="revocation_files"):
        load_text(tmp_path, "revocation_files = [7]\n" + ONE_APP)


def test_currency_exponent_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"terminal\.currency_exponent"):
        load_text(tmp_path, "[terminal]\ncurrency_exponent = -3\n" + ONE_APP)


def test_random_selection_percent_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"risk\.random_selection_percent"):
        load_text(tmp_path, "[risk]\nrandom_selection_percent = 150\n" + ONE_APP)


def test_terminal_id_too_long(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"terminal\.terminal_id"):
        load_text(tmp_path, '[terminal]\nterminal_id = "EMVKIT0123456"\n' + ONE_APP)


# --- online capability by terminal type (Book 4 Annex A1) -----------------------------------------------


@pytest.mark.parametrize(("terminal_type", "online"), [
    ("11", True), ("21", True), ("14", True), ("24", True),    # online only
    ("12", True), ("22", True), ("15", True), ("25", True),    # offline with online capability
    ("13", False), ("23", False), ("16", False), ("26", False),  # offline only
])
def test_online_capable_by_terminal_type(tmp_path: Path, terminal_type: str, online: bool) -> None:
    config = load_text(tmp_path, f'[terminal]\ntype = "{terminal_type}"\n' + ONE_APP)
    assert config.terminal_type == int(terminal_type, 16)
    assert config.online_capable is online


def test_every_revocation_file_applies(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"rid": "A000000003", "index": "E1", "serial": "000001"}]))
    (tmp_path / "b.json").write_text(json.dumps([{"rid": "A000000004", "index": "E1", "serial": "000002"}]))
    path = write(tmp_path, 'revocation_files = ["a.json", "b.json"]\n' + ONE_APP)
    revocations = load_config(path).revocations
    assert revocations.is_revoked(bytes.fromhex("A000000003"), 0xE1, bytes.fromhex("000001"))
    assert revocations.is_revoked(bytes.fromhex("A000000004"), 0xE1, bytes.fromhex("000002"))
