"""``emvkit token``: the wearable token: build and boot its image, provision it, ask it what it is, flash it.

Each action is registered by its own ``add_<action>(actions)`` function, listed
in :data:`ACTIONS`; an action sets ``func`` and ``command_name`` ("token
ACTION", which error lines start with).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from emvkit.terminal.cli.args import BadArgument
from emvkit.terminal.perso.builtin import card_source
from emvkit.terminal.token.device import TokenInfo, open_link, read_info
from emvkit.terminal.token.front_end import FRONT_ENDS
from emvkit.terminal.token.provision import load_personalisation, provision

if TYPE_CHECKING:
    from emvkit.terminal.token.build import Progress

    Actions = argparse._SubParsersAction[argparse.ArgumentParser]

DEFAULT_OUT = "build/token"
_PROGRESS_AFTER = 1.0  # seconds: a provisioning that takes longer shows its progress on stderr
_PORT_HELP = "the token's dev link: a serial: URL (serial:/dev/ttyACM0, serial:socket://HOST:PORT) or a device path"


def add_parser(sub: Actions) -> None:
    parser = sub.add_parser(
        "token",
        help="the wearable token: build and boot its image, provision its card, show its state, flash it",
        description="The wearable token: build its firmware image for a board, boot a QEMU board, write its "
        "personalisation over its dev link (the serial link of docs/serial-link.md), ask what it runs and holds, "
        "and write its image to a hardware board.",
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
    parser.add_argument("--card", required=True, metavar="NAME|PROFILE.json",
                        help="a built-in card (visa, mastercard, ...) or a card profile (emvkit perso --out), "
                        "secrets included")
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
    perso = load_personalisation(card_source(args.card))
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


# --- build ---

def add_build(actions: Actions) -> None:
    parser = actions.add_parser(
        "build", help="build the token image for a board from a MicroPython source tree",
        description="Build mpy-cross and the MicroPython port image for BOARD with the firmware frozen in "
        "(and, with --card, a personalisation), from a MicroPython source tree (--mpy-dir or $MPY_DIR). "
        "Needs the ARM cross-compiler (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi; make token-debs). "
        "Prints the image's path last.",
    )
    parser.add_argument("--board", required=True, metavar="BOARD", help="qemu_m3, qemu_m0plus (an unknown name "
                        "lists the boards)")
    parser.add_argument("--mpy-dir", type=Path, metavar="DIR", help="the MicroPython source tree (default $MPY_DIR)")
    parser.add_argument("--card", type=Path, metavar="PROFILE.json", help="also freeze this personalisation "
                        "(keys included) into the image")
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), metavar="DIR",
                        help=f"where the build goes (default {DEFAULT_OUT}); the image is DIR/BOARD/build/firmware.elf")
    parser.add_argument("--heap", type=int, metavar="BYTES", help="the GC heap size (default: the port's); the image "
                        "is then DIR/BOARD-heapBYTES/build/firmware.elf")
    parser.set_defaults(func=run_build, command_name="token build")


class _Stages:
    """One stderr line per build stage that takes more than a second, then its duration."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.shown: set[str] = set()

    def __call__(self, progress: Progress) -> None:
        stage = progress.stage
        if progress.event == "start":
            self.started[stage] = time.monotonic()
        elif progress.event == "line" and stage not in self.shown and \
                time.monotonic() - self.started.get(stage, time.monotonic()) > _PROGRESS_AFTER:
            self.shown.add(stage)
            print(f"{stage}: building ...", file=sys.stderr, flush=True)
        elif progress.event == "done" and (stage in self.shown or progress.seconds > _PROGRESS_AFTER):
            print(f"{stage}: done in {progress.seconds:.1f} s", file=sys.stderr, flush=True)


def run_build(args: argparse.Namespace) -> int:
    from emvkit.terminal.token.boards import board
    from emvkit.terminal.token.build import build

    target = board(args.board)
    source = args.mpy_dir or (Path(os.environ["MPY_DIR"]) if os.environ.get("MPY_DIR") else None)
    if source is None:
        raise BadArgument("no MicroPython source tree: give --mpy-dir DIR or set MPY_DIR (a MicroPython "
                          "checkout with mpy-cross and ports/qemu; see docs/token.md)")
    if args.card is not None:
        load_personalisation(args.card)  # a bad profile fails here, before minutes of building
    result = build(source, target, args.out, profile=args.card, progress=_Stages(), heap=args.heap)
    print(f"{target.name}: {result.text} bytes of flash (firmware frozen in), {result.bss} bytes of RAM; "
          f"built in {sum(result.seconds.values()):.1f} s", file=sys.stderr)
    print(result.elf)
    return 0


# --- run ---

def add_run(actions: Actions) -> None:
    parser = actions.add_parser(
        "run", help="boot a QEMU board's image; its dev link on a pty",
        description="Boot the image under qemu-system-arm with the token's UART on a pty and print the serial: "
        "URL that reaches it as the first line; run until SIGINT or SIGTERM, then stop QEMU. The board's flash "
        "(its store: personalisation and counters) is the --store file, kept between runs.",
    )
    parser.add_argument("--board", required=True, metavar="BOARD", help="qemu_m3 or qemu_m0plus")
    parser.add_argument("--image", required=True, type=Path, help="the image (firmware.elf from token build)")
    parser.add_argument("--store", type=Path, metavar="FILE",
                        help="the file backing the board's flash (default: store.bin beside the image)")
    parser.add_argument("--front-end", choices=FRONT_ENDS, metavar="CHIP",
                        help="also put the card on the air through this NFC chip on the board's second UART, "
                        "simulated on the host (pn532); the nfc: URL to tap is the second line of stdout")
    parser.add_argument("--nfc", metavar="udp:HOST:PORT",
                        help="where the simulated chip's RF side listens (nfcpy udp; default: a free port on "
                        "127.0.0.1)")
    parser.set_defaults(func=run_run, command_name="token run")


def run_run(args: argparse.Namespace) -> int:
    from emvkit.terminal.token.front_end import start_front_end
    from emvkit.terminal.token.qemu import QemuToken

    store: Path = args.store or args.image.parent / "store.bin"
    if args.nfc and not args.front_end:
        raise BadArgument("--nfc needs --front-end")
    stop = threading.Event()
    front = {"frontend": args.front_end} if args.front_end else {}
    token = QemuToken(args.image, args.board, store=store, args=front, nfc_uart=bool(args.front_end))
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    chip = None
    try:
        with token:
            if args.front_end:
                chip = start_front_end(args.front_end, token.nfc_pty, args.nfc)
            token.boot()
            print(f"serial:{token.pty}", flush=True)
            if chip is not None:
                print(chip.nfc_url, flush=True)
            print(f"{args.board} running {args.image} (store {store}, QEMU pid {token.pid}); stop with Ctrl-C",
                  file=sys.stderr, flush=True)
            while not stop.wait(0.2):
                if not token.running:
                    print(f"emvkit token run: QEMU ended: {token.last_output()}", file=sys.stderr)
                    return 1
                if chip is not None and not chip.running:
                    print(f"emvkit token run: the simulated {chip.name} stopped: {chip.error}", file=sys.stderr)
                    return 1
    finally:
        if chip is not None:
            chip.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


# The actions of `emvkit token`, in the order its help lists them.
ACTIONS: list[Callable[[Actions], None]] = [add_build, add_run, add_provision, add_info, add_flash]
