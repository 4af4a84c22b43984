"""``mlops-nb docs``: documentation of a notebook pipeline and one recorded run of it.

Everything is first collected into a plain ``DocModel`` (from the log's public API, the
notebook, its executed copy and an optional ``%%mlops card`` cell), then rendered by the
Jinja2 templates beside this module: one self-contained HTML file and/or Markdown with its
figures written beside it. Nothing the log cannot know is invented: such fields are shown as
placeholders for the author.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import yaml

import mlops_nb
from mlops_nb._version import __version__
from mlops_nb.docs import lineage
from mlops_nb.errors import MlopsError
from mlops_nb.log.sqltext import literal as _sql_text
from mlops_nb.pipeline.notebook import read_pipeline

FORMATS = ("html", "md")
TODO = "To be completed by the author"
KEY_PACKAGES = (
    "numpy", "pandas", "polars", "pyarrow", "scikit-learn", "scipy", "statsmodels", "xgboost",
    "lightgbm", "torch", "tensorflow", "matplotlib", "skops", "duckdb",
)  # fmt: skip
_CARD_CELL = re.compile(r"^[ \t]*%%mlops[ \t]+card[ \t]*$")
# Model card sections (Mitchell et al.) the log cannot fill: key in the card cell, title, hint
CARD_FIELDS = (
    ("model_details", "Model details", "who developed the model, version, license, contact"),
    ("intended_use", "Intended use", "primary uses and users; uses that are out of scope"),
    ("factors", "Factors", "groups, instruments and environments the performance may vary by"),
    ("metrics", "Metrics", "why these metrics, decision thresholds, variation approaches"),
    ("evaluation_data", "Evaluation data", "why this data was chosen and how it was prepared"),
    ("training_data", "Training data", "what the training data represents"),
    ("quantitative_analyses", "Quantitative analyses", "results per group and intersections"),
    ("ethical_considerations", "Ethical considerations", "sensitive data, risks, mitigations"),
    ("caveats_and_recommendations", "Caveats and recommendations", "known limits, advice"),
)
# Datasheet sections (Gebru et al.) that only the author can answer
DATASHEET_FIELDS = (
    ("motivation", "Motivation", "why the dataset was created, by whom, who funded it"),
    ("uses", "Uses", "tasks it has been or should not be used for"),
    ("distribution", "Distribution", "how it is shared, under which license"),
    ("maintenance", "Maintenance", "who maintains it, how errors are reported, updates"),
)


# ---------------------------------------------------------------------- the document model
@dataclass
class Figure:
    png: bytes
    filename: str

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class DatasetDoc:
    name: str
    version: int
    kind: str
    shape: str
    fingerprint: str
    schema: dict[str, str]
    changes: list[str]
    stats: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)


@dataclass
class StageDoc:
    name: str
    anchor: str
    narrative: list[str] = field(default_factory=list)  # markdown blocks, in notebook order
    code: list[str] = field(default_factory=list)
    duration_s: float | None = None
    inputs: list[DatasetDoc] = field(default_factory=list)
    outputs: list[DatasetDoc] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    metrics: list[tuple[str, str]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    epilogue: list[str] = field(default_factory=list)  # markdown after the last stage


@dataclass
class DocModel:
    title: str
    purpose: str
    notebook: str
    run: dict[str, Any]
    environment: dict[str, Any]
    reproduce: str
    parameters: list[dict[str, Any]]
    lineage_svg: str
    lineage_mermaid: str
    stages: list[StageDoc]
    datasheet: dict[str, Any]
    card: dict[str, Any]
    reproducibility: dict[str, Any]
    metrics: list[tuple[str, str]]
    generated_at: str
    schedules: list[dict[str, Any]] = field(default_factory=list)
    reruns: list[dict[str, Any]] = field(default_factory=list)
    sweep: dict[str, Any] | None = None
    version: str = __version__


# ---------------------------------------------------------------------- entry points
def docs_from_cli(args: argparse.Namespace) -> int:
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    for written in build_docs(args.notebook, args.out, args.run, formats, args.log):
        print(written)
    return 0


def build_docs(
    notebook: str | Path,
    out_dir: str | Path,
    run_id: str | None = None,
    formats: list[str] | tuple[str, ...] = FORMATS,
    log_path: str | Path | None = None,
) -> list[Path]:
    """Write the documentation of ``run_id`` (default: the latest finished run) to out_dir."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise MlopsError(f"unknown format {unknown[0] if unknown else ''!r}: use html, md")
    if not Path(notebook).is_file():
        raise MlopsError(f"no notebook at {notebook}")
    log = mlops_nb.open_log(log_path, create=False)
    model = collect(notebook, log, run_id)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(notebook).stem
    written = []
    if "html" in formats:
        target = out / f"{stem}.html"
        target.write_text(render("report.html.j2", model), encoding="utf-8")
        written.append(target)
    if "md" in formats:
        figures = out / f"{stem}_files"
        for stage in model.stages:
            for figure in stage.figures:
                figures.mkdir(exist_ok=True)
                (figures / figure.filename).write_bytes(figure.png)
        for chart in (model.sweep or {}).get("charts", []):
            figures.mkdir(exist_ok=True)
            (figures / f"sweep-{chart['param']}.svg").write_text(chart["svg"], encoding="utf-8")
        target = out / f"{stem}.md"
        text = render("report.md.j2", model, figures_dir=figures.name)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def render(template: str, model: DocModel, **extra: Any) -> str:
    """Render one of the templates; HTML ones escape every value that is not marked safe."""
    import jinja2
    import mistune

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlops_nb.docs", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    to_html = mistune.create_markdown(escape=True, plugins=["table", "strikethrough"])
    env.filters["markdown"] = lambda text: jinja2.utils.markupsafe.Markup(to_html(text or ""))
    env.filters["md_cell"] = _md_cell
    env.filters["md_text"] = _md_text
    env.filters["number"] = format_number
    env.filters["duration"] = _duration
    return env.get_template(template).render(doc=model, todo=TODO, **extra)


# ---------------------------------------------------------------------- collecting
def collect(notebook: str | Path, log: Any, run_id: str | None = None) -> DocModel:
    """Everything the documents show, read from the log and the notebook.

    For a sweep run, the document describes its best child run and adds the sweep's ranked
    table and a chart of the target metric against each swept parameter.
    """
    record = log.run(run_id or _latest_finished_run(log, Path(notebook).name))
    sweep = None
    if record.tags.get("mlops.kind") == "sweep":
        sweep = _sweep(log, record)
        if sweep["best_run"]:
            record = log.run(sweep["best_run"])
    pipeline = read_pipeline(notebook)
    nb = nbformat.read(str(notebook), as_version=4)
    card = read_card(nb)
    info = record.info
    cells = record.cells
    datasets = {row.dataset_id: _dataset_doc(row) for row in record.datasets.itertuples()}
    stage_of = {int(r.cell_seq): r.stage for r in cells.itertuples() if isinstance(r.stage, str)}
    purpose = _purpose(nb)

    stages = {s.name: StageDoc(s.name, _anchor("stage", s.name)) for s in pipeline.stages}
    for name in dict.fromkeys(stage_of.values()):
        stages.setdefault(name, StageDoc(name, _anchor("stage", name)))
    _add_narrative_and_code(nb, pipeline, stages)
    for name, stage in stages.items():
        durations = cells.loc[cells["stage"] == name, "duration_s"].dropna()
        stage.duration_s = float(durations.sum()) if not durations.empty else None
    for row in record.lineage.itertuples():
        stage = stages.get(stage_of.get(int(row.cell_seq), ""))
        dataset = datasets.get(row.dataset_id)
        if stage is None or dataset is None:
            continue
        target = stage.outputs if row.direction == "out" else stage.inputs
        if dataset not in target:
            target.append(dataset)
    for stage in stages.values():  # what a stage wrote itself is not one of its inputs
        stage.inputs = [d for d in stage.inputs if d not in stage.outputs]
    for row in record.metric_history.itertuples():
        stage = stages.get(stage_of.get(_cell_at(cells, row.timestamp) or -1, ""))
        if stage is not None:
            stage.metrics.append((row.key, format_number(row.value)))
    models = [_model_doc(row) for row in record.models.itertuples()]
    for model in models:
        stage = stages.get(stage_of.get(model["cell_seq"], ""))
        if stage is not None:
            stage.models.append(model)
    output_nb, output_note = _executed_notebook(log, record)
    if output_nb is None and record.info.get("source") == "interactive":
        output_nb, output_note = nb, None  # a notebook run by hand keeps its outputs itself
    if output_nb is not None:
        _add_figures(output_nb, stages)

    graph = lineage.build_graph(cells, record.datasets, record.lineage, record.models)
    environment = _environment(log, record.run_id)
    main_model = _main_model(models, card)
    training = _training_data(record, datasets, main_model, stage_of)
    stage_list = [s for s in stages.values() if s.code or s.duration_s is not None]
    reproducibility = _reproducibility(log, record, environment, datasets, output_note)
    return DocModel(
        title=pipeline.title or Path(notebook).stem,
        purpose=purpose,
        notebook=str(notebook),
        run={
            **info,
            "tags": record.tags,
            "started": _time(info.get("start_time")),
            "ended": _time(info.get("end_time")),
        },  # fmt: skip
        environment=environment,
        reproduce=_reproduce_command(notebook, pipeline, record),
        parameters=_parameters(pipeline, record.params),
        lineage_svg=lineage.to_svg(graph),
        lineage_mermaid=lineage.to_mermaid(graph),
        stages=stage_list,
        datasheet=_datasheet(training, datasets, card, stage_list),
        card={
            **_model_card(main_model, models, card, training, record),
            "groups": _group_metrics(log, record, card.get("groups")),
        },  # fmt: skip
        reproducibility=reproducibility,
        metrics=[(key, format_number(value)) for key, value in record.metrics.items()],
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        schedules=_schedules(log, Path(notebook).name),
        reruns=_reruns(log, record),
        sweep=sweep,
    )


def _schedules(log: Any, name: str) -> list[dict[str, Any]]:
    """The notebook's recorded schedules and their next five run times."""
    from mlops_nb.pipeline.schedule import next_run_times

    found = log.sql(
        f"SELECT cron, target FROM schedules WHERE notebook_path = {_sql_text(name)} "
        f"OR ends_with(notebook_path, {_sql_text('/' + name)}) ORDER BY created_at DESC"
    )
    schedules = []
    for row in found.itertuples():
        times = [t.strftime("%Y-%m-%d %H:%M %Z").strip() for t in next_run_times(row.cron)]
        schedules.append({"cron": row.cron, "target": row.target, "next": times})
    return schedules


def _reruns(log: Any, record: Any) -> list[dict[str, Any]]:
    """Other finished runs of the same notebook with the same parameters: did they reproduce
    this run's metrics?"""
    path = record.info.get("notebook_path")
    if not isinstance(path, str) or not record.metrics:
        return []
    candidates = log.runs(
        where=f"notebook_path = {_sql_text(path)} AND status = 'finished' "
        f"AND run_id <> {_sql_text(record.run_id)}"
    )
    reruns = []
    for values in candidates.to_dict(orient="records"):  # "params.x" keys: not attributes
        same_params = all(
            values.get(f"params.{name}") == value for name, value in record.params.items()
        )
        if not same_params:
            continue
        differing = [
            key for key, value in record.metrics.items()
            if values.get(f"metrics.{key}") != value
        ]  # fmt: skip
        reruns.append({"run_id": values["run_id"], "started": _time(values["start_time"]),
                       "same_metrics": not differing, "differing": differing})  # fmt: skip
    return reruns[:5]


def _sweep(log: Any, record: Any) -> dict[str, Any]:
    """A sweep's children ranked by its target metric, and one chart per swept parameter."""
    from mlops_nb.charts import line_chart

    best_keys = [key for key in record.metrics if key.startswith("best_")]
    metric = best_keys[0][len("best_") :] if best_keys else None
    order = f"metrics.{metric} DESC NULLS LAST" if metric else "start_time"
    children = log.runs(where=f"parent_run_id = {_sql_text(record.run_id)}", order_by=order)
    grid = record.params.get("sweep.grid") or {}
    swept = [name for name in grid if f"params.{name}" in children.columns]
    rows = []
    for rank, values in enumerate(children.to_dict(orient="records"), 1):
        rows.append({
            "rank": rank, "run_id": values["run_id"], "status": values["status"],
            "params": [(name, values.get(f"params.{name}")) for name in swept],
            "metric": format_number(values.get(f"metrics.{metric}")) if metric else "",
        })  # fmt: skip
    charts = []
    column = f"metrics.{metric}" if metric else None
    for name in swept:
        if column is None or column not in children:
            break
        points = children[[f"params.{name}", column]].dropna()
        numeric = pd.to_numeric(points[f"params.{name}"], errors="coerce")
        if numeric.isna().any() or points.empty:
            continue
        ordered = sorted(zip(numeric.tolist(), points[column].tolist(), strict=True))
        series = {metric: ([x for x, _ in ordered], [y for _, y in ordered])}
        charts.append({"param": name, "svg": line_chart(series, f"{metric} by {name}")})
    best = record.tags.get("mlops.best_run") or (rows[0]["run_id"] if rows else None)
    return {"run_id": record.run_id, "metric": metric, "swept": swept, "rows": rows,
            "charts": charts, "best_run": best}  # fmt: skip


def read_card(notebook: nbformat.NotebookNode) -> dict[str, Any]:
    """The YAML body of the notebook's ``%%mlops card`` cell, keys normalised (or {})."""
    for cell in notebook.cells:
        lines = cell.source.splitlines()
        if cell.cell_type == "code" and lines and _CARD_CELL.match(lines[0]):
            try:
                loaded = yaml.safe_load("\n".join(lines[1:])) or {}
            except yaml.YAMLError as error:
                raise MlopsError(f"the %%mlops card cell is not valid YAML: {error}") from None
            if not isinstance(loaded, dict):
                raise MlopsError("the %%mlops card cell must be a YAML mapping (field: text)")
            return {_key(k): v for k, v in loaded.items()}
    return {}


def format_number(value: Any) -> str:
    """Four decimals for ordinary floats, so a metric reads the same everywhere."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if number != number:
        return "NaN"
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    if 1e-3 <= abs(number) < 1e6:
        return f"{number:.4f}"
    return f"{number:.4g}"


# ---------------------------------------------------------------------- pieces
def _latest_finished_run(log: Any, name: str) -> str:
    literal, slash = _sql_text(name), _sql_text("/" + name)
    found = log.sql(
        "SELECT run_id FROM runs WHERE status = 'finished' AND (notebook_path = "
        f"{literal} OR ends_with(notebook_path, {slash})) ORDER BY start_time DESC LIMIT 1"
    )
    if found.empty:
        raise MlopsError(
            f"no finished run of {name} in the log: run it with mlops-nb run, or pass --run"
        )
    return str(found["run_id"][0])


def _purpose(nb: nbformat.NotebookNode) -> str:
    """The first markdown cell without its top-level title line."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            return re.sub(r"^#\s+.*$", "", cell.source, count=1, flags=re.MULTILINE).strip()
    return ""


def _add_narrative_and_code(nb, pipeline, stages: dict[str, StageDoc]) -> None:
    """Markdown before a stage's cells is its narrative; markdown after the last, an epilogue."""
    stage_at = {cell.index: cell.stage for cell in pipeline.cells}
    pending: list[str] = []
    seen_markdown = False
    last: StageDoc | None = None
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            if seen_markdown and cell.source.strip():
                pending.append(cell.source)
            seen_markdown = True
            continue
        lines = cell.source.splitlines()
        if cell.cell_type != "code" or (lines and _CARD_CELL.match(lines[0])):
            continue
        stage = stages.get(stage_at.get(index) or "")
        if stage is None:
            continue
        stage.narrative += pending
        pending = []
        stage.code.append(cell.source)
        last = stage
    if last is not None:
        last.epilogue += pending


def _add_figures(nb: nbformat.NotebookNode, stages: dict[str, StageDoc]) -> None:
    pipeline = read_pipeline("executed.ipynb", nb)
    for info in pipeline.cells:
        stage = stages.get(info.stage or "")
        if stage is None:
            continue
        for output in nb.cells[info.index].get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                number = len(stage.figures) + 1
                filename = f"{_anchor('stage', stage.name)}-figure-{number}.png"
                data = base64.b64decode("".join(png) if isinstance(png, list) else png)
                stage.figures.append(Figure(data, filename))


def _executed_notebook(log: Any, record: Any) -> tuple[nbformat.NotebookNode | None, str | None]:
    """The run's executed notebook: its output path, else the copy stored as an artifact."""
    candidates = []
    if record.tags.get("mlops.output"):
        candidates.append(Path(record.tags["mlops.output"]))
    stored = record.artifacts[record.artifacts["kind"] == "notebook"]
    candidates += [log.artifacts_dir / path for path in stored["stored_path"]]
    for path in candidates:
        if path.is_file():
            return nbformat.read(str(path), as_version=4), None
    if not candidates:
        return None, "No executed notebook was recorded for this run, so no figures are shown."
    return None, f"The executed notebook ({candidates[0]}) is missing: figures are not shown."


def _dataset_doc(row: Any) -> DatasetDoc:
    schema = json.loads(row.schema) if isinstance(row.schema, str) else {}
    stats = json.loads(row.stats) if isinstance(row.stats, str) else {}
    diff = json.loads(row.diff) if isinstance(row.diff, str) else {}
    return DatasetDoc(
        name=row.name, version=int(row.version), kind=str(row.kind), shape=lineage._shape(row),
        fingerprint=str(row.fingerprint or ""), schema=schema if isinstance(schema, dict) else {},
        changes=describe_changes(diff), stats=stats if isinstance(stats, dict) else {},
    )  # fmt: skip


def describe_changes(diff: dict[str, Any]) -> list[str]:
    """Readable sentences for a ``datasets.diff`` record."""
    if not diff:
        return []
    changes = []
    before, after = diff.get("rows_before"), diff.get("rows_after")
    if before is not None and after is not None and before != after:
        changes.append(f"rows: {before} → {after}")
    if diff.get("duplicates_removed"):
        changes.append(f"{diff['duplicates_removed']} duplicate rows dropped")
    if diff.get("rows_removed") or diff.get("rows_added"):
        changes.append(
            f"{diff.get('rows_removed', 0)} rows removed, {diff.get('rows_added', 0)} rows added "
            "(a row whose values changed counts as both)"
        )
    for key, label in (("nulls_filled", "nulls filled"), ("nulls_introduced", "nulls introduced")):
        if diff.get(key):
            changes.append(f"{label}: " + ", ".join(f"{c} {n}" for c, n in diff[key].items()))
    if diff.get("dtype_changes"):
        changes.append("type changes: " + ", ".join(
            f"{c} {old} → {new}" for c, (old, new) in diff["dtype_changes"].items()))  # fmt: skip
    if diff.get("columns_added"):
        changes.append("columns added: " + ", ".join(diff["columns_added"]))
    if diff.get("columns_dropped"):
        changes.append("columns removed: " + ", ".join(diff["columns_dropped"]))
    return changes


def _model_doc(row: Any) -> dict[str, Any]:
    params = json.loads(row.params) if isinstance(row.params, str) else {}
    return {
        "name": row.name, "class_name": str(row.class_name),
        "short_class": str(row.class_name).rsplit(".", 1)[-1], "cell_seq": int(row.cell_seq),
        "params": {k: json.dumps(v) if not isinstance(v, str) else v for k, v in params.items()},
        "n_features_in": None if pd.isna(row.n_features_in) else int(row.n_features_in),
        "fit_dataset_id": row.fit_dataset_id if isinstance(row.fit_dataset_id, str) else None,
        "sha256": row.artifact_sha256 if isinstance(row.artifact_sha256, str) else None,
    }  # fmt: skip


def _main_model(models: list[dict[str, Any]], card: dict[str, Any]) -> dict[str, Any] | None:
    """The card's ``model`` variable, else one named ``model``, else the last one saved."""
    for wanted in (card.get("model"), "model"):
        named = [m for m in models if m["name"] == wanted]
        if named:
            return named[-1]
    saved = [m for m in models if m["sha256"]]
    return (saved or models or [None])[-1]


def _training_data(record, datasets, model, stage_of) -> dict[str, Any]:
    """The dataset the main model was fitted on, its target, and what happened before."""
    if model is None:
        return {}
    features = datasets.get(model["fit_dataset_id"] or "")
    fit_reads = record.lineage[
        (record.lineage["cell_seq"] == model["cell_seq"]) & (record.lineage["direction"] == "in")
    ]
    target = None
    for dataset_id in fit_reads["dataset_id"]:
        candidate = datasets.get(dataset_id)
        if candidate is not None and candidate is not features and len(candidate.schema) == 1:
            target = candidate
    before = record.datasets[record.datasets["cell_seq"] < model["cell_seq"]]
    steps = []
    for row in before.itertuples():
        doc = datasets[row.dataset_id]
        if doc.changes:
            steps.append(
                {
                    "dataset": f"{doc.name} v{doc.version}",
                    "stage": stage_of.get(int(row.cell_seq), ""),
                    "changes": doc.changes,
                }
            )
    read_ids = set(record.lineage.loc[record.lineage["direction"] == "in", "dataset_id"])
    written_first = record.datasets[
        record.datasets["cell_seq"] == record.datasets["cell_seq"].min()
    ]
    sources = [datasets[i] for i in written_first["dataset_id"] if i in read_ids] or [
        datasets[i] for i in written_first["dataset_id"]]  # fmt: skip
    return {"features": features, "target": target, "steps": steps, "sources": sources}


def _class_balance(target: DatasetDoc | None) -> list[tuple[str, str]]:
    """Shares per class of a 0/1 target (from its stats), else its recorded summary."""
    if target is None:
        return []
    column, stats = next(iter(target.stats.items()), ("", {}))
    if stats.get("min") == 0 and stats.get("max") == 1 and stats.get("mean") is not None:
        share = float(stats["mean"])
        return [(f"{column} = 0", f"{1 - share:.1%}"), (f"{column} = 1", f"{share:.1%}")]
    return [(k, format_number(v) if isinstance(v, float) else str(v)) for k, v in stats.items()]


def _columns(dataset: DatasetDoc | None) -> list[dict[str, str]]:
    if dataset is None:
        return []
    rows = []
    for column, dtype in dataset.schema.items():
        stats = dataset.stats.get(column, {}) if isinstance(dataset.stats, dict) else {}
        summary = ", ".join(
            f"{k} {format_number(v) if isinstance(v, float) else v}"
            for k, v in stats.items() if k != "nulls"
        )  # fmt: skip
        rows.append({"name": column, "dtype": str(dtype), "nulls": str(stats.get("nulls", "")),
                     "summary": summary})  # fmt: skip
    return rows


def _datasheet(training, datasets, card, stages) -> dict[str, Any]:
    author = card.get("datasheet") if isinstance(card.get("datasheet"), dict) else {}
    author = {_key(k): v for k, v in author.items()}
    sources = training.get("sources", [])
    return {
        "features": training.get("features"),
        "target": training.get("target"),
        "columns": _columns(training.get("features")),
        "balance": _class_balance(training.get("target")),
        "sources": sources,
        "source_columns": {s.name: _columns(s) for s in sources},
        "steps": training.get("steps", []),
        "author": [
            (title, _card_text(author.get(key)), hint) for key, title, hint in DATASHEET_FIELDS
        ],  # fmt: skip
    }


def _model_card(model, models, card, training, record) -> dict[str, Any]:
    evaluation = []
    if model is not None:
        later = record.cells[record.cells["cell_seq"] > model["cell_seq"]]
        for row in later.itertuples():
            if isinstance(row.reads, str) and model["name"] in json.loads(row.reads):
                ids = record.lineage[
                    (record.lineage["cell_seq"] == row.cell_seq)
                    & (record.lineage["direction"] == "in")
                ]["dataset_id"]
                evaluation += [training_ds for training_ds in (
                    _lookup(record, i) for i in ids) if training_ds is not None]  # fmt: skip
    return {
        "model": model,
        "others": [m for m in models if m is not model],
        "fields": [
            (key, title, _card_text(card.get(key)), hint) for key, title, hint in CARD_FIELDS
        ],  # fmt: skip
        "evaluation": evaluation,
        "training": training,
    }


def _group_metrics(log: Any, record: Any, declared: Any) -> dict[str, Any] | None:
    """Accuracy per group when the card declares them::

        groups: {column: contract, data: X_test, target: y_test, prediction: predicted}

    The values are the run's checkpoints (saved by pipeline runs), so the numbers are the
    recorded run's own, recomputed exactly."""
    if not declared:
        return None
    needed = ("column", "data", "target", "prediction")
    if not isinstance(declared, dict) or any(not declared.get(k) for k in needed):
        return {"note": "the card's groups need column, data, target and prediction", "rows": []}
    from mlops_nb.capture.checkpoint import load_value

    names = [declared["data"], declared["target"], declared["prediction"]]
    saved = log.sql(
        "SELECT name, format, path FROM checkpoints WHERE run_id = "
        f"{_sql_text(record.run_id)} AND name IN ({', '.join(map(_sql_text, names))}) "
        "QUALIFY row_number() OVER (PARTITION BY name ORDER BY cell_seq DESC) = 1"
    )
    found = {row.name: (row.format, row.path) for row in saved.itertuples()}
    missing = [name for name in names if name not in found]
    if missing:
        return {"note": f"no saved values for {', '.join(missing)} in this run (per-group "
                "results need a run made with mlops-nb run)", "rows": []}  # fmt: skip
    data, target, prediction = (
        load_value(found[name][0], log.artifacts_dir / found[name][1]) for name in names
    )
    column = declared["column"]
    if column not in getattr(data, "columns", []):
        return {"note": f"{declared['data']} has no column {column!r}", "rows": []}
    frame = pd.DataFrame({
        "group": pd.Series(data[column]).astype(str).to_numpy(),
        "correct": pd.Series(target).to_numpy() == pd.Series(prediction).to_numpy(),
        "positive": pd.Series(prediction).to_numpy() == 1,
    })  # fmt: skip
    rows = [
        {"group": group, "count": int(len(part)),
         "accuracy": format_number(part["correct"].mean()),
         "positive_rate": format_number(part["positive"].mean())}
        for group, part in frame.groupby("group", sort=True)
    ]  # fmt: skip
    return {"column": column, "note": None, "rows": rows}


def _lookup(record, dataset_id: str) -> DatasetDoc | None:
    found = record.datasets[record.datasets["dataset_id"] == dataset_id]
    return _dataset_doc(next(found.itertuples())) if not found.empty else None


def _card_text(value: Any) -> str | None:
    """A card field as Markdown text: lists become bullets, mappings ``key: value`` bullets."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return "\n".join(f"- **{k}**: {_card_text(v) or ''}" for k, v in value.items())
    if isinstance(value, list):
        return "\n".join(f"- {item}" for item in value)
    return str(value)


def _environment(log: Any, run_id: str) -> dict[str, Any]:
    rows = log.sql(
        "SELECT kind, name, version FROM environment WHERE run_id = "
        f"'{run_id}' ORDER BY kind, lower(name)"
    )
    python = rows[(rows["kind"] == "python") & (rows["name"] == "python")]["version"]
    platform = rows[rows["kind"] == "platform"]["version"]
    packages = {r.name: r.version for r in rows[rows["kind"] == "package"].itertuples()}
    return {
        "python": python.iloc[0] if not python.empty else None,
        "platform": " ".join(platform),
        "key_packages": [(name, packages[name]) for name in KEY_PACKAGES if name in packages],
        "packages": sorted(packages.items(), key=lambda item: item[0].lower()),
    }


def _reproduce_command(notebook, pipeline, record) -> str:
    words = ["mlops-nb", "run", str(notebook)]
    for parameter in pipeline.parameters:
        if parameter.name in record.params:
            value = record.params[parameter.name]
            text = json.dumps(value) if isinstance(value, list | dict) else str(value)
            words += ["-p", parameter.name, text]
    experiment = record.info.get("experiment")
    if experiment and experiment not in ("default", pipeline.experiment):
        words += ["-e", experiment]
    return shlex.join(words)


def _parameters(pipeline, used: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for parameter in pipeline.parameters:
        record = parameter.to_record()
        record["used"] = repr(used[parameter.name]) if parameter.name in used else "not recorded"
        record["default"] = repr(record["default"])
        record["changed"] = parameter.name in used and used[parameter.name] != parameter.default
        rows.append(record)
    return rows


def _reproducibility(log, record, environment, datasets, output_note) -> dict[str, Any]:
    notes = log.sql(
        "SELECT cell_seq, kind, message FROM notes WHERE run_id = "
        f"'{record.run_id}' ORDER BY created_at"
    )
    messages = [(r.kind, r.message) for r in notes.itertuples()]
    if output_note:
        messages.append(("figures", output_note))
    info = record.info
    warnings = [m for m in messages if m[0] in ("stale-input", "out-of-order")]
    return {
        "notes": messages,
        "reproducible": not warnings,
        "git": info.get("git_commit") if isinstance(info.get("git_commit"), str) else None,
        "git_dirty": info.get("git_dirty") is True,
        "notebook_hash": info.get("notebook_hash"),
        "fingerprints": list(datasets.values()),
    }


def _cell_at(cells: pd.DataFrame, when: Any) -> int | None:
    """The cell that was running when a metric was logged (the last one started before it)."""
    started = cells[cells["start_time"] <= when]
    return int(started["cell_seq"].iloc[-1]) if not started.empty else None


def _anchor(prefix: str, name: str) -> str:
    return f"{prefix}-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-").lower() or "x")


def _key(name: Any) -> str:
    return re.sub(r"[\s-]+", "_", str(name).strip().lower())


def _time(value: Any) -> str:
    return "" if value is None or pd.isna(value) else str(value)[:19] + " UTC"


def _duration(value: Any) -> str:
    if value is None or pd.isna(value):
        return "not recorded"
    seconds = float(value)
    return f"{seconds:.2f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def _md_text(value: Any) -> str:
    """Inline user text for Markdown: HTML is shown as text, not interpreted."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_cell(value: Any) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return _md_text(value).replace("|", "\\|").replace("\n", " ")
