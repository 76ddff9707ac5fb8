"""``emvkit capk``: the CA public keys offline data authentication uses (EMV 4.3 Book 2 §11.2).

``list`` shows the built-in keys (the schemes' published test and production
keys) and the imported ones; ``import`` adds keys from a file (JSON as
``capk_files`` uses, the ``.keys`` layout, or one key per line hex), each
check value verified; ``remove`` drops an imported key. Imported keys live in
the user's data directory and are used by ``tap``, ``watch`` and ``info``
(:mod:`emvkit.terminal.capk`, ``docs/capk.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emvkit.terminal.capk import (
    FORMATS,
    KnownKey,
    imported_keys,
    known_keys,
    read_key_file,
    remove_imported,
    save_imported,
    user_capk_file,
)
from emvkit.terminal.cli.args import BadArgument, parse_hex
from emvkit.terminal.kernel.capk import CaPublicKey

_SOURCE_NAMES = {"imported": "imported", "production": "built-in production", "test": "built-in test"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "capk",
        help="list, import and remove CA public keys (built-in: the schemes' test and production keys)",
        description="The Certification Authority public keys used for offline data authentication by tap, watch "
        "and info: built-in (the schemes' published test and production keys) and imported ones (kept in the "
        f"user's data directory, {user_capk_file()}). Precedence for a RID and index: the terminal "
        "configuration's keys, then imported, then built-in production, then built-in test.",
    )
    parser.set_defaults(func=lambda args: parser.error("give a sub-command: list, import or remove"))
    commands = parser.add_subparsers(dest="capk_command", metavar="SUBCOMMAND")

    listing = commands.add_parser("list", help="list built-in and imported keys",
                                  description="List every known CA public key: RID/index, size, where it comes "
                                  "from (imported, built-in production, built-in test), check value, and whether "
                                  "a key earlier in precedence takes its place.")
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(func=run_list, command_name="capk list")

    importing = commands.add_parser(
        "import", help="import CA public keys from a file",
        description="Import CA public keys. Layouts: json (a list of {rid, index, modulus, exponent, checksum, "
        "expiry, description} as capk_files uses), keys (one key per line: RID INDEX EXPIRY rsa EXPONENT "
        "MODULUS sha1 CHECK-VALUE) and hex (one key per line: RID INDEX EXPONENT MODULUS [CHECK-VALUE]); by "
        "default .json and .keys files by their extension, any other as hex. Every check value is verified "
        "(SHA-1 of RID, index, modulus and exponent); a wrong one refuses the whole file. A key without a "
        "check value is refused unless --no-check-value.")
    importing.add_argument("file", type=Path, help="the key file")
    importing.add_argument("--format", choices=FORMATS, help="the file's layout (default: from its extension)")
    importing.add_argument("--no-check-value", action="store_true",
                           help="accept keys that carry no check value (it is computed and shown)")
    importing.add_argument("--description", default="", help="a note kept with each imported key")
    importing.set_defaults(func=run_import, command_name="capk import")

    removing = commands.add_parser("remove", help="remove an imported key",
                                   description="Remove an imported key, named RID/INDEX (A000000003/92) or as "
                                   "in capk list. Built-in keys cannot be removed; an imported key with the "
                                   "same RID and index takes their place.")
    removing.add_argument("key", help="RID/INDEX, e.g. A000000003/92")
    removing.set_defaults(func=run_remove, command_name="capk remove")


def _bits(key: CaPublicKey) -> int:
    """The key size: the modulus of an RSA key, the curve (256 bits) of an SM2 key."""
    return 256 if key.algorithm == "sm2" else len(key.modulus) * 8


def _row(known: KnownKey, used: bool) -> dict[str, object]:
    key = known.key
    return {"key": key.name, "rid": key.rid.hex().upper(), "index": f"{key.index:02X}", "algorithm": key.algorithm,
            "bits": _bits(key), "exponent": key.exponent.hex().upper(), "source": known.source,
            "checksum": key.compute_checksum().hex().upper(),
            "expiry": None if key.expiry is None else key.expiry.isoformat(), "used": used,
            "description": known.description}


def run_list(args: argparse.Namespace) -> int:
    seen: set[tuple[bytes, int]] = set()
    rows = []
    for known in known_keys():
        slot = (known.key.rid, known.key.index)
        rows.append(_row(known, slot not in seen))
        seen.add(slot)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'KEY':14} {'BITS':>4}  {'SOURCE':20} {'CHECK VALUE':40}  DESCRIPTION")
    for row in rows:
        note = "" if row["used"] else "  (not used: an imported key has this RID and index)"
        print(f"{row['key']!s:14} {row['bits']!s:>4}  {_SOURCE_NAMES[str(row['source'])]:20} {row['checksum']!s:40}  "
              f"{row['description']}{note}")
    print(f"\nimported keys: {user_capk_file()}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    keys = read_key_file(args.file, args.format)
    if not keys:
        raise BadArgument(f"{args.file}: no key in the file")
    unchecked = [k for k in keys if k.checksum is None]
    if unchecked and not args.no_check_value:
        first = unchecked[0]
        raise BadArgument(f"{args.file}: key {first.name} has no check value (its SHA-1 is "
                          f"{first.compute_checksum().hex().upper()}); give --no-check-value to accept it")
    current = {(k.key.rid, k.key.index): k for k in imported_keys()}
    for key in keys:
        slot = (key.rid, key.index)
        state = "replaced" if slot in current and current[slot].key != key else "imported"
        if slot in current and current[slot].key == key:
            state = "unchanged"
        current[slot] = KnownKey(key, "imported", args.description or current.get(slot, KnownKey(key, "imported"))
                                 .description)
        checked = "check value verified" if key.checksum is not None else "no check value given"
        size = f"SM2, {_bits(key)}" if key.algorithm == "sm2" else f"{_bits(key)}"
        print(f"{key.name}: {state}, {size} bits, check value "
              f"{key.compute_checksum().hex().upper()} ({checked})")
    path = save_imported(sorted(current.values(), key=lambda k: (k.key.rid, k.key.index)))
    print(f"{len(current)} imported key(s) in {path}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    rid_text, _, index_text = args.key.partition("/")
    raw = parse_hex(rid_text + index_text, "key")
    if len(raw) != 6:
        raise BadArgument(f"key {args.key!r}: expected RID/INDEX, 5 bytes and 1 byte of hex (A000000003/92)")
    removed = remove_imported(raw[:5], raw[5])
    if removed is None:
        raise BadArgument(f"no imported key {raw[:5].hex().upper()}/{raw[5]:02X} (emvkit capk list shows them; "
                          "built-in keys cannot be removed)")
    print(f"{removed.key.name}: removed from {user_capk_file()}")
    return 0
