"""Small dependency-free SVG charts, for widgets and generated documentation."""

from __future__ import annotations

from html import escape

PALETTE = ("#4f46e5", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d")


def line_chart(
    series: dict[str, tuple[list[float], list[float]]],
    title: str = "",
    width: int = 560,
    height: int = 260,
) -> str:
    """An inline SVG with one polyline per series (label -> (xs, ys)), axes and a legend."""
    points = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys, strict=True)]
    left, right, top, bottom = 56, 16, 28, 36
    if not points:
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='60'>"
            f"<text x='8' y='30' font-size='12'>{escape(title)}: no points</text></svg>"
        )
    x_low, x_high = min(p[0] for p in points), max(p[0] for p in points)
    y_low, y_high = min(p[1] for p in points), max(p[1] for p in points)
    if x_high == x_low:
        x_high = x_low + 1
    if y_high == y_low:
        y_high, y_low = y_low + 0.5, y_low - 0.5

    def sx(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y_low) / (y_high - y_low) * (height - top - bottom)

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"font-family='sans-serif' font-size='11'>",
        f"<text x='{left}' y='16' font-size='13' font-weight='bold'>{escape(title)}</text>",
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - right}' y2='{height - bottom}' "
        "stroke='#999'/>",
        f"<line x1='{left}' y1='{top}' x2='{left}' y2='{height - bottom}' stroke='#999'/>",
    ]
    for fraction in (0, 0.5, 1):
        y_value = y_low + fraction * (y_high - y_low)
        parts.append(
            f"<text x='{left - 6}' y='{sy(y_value) + 4:.1f}' text-anchor='end'>{y_value:.4g}</text>"
        )
        x_value = x_low + fraction * (x_high - x_low)
        parts.append(
            f"<text x='{sx(x_value):.1f}' y='{height - bottom + 16}' text-anchor='middle'>"
            f"{x_value:.4g}</text>"
        )
    for index, (label, (xs, ys)) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        coordinates = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=True))
        if len(xs) == 1:
            parts.append(
                f"<circle cx='{sx(xs[0]):.1f}' cy='{sy(ys[0]):.1f}' r='3' fill='{color}'/>"
            )
        else:
            parts.append(
                f"<polyline fill='none' stroke='{color}' stroke-width='1.8' "
                f"points='{coordinates}'/>"
            )
        legend_y = top + 4 + 14 * index
        parts.append(
            f"<rect x='{width - right - 140}' y='{legend_y - 8}' width='10' height='10' "
            f"fill='{color}'/><text x='{width - right - 125}' y='{legend_y + 1}'>"
            f"{escape(label[:22])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def importance_chart(
    bars: list[tuple[str, float, float]],
    title: str = "",
    width: int = 560,
) -> str:
    """An inline SVG of horizontal bars (label, value, spread), most important first, each with
    a whisker of value ± spread and a zero line: permutation importance with its std."""
    row, left, right, top = 20, 150, 70, 28
    height = top + row * max(len(bars), 1) + 24
    if not bars:
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='60'>"
            f"<text x='8' y='30' font-size='12'>{escape(title)}: nothing measured</text></svg>"
        )
    low = min(0.0, *(value - spread for _, value, spread in bars))
    high = max(0.0, *(value + spread for _, value, spread in bars))
    if high == low:
        high = low + 1.0

    def sx(x: float) -> float:
        return left + (x - low) / (high - low) * (width - left - right)

    zero = sx(0.0)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"font-family='sans-serif' font-size='11'>",
        f"<text x='8' y='16' font-size='13' font-weight='bold'>{escape(title)}</text>",
    ]
    for index, (label, value, spread) in enumerate(bars):
        y = top + index * row
        x0, x1 = sorted((zero, sx(value)))
        color = PALETTE[0] if value >= 0 else PALETTE[1]
        parts.append(
            f"<text x='{left - 6}' y='{y + 13}' text-anchor='end'>{escape(label[:24])}</text>"
            f"<rect x='{x0:.1f}' y='{y + 3}' width='{max(x1 - x0, 0.5):.1f}' height='{row - 6}' "
            f"fill='{color}' opacity='0.8'><title>{escape(label)}: {value:.4g} ± {spread:.2g}"
            "</title></rect>"
        )
        if spread > 0:
            w0, w1, mid = sx(value - spread), sx(value + spread), y + row / 2
            parts.append(
                f"<line x1='{w0:.1f}' y1='{mid:.1f}' x2='{w1:.1f}' y2='{mid:.1f}' stroke='#111'/>"
                f"<line x1='{w0:.1f}' y1='{mid - 4:.1f}' x2='{w0:.1f}' y2='{mid + 4:.1f}' "
                f"stroke='#111'/><line x1='{w1:.1f}' y1='{mid - 4:.1f}' x2='{w1:.1f}' "
                f"y2='{mid + 4:.1f}' stroke='#111'/>"
            )
        parts.append(f"<text x='{width - right + 6}' y='{y + 13}'>{value:.3g}</text>")
    bottom = top + row * len(bars)
    parts.append(
        f"<line x1='{zero:.1f}' y1='{top - 2}' x2='{zero:.1f}' y2='{bottom + 2}' stroke='#999'/>"
        f"<text x='{zero:.1f}' y='{bottom + 16}' text-anchor='middle'>0</text>"
        f"<text x='{sx(high):.1f}' y='{bottom + 16}' text-anchor='middle'>{high:.3g}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
