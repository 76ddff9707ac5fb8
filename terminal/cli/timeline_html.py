"""``emvkit trace show --html``: the timeline as one self-contained HTML page (inline CSS, SVG and a few
lines of script; nothing fetched when it is viewed).

Each APDU is a row on a time axis in milliseconds from the first C-APDU: its host time, card time and
air time (at the rate chosen with the buttons, 106 kbit/s at first) as three bars, with the 500 ms
budget as a vertical line; the estimated tap at each rate is a bar of its own under them. Hovering a
row shows its times; the table under the axis gives each exchange with its response's data objects
decoded (click a row to open it). PAN and track data are masked unless ``--reveal``.
"""

from __future__ import annotations

from html import escape

from emvkit.terminal.cli.report import command_name
from emvkit.terminal.cli.trace import response_lines
from emvkit.terminal.timeline import BIT_RATES, BUDGET_MS, Timeline
from emvkit.terminal.transport.trace import Trace

__all__ = ["timeline_page"]

_LABEL_W, _AXIS_W, _ROW_H, _TOP = 230, 720, 30, 40

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em}svg{background:#fafafa;border:1px solid #ddd}
.host{fill:#7a7a7a}.card{fill:#2b7bd6}.air{fill:#e08a1e}.estimate{fill:#5aa05a}
.budget{stroke:#d22;stroke-width:2;stroke-dasharray:6 4}.grid{stroke:#ddd}
.label{font:12px monospace}.tick{font:11px sans-serif;fill:#555}.budget-label{fill:#d22;font:bold 12px sans-serif}
table{border-collapse:collapse;margin-top:1em}td,th{padding:2px 8px;text-align:right;border-bottom:1px solid #eee}
td.name{text-align:left;font-family:monospace}pre{margin:0;text-align:left}
.rates button{margin-right:.4em}.rates button.on{font-weight:bold}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
"""

_SCRIPT = """
function showRate(rate){
  document.querySelectorAll('rect.air').forEach(function(r){r.style.display=r.dataset.rate===rate?'':'none';});
  document.querySelectorAll('.rates button').forEach(function(b){b.classList.toggle('on',b.dataset.rate===rate);});
}
document.querySelectorAll('.rates button').forEach(function(b){b.onclick=function(){showRate(b.dataset.rate);};});
showRate('106');
"""


def timeline_page(trace: Trace, tl: Timeline, title: str, reveal: bool) -> str:
    scale_ms = max(BUDGET_MS * 1.1, tl.host_ms, *tl.estimated_ms.values())

    def x(ms: float) -> float:
        return _LABEL_W + ms / scale_ms * _AXIS_W

    rows = len(tl.apdus) + len(BIT_RATES)
    height = _TOP + rows * _ROW_H + 20
    svg = [f'<svg id="timeline" width="{_LABEL_W + _AXIS_W + 20}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    step = 50 if scale_ms <= 800 else 100 * (1 + int(scale_ms // 2000))
    for tick in range(0, int(scale_ms) + 1, step):
        svg.append(f'<line class="grid" x1="{x(tick):.1f}" y1="{_TOP - 10}" x2="{x(tick):.1f}" y2="{height - 10}"/>'
                   f'<text class="tick" x="{x(tick):.1f}" y="{_TOP - 14}" text-anchor="middle">{tick}</text>')
    for i, a in enumerate(tl.apdus):
        y = _TOP + i * _ROW_H
        name = command_name(a.exchange.command)
        tip = (f"{name}: SW {a.status}, host {a.host_ms:.3f} ms, card {a.card_ms:.3f} ms, air "
               + ", ".join(f"{a.air_ms[k]:.3f} ms at {k}" for k in BIT_RATES))
        svg.append(f'<g class="apdu" id="apdu-{a.number}" data-name="{escape(name)}" data-sw="{escape(a.status)}">'
                   f'<title>{escape(tip)}</title>'
                   f'<text class="label" x="4" y="{y + 17}">{a.number:2}. {escape(name[:26])}</text>'
                   f'{_bar("host", x(a.start_ms), y + 2, a.host_ms / scale_ms * _AXIS_W)}'
                   f'{_bar("card", x(a.start_ms), y + 11, a.card_ms / scale_ms * _AXIS_W)}')
        for k in BIT_RATES:
            svg.append(_bar("air", x(a.start_ms), y + 20, a.air_ms[k] / scale_ms * _AXIS_W, f' data-rate="{k}"'))
        svg.append("</g>")
    for j, k in enumerate(BIT_RATES):
        y = _TOP + (len(tl.apdus) + j) * _ROW_H
        total = tl.estimated_ms[k]
        svg.append(f'<g class="estimate-row" id="estimate-{k}"><title>estimated tap at {k} kbit/s: {total:.3f} ms'
                   f'</title><text class="label" x="4" y="{y + 17}">tap at {k} kbit/s</text>'
                   f'{_bar("estimate", x(0), y + 6, total / scale_ms * _AXIS_W)}'
                   f'<text class="tick" x="{x(total) + 4:.1f}" y="{y + 17}">{total:.1f} ms</text></g>')
    bx = x(BUDGET_MS)
    svg.append(f'<line id="budget-line" class="budget" x1="{bx:.1f}" y1="{_TOP - 10}" x2="{bx:.1f}" '
               f'y2="{height - 10}"/><text class="budget-label" x="{bx - 4:.1f}" y="{height - 12}" text-anchor="end">'
               f'{BUDGET_MS:.0f} ms budget</text>')
    svg.append("</svg>")
    summary = "; ".join(f"{k} kbit/s {tl.estimated_ms[k]:.1f} ms" for k in BIT_RATES)
    table = ['<table id="exchanges"><tr><th>#</th><th>start ms</th><th>command</th><th>C</th><th>R</th><th>SW</th>'
             '<th>host ms</th><th>card ms</th>' + "".join(f"<th>air {k}</th>" for k in BIT_RATES) + "</tr>"]
    for a in tl.apdus:
        e = a.exchange
        detail = "\n".join(response_lines(e, reveal))
        table.append(
            f'<tr class="exchange"><td>{a.number}</td><td>{a.start_ms:.3f}</td><td class="name"><details>'
            f'<summary>{escape(command_name(e.command))}</summary><pre>C-APDU {e.command.hex().upper()}\n'
            f'{escape(detail)}</pre></details></td><td>{len(e.command)}</td><td>{len(e.response or b"")}</td>'
            f'<td>{escape(a.status)}</td><td>{a.host_ms:.3f}</td><td>{a.card_ms:.3f}</td>'
            + "".join(f"<td>{a.air_ms[k]:.3f}</td>" for k in BIT_RATES) + "</tr>")
    table.append("</table>")
    buttons = "".join(f'<button type="button" data-rate="{k}">{k} kbit/s</button>' for k in BIT_RATES)
    card = "host time less the air time at 106 kbit/s" if tl.on_the_air else "the host time (no air link)"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>emvkit trace {escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Trace {escape(title)}: {len(tl.apdus)} APDUs against the {BUDGET_MS:.0f} ms budget</h1>",
        f'<p id="summary">Host time {tl.host_ms:.3f} ms (first C-APDU to last R-APDU). Estimated tap: {summary}. '
        f"Air time from the frame sizes (FSC {tl.fsc}, FSD {tl.fsd}); card time is {card}.</p>",
        f'<p class="rates">Air time at: {buttons}</p>',
        '<p class="legend"><span class="host" style="background:#7a7a7a"></span>host'
        '<span style="background:#2b7bd6"></span>card<span style="background:#e08a1e"></span>air'
        '<span style="background:#5aa05a"></span>estimated tap</p>',
        "".join(svg), "".join(table),
        f"<script>{_SCRIPT}</script></body></html>", ""])


def _bar(kind: str, x0: float, y: float, width: float, extra: str = "") -> str:
    return (f'<rect class="{kind}"{extra} x="{x0:.1f}" y="{y:.1f}" width="{max(width, 1.0):.1f}" '
            f'height="8"/>')
