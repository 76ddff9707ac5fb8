"""Terminal configuration: the terminal's own data, per-application limits
and action codes, and the CA public keys; parsed from a TOML document.

This module parses what has been read; it reads no file. The files (the
TOML, the CA key and revocation files it names, the built-in default
``terminal/kernel/default_terminal.toml`` that matches the built-in test
cards) are read by :func:`emvkit.terminal.config_files.load_config`.
``docs/terminal-config.md`` documents every key. Amounts are in minor units
of the transaction currency (1234 = 12.34 EUR).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.kernel.capk import CapkStore, RevocationList

__all__ = ["AppConfig", "TerminalConfig", "config_from_toml"]

KERNELS = (2, 3, 7)
_T = TypeVar("_T")


@dataclass(frozen=True)
class AppConfig:
    """One supported (AID, kernel) combination (Book B §3.1.1)."""

    aid: bytes
    kernel: int
    partial_selection: bool = True
    application_version: bytes = b""
    floor_limit: int = 0
    cvm_required_limit: int = 0
    transaction_limit: int = 0  # 0: no limit
    zero_amount_allowed: bool = True
    ttq: bytes = bytes.fromhex("36004000")
    tac_denial: bytes = bytes(5)
    tac_online: bytes = bytes(5)
    tac_default: bytes = bytes(5)
    cvm_capability_cvm_required: int = 0x60  # C-2: online PIN and signature (9F33 byte 2 bits)
    cvm_capability_no_cvm: int = 0x08  # C-2: "No CVM required"


@dataclass
class TerminalConfig:
    terminal_type: int = 0x22
    capabilities: bytes = bytes.fromhex("E068C8")
    additional_capabilities: bytes = bytes.fromhex("F000F0A001")
    country: bytes = bytes.fromhex("0250")
    currency: bytes = bytes.fromhex("0978")
    currency_exponent: int = 2
    merchant_category_code: bytes = bytes.fromhex("5411")
    terminal_id: bytes = b"EMVKIT01"
    # PBOC 3.0 SM suite: tell a card whose PDOL asks for the SM Algorithm
    # Support Indicator (DF69) that this terminal supports SM (01) or not (00).
    sm_algorithms: bool = True
    random_selection_percent: int = 0
    random_selection_max_percent: int = 0
    random_selection_threshold: int = 0
    applications: list[AppConfig] = field(default_factory=list)
    capks: CapkStore = field(default_factory=CapkStore)
    revocations: RevocationList = field(default_factory=RevocationList)
    source: str = "built-in"
    # The CA key and revocation files the configuration names ("builtin": the
    # built-in test CA keys), as written; the loader reads them into capks
    # and revocations.
    capk_files: tuple[str, ...] = ()
    revocation_files: tuple[str, ...] = ()

    @property
    def online_capable(self) -> bool:
        # Terminal type (Book 4 Annex A1): x1/x4 online only, x2/x5 offline
        # with online capability, x3/x6 offline only.
        return self.terminal_type & 0x0F not in (0x03, 0x06)

    def terminal_data(self) -> dict[int, bytes]:
        """The terminal-sourced data elements kernels put in DOLs."""
        return {
            0x9F35: bytes((self.terminal_type,)),
            0x9F33: self.capabilities,
            0x9F40: self.additional_capabilities,
            0x9F1A: self.country,
            0x5F2A: self.currency,
            0x5F36: bytes((self.currency_exponent,)),
            0x9F15: self.merchant_category_code,
            0x9F1C: self.terminal_id,
            0xDF69: b"\x01" if self.sm_algorithms else b"\x00",
        }


class _Reader:
    """Typed access to one TOML table, with errors that name the key."""

    def __init__(self, table: dict[str, object], where: str) -> None:
        self.table = table
        self.where = where
        self.used: set[str] = set()

    def get(self, key: str, kind: type[_T], default: _T) -> _T:
        self.used.add(key)
        value = self.table.get(key, default)
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise ConfigError(f"{self.where}.{key}: expected {kind.__name__}, got {value!r}")
        return value

    def hex(self, key: str, default: bytes, size: int | None = None) -> bytes:
        text = self.get(key, str, default.hex().upper())
        try:
            value = bytes.fromhex(text)
        except ValueError as exc:
            raise ConfigError(f"{self.where}.{key}: not hex: {text!r}") from exc
        if size is not None and len(value) != size:
            raise ConfigError(f"{self.where}.{key}: {size} bytes expected, got {len(value)}")
        return value

    def bounded(self, key: str, default: int, low: int, high: int) -> int:
        value = self.get(key, int, default)
        if not low <= value <= high:
            raise ConfigError(f"{self.where}.{key}: {low} to {high}, got {value}")
        return value

    def strings(self, key: str, default: list[str]) -> list[str]:
        values: list[object] = self.get(key, list, list(default))
        strings = []
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise ConfigError(f"{self.where}.{key}[{i}]: expected a string, got {value!r}")
            strings.append(value)
        return strings

    def amount(self, key: str, default: int) -> int:
        value = self.get(key, int, default)
        if value < 0:
            raise ConfigError(f"{self.where}.{key}: amounts are not negative")
        return value

    def check_unknown(self) -> None:
        unknown = set(self.table) - self.used
        if unknown:
            raise ConfigError(f"{self.where}: unknown key(s) {', '.join(sorted(unknown))}")


_LIMIT_KEYS = ("floor_limit", "cvm_required_limit", "transaction_limit")


def _application(table: dict[str, object], defaults: dict[str, object], where: str) -> AppConfig:
    merged = {**defaults, **table}
    r = _Reader(merged, where)
    aid = r.hex("aid", b"")
    if not 5 <= len(aid) <= 16:
        raise ConfigError(f"{where}.aid: an AID is 5 to 16 bytes")
    kernel = r.get("kernel", int, 0)
    if kernel not in KERNELS:
        raise ConfigError(f"{where}.kernel: one of {', '.join(map(str, KERNELS))}")
    app = AppConfig(
        aid=aid,
        kernel=kernel,
        partial_selection=r.get("partial_selection", bool, True),
        application_version=r.hex("application_version", b""),
        floor_limit=r.amount("floor_limit", 0),
        cvm_required_limit=r.amount("cvm_required_limit", 0),
        transaction_limit=r.amount("transaction_limit", 0),
        zero_amount_allowed=r.get("zero_amount_allowed", bool, True),
        ttq=r.hex("ttq", AppConfig.ttq, 4),
        tac_denial=r.hex("tac_denial", bytes(5), 5),
        tac_online=r.hex("tac_online", bytes(5), 5),
        tac_default=r.hex("tac_default", bytes(5), 5),
        cvm_capability_cvm_required=r.hex("cvm_capability_cvm_required", b"\x60", 1)[0],
        cvm_capability_no_cvm=r.hex("cvm_capability_no_cvm", b"\x08", 1)[0],
    )
    r.check_unknown()
    return app


def _terminal_id(t: _Reader) -> bytes:
    text = t.get("terminal_id", str, "EMVKIT01")
    if not text.isascii() or not 1 <= len(text) <= 8:
        raise ConfigError(f"{t.where}.terminal_id: 1 to 8 ASCII characters (9F1C is an 8)")
    return text.encode().ljust(8)


def config_from_toml(doc: dict[str, object], where: str) -> TerminalConfig:
    """The configuration in a parsed TOML document; ``where`` names it in
    errors. Inline CA keys ([[capk]]) are in ``capks``; the files named in
    ``capk_files`` and ``revocation_files`` are left to the loader."""
    top = _Reader(doc, where)
    t = _Reader(top.get("terminal", dict, {}), f"{where}: terminal")
    config = TerminalConfig(
        terminal_type=t.hex("type", b"\x22", 1)[0],
        capabilities=t.hex("capabilities", TerminalConfig.capabilities, 3),
        additional_capabilities=t.hex("additional_capabilities", TerminalConfig.additional_capabilities, 5),
        country=t.hex("country", TerminalConfig.country, 2),
        currency=t.hex("currency", TerminalConfig.currency, 2),
        currency_exponent=t.bounded("currency_exponent", 2, 0, 9),
        merchant_category_code=t.hex("merchant_category_code", TerminalConfig.merchant_category_code, 2),
        terminal_id=_terminal_id(t),
        sm_algorithms=t.get("sm_algorithms", bool, True),
        source=where,
    )
    t.check_unknown()
    risk = _Reader(top.get("risk", dict, {}), f"{where}: risk")
    config.random_selection_percent = risk.bounded("random_selection_percent", 0, 0, 99)
    config.random_selection_max_percent = risk.bounded("random_selection_max_percent", 0, 0, 99)
    config.random_selection_threshold = risk.amount("random_selection_threshold", 0)
    risk.check_unknown()
    defaults = top.get("defaults", dict, {})
    apps = top.get("application", list, [])
    if not apps:
        raise ConfigError(f"{where}: at least one [[application]] is needed")
    for i, app in enumerate(apps):
        if not isinstance(app, dict):
            raise ConfigError(f"{where}: application[{i}]: expected a table ([[application]])")
    config.applications = [_application(a, defaults, f"{where}: application[{i}]") for i, a in enumerate(apps)]
    config.capk_files = tuple(top.strings("capk_files", ["builtin"]))
    if "capk" in doc:
        config.capks = CapkStore.from_json(top.get("capk", list, []), f"{where}: capk")
    config.revocation_files = tuple(top.strings("revocation_files", []))
    top.check_unknown()
    return config
