"""What a recorded cell shows: one compact line, as HTML in JupyterLab and text elsewhere."""

from __future__ import annotations

from html import escape
from typing import Any

from mlops_nb.notebook.tracker import CellOutcome


class CellSummary:
    """``[mlops] clean · 0.12 s · raw 10,188x12 -> clean 10,000x12: 188 duplicate rows ...``"""

    def __init__(self, outcome: CellOutcome):
        self.outcome = outcome

    def parts(self) -> list[str]:
        o = self.outcome
        stage = o.stage or "cell"
        if o.name:
            stage += f" ({o.name})"
        parts = [stage, _duration(o.duration_s)]
        if o.status != "ok":
            parts.append("failed")
        shown = 3  # more than a few datasets: the first ones in full, then their names
        parts += o.changes[:shown]
        if len(o.changes) > shown:
            parts.append(f"+{len(o.changes) - shown} more: " + ", ".join(o.changed_names[shown:]))
        if o.models:
            parts.append("fitted " + ", ".join(o.models))
        if getattr(o, "personal_data", ""):
            parts.append(o.personal_data)
        if o.metrics:
            parts.append(", ".join(f"{k}={_number(v)}" for k, v in o.metrics.items()))
        return parts

    def __repr__(self) -> str:
        lines = ["[mlops] " + " · ".join(self.parts())]
        lines += [f"[mlops] note: {note}" for note in self.outcome.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = self.parts()
        head = f"<b>{escape(parts[0])}</b>"
        rest = " · ".join(escape(p) for p in parts[1:])
        notes = "".join(
            f"<div style='color:#b45309'>⚠ {escape(note)}</div>" for note in self.outcome.notes
        )
        return (
            "<div class='mlops-nb-summary' style='font-size:12px;color:#555;"
            "border-left:3px solid #6366f1;padding:2px 8px;margin:2px 0'>"
            f"mlops · {head} · {rest}{notes}</div>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _number(value: float) -> str:
    return f"{value:.4g}"
