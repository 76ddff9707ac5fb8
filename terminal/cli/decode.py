"""``emvkit decode``: pretty-print BER-TLV data."""

from __future__ import annotations

import argparse
import json
import sys

from emvkit.firmware import tlv
from emvkit.terminal.cli.args import parse_hex
from emvkit.terminal.tlvdump import format_tree, to_json_tree


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "decode",
        help="decode BER-TLV hex and print it with EMV tag names",
        description="Decode BER-TLV data (EMV Book 3 Annex B) and print each data object with its "
        "name, length, decoded value and bit meanings. Card numbers and track data are masked "
        "unless --reveal is given.",
    )
    parser.add_argument("hex", help="hex data (spaces and colons allowed), or - to read stdin")
    parser.add_argument("--json", action="store_true", help="print the tree as JSON")
    parser.add_argument("--reveal", action="store_true", help="show PAN and track data in full")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.hex == "-" else args.hex
    data = parse_hex(text)
    nodes = tlv.decode(data)
    if args.json:
        print(json.dumps(to_json_tree(nodes, reveal=args.reveal), indent=2))
    else:
        print(format_tree(nodes, reveal=args.reveal))
    return 0
