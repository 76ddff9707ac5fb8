"""The bounded reader of user files (emvkit.terminal.jsonfile) and private key files (emvkit.terminal.secretfile)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.jsonfile import MAX_DEPTH, parse_json, parse_toml, read_json, read_user_file
from emvkit.terminal.secretfile import read_private, write_private


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_refused() -> None:
    assert parse_json(nested(MAX_DEPTH), "f.json") is not None
    with pytest.raises(ConfigError, match=r"f\.json: JSON nested deeper than"):
        parse_json(nested(MAX_DEPTH + 1), "f.json")
    with pytest.raises(ConfigError, match=r"f\.json: JSON nested deeper than"):
        parse_json('{"a": ' * 50_000 + "1" + "}" * 50_000, "f.json")


def test_toml_nesting_is_bounded_in_arrays_and_tables() -> None:
    assert parse_toml("a = " + nested(MAX_DEPTH - 1), "c.toml")["a"]
    for text in ("a = " + nested(50_000), "a = " + "{b = " * 5_000 + "1" + "}" * 5_000,
                 "[" + ".".join(["t"] * (MAX_DEPTH + 1)) + "]\n"):
        with pytest.raises(ConfigError, match=r"c\.toml: TOML nested deeper than"):
            parse_toml(text, "c.toml")


def test_a_file_larger_than_the_limit_is_refused_after_reading_one_byte_more(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 100 + b"1")
    assert read_user_file(path, limit=101).data.endswith(b"1")
    with pytest.raises(ConfigError, match="larger than"):
        read_user_file(path, limit=100)
    with pytest.raises(ConfigError, match="/dev/zero is larger than"):
        read_json("/dev/zero", "configuration")


def test_read_private_refuses_any_access_by_group_or_others(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text("{}")
    for mode in (0o640, 0o604, 0o620, 0o601, 0o666):
        path.chmod(mode)
        with pytest.raises(ConfigError, match=f"mode {mode:04o}.*run: chmod 600 {path}"):
            read_private(path)
    path.chmod(0o600)
    assert read_private(path) == b"{}"
    with pytest.raises(ConfigError, match="not a regular file"):
        read_private("/dev/null")


def test_write_private_is_0600_whatever_the_umask_and_replaces_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    link = tmp_path / "key.json"
    link.symlink_to(target)
    old = os.umask(0)
    try:
        write_private(link, "secret")
    finally:
        os.umask(old)
    assert target.read_text() == "keep"
    assert not link.is_symlink() and link.read_text() == "secret"
    assert link.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "key.json"]  # no temporary file left


def test_write_private_exclusive_leaves_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    write_private(path, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        write_private(path, b"second", exclusive=True)
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.json"]
