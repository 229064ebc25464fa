"""report.html: one self-contained file (inline CSS and SVG, no CDN)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from floorline import __version__
from floorline.report.runner import SectionOutcome

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#111;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6rem 0;font-variant-numeric:tabular-nums}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left} th{background:#f4f4f5}
.passed{color:#15803d}.failed,.error{color:#b91c1c}.skipped{color:#6b7280}
code,pre{background:#f4f4f5;padding:1px 4px;border-radius:3px;font-size:12px} pre{padding:8px;overflow:auto}
"""


def render(device: str, outcomes: list[SectionOutcome]) -> str:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>floorline report</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>floorline report: {escape(device)}</h1><p>floorline {__version__}, {now}</p>",
        "<table><tr><th>section</th><th>status</th><th>packets</th><th>why</th></tr>",
    ]
    for o in outcomes:
        parts.append(
            f"<tr><td><a href='#{o.name}'>{escape(o.title)}</a></td><td class='{o.status}'>{o.status}</td>"
            f"<td>{len(o.result.packets)}</td><td>{escape(o.reason or '')}</td></tr>"
        )
    parts.append("</table>")
    for o in outcomes:
        parts.append(f"<h2 id='{o.name}'>{escape(o.title)} <small class='{o.status}'>{o.status}</small></h2>")
        if o.reason:
            parts.append(f"<p>{escape(o.reason)}</p>")
        r = o.result
        if r.headers:
            parts.append("<table><tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in r.headers) + "</tr>")
            for row in r.rows:
                parts.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        for title, svg in r.plots:
            parts.append(f"<h3>{escape(title)}</h3>{svg}")
        for note in r.notes:
            parts.append(f"<pre>{escape(note)}</pre>")
        if r.packets:
            parts.append("<p>packets: " + ", ".join(f"<code>{escape(str(p))}</code>" for p in r.packets) + "</p>")
    parts.append("</body></html>")
    return "".join(parts)
