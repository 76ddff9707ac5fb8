"""The built-in test cards shipped with emvkit (``emu:visa`` and friends).

The profiles under ``terminal/perso/profiles/`` were made by
:func:`regenerate` and are committed, so every run taps the same cards; the
CA public keys a terminal needs for them are in ``profiles/capk.json``. Their
keys are test keys, published with the project, and worthless for payments:
they are public test data, read without the private-file check of
:mod:`emvkit.terminal.secretfile` (a package installed from a wheel may be
0644). A profile file given by the user that holds ``secrets`` must be private
(:func:`read_profile`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emvkit.terminal.errors import ConfigError
from emvkit.terminal.jsonfile import decode_text, parse_json, read_json, read_user_file
from emvkit.terminal.perso.cards import DEFAULT_PAN_PREFIX, RIDS, SCHEMES, CardOptions, build_card, luhn_complete
from emvkit.terminal.perso.keys import CA_BITS_DEFAULT, generate_rsa
from emvkit.terminal.secretfile import check_private

__all__ = [
    "BUILTIN_DIR", "DEFAULT_CARD", "builtin_names", "capk_path", "load_builtin", "load_profile", "profile_path",
    "read_profile", "regenerate", "regenerate_variant",
]

BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"


# Built-in cards beyond one per scheme: name -> (scheme, CA public key index).
# unionpay-sm: the PBOC 3.0 SM suite, under its own SM2 test CA.
VARIANTS = {"unionpay-sm": ("unionpay", 0xE3)}


def builtin_names() -> list[str]:
    return [*SCHEMES, *VARIANTS]


def profile_path(name: str) -> Path:
    if name not in builtin_names():
        raise ConfigError(f"no built-in card {name!r} (built-in: {', '.join(builtin_names())})")
    return BUILTIN_DIR / f"{name}.json"


def card_source(spec: str) -> Path:
    """A built-in card's name (it wins over a file of that name) or a profile file's path, as a path;
    ``ConfigError`` for a bare word that is neither (a path that does not exist is left to its reader)."""
    if spec in builtin_names():
        return profile_path(spec)
    path = Path(spec)
    if not path.is_file() and "/" not in spec and path.suffix != ".json":  # a path is read, and says why not
        raise ConfigError(f"{spec}: neither a built-in card ({', '.join(builtin_names())}) nor a profile file")
    return path


def capk_path() -> Path:
    return BUILTIN_DIR / "capk.json"


def load_builtin(name: str) -> dict[str, Any]:
    doc = read_json(profile_path(name), "built-in profile")
    if not isinstance(doc, dict):
        raise ConfigError(f"built-in profile {name}: not a JSON object (reinstall emvkit)")
    return doc


def regenerate(directory: Path = BUILTIN_DIR) -> None:
    """Make new built-in cards: one test CA per RID, one card per scheme, and the variants."""
    directory.mkdir(parents=True, exist_ok=True)
    cas = {rid: generate_rsa(CA_BITS_DEFAULT) for rid in set(RIDS.values())}
    capks = {}
    for name in SCHEMES:
        rid = RIDS["visa" if name == "wearable" else name]
        built = build_card(CardOptions(scheme=name, ca=cas[rid], pan=luhn_complete(DEFAULT_PAN_PREFIX[name])))
        (directory / f"{name}.json").write_text(json.dumps(built.profile, indent=1) + "\n")
        capks[(rid, built.capk["index"])] = built.capk
    (directory / "capk.json").write_text(json.dumps(sorted(capks.values(), key=lambda k: k["rid"]),
                                                    indent=1) + "\n")
    for name in VARIANTS:
        regenerate_variant(name, directory)


def regenerate_variant(name: str, directory: Path = BUILTIN_DIR) -> None:
    """Make one variant card afresh (its own CA) and put its CA public key in
    ``capk.json`` beside the others, which stay as they are."""
    scheme, index = VARIANTS[name]
    pan = luhn_complete(DEFAULT_PAN_PREFIX[scheme][:-1] + "4")  # not the scheme card's PAN
    built = build_card(CardOptions(scheme=scheme, pan=pan, ca_index=index, sm=name.endswith("-sm")))
    built.profile["id"] = name
    (directory / f"{name}.json").write_text(json.dumps(built.profile, indent=1) + "\n")
    path = directory / "capk.json"
    keys = [k for k in json.loads(path.read_text()) if (k["rid"], k["index"]) != (built.capk["rid"], index)]
    path.write_text(json.dumps(sorted([*keys, built.capk], key=lambda k: (k["rid"], k["index"])), indent=1) + "\n")


DEFAULT_CARD = "visa"


def load_profile(spec: str) -> dict[str, Any]:
    """A profile document: a built-in name (``visa``) or a JSON file path."""
    spec = spec or DEFAULT_CARD
    if spec in builtin_names():
        return load_builtin(spec)
    return read_profile(card_source(spec))


def read_profile(path: str | Path, what: str = "profile") -> dict[str, Any]:
    """A card profile file: a JSON object; refused when it holds ``secrets`` and
    group or others can access it (:func:`emvkit.terminal.secretfile.check_private`)."""
    file = read_user_file(path, what)
    doc = parse_json(decode_text(file, what), str(file.path))
    if not isinstance(doc, dict):
        raise ConfigError(f"{file.path}: a {what} is a JSON object")
    if "secrets" in doc:
        check_private(file, what)
    return doc


if __name__ == "__main__":
    regenerate()
