"""``emvkit readers``: every reader this machine offers, and how to name it in ``--reader``.

Three kinds: PC/SC readers through pcscd (with the card in each, its ATR and
the ATR's historical bytes), NFC devices that nfcpy drives (found by their USB
vendor and product IDs, without opening them: probing a device takes seconds
and can disturb it) and serial ports (pyserial), where a PN532 board or a
wearable on a USB-UART shows up. Nothing missing is an error: no pcscd, no
pyscard or no pyserial each become a line saying so, and the exit status is 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

from emvkit.terminal.errors import TransportError, UnknownScheme
from emvkit.terminal.iso7816 import ATRError, parse_atr
from emvkit.terminal.transport.pcsc import PcscdNotRunning, list_readers

# nfcpy 1.0.4 nfc/clf/device.py usb_device_map: the USB readers its drivers know.
NFC_USB_DEVICES = {
    (0x054C, 0x0193): ("pn531", "Sony PN531"),
    (0x04CC, 0x0531): ("pn531", "Philips PN531 / SCM SCL3710"),
    (0x04CC, 0x2533): ("pn533", "NXP PN533 demo board"),
    (0x04E6, 0x5591): ("pn533", "SCM SCL3711"),
    (0x04E6, 0x5593): ("pn533", "SCM SCL3712"),
    (0x054C, 0x02E1): ("rcs956", "Sony RC-S330/360/370"),
    (0x054C, 0x06C1): ("rcs380", "Sony RC-S380"),
    (0x054C, 0x06C3): ("rcs380", "Sony RC-S380"),
    (0x072F, 0x2200): ("acr122", "ACS ACR122U"),
}
USB_SYSFS = Path("/sys/bus/usb/devices")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "readers",
        help="list PC/SC readers (with cards and ATRs), NFC devices and serial ports",
        description="List every reader emvkit can use: PC/SC readers through pcscd with the card in each and its "
        "ATR, nfcpy's USB NFC devices (found by vendor and product ID, not opened) and serial ports with their "
        "USB IDs. A missing pcscd, pyscard or pyserial is reported, not an error.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    found = {"pcsc": pcsc_readers(), "nfc": nfc_devices(), "serial": serial_ports()}
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print(report(found))
    return 0


def pcsc_readers() -> dict[str, Any]:
    """PC/SC readers as JSON-ready dicts, with ``status`` "ok" or why there are none."""
    try:
        states = list_readers()
    except UnknownScheme as exc:
        return {"status": "pyscard not installed", "message": str(exc), "readers": []}
    except PcscdNotRunning as exc:
        return {"status": "pcscd not running", "message": str(exc), "readers": []}
    except TransportError as exc:
        return {"status": "error", "message": str(exc), "readers": []}
    readers = []
    for state in states:
        entry: dict[str, Any] = {
            "index": state.index, "name": state.name, "url": f"pcsc:{state.index}",
            "card_present": state.card_present, "mute": state.mute,
            "in_use": state.in_use, "exclusive": state.exclusive,
            "atr": state.atr.hex().upper() or None, "historical_bytes": None, "protocols": None,
        }
        if state.atr:
            try:
                atr = parse_atr(state.atr, check_tck=False)
            except ATRError as exc:
                entry["atr_error"] = str(exc)
            else:
                entry["historical_bytes"] = atr.historical_bytes.hex().upper()
                entry["protocols"] = [f"T={t}" for t in atr.protocols]
        readers.append(entry)
    return {"status": "ok", "readers": readers}


def nfc_devices() -> dict[str, Any]:
    """USB devices with an nfcpy driver, from sysfs (Linux); never opened."""
    installed = importlib.util.find_spec("nfc") is not None
    devices = []
    for device in sorted(USB_SYSFS.glob("*")) if USB_SYSFS.is_dir() else []:
        try:
            vid = int((device / "idVendor").read_text(), 16)
            pid = int((device / "idProduct").read_text(), 16)
            bus = int((device / "busnum").read_text())
            number = int((device / "devnum").read_text())
        except (OSError, ValueError):
            continue
        known = NFC_USB_DEVICES.get((vid, pid))
        if known is not None:
            devices.append({"vid": f"{vid:04X}", "pid": f"{pid:04X}", "driver": known[0], "name": known[1],
                            "path": f"usb:{bus:03d}:{number:03d}"})
    if installed:
        note = "not probed (slow, and it can disturb a device): use --reader nfc:usb to try nfcpy's own probe"
    else:
        note = "nfcpy is not installed (pip install 'emvkit[nfc]')"
    if any(d["driver"] == "acr122" for d in devices):
        note += "; an ACR122U is also a PC/SC reader: pcscd holds it, so nfcpy can use it only with pcscd stopped"
    return {"nfcpy_installed": installed, "usb_devices": devices, "note": note}


def serial_ports() -> dict[str, Any]:
    """Serial ports from pyserial, with USB vendor and product IDs where there are some."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return {"status": "pyserial not installed", "message": "pyserial is not installed (pip install "
                "'emvkit[serial]')", "ports": []}
    ports = []
    for port in sorted(list_ports.comports(), key=lambda p: str(p.device)):
        ports.append({
            "device": str(port.device),
            "vid": None if port.vid is None else f"{port.vid:04X}",
            "pid": None if port.pid is None else f"{port.pid:04X}",
            "description": None if port.description in (None, "n/a") else str(port.description),
            "manufacturer": port.manufacturer,
            "serial_number": port.serial_number,
        })
    return {"status": "ok", "ports": ports}


def report(found: dict[str, Any]) -> str:
    pcsc, nfc, serial = found["pcsc"], found["nfc"], found["serial"]
    lines = ["PC/SC readers (pcscd):"]
    if pcsc["status"] != "ok":
        lines.append(f"  {pcsc['message']}")
    elif not pcsc["readers"]:
        lines.append("  none")
    for reader in pcsc["readers"]:
        lines.append(f"  {reader['url']:8} {reader['name']}: {_card_state(reader)}")
        if reader["atr"]:
            lines.append(f"           ATR {_spaced(reader['atr'])}"
                         + (f"  ({', '.join(reader['protocols'])})" if reader["protocols"] else ""))
            if reader.get("atr_error"):
                lines.append(f"           ATR does not parse: {reader['atr_error']}")
            elif reader["historical_bytes"] is not None:
                lines.append(f"           historical bytes: {_spaced(reader['historical_bytes']) or 'none'}")
    lines.append("")
    lines.append("NFC devices (nfcpy, USB):")
    for device in nfc["usb_devices"]:
        lines.append(f"  {device['path']}  {device['vid']}:{device['pid']}  {device['name']} ({device['driver']})")
    if not nfc["usb_devices"]:
        lines.append("  no known NFC reader on USB")
    lines.append(f"  {nfc['note']}")
    lines.append("")
    lines.append("Serial ports:")
    if serial["status"] != "ok":
        lines.append(f"  {serial['message']}")
    elif not serial["ports"]:
        lines.append("  none")
    for port in serial["ports"]:
        ids = f"{port['vid']}:{port['pid']}" if port["vid"] else "no USB IDs"
        lines.append(f"  {port['device']:16} {ids:10} {port['description'] or ''}".rstrip())
    return "\n".join(lines)


def _card_state(reader: dict[str, Any]) -> str:
    if not reader["card_present"]:
        return "no card"
    words = ["card present"]
    if reader["mute"]:
        words.append("mute (no ATR)")
    if reader["exclusive"]:
        words.append("held exclusively by another program")
    elif reader["in_use"]:
        words.append("in use")
    return ", ".join(words)


def _spaced(hexdigits: str) -> str:
    return " ".join(hexdigits[i : i + 2] for i in range(0, len(hexdigits), 2))
