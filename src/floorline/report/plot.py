"""Inline SVG line plots for report.html: no CDN, no plotting library."""

from __future__ import annotations

import math
from html import escape

_COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563")


def line_plot(
    series: dict[str, list[tuple[float, float]]],
    *,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    width: int = 640,
    height: int = 320,
    y_ref: float | None = None,
) -> str:
    pts = [p for s in series.values() for p in s]
    if not pts:
        return "<svg/>"
    fx = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    xs = [fx(x) for x, _ in pts]
    ys = [y for _, y in pts] + ([y_ref] if y_ref is not None else [])
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys) * 1.08 or 1.0
    x1 = x1 if x1 > x0 else x0 + 1
    ml, mr, mt, mb = 60, 150, 16, 44
    W, H = width - ml - mr, height - mt - mb

    def px(x: float) -> float:
        return ml + (fx(x) - x0) / (x1 - x0) * W

    def py(y: float) -> float:
        return mt + H - (y - y0) / (y1 - y0) * H

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">']
    out.append(f'<rect x="{ml}" y="{mt}" width="{W}" height="{H}" fill="none" stroke="#999"/>')
    for k in range(5):
        yv = y0 + (y1 - y0) * k / 4
        out.append(f'<text x="{ml - 6}" y="{py(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
    xticks = sorted({x for x, _ in pts})
    for xv in xticks[:: max(1, len(xticks) // 8)]:
        out.append(f'<text x="{px(xv):.1f}" y="{mt + H + 16}" text-anchor="middle">{xv:.3g}</text>')
    out.append(f'<text x="{ml + W / 2}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(
        f'<text x="14" y="{mt + H / 2}" text-anchor="middle" transform="rotate(-90 14 {mt + H / 2})">'
        f"{escape(y_label)}</text>"
    )
    if y_ref is not None:
        out.append(
            f'<line x1="{ml}" x2="{ml + W}" y1="{py(y_ref):.1f}" y2="{py(y_ref):.1f}" '
            'stroke="#888" stroke-dasharray="4 3"/>'
        )
    for i, (name, s) in enumerate(series.items()):
        c = _COLORS[i % len(_COLORS)]
        s = sorted(s)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{path}"/>')
        for x, y in s:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>')
        ly = mt + 14 + i * 16
        out.append(f'<rect x="{ml + W + 10}" y="{ly - 9}" width="10" height="10" fill="{c}"/>')
        out.append(f'<text x="{ml + W + 24}" y="{ly}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
