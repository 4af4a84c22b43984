"""The drift report as one self-contained HTML page: no network, no JavaScript.

A header with the verdict and the summary line, the results table (drifted columns
highlighted), then one card per column with its reference-vs-current chart as inline SVG: a
histogram on common bins for numerical columns (the reference as grey bars, the current data
as a line), paired bars for categories. Every name that comes from the data is escaped.
"""

from __future__ import annotations

import math
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_nb.monitor.drift import DriftReport

REFERENCE_COLOR = "#94a3b8"
CURRENT_COLOR = "#4f46e5"
DRIFT_COLOR = "#dc2626"
CHART_WIDTH = 340
CHART_HEIGHT = 170

_STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0;
       background: #f8fafc; color: #0f172a; }
main { max-width: 1120px; margin: 0 auto; padding: 24px; }
header { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; }
h1 { font-size: 22px; margin: 0; } h2 { font-size: 17px; margin: 28px 0 10px; }
.badge { border-radius: 999px; padding: 4px 12px; font-weight: 600; font-size: 13px; }
.badge.drift { background: #fee2e2; color: #991b1b; }
.badge.ok { background: #dcfce7; color: #166534; }
.summary { font-size: 16px; margin: 10px 0 4px; }
.meta { color: #475569; font-size: 13px; }
table { border-collapse: collapse; width: 100%; background: white; font-size: 13px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e2e8f0; }
th { background: #f1f5f9; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drifted td { background: #fef2f2; } tr.drifted td.flag { color: #b91c1c; font-weight: 600; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr));
         gap: 14px; }
.card { background: white; border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 12px; }
.card.drifted { border-color: #fca5a5; box-shadow: inset 4px 0 0 #dc2626; }
.card h3 { font-size: 14px; margin: 0 0 2px; overflow-wrap: anywhere; }
.card .line { font-size: 12px; color: #475569; margin-bottom: 4px; }
.legend { font-size: 12px; color: #475569; margin: 6px 0 0; }
.swatch { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px;
          border-radius: 2px; vertical-align: -1px; }
ul.skipped { font-size: 13px; color: #475569; }
"""


def render_html(report: DriftReport, title: str | None = None) -> str:
    """The whole page for ``report`` (and its prediction drift, if any)."""
    heading = title or "Drift report"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(heading)}</title><style>{_STYLE}</style></head><body><main>",
        _header(report, heading),
        _table(report),
        _cards(report),
    ]
    if report.predictions is not None and len(report.predictions.results):
        parts.append("<h2>Prediction drift</h2>")
        parts.append(
            f"<p class='meta'>The served model's outputs against its outputs on the "
            f"evaluation data: {escape(report.predictions.summary())}.</p>"
        )
        parts.append(_table(report.predictions))
        parts.append(_cards(report.predictions, "Served outputs and evaluation outputs"))
    if report.skipped:
        parts.append("<h2>Not tested</h2><ul class='skipped'>")
        for name, why in report.skipped.items():
            parts.append(f"<li><b>{escape(name)}</b>: {escape(why)}</li>")
        parts.append("</ul>")
    parts.append("</main></body></html>")
    return "".join(parts)


def _header(report: DriftReport, heading: str) -> str:
    badge = (
        "<span class='badge drift'>dataset drift</span>"
        if report.dataset_drift
        else "<span class='badge ok'>no dataset drift</span>"
    )
    approximate = int((~report.results["exact"]).sum()) if len(report.results) else 0
    note = f"; {approximate} computed from a stored summary" if approximate else ""
    return (
        f"<header><h1>{escape(heading)}</h1>{badge}</header>"
        f"<p class='summary'>{escape(report.summary())}</p>"
        f"<p class='meta'>reference: {escape(report.reference_label)} "
        f"({report.n_reference:,} rows) &middot; current: {escape(report.current_label)} "
        f"({report.n_current:,} rows) &middot; share of drifted columns "
        f"{report.share:.2f} (dataset drift at {report.drift_share:g}){escape(note)}</p>"
    )


def _legend() -> str:
    return (
        "<p class='legend'>"
        f"<span class='swatch' style='background:{REFERENCE_COLOR}'></span>reference"
        f"<span class='swatch' style='background:{CURRENT_COLOR}'></span>current"
        f"<span class='swatch' style='background:{DRIFT_COLOR}'></span>current, drifted</p>"
    )


def _table(report: DriftReport) -> str:
    rows = [
        "<table><thead><tr><th>column</th><th>type</th><th>method</th><th>score</th>"
        "<th>threshold</th><th>drift</th><th>computed</th><th>reference rows</th>"
        "<th>current rows</th></tr></thead><tbody>"
    ]
    for row in report.results.to_dict(orient="records"):
        drifted = bool(row["drifted"])
        rows.append(
            f"<tr class='{'drifted' if drifted else ''}'>"
            f"<td>{escape(str(row['column']))}</td><td>{escape(str(row['column_type']))}</td>"
            f"<td>{escape(str(row['method']))}</td><td class='num'>{_number(row['score'])}</td>"
            f"<td class='num'>{_number(row['threshold'])}</td>"
            f"<td class='flag'>{'drift' if drifted else '&ndash;'}</td>"
            f"<td>{'exact' if row['exact'] else 'from summary'}</td>"
            f"<td class='num'>{int(row['n_reference']):,}</td>"
            f"<td class='num'>{int(row['n_current']):,}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _cards(report: DriftReport, heading: str = "Reference and current, column by column") -> str:
    cards = [f"<h2>{escape(heading)}</h2>", _legend(), "<div class='cards'>"]
    for row in report.results.to_dict(orient="records"):
        name = str(row["column"])
        chart = report.charts.get(name)
        drifted = bool(row["drifted"])
        color = DRIFT_COLOR if drifted else CURRENT_COLOR
        picture = "" if chart is None else (
            histogram_svg(chart, color) if chart["kind"] == "histogram"
            else categories_svg(chart, color))  # fmt: skip
        label = f" ({escape(chart['label'])})" if chart and chart.get("label") else ""
        cards.append(
            f"<div class='card{' drifted' if drifted else ''}'><h3>{escape(name)}</h3>"
            f"<div class='line'>{escape(str(row['column_type']))}{label} &middot; "
            f"{escape(str(row['method']))} {_number(row['score'])} "
            f"(threshold {_number(row['threshold'])}) &middot; "
            f"{'<b>drift</b>' if drifted else 'no drift'}</div>{picture}</div>"
        )
    cards.append("</div>")
    return "".join(cards)


def histogram_svg(chart: dict[str, Any], color: str = CURRENT_COLOR) -> str:
    """Reference shares as bars and current shares as a step line, on the same bins."""
    edges, reference, current = chart["edges"], chart["reference"], chart["current"]
    left, right, top, bottom = 40, 8, 8, 24
    width, height = CHART_WIDTH, CHART_HEIGHT
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(reference, default=0), max(current, default=0)) or 1.0
    bins = len(reference)

    def x(i: float) -> float:
        return left + i / bins * plot_w

    def y(share: float) -> float:
        return top + plot_h - share / peak * plot_h

    parts = [_svg_open(width, height)]
    for i, share in enumerate(reference):
        parts.append(
            f"<rect x='{x(i) + 0.5:.1f}' y='{y(share):.1f}' width='{max(x(1) - x(0) - 1, 1):.1f}' "
            f"height='{top + plot_h - y(share):.1f}' fill='{REFERENCE_COLOR}' opacity='0.75'/>"
        )
    steps = [f"{x(0):.1f},{y(0):.1f}"]
    for i, share in enumerate(current):
        steps += [f"{x(i):.1f},{y(share):.1f}", f"{x(i + 1):.1f},{y(share):.1f}"]
    steps.append(f"{x(bins):.1f},{y(0):.1f}")
    parts.append(
        f"<polyline fill='none' stroke='{color}' stroke-width='2' points='{' '.join(steps)}'/>"
    )
    parts += _axes(left, top, plot_w, plot_h, peak)
    for fraction, anchor in ((0, "start"), (0.5, "middle"), (1, "end")):
        value = edges[0] + fraction * (edges[-1] - edges[0])
        parts.append(
            f"<text x='{left + fraction * plot_w:.1f}' y='{height - 6}' text-anchor='{anchor}'>"
            f"{escape(_short(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def categories_svg(chart: dict[str, Any], color: str = CURRENT_COLOR) -> str:
    """One row per category: its share in the reference (grey) and in the current data."""
    labels, reference, current = chart["labels"], chart["reference"], chart["current"]
    row_h, label_w, right = 22, 96, 64
    width = CHART_WIDTH
    height = max(len(labels), 1) * row_h + 8
    peak = max(max(reference, default=0), max(current, default=0)) or 1.0
    bar_w = width - label_w - right
    parts = [_svg_open(width, height)]
    for i, (label, ref_share, cur_share) in enumerate(zip(labels, reference, current, strict=True)):
        top = 4 + i * row_h
        text = label if len(label) <= 14 else label[:13] + "\u2026"
        parts.append(
            f"<text x='{label_w - 6}' y='{top + 14}' text-anchor='end'>"
            f"<title>{escape(label)}</title>{escape(text)}</text>"
            f"<rect x='{label_w}' y='{top + 2}' width='{ref_share / peak * bar_w:.1f}' "
            f"height='8' fill='{REFERENCE_COLOR}'/>"
            f"<rect x='{label_w}' y='{top + 11}' width='{cur_share / peak * bar_w:.1f}' "
            f"height='8' fill='{color}'/>"
            f"<text x='{width - right + 4}' y='{top + 14}'>"
            f"{ref_share * 100:.0f}\u2192{cur_share:.0%}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _svg_open(width: int, height: int) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' font-family='sans-serif' font-size='10' "
        "fill='#334155' role='img'>"
    )


def _axes(left: float, top: float, plot_w: float, plot_h: float, peak: float) -> list[str]:
    base = top + plot_h
    return [
        f"<line x1='{left}' y1='{base}' x2='{left + plot_w}' y2='{base}' stroke='#94a3b8'/>",
        f"<text x='{left - 4}' y='{top + 8}' text-anchor='end'>{peak:.0%}</text>",
        f"<text x='{left - 4}' y='{base}' text-anchor='end'>0</text>",
    ]


def _short(value: float) -> str:
    """An axis label: 0.25, 41.8, 5.9k, 1.1M, 2.5e-05."""
    if not math.isfinite(value):
        return str(value)
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= 10 * size:
            return f"{value / size:.3g}{suffix}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.3g}"


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return escape(f"{value:.4g}")
