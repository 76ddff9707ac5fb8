"""``emvkit token``: the wearable token: provision it, ask it what it is, flash its image.

Each action is registered by its own ``add_<action>(actions)`` function, listed
in :data:`ACTIONS`; an action sets ``func`` and ``command_name`` ("token
ACTION", which error lines start with).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from emvkit.terminal.token.device import TokenInfo, open_link, read_info
from emvkit.terminal.token.provision import load_personalisation, provision

if TYPE_CHECKING:
    Actions = argparse._SubParsersAction[argparse.ArgumentParser]

_PROGRESS_AFTER = 1.0  # seconds: a provisioning that takes longer shows its progress on stderr
_PORT_HELP = "the token's dev link: a serial: URL (serial:/dev/ttyACM0, serial:socket://HOST:PORT) or a device path"


def add_parser(sub: Actions) -> None:
    parser = sub.add_parser(
        "token",
        help="the wearable token: provision its card, show its state, flash its image",
        description="The wearable token over its dev link (the serial link of docs/serial-link.md): write its "
        "personalisation, ask what it runs and holds, and write its firmware image to a board.",
    )
    actions = parser.add_subparsers(dest="token_command", metavar="ACTION")
    actions.required = True
    for add_action in ACTIONS:
        add_action(actions)


# --- provision ---

def add_provision(actions: Actions) -> None:
    parser = actions.add_parser(
        "provision", help="write a card profile (keys included) to the token",
        description="Check a card profile locally, then write it to the token over its dev link in chunks; the "
        "token checks it again and stores it durably. A token that is already personalised refuses a new "
        "profile unless --force is given; a refused or failed provisioning leaves the token as it was. "
        "Secrets are never printed.",
    )
    parser.add_argument("--port", required=True, metavar="URL", help=_PORT_HELP)
    parser.add_argument("--card", required=True, type=Path, metavar="PROFILE.json",
                        help="the card profile (emvkit perso --out), secrets included")
    parser.add_argument("--force", action="store_true", help="replace the personalisation the token holds")
    parser.set_defaults(func=run_provision, command_name="token provision")


class _Progress:
    """Bytes sent, on one stderr line, once the transfer has taken more than a second."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, sent: int, total: int) -> None:
        if not self.shown and time.monotonic() - self.started < _PROGRESS_AFTER:
            return
        self.shown = True
        print(f"\rsent {sent} of {total} bytes", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.shown:
            print(file=sys.stderr, flush=True)


def run_provision(args: argparse.Namespace) -> int:
    perso = load_personalisation(args.card)
    progress = _Progress()
    transport = open_link(args.port)
    try:
        profile_id = provision(transport, perso, force=args.force, progress=progress)
    finally:
        progress.done()
        transport.close()
    url = transport.url
    print(f"personalised the token on {url}: profile {profile_id} ({', '.join(perso.schemes)}, "
          f"PAN {perso.masked_pan}), {len(perso.data)} bytes")
    return 0


# --- info ---

def add_info(actions: Actions) -> None:
    parser = actions.add_parser(
        "info", help="what the token runs and holds: firmware, board, heap, store, profile, ATC",
        description="Ask the token (DEVICE_INFO) for its firmware version, board, free heap, the state of its "
        "store, whether it is personalised, its profile and the last ATC it used.",
    )
    parser.add_argument("--port", required=True, metavar="URL", help=_PORT_HELP)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run_info, command_name="token info")


def _info_lines(info: TokenInfo, url: str) -> list[str]:
    return [
        f"token:        {url}",
        f"firmware:     {info.version or '?'} ({info.implementation or '?'})",
        f"board:        {info.board or '?'}",
        f"free heap:    {info.free_heap} bytes",
        f"store:        {info.store or '?'}",
        f"personalised: {'yes' if info.personalised else 'no'}",
        f"profile:      {info.profile or '-'}",
        f"ATC:          {info.atc}",
    ]


def run_info(args: argparse.Namespace) -> int:
    transport = open_link(args.port)
    try:
        info = read_info(transport)
    finally:
        transport.close()
    url = transport.url
    if args.json:
        print(json.dumps({"port": url, **info.to_json()}, indent=2))
    else:
        print("\n".join(_info_lines(info, url)))
    return 0


# --- flash ---

def add_flash(actions: Actions) -> None:
    parser = actions.add_parser(
        "flash", help="write a firmware image to a board (UF2 drive, picotool, esptool)",
        description="Write a token image to a board: rpi_pico2 by copying the .uf2 to its BOOTSEL drive "
        "(or with picotool), esp32s3 with esptool. A QEMU board is not flashed but booted (emvkit token run). "
        "--dry-run prints the commands and changes nothing.",
    )
    parser.add_argument("--board", required=True, metavar="BOARD",
                        help="rpi_pico2, esp32s3, or a QEMU board (an unknown name lists them)")
    parser.add_argument("--image", required=True, type=Path, help="the image: .uf2 (rpi_pico2), .bin (esp32s3)")
    parser.add_argument("--port", help="the serial port esptool uses (esp32s3; default: esptool looks)")
    parser.add_argument("--drive", type=Path, help="the mounted BOOTSEL drive (rpi_pico2; default: found by its "
                        "INFO_UF2.TXT)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, change nothing")
    parser.set_defaults(func=run_flash, command_name="token flash")


def run_flash(args: argparse.Namespace) -> int:
    from emvkit.terminal.token.boards import board  # the board table: only where it is needed
    from emvkit.terminal.token.flash import execute, plan

    flash_plan = plan(board(args.board), args.image, port=args.port, drive=args.drive)
    if flash_plan.note:
        print(flash_plan.note, file=sys.stderr if flash_plan.steps else sys.stdout)
    if args.dry_run:
        for step in flash_plan.steps:
            print(step.describe())
        if flash_plan.missing:
            print(f"({flash_plan.missing})", file=sys.stderr)
        return 0
    execute(flash_plan)
    if flash_plan.steps:
        print(f"flashed {args.image} to {args.board}")
    return 0


# The actions of `emvkit token`, in the order its help lists them.
ACTIONS: list[Callable[[Actions], None]] = [add_provision, add_info, add_flash]
