"""Usage charts drawn on the server as inline SVG: no JavaScript, no CDN, nothing to vendor.

Only numbers reach the drawing; titles and labels are escaped by format_html.
"""

from __future__ import annotations

from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, PAD = 720, 180, 36


def line_chart(
    *, title: str, points: list[tuple[datetime, float]], start: datetime, end: datetime, unit: str
) -> SafeString:
    """One series over [start, end] as a polyline, with its maximum and the period's ends."""
    span = max((end - start).total_seconds(), 1.0)
    top = max((y for _, y in points), default=0) or 1
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def xy(at: datetime, value: float) -> str:
        x = PAD + inner_w * min(max((at - start).total_seconds() / span, 0.0), 1.0)
        y = PAD + inner_h * (1 - value / top)
        return f"{x:.1f},{y:.1f}"

    path = " ".join(xy(at, value) for at, value in points)
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="2"/>',
        (tuple(xy(at, value).split(",")) for at, value in points if len(points) <= 60),
    )
    total = sum(y for _, y in points)
    return format_html(
        '<figure class="usage-chart" data-title="{title}" data-total="{total}">'
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}"'
        ' role="img" aria-label="{title}">'
        '<rect x="0" y="0" width="{w}" height="{h}" fill="#fff" stroke="#ddd"/>'
        '<text x="{pad}" y="20" font-size="13" font-weight="bold">{title}</text>'
        '<text x="{right}" y="20" font-size="11" text-anchor="end">max {top} {unit}</text>'
        '<line x1="{pad}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>'
        '<polyline fill="none" stroke="#417690" stroke-width="1.5" points="{path}"/>'
        '<g fill="#417690">{dots}</g>'
        '<text x="{pad}" y="{label_y}" font-size="11">{first}</text>'
        '<text x="{right}" y="{label_y}" font-size="11" text-anchor="end">{last}</text>'
        "</svg><figcaption>{title}: {total} {unit} in total</figcaption></figure>",
        title=title,
        total=_number(total),
        w=WIDTH,
        h=HEIGHT,
        pad=PAD,
        right=WIDTH - PAD,
        bottom=HEIGHT - PAD,
        label_y=HEIGHT - PAD + 16,
        top=_number(top),
        unit=unit,
        path=path,
        dots=dots,
        first=f"{start:%Y-%m-%d %H:%M}",
        last=f"{end:%Y-%m-%d %H:%M}",
    )


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
