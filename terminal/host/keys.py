"""The issuer's key store: which Issuer Master Key (IMK-AC) verifies which card.

An entry covers every PAN that starts with its ``bin_prefix``; the longest
matching prefix wins, so a whole BIN range and a single card (a prefix that
is the full PAN) can live side by side. Each entry says how the card computes
its cryptograms: the cryptogram version (a name of
:data:`emvkit.firmware.crypto.emv.CRYPTOGRAM_VERSIONS`), the ICC master key
derivation option (EMV Book 2 Annex A1.4.1 option A, A1.4.2 option B) and the
Derivation Key Index (DKI, carried in the Issuer Application Data).

Key file (JSON, written with mode 0600)::

    {
      "format": "emvkit-issuer-keys",
      "version": 1,
      "keys": [
        {"bin_prefix": "476173", "scheme": "visa", "cryptogram_version": "visa_cvn18",
         "imk_ac": "<32 hex digits>", "derivation": "B", "dki": 1}
      ]
    }

``derivation`` defaults to the cryptogram version's usual option and ``dki``
to 1. A key file that its group or other users can read or write is
**refused** (like ssh's private keys): ``chmod 600`` it. Keys never appear in
a repr, a log line or an error message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emvkit.firmware.crypto.emv import CRYPTOGRAM_VERSIONS
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.jsonfile import parse_json
from emvkit.terminal.perso.builtin import builtin_names, load_builtin
from emvkit.terminal.secretfile import read_private, write_private

__all__ = ["FORMAT", "IssuerKey", "IssuerKeys"]

FORMAT = "emvkit-issuer-keys"
SCHEMES = ("visa", "mastercard", "unionpay")


@dataclass(frozen=True)
class IssuerKey:
    """One Issuer Master Key for Application Cryptograms and the cards it covers."""

    bin_prefix: str  # PAN prefix digits (a BIN, a range, or a whole PAN)
    scheme: str  # visa, mastercard, unionpay
    cryptogram_version: str  # visa_cvn10, visa_cvn18, mc_cvn16, mc_cvn17, upi
    imk_ac: bytes = field(repr=False)  # 16-byte double-length TDEA key
    derivation: str = "A"  # ICC MK derivation option, EMV Book 2 Annex A1.4
    dki: int = 1  # Derivation Key Index
    imk_smi: bytes | None = field(default=None, repr=False)  # secure messaging integrity (script MACs)

    def __post_init__(self) -> None:
        if not self.bin_prefix.isdigit() or not 1 <= len(self.bin_prefix) <= 19:
            raise ConfigError(f"issuer key: bin_prefix must be 1 to 19 digits, got {self.bin_prefix!r}")
        if self.scheme not in SCHEMES:
            raise ConfigError(f"issuer key {self.bin_prefix}: scheme must be one of {', '.join(SCHEMES)}")
        if self.cryptogram_version not in CRYPTOGRAM_VERSIONS:
            raise ConfigError(f"issuer key {self.bin_prefix}: cryptogram_version must be one of "
                              f"{', '.join(sorted(CRYPTOGRAM_VERSIONS))}")
        if len(self.imk_ac) != 16:
            raise ConfigError(f"issuer key {self.bin_prefix}: imk_ac must be 16 bytes (32 hex digits)")
        if (self.derivation == "SM4") != (self.cryptogram_version == "upi_sm4"):
            raise ConfigError(f"issuer key {self.bin_prefix}: derivation SM4 goes with cryptogram_version upi_sm4 "
                              "(the SM suite's SM4 master keys), A or B with the others")
        if self.derivation not in ("A", "B", "SM4"):
            raise ConfigError(f"issuer key {self.bin_prefix}: derivation must be A, B or SM4")
        if not 0 <= self.dki <= 0xFF:
            raise ConfigError(f"issuer key {self.bin_prefix}: dki must be 0..255")
        if self.imk_smi is not None and len(self.imk_smi) != 16:
            raise ConfigError(f"issuer key {self.bin_prefix}: imk_smi must be 16 bytes (32 hex digits)")

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str = "key") -> IssuerKey:
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{where}: expected an object")
        try:
            version = str(doc["cryptogram_version"])
            imk_hex = doc["imk_ac"]
            prefix = doc["bin_prefix"]
            scheme = doc["scheme"]
        except KeyError as exc:
            raise ConfigError(f"{where}: missing {exc.args[0]!r}") from None
        if not isinstance(imk_hex, str):
            raise ConfigError(f"{where}.imk_ac: expected a hex string")
        try:
            imk = bytes.fromhex(imk_hex)
        except ValueError:
            raise ConfigError(f"{where}.imk_ac: not hex") from None
        default_option = CRYPTOGRAM_VERSIONS[version][2] if version in CRYPTOGRAM_VERSIONS else "A"
        dki = doc.get("dki", 1)
        if not isinstance(dki, int) or isinstance(dki, bool):
            raise ConfigError(f"{where}.dki: expected an integer")
        smi_hex = doc.get("imk_smi")
        smi = None
        if smi_hex is not None:
            try:
                smi = bytes.fromhex(smi_hex) if isinstance(smi_hex, str) else None
            except ValueError:
                smi = None
            if smi is None:
                raise ConfigError(f"{where}.imk_smi: expected a hex string")
        return cls(bin_prefix=str(prefix), scheme=str(scheme), cryptogram_version=version, imk_ac=imk,
                   derivation=str(doc.get("derivation", default_option)).upper(), dki=dki, imk_smi=smi)

    def to_dict(self) -> dict[str, Any]:
        return {"bin_prefix": self.bin_prefix, "scheme": self.scheme,
                "cryptogram_version": self.cryptogram_version, "imk_ac": self.imk_ac.hex().upper(),
                "derivation": self.derivation, "dki": self.dki,
                **({"imk_smi": self.imk_smi.hex().upper()} if self.imk_smi is not None else {})}


class IssuerKeys:
    """Issuer master keys by PAN prefix; :meth:`find` picks the longest match."""

    def __init__(self, keys: Iterable[IssuerKey] = ()) -> None:
        self._by_prefix: dict[str, IssuerKey] = {}
        self._lengths: list[int] = []
        for key in keys:
            self.add(key)

    def add(self, key: IssuerKey) -> None:
        if key.bin_prefix in self._by_prefix:
            raise ConfigError(f"two issuer keys for the PAN prefix {key.bin_prefix}")
        self._by_prefix[key.bin_prefix] = key
        self._lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)

    def find(self, pan: str) -> IssuerKey | None:
        """The key of the longest ``bin_prefix`` that starts ``pan``, or None."""
        for n in self._lengths:
            if n <= len(pan):
                key = self._by_prefix.get(pan[:n])
                if key is not None:
                    return key
        return None

    def __iter__(self) -> Iterator[IssuerKey]:
        return iter(self._by_prefix.values())

    def __len__(self) -> int:
        return len(self._by_prefix)

    def __repr__(self) -> str:
        return f"IssuerKeys({len(self)} keys: {', '.join(sorted(self._by_prefix))})"

    # --- building a store ---

    @classmethod
    def from_profiles(cls, profiles: Iterable[Mapping[str, Any]]) -> IssuerKeys:
        """A store holding the issuer key of each card profile (its
        ``secrets.imk_ac``), keyed by the card's whole PAN: perso makes a
        fresh IMK per card, so a BIN-wide entry would be wrong for the next
        card of the same BIN."""
        return cls(_key_from_profile(doc, i) for i, doc in enumerate(profiles))

    @classmethod
    def builtin(cls) -> IssuerKeys:
        """The issuer keys of the built-in test cards (``emu:visa`` and friends)."""
        return cls.from_profiles(load_builtin(name) for name in builtin_names())

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> IssuerKeys:
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
            raise ConfigError(f"not an issuer key file (expected \"format\": \"{FORMAT}\")")
        if doc.get("version") != 1:
            raise ConfigError(f"issuer key file version {doc.get('version')!r} is not supported (1)")
        entries = doc.get("keys")
        if not isinstance(entries, list):
            raise ConfigError("issuer key file: \"keys\" must be a list")
        return cls(IssuerKey.from_dict(e, f"keys[{i}]") for i, e in enumerate(entries))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": 1, "keys": [k.to_dict() for k in self]}

    # --- files ---

    @classmethod
    def load(cls, path: str | Path) -> IssuerKeys:
        """Read a key file; refuse one that group or others can access."""
        path = Path(path)
        doc = parse_json(read_private(path, "issuer key file"), str(path))
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: not an issuer key file (expected a JSON object)")
        try:
            return cls.from_dict(doc)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def save(self, path: str | Path) -> None:
        """Write the key file with mode 0600."""
        try:
            write_private(path, json.dumps(self.to_dict(), indent=1) + "\n")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write the key file ({exc.strerror})") from None


def _key_from_profile(doc: Mapping[str, Any], index: int) -> IssuerKey:
    where = f"profile {doc.get('id', index)!s}" if isinstance(doc, Mapping) else f"profile {index}"
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: expected a card profile object")
    secrets = doc.get("secrets")
    if not isinstance(secrets, Mapping) or "imk_ac" not in secrets or "pan" not in secrets:
        raise ConfigError(f"{where}: no secrets.imk_ac and secrets.pan (a profile without secrets, "
                          "or one personalised with ICC keys only)")
    apps = doc.get("applications")
    if not isinstance(apps, list) or not apps or not all(isinstance(a, Mapping) for a in apps):
        raise ConfigError(f"{where}: no applications")
    versions = {str(a.get("cryptogram_version")) for a in apps}
    if len(versions) != 1:
        raise ConfigError(f"{where}: applications use different cryptogram versions "
                          f"({', '.join(sorted(versions))}); one issuer key entry needs one")
    version = versions.pop()
    scheme = str(apps[0].get("scheme"))
    option = secrets.get("derivation") or (CRYPTOGRAM_VERSIONS[version][2] if version in CRYPTOGRAM_VERSIONS
                                           else "A")
    return IssuerKey.from_dict({"bin_prefix": secrets["pan"], "scheme": scheme, "cryptogram_version": version,
                                "imk_ac": secrets["imk_ac"], "derivation": option,
                                "dki": apps[0].get("dki", 1),
                                **({"imk_smi": secrets["imk_smi"]} if "imk_smi" in secrets else {})}, where)
