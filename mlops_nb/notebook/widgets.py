"""``%mlops runs``: a runs table to sort, filter and compare, as ipywidgets or as text."""

from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd

from mlops_nb.charts import line_chart
from mlops_nb.errors import MlopsError
from mlops_nb.log import Log, RunRecord
from mlops_nb.log.filters import Sort

_MAIN_COLUMNS = ["run_id", "name", "experiment", "status", "start_time", "duration_s"]


class RunsView:
    """Shows as an interactive widget in JupyterLab and as a text table everywhere else."""

    def __init__(self, log: Log, experiment: str | None = None, limit: int = 200):
        self.log = log
        self.experiment = experiment
        self.limit = limit
        self.frame = log.runs(experiment=experiment, limit=limit)

    # ------------------------------------------------------------------ text
    def to_text(self) -> str:
        if self.frame.empty:
            return "no runs recorded yet"
        return table_frame(self.frame).to_string(index=False, max_colwidth=40)

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self.to_text()}
        try:
            view = self.widget()._repr_mimebundle_(**kwargs) or {}
        except ImportError:
            return bundle
        bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        return bundle

    # ------------------------------------------------------------------ widget
    def widget(self):
        """The interactive table: filter (SQL), sort, select runs, compare them."""
        import ipywidgets as w

        columns = list(table_frame(self.frame).columns) if len(self.frame) else _MAIN_COLUMNS
        self.where = w.Text(placeholder="filter: params.lr < 0.1 OR status = 'failed'",
                            layout=w.Layout(width="50%"))  # fmt: skip
        self.sort = w.Dropdown(options=columns, value="start_time" if "start_time" in columns
                               else columns[0], description="sort")  # fmt: skip
        self.descending = w.Checkbox(value=True, description="descending", indent=False)
        self.table = w.HTML()
        self.message = w.HTML()
        self.choice = w.SelectMultiple(rows=6, description="compare",
                                       layout=w.Layout(width="60%"))  # fmt: skip
        self.compare_button = w.Button(description="Compare selected", icon="columns")
        self.comparison = w.HTML()
        for control in (self.where, self.sort, self.descending):
            control.observe(lambda _change: self.refresh(), names="value")
        self.compare_button.on_click(lambda _button: self.compare())
        self.refresh()
        return w.VBox([
            w.HBox([self.where, self.sort, self.descending]), self.message, self.table,
            w.HBox([self.choice, self.compare_button]), self.comparison,
        ])  # fmt: skip

    def refresh(self) -> None:
        """Re-query with the current filter and sort; a bad filter is shown, not raised."""
        order = Sort(self.sort.value, descending=self.descending.value)
        try:
            self.frame = self.log.runs(experiment=self.experiment, where=self.where.value or None,
                                       order_by=order, limit=self.limit)  # fmt: skip
            self.message.value = ""
        except MlopsError as error:
            self.message.value = f"<span style='color:#b91c1c'>{escape(str(error))}</span>"
            return
        self.table.value = html_table(table_frame(self.frame))
        self.choice.options = [
            (f"{row.name} · {row.status} · {row.run_id[:8]}", row.run_id)
            for row in self.frame.itertuples()
        ]

    def compare(self) -> None:
        chosen = list(self.choice.value)
        if len(chosen) < 2:
            self.comparison.value = "<i>select two or more runs to compare</i>"
            return
        self.comparison.value = comparison_html([self.log.run(run_id) for run_id in chosen])


def table_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns worth showing: the main ones, then params and metrics."""
    wanted = [c for c in _MAIN_COLUMNS if c in frame.columns] + [
        c for c in frame.columns if c.startswith(("params.", "metrics."))
    ]
    shown = frame[wanted].copy()
    if "run_id" in shown:
        shown["run_id"] = shown["run_id"].str[:8]
    if "start_time" in shown and len(shown):
        shown["start_time"] = pd.to_datetime(shown["start_time"]).dt.strftime("%m-%d %H:%M:%S")
    return shown


def html_table(frame: pd.DataFrame, highlight_rows: set[int] | None = None) -> str:
    """An escaped HTML table (user strings stay text)."""
    if frame.empty:
        return "<i>no runs</i>"
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{escape(str(c))}</th>"
                   for c in frame.columns)  # fmt: skip
    body = []
    for index, row in enumerate(frame.itertuples(index=False)):
        style = " style='background:#fef3c7'" if highlight_rows and index in highlight_rows else ""
        cells = "".join(f"<td style='padding:2px 8px'>{escape(_cell(v))}</td>" for v in row)
        body.append(f"<tr{style}>{cells}</tr>")
    return (
        "<div style='max-height:320px;overflow:auto'><table style='border-collapse:collapse;"
        f"font-size:12px'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
        "</table></div>"
    )


def comparison_html(records: list[RunRecord]) -> str:
    """Params and latest metrics side by side (differences highlighted) and metric histories."""
    labels = [f"{r.info.get('name') or r.run_id[:8]} ({r.run_id[:8]})" for r in records]
    sections = []
    for title, mappings in (("params", [r.params for r in records]),
                            ("metrics", [r.metrics for r in records])):  # fmt: skip
        names = sorted({name for mapping in mappings for name in mapping})
        if not names:
            continue
        frame = pd.DataFrame(
            [[name, *(_cell(m.get(name)) for m in mappings)] for name in names],
            columns=[title, *labels],
        )
        differing = {i for i, name in enumerate(names)
                     if len({_cell(m.get(name)) for m in mappings}) > 1}  # fmt: skip
        sections.append(f"<h4>{title} ({len(differing)} differ)</h4>"
                        + html_table(frame, differing))  # fmt: skip
    keys = sorted({key for r in records for key in r.metric_history["key"].unique()})
    for key in keys:
        series = {}
        for label, record in zip(labels, records, strict=True):
            history = record.metric_history[record.metric_history["key"] == key]
            if len(history):
                series[label] = (history["step"].astype(float).tolist(),
                                 history["value"].astype(float).tolist())  # fmt: skip
        sections.append(line_chart(series, title=f"{key} by step"))
    return "".join(sections)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
