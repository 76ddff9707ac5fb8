"""``emvkit trace show|convert``: a trace file read back, explained, put on a time axis, converted.

The format of every trace file follows its extension (``.json``, ``.pcap``, ``.pcapng``:
:func:`emvkit.terminal.transport.trace.read_trace_file`). PAN and track data are masked unless
``--reveal``; so are the R-APDUs' raw bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emvkit.firmware import tlv
from emvkit.terminal.apdu import sw_meaning
from emvkit.terminal.cli.report import command_name
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.timeline import BIT_RATES, BUDGET_MS, DEFAULT_FSC, DEFAULT_FSD, Timeline, timeline_of
from emvkit.terminal.tlvdump import format_tree
from emvkit.terminal.transport.trace import Exchange, Trace, read_trace_file

_META_SHOWN = ("reader", "amount", "currency", "type", "date", "time", "host")
_FRAME_SIZE_CHOICES = (16, 24, 32, 40, 48, 64, 96, 128, 256)
_BAR_COLUMNS = 50


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "trace", help="show a trace (JSON, pcap, pcapng), its timeline, or convert it",
        description="Read a trace written by tap --trace or watch --trace (the format from the extension: "
        ".json, .pcap, .pcapng) and show it, put it on a time axis against the 500 ms budget, or convert it.",
    )
    sub2 = parser.add_subparsers(dest="trace_command", metavar="ACTION")
    sub2.required = True
    show = sub2.add_parser(
        "show", help="print each C-APDU and R-APDU with names, status words, times and data objects",
        description="Print each exchange: the command's name, the C-APDU, the status word and its meaning, "
        "the times, and the response's data objects decoded with names. --timeline adds each APDU on a "
        "time axis (host, card and air time at 106/212/424/848 kbit/s) against the 500 ms budget; --html "
        "writes the same as a self-contained page. PAN and track data are masked unless --reveal.",
    )
    show.add_argument("file", type=Path, help="trace file (.json, .pcap, .pcapng)")
    show.add_argument("--timeline", action="store_true", help="each APDU on a time axis against the budget")
    show.add_argument("--html", type=Path, metavar="FILE", help="write the timeline as a self-contained HTML page")
    show.add_argument("--fsc", type=int, default=DEFAULT_FSC, choices=_FRAME_SIZE_CHOICES, metavar="BYTES",
                      help=f"the card's frame size for the air time (default {DEFAULT_FSC})")
    show.add_argument("--fsd", type=int, default=DEFAULT_FSD, choices=_FRAME_SIZE_CHOICES, metavar="BYTES",
                      help=f"the reader's frame size for the air time (default {DEFAULT_FSD})")
    show.add_argument("--reveal", action="store_true", help="show PAN, track data and raw R-APDUs in full")
    show.set_defaults(func=run_show, command_name="trace show")
    convert = sub2.add_parser(
        "convert", help="convert a trace between .json, .pcap and .pcapng",
        description="Convert a trace; the formats follow the extensions. JSON and pcapng keep everything; "
        "a .pcap loses the ATR, what the transaction was asked for (meta), errors and the time base.",
    )
    convert.add_argument("input", type=Path, help="trace file to read")
    convert.add_argument("output", type=Path, help="trace file to write (mode 0600)")
    convert.set_defaults(func=run_convert, command_name="trace convert")


def run_show(args: argparse.Namespace) -> int:
    trace = read_trace_file(args.file)
    if args.html:
        from emvkit.terminal.cli.timeline_html import timeline_page

        page = timeline_page(trace, timeline_of(trace, args.fsc, args.fsd), str(args.file.name), args.reveal)
        try:
            args.html.write_text(page, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.html}: {exc.strerror or exc}") from None
    print(show_trace(trace, args.reveal))
    if args.timeline:
        print()
        print(text_timeline(timeline_of(trace, args.fsc, args.fsd)))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    trace = read_trace_file(args.input)
    try:
        trace.save(args.output)
    except OSError as exc:
        raise ConfigError(f"cannot write trace {args.output}: {exc.strerror or exc}") from None
    print(f"{args.input} -> {args.output}: {len(trace.exchanges)} exchanges")
    return 0


def response_lines(e: Exchange, reveal: bool) -> list[str]:
    """The R-APDU: status word and meaning, then its data objects (or its size when not BER-TLV)."""
    if e.response is None:
        return [f"R-APDU none: {e.error or 'no response'}"]
    if len(e.response) < 2:
        return [f"R-APDU {e.response.hex().upper()} (shorter than a status word)"]
    sw = int.from_bytes(e.response[-2:], "big")
    data = e.response[:-2]
    lines = [f"R-APDU SW {sw:04X} {sw_meaning(sw)}, {len(data)} data bytes"]
    if reveal and data:
        lines.append(f"  {data.hex().upper()}")
    if data:
        try:
            tree = format_tree(tlv.decode(data), reveal=reveal)
        except tlv.TLVError:
            tree = "(not BER-TLV)"
        lines += ["  " + line for line in tree.splitlines()]
    return lines


def show_trace(trace: Trace, reveal: bool) -> str:
    meta = ", ".join(f"{key} {trace.meta[key]}" for key in _META_SHOWN if trace.meta.get(key) is not None)
    head = f"ATR {trace.atr.hex().upper() or '(none)'}; {len(trace.exchanges)} exchanges"
    lines = [head + (f"; {meta}" if meta else "")]
    origin = trace.exchanges[0].t_start if trace.exchanges else 0.0
    for i, e in enumerate(trace.exchanges, 1):
        lines.append("")
        lines.append(f"{i:2}. {command_name(e.command)}  at +{(e.t_start - origin) * 1000:.3f} ms, "
                     f"{e.elapsed_ms:.3f} ms")
        lines.append(f"    C-APDU {e.command.hex().upper()}")
        lines += ["    " + line for line in response_lines(e, reveal)]
    return "\n".join(lines)


def text_timeline(tl: Timeline) -> str:
    """The timeline for a terminal: one line per APDU with its times, a bar on the time axis (``#`` the
    host time, ``|`` the budget), and the estimated tap at each rate against the budget."""
    scale_ms = max(BUDGET_MS, tl.host_ms, *tl.estimated_ms.values())
    per_column = scale_ms / _BAR_COLUMNS
    budget_column = min(round(BUDGET_MS / per_column), _BAR_COLUMNS)
    card = "host time less the air time at 106 kbit/s" if tl.on_the_air else "host time (no air link)"
    lines = [f"Timeline against the {BUDGET_MS:.0f} ms budget: FSC {tl.fsc}, FSD {tl.fsd}; card time = {card}",
             f"  {'#':>2} {'start':>9} {'command':22} {'C':>4} {'R':>4} {'SW':6} {'host':>8} {'card':>8} "
             + " ".join(f"{f'air {k}':>8}" for k in BIT_RATES) + "  (ms)"]
    for a in tl.apdus:
        e = a.exchange
        lines.append(f"  {a.number:2} {a.start_ms:9.3f} {command_name(e.command)[:22]:22} {len(e.command):4} "
                     f"{len(e.response or b''):4} {a.status[:6]:6} {a.host_ms:8.3f} {a.card_ms:8.3f} "
                     + " ".join(f"{a.air_ms[k]:8.3f}" for k in BIT_RATES))
        first = min(int(a.start_ms / per_column), _BAR_COLUMNS)
        last = max(first + 1, round((a.start_ms + a.host_ms) / per_column))
        bar = [" "] * (_BAR_COLUMNS + 1)
        for column in range(first, min(last, _BAR_COLUMNS + 1)):
            bar[column] = "#"
        if bar[budget_column] == " ":
            bar[budget_column] = "|"
        lines.append(f"{'':15}[{''.join(bar)}]")
    lines.append(f"  axis 0 to {scale_ms:.0f} ms, {per_column:.1f} ms a column; '|' marks {BUDGET_MS:.0f} ms")
    lines.append(f"  host time, first C-APDU to last R-APDU: {tl.host_ms:.3f} ms "
                 f"(of which the terminal between exchanges: {tl.terminal_ms:.3f} ms)")
    for kbps in BIT_RATES:
        total = tl.estimated_ms[kbps]
        verdict = "within the budget" if tl.within_budget(kbps) else "OVER the budget"
        lines.append(f"  estimated tap at {kbps:3} kbit/s: {total:9.3f} ms ({total / BUDGET_MS:6.1%}, {verdict})")
    return "\n".join(lines)
