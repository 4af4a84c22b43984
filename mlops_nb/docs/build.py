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
import contextlib
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
from mlops_nb.capture.data import change_phrases
from mlops_nb.capture.estimators import recorded_kind
from mlops_nb.capture.fairness import fairness_card
from mlops_nb.capture.pii import checkpoint_protection, pii_summary
from mlops_nb.docs import lineage
from mlops_nb.errors import MlopsError
from mlops_nb.log.filters import Condition, Sort
from mlops_nb.pipeline.notebook import read_pipeline
from mlops_nb.registry.explain import model_card_data
from mlops_nb.retention import storage_report
from mlops_nb.validate_command import (
    checks_summary,
    describe_expectations,
    expectations_summary,
    joins_summary,
    private_columns,
)

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
    n_rows: int | None = None
    n_cols: int | None = None


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
    gates: list[dict[str, Any]] = field(default_factory=list)
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
        for explained in model.card.get("explanations", []):
            if explained["svg"]:
                figures.mkdir(exist_ok=True)
                (figures / explained["filename"]).write_text(explained["svg"], encoding="utf-8")
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
    main_model = _main_model(models, card, stage_of)
    training = _training_data(record, datasets, main_model, stage_of)
    task = _task(main_model, training.get("target"), record, datasets)
    stage_list = [s for s in stages.values() if s.code or s.duration_s is not None]
    reproducibility = _reproducibility(log, record, environment, datasets, output_note)
    private = private_columns(log, [], record.run_id)  # personal data: no value shown anywhere
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
        datasheet={
            **_datasheet(training, datasets, card, stage_list, task),
            **_data_governance(log, record.run_id, stage_of, private),
        },
        card={
            **_model_card(main_model, models, card, training, record),
            **_model_governance(log, record.run_id, main_model, private),
            "registered": _registered_versions(log, record.run_id),
            "monitoring": _monitoring(log, record.run_id),
            "task": task,
            "groups": _group_metrics(log, record, card.get("groups"), task),
            "residuals": _residuals(log, record, main_model, task, card.get("groups"), datasets),
        },  # fmt: skip
        reproducibility=reproducibility,
        metrics=[(key, format_number(value)) for key, value in record.metrics.items()],
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        schedules=_schedules(log, Path(notebook).name),
        reruns=_reruns(log, record),
        sweep=sweep,
        gates=_gates(log, record.run_id),
    )


def _gates(log: Any, run_id: str) -> list[dict[str, Any]]:
    """The acceptance-gate conditions checked for the run, with their values and verdicts."""
    return [
        {"condition": row.condition,
         "value": "" if pd.isna(row.value) else format_number(row.value),
         "baseline": "" if pd.isna(row.baseline) else format_number(row.baseline),
         "passed": bool(row.passed),
         "against": row.baseline_ref if pd.isna(row.baseline_version) else
         f"{row.baseline_ref} (v{int(row.baseline_version)})",
         "detail": row.detail, "checked": _time(row.created_at)}
        for row in log.gate_results(run_id).itertuples()
    ]  # fmt: skip


def _schedules(log: Any, name: str) -> list[dict[str, Any]]:
    """The notebook's recorded schedules and their next five run times."""
    from mlops_nb.pipeline.schedule import upcoming_runs

    return [
        {"cron": row.cron, "target": row.target, "next": upcoming_runs(row.cron)}
        for row in log.schedules(name).itertuples()
    ]


def _reruns(log: Any, record: Any) -> list[dict[str, Any]]:
    """Other finished runs of the same notebook with the same parameters: did they reproduce
    this run's metrics?"""
    path = record.info.get("notebook_path")
    if not isinstance(path, str) or not record.metrics:
        return []
    candidates = log.runs(filters=[
        Condition("notebook_path", "=", path), Condition("status", "=", "finished"),
        Condition("run_id", "!=", record.run_id),
    ])  # fmt: skip
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
    children = log.runs(
        filters=[Condition("parent_run_id", "=", record.run_id)],
        order_by=Sort(f"metrics.{metric}") if metric else Sort("start_time", descending=False),
    )
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
    found = log.latest_run_of(name)
    if found is None:
        raise MlopsError(
            f"no finished run of {name} in the log: run it with mlops-nb run, or pass --run"
        )
    return found


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
    for stored_path in stored["stored_path"]:
        with contextlib.suppress(MlopsError):  # a team log's copy may be gone: use the others
            candidates.append(log.artifact_file(stored_path))
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
        changes=change_phrases(diff if isinstance(diff, dict) else {}),
        stats=stats if isinstance(stats, dict) else {},
        n_rows=None if pd.isna(row.n_rows) else int(row.n_rows),
        n_cols=None if pd.isna(row.n_cols) else int(row.n_cols),
    )  # fmt: skip


def _model_doc(row: Any) -> dict[str, Any]:
    params = json.loads(row.params) if isinstance(row.params, str) else {}
    return {
        "name": row.name, "class_name": str(row.class_name),
        "short_class": str(row.class_name).rsplit(".", 1)[-1], "cell_seq": int(row.cell_seq),
        "params": {k: json.dumps(v) if not isinstance(v, str) else v for k, v in params.items()},
        "n_features_in": None if pd.isna(row.n_features_in) else int(row.n_features_in),
        "fit_dataset_id": row.fit_dataset_id if isinstance(row.fit_dataset_id, str) else None,
        "sha256": row.artifact_sha256 if isinstance(row.artifact_sha256, str) else None,
        "kind": recorded_kind(str(row.class_name), params if isinstance(params, dict) else {}),
    }  # fmt: skip


def _main_model(
    models: list[dict[str, Any]], card: dict[str, Any], stage_of: dict[int, str]
) -> dict[str, Any] | None:
    """The card's ``model:`` variable; else what the train stage produced: the last predictor
    fitted there, a supervised one before a clusterer, a baseline (a Dummy* class, a variable
    called baseline) last; then a predictor of another stage, then the last model saved."""
    named = [m for m in models if m["name"] == card.get("model")]
    if named:
        return named[-1]

    def rank(position: int) -> tuple:
        model = models[position]
        baseline = model["short_class"].startswith("Dummy") or any(
            word in model["name"].lower() for word in ("baseline", "dummy")
        )
        return (
            model["kind"] in _PREDICTORS,
            stage_of.get(model["cell_seq"]) == "train",
            model["kind"] in ("classifier", "regressor"),
            not baseline,
            model["sha256"] is not None,
            position,
        )

    return models[max(range(len(models)), key=rank)] if models else None


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
        if model["kind"] != "clusterer" and _is_column(candidate) and candidate is not features:
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


_PREDICTORS = ("classifier", "regressor", "clusterer")


def _is_column(dataset: DatasetDoc | None) -> bool:
    """One column of values (a Series, a 1-d array, a one-column frame): a target, labels or
    predictions."""
    if dataset is None:
        return False
    if dataset.n_cols is not None:
        return dataset.n_cols == 1
    return len(dataset.schema) == 1


def _target_counts(target: DatasetDoc | None) -> dict[str, int] | None:
    """Rows per class of a target, from its recorded stats (value counts, or a 0/1 mean)."""
    if target is None or not target.stats:
        return None
    stats = next(iter(target.stats.values()))
    counts = stats.get("counts")
    if isinstance(counts, dict) and counts:
        return dict(sorted(counts.items(), key=lambda item: _label_order(item[0])))
    mean, rows = stats.get("mean"), target.n_rows
    if stats.get("min") == 0 and stats.get("max") == 1 and mean is not None and rows:
        valid = rows - int(stats.get("nulls") or 0)
        return {"0": round(valid * (1 - float(mean))), "1": round(valid * float(mean))}
    return None


def _label_order(label: str) -> tuple:
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def _task(model, target: DatasetDoc | None, record, datasets) -> dict[str, Any]:
    """What the main model does, in words, with what the log knows about its outputs: the
    classes of a classifier (from its target), the clusters of a clusterer."""
    kind = model["kind"] if model else None
    task: dict[str, Any] = {"kind": kind, "label": "not recorded", "classes": [],
                            "clusters": [], "n_clusters": None}  # fmt: skip
    if kind == "classifier":
        counts = _target_counts(target)
        if counts is None and target is not None:
            distinct = next(iter(target.stats.values()), {}).get("distinct")
            counts = dict.fromkeys(map(str, range(distinct)), 0) if distinct else None
        task["classes"] = list(counts or [])
        n = len(task["classes"])
        task["label"] = ("binary classification" if n == 2 else
                         f"multiclass classification ({n} classes)" if n > 2 else
                         "classification")  # fmt: skip
        task["kind"] = "binary" if n == 2 else "multiclass" if n > 2 else "classifier"
    elif kind == "regressor":
        task["label"] = "regression"
    elif kind == "clusterer":
        labels = _cluster_labels(model, record, datasets)
        counts = _target_counts(labels) or {}
        total = sum(counts.values())
        task["clusters"] = [(label, n, f"{n / total:.1%}") for label, n in counts.items()]
        declared = next((model["params"].get(k) for k in ("n_clusters", "n_components")
                         if k in model["params"]), None)  # fmt: skip
        try:
            task["n_clusters"] = int(json.loads(declared)) if declared else None
        except (TypeError, ValueError):
            task["n_clusters"] = None
        if task["n_clusters"] is None and counts:
            task["n_clusters"] = len([label for label in counts if label != "-1"])  # -1: noise
        task["label"] = "clustering" + (
            f" ({task['n_clusters']} clusters)" if task["n_clusters"] else "")  # fmt: skip
    elif kind:
        task["label"] = f"a {kind}, not a predictor"
    return task


def _cluster_labels(model, record, datasets) -> DatasetDoc | None:
    """The cluster of each row, when the notebook kept it: one column written by the cell that
    fitted the clusterer (``fit_predict``) or by a later one that read it (``predict``)."""
    for row in record.cells[record.cells["cell_seq"] >= model["cell_seq"]].itertuples():
        reads = json.loads(row.reads) if isinstance(row.reads, str) else []
        if row.cell_seq != model["cell_seq"] and model["name"] not in reads:
            continue
        written = record.lineage[(record.lineage["cell_seq"] == row.cell_seq)
                                 & (record.lineage["direction"] == "out")]  # fmt: skip
        for dataset_id in written["dataset_id"]:
            candidate = datasets.get(dataset_id)
            if _is_column(candidate) and _target_counts(candidate):
                return candidate
    return None


def _class_balance(target: DatasetDoc | None, task: dict[str, Any]) -> list[tuple[str, str]]:
    """Shares per class of a classifier's target; for a regressor the target's distribution;
    else (a kind not known) its recorded summary."""
    if target is None or task["kind"] == "clusterer":
        return []
    column, stats = next(iter(target.stats.items()), ("", {}))
    counts = _target_counts(target) if task["kind"] != "regressor" else None
    if counts:
        total = sum(counts.values()) or 1
        return [(f"{column} = {label}", f"{n / total:.1%} ({n:,})") for label, n in counts.items()]
    return [(k, format_number(v) if isinstance(v, float) else str(v))
            for k, v in stats.items() if k != "counts"]  # fmt: skip


def _columns(dataset: DatasetDoc | None) -> list[dict[str, str]]:
    if dataset is None:
        return []
    rows = []
    for column, dtype in dataset.schema.items():
        stats = dataset.stats.get(column, {}) if isinstance(dataset.stats, dict) else {}
        summary = ", ".join(
            f"{k} {format_number(v) if isinstance(v, float) else v}"
            for k, v in stats.items() if k not in ("nulls", "counts")
        )  # fmt: skip
        rows.append({"name": column, "dtype": str(dtype), "nulls": str(stats.get("nulls", "")),
                     "summary": summary})  # fmt: skip
    return rows


def _datasheet(training, datasets, card, stages, task) -> dict[str, Any]:
    author = card.get("datasheet") if isinstance(card.get("datasheet"), dict) else {}
    author = {_key(k): v for k, v in author.items()}
    sources = training.get("sources", [])
    return {
        "features": training.get("features"),
        "target": training.get("target"),
        "columns": _columns(training.get("features")),
        "balance": _class_balance(training.get("target"), task),
        "balance_title": "Distribution" if task["kind"] == "regressor" else "Class balance",
        "sources": sources,
        "source_columns": {s.name: _columns(s) for s in sources},
        "steps": training.get("steps", []),
        "author": [
            (title, _card_text(author.get(key)), hint) for key, title, hint in DATASHEET_FIELDS
        ],  # fmt: skip
    }


def _registered_versions(log: Any, run_id: str) -> list[dict[str, Any]]:
    """The registry's versions made from this run, with the aliases that point at them now."""
    versions = log.model_versions()
    if versions.empty:
        return []
    mine = versions[versions["run_id"] == run_id]
    return [
        {"ref": f"{row.name}:{row.version}", "aliases": ", ".join(row.aliases),
         "model_var": row.model_var, "created": _time(row.created_at)}
        for row in mine.itertuples()
    ]  # fmt: skip


MONITOR_EVENTS = 20  # the card says why a model changed lately, not every check of a year


def _monitoring(log: Any, run_id: str) -> list[dict[str, Any]]:
    """For each model with a version registered from this run: the newest drift check of each
    such version (summary line and columns), the newest live or estimated value of each metric
    against the training-time baseline, and what ``mlops-nb monitor`` did to those versions or
    with this run (why it was retrained, gated, promoted), newest first."""
    from mlops_nb.monitor.drift import DriftReport

    versions = log.model_versions()
    if versions.empty:
        return []
    mine = versions[versions["run_id"] == run_id]
    out = []
    for name, group in mine.groupby("name", sort=True):
        numbers = {int(v) for v in group["version"]}
        checks = log.latest_drift_checks(name)
        checks = checks[checks["model_version"].isin(numbers)]
        drift = []
        for check_id, rows in checks.groupby("check_id", sort=False):
            inputs = rows[rows["target"] == "inputs"]
            dataset = rows[rows["target"] == "dataset"]
            drifted = [str(c) for c in inputs.loc[inputs["drifted"].astype(bool), "column"]]
            verdict = bool(dataset["drifted"].iloc[0]) if len(dataset) else None
            share = float(dataset["score"].iloc[0]) if len(dataset) else None
            first = rows.iloc[0]
            drift.append({
                "ref": f"{name}:{int(first['model_version'])}", "when": _time(first["when"]),
                "check_id": check_id, "reference": first["reference"],
                "current": first["current"],
                "summary": DriftReport(inputs, share or 0.0, bool(verdict), drifted).summary(),
                "verdict": {True: "dataset drift", False: "no dataset drift"}.get(verdict, ""),
                "share": "" if share is None else f"{share:.2f}",
                "drift_share": "" if dataset.empty else f"{dataset['threshold'].iloc[0]:g}",
                "columns": _drift_columns(inputs),
                "predictions": _drift_columns(rows[rows["target"] == "predictions"]),
            })  # fmt: skip
        measured = log.latest_performance(name)
        measured = measured[measured["model_version"].isin(numbers)]
        performance = [
            {"ref": f"{name}:{int(row.model_version)}", "metric": row.metric,
             "kind": "live" if row.kind == "realized" else row.kind,
             "value": _number(row.value), "baseline": _number(row.baseline),
             "change": "" if pd.isna(row.value) or pd.isna(row.baseline)
             else f"{row.value - row.baseline:+.4f}",
             "window": f"{_time(row.window_start)} to {_time(row.window_end)}",
             "rows": int(row.n_rows)}
            for row in measured.sort_values(["model_version", "kind", "metric"],
                                            ascending=[False, False, True]).itertuples()
        ]  # fmt: skip
        events = log.monitor_events(name)
        concerned = (
            events["from_version"].isin(numbers)
            | events["to_version"].isin(numbers)
            | (events["run_id"] == run_id)
        )
        events = events[concerned].iloc[::-1].head(MONITOR_EVENTS)
        out.append({
            "name": name, "refs": ", ".join(f"{name}:{v}" for v in sorted(numbers)),
            "drift": drift, "performance": performance,
            "events": [
                {"when": _time(row.created_at), "step": row.step, "outcome": row.outcome,
                 "reason": row.reason if isinstance(row.reason, str) else "",
                 "versions": " → ".join(f"v{int(v)}" for v in (row.from_version, row.to_version)
                                         if not pd.isna(v))}
                for row in events.itertuples()
            ],
        })  # fmt: skip
    return out


def _drift_columns(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"column": row.column, "method": row.method, "score": _number(row.score),
         "threshold": _number(row.threshold), "drifted": bool(row.drifted)}
        for row in rows.itertuples()
    ]  # fmt: skip


def _number(value: Any) -> str:
    return "" if value is None or pd.isna(value) else format_number(value)


# ---------------------------------------------------------------------- governance
PERSONAL_HIDDEN = "personal data: not shown"
EXPLAIN_LINE = (
    "A served version also explains single answers: `POST /explain` to `mlops-nb serve` "
    "returns each input column's contribution to one prediction, as sampled Shapley values "
    "against reference rows drawn from the training data's profile; they add up to the "
    "prediction minus the average prediction."
)
_FAIRNESS_SUMMARY = (
    ("demographic_parity_difference", "demographic parity difference"),
    ("demographic_parity_ratio", "demographic parity ratio"),
    ("equalized_odds_difference", "equalized odds difference"),
)
_FAIRNESS_METRICS = {"accuracy": "accuracy", "selection_rate": "selection rate",
                     "tpr": "true positive rate", "fpr": "false positive rate",
                     "count": "rows"}  # fmt: skip


def _data_governance(
    log: Any, run_id: str, stage_of: dict[int, str], private: set[str]
) -> dict[str, Any]:
    """The datasheet's data checks, stored expectations, joins, personal-data findings and
    where personal data of the run is kept, as plain text values (personal values never)."""
    checks = []
    for check in checks_summary(log, run_id):
        failures = []
        for failure in check["failures"]:
            values = failure["example_values"]
            shown = (PERSONAL_HIDDEN if values is None or failure["column"] in private
                     else ", ".join(_example(v) for v in values))  # fmt: skip
            rows = failure["example_rows"] or []
            more = ", …" if failure["n_failing"] > len(rows) > 0 else ""
            failures.append({
                "column": failure["column"], "check": failure["check"],
                "failing": f"{failure['n_failing']:,} of {failure['n_rows']:,}",
                "rows": ", ".join(str(r) for r in rows) + more, "values": shown,
            })  # fmt: skip
        n_checks, n_failed = check["n_checks"], check["n_failed"]
        verdict = (f"{n_checks} checks passed" if check["passed"]
                   else f"{n_failed} of {n_checks} checks failed")  # fmt: skip
        checks.append({
            "target": check["target"], "expectation": check["expectation"],
            "stage": stage_of.get(check["cell_seq"], "") if check["cell_seq"] is not None else "",
            "passed": check["passed"], "when": _time(check["created_at"]),
            "summary": f"{verdict} on {check['n_rows']:,} rows",
            "failures": failures,
        })  # fmt: skip
    expectations = [
        {"dataset": _dataset_label(e["dataset_id"] or e["dataset_name"]),
         "source": "inferred from the data" if e["source"] == "inferred" else "a file",
         "columns": _expectation_rows(e["columns"], private)}
        for e in expectations_summary(log, run_id)
    ]  # fmt: skip
    joins = [
        {"stage": stage_of.get(j["cell_seq"], "") if j["cell_seq"] is not None else "",
         "summary": j["summary"]}
        for j in joins_summary(log, run_id)
    ]  # fmt: skip
    personal = [
        {**row, "share": "" if row["share"] is None else f"{row['share']:.0%}"}
        for row in pii_summary(log, run_id)
    ]
    return {"checks": checks, "expectations": expectations, "joins": joins,
            "personal_data": personal, "storage": _storage(log, run_id, stage_of)}  # fmt: skip


def _storage(log: Any, run_id: str, stage_of: dict[int, str]) -> dict[str, Any]:
    """Where the run's personal data is kept: its checkpoints that hold some (encrypted, not
    encrypted, or not written), the request logs of its registered models, the key's place
    (never the key) and the retention policy."""
    report = storage_report(log, [run_id])
    places = [
        {"name": c["name"], "stage": c["stage"] or stage_of.get(c["cell_seq"], ""),
         "dataset": c["dataset"] or "", "columns": ", ".join(c["personal_columns"]),
         "stored": "encrypted (AES-256-GCM)" if c["encrypted"] else "NOT encrypted",
         "encrypted": c["encrypted"], "size": _size(c["bytes"]),
         "created": (c["created_at"] or "")[:19].replace("T", " ")}
        for c in report["checkpoints"]
    ]  # fmt: skip
    for skipped in checkpoint_protection(log, run_id):
        if skipped["stored"] == "not written":
            places.append({"name": skipped["name"], "stage": stage_of.get(skipped["cell_seq"], ""),
                           "dataset": "", "columns": "", "stored": "not written",
                           "encrypted": True, "size": "", "created": ""})  # fmt: skip
    registered = {row["ref"].rsplit(":", 1)[0] for row in _registered_versions(log, run_id)}
    requests = [
        {"model": f"{r['model']}" + (f" v{r['version']}" if r["version"] is not None else ""),
         "requests": r["requests"], "payloads": r["payloads"], "size": _size(r["payload_bytes"]),
         "oldest": (r["oldest_payload"] or "")[:19].replace("T", " "),
         "hashed": ", ".join(r["hashed_columns"]) or "none",
         "plain": ", ".join(r["plain_columns"]) or "none"}
        for r in report["requests"] if r["model"] in registered
    ]  # fmt: skip
    key = report["key"]
    if key["source"] == "environment":
        where = f"the environment variable {key['name']}"
    elif key["present"]:
        mode = key.get("mode", "")
        where = f"the file {key['path']} (mode {mode}" + (
            ")" if key.get("private") else ", readable by others: restrict it to 0600)"
        )
    else:
        where = f"no key yet (it will be created at {key['path']}, mode 0600)"
    policy = report["retention"]["policy"]
    retention = (
        "keeps " + ", ".join(f"{kind} for {length}" for kind, length in policy.items())
        + f"; last applied {report['retention']['last_applied'] or 'never'}"
        if policy else "none: everything is kept until mlops-nb purge removes it"
    )  # fmt: skip
    return {"checkpoints": places, "requests": requests, "key": where, "retention": retention,
            "unprotected": sum(1 for p in places if not p["encrypted"])}  # fmt: skip


def _model_governance(
    log: Any, run_id: str, model: dict[str, Any] | None, private: set[str]
) -> dict[str, Any]:
    """The model card's fairness tables (summary numbers, then per group), the permutation
    importance chart of each version registered from the run, and the inputs each version
    expects (its training data's expectations)."""
    explanations, inputs, fairness = [], [], None
    for row in _registered_versions(log, run_id):
        name, version = row["ref"].rsplit(":", 1)
        record = log.model_version(name, int(version)) or {}
        if not record:
            continue
        found = model_card_data(log, record)
        if fairness is None and found["fairness"]:
            fairness = found["fairness"]
        importance = found["importance"]
        explanations.append({
            "ref": row["ref"], "svg": importance["svg"] if importance["rows"] else "",
            "filename": _anchor("importance", row["ref"].replace(":", "-v")) + ".svg",
            "rows": [(r["feature"], format_number(r["importance"]), format_number(r["std"]))
                     for r in importance["rows"]],
            "measured": (f"the drop of {importance['metric']} when one input column is "
                         f"shuffled, {importance['n_repeats']} times on "
                         f"{importance['n_rows']:,} evaluation rows (mean ± std)")
            if importance["rows"] else "",
        })  # fmt: skip
        spec = (record.get("signature") or {}).get("expectations")
        inputs.append({"ref": row["ref"], "columns": _expectation_rows(
            describe_expectations(spec), private)})  # fmt: skip
    if fairness is None:
        rows = log.fairness(run_id=run_id)
        mine = rows[rows["model_name"] == model["name"]] if model and len(rows) else rows[:0]
        fairness = fairness_card(mine if len(mine) else rows)
    return {"fairness": [_fairness_doc(f) for f in fairness], "explanations": explanations,
            "input_expectations": inputs, "explain_line": EXPLAIN_LINE}  # fmt: skip


def _fairness_doc(card: dict[str, Any]) -> dict[str, Any]:
    """One sensitive column's fairness: the three summary numbers, then a row per group."""
    metrics = card["metrics"]
    headers = [_fairness_label(m) for m in metrics]

    def cells(values: dict[str, Any]) -> list[str]:
        return [_number(values.get(m)) for m in metrics]

    return {
        "sensitive": card["sensitive"], "n_rows": card["n_rows"], "headers": headers,
        "summary": [(label, _number(card["summary"].get(key)))
                    for key, label in _FAIRNESS_SUMMARY if key in card["summary"]],
        "rows": [{"group": g["group"], "values": cells(g)} for g in card["groups"]],
        "overall": cells(card["overall"]),
    }  # fmt: skip


def _fairness_label(metric: str) -> str:
    """``selection_rate[yes]`` -> ``selection rate (yes)``."""
    base, _, klass = metric.partition("[")
    label = _FAIRNESS_METRICS.get(base, base.replace("_", " "))
    return f"{label} ({klass.rstrip(']')})" if klass else label


def _expectation_rows(columns: list[dict[str, Any]], private: set[str]) -> list[dict[str, str]]:
    """An expectations table: per column its type, nulls, range, allowed values, key, and
    whether it is personal data (whose range and values are never shown)."""
    rows = []
    for c in columns:
        personal = bool(c["personal"]) or c["column"] in private
        low, high = c["min"], c["max"]
        span = "" if low is None and high is None else (
            f"{_example(low) if low is not None else '…'} to "
            f"{_example(high) if high is not None else '…'}")  # fmt: skip
        allowed = ""
        if c["allowed"] is not None:
            allowed = ", ".join(_example(v) for v in c["allowed"])
            if c["n_allowed"] and c["n_allowed"] > len(c["allowed"]):
                allowed += f", … ({c['n_allowed']} values)"
        rows.append({
            "column": c["column"], "dtype": str(c["dtype"] or ""),
            "nulls": "allowed" if c["nullable"] else "none",
            "range": PERSONAL_HIDDEN if personal and span else span,
            "allowed": PERSONAL_HIDDEN if personal and allowed else allowed,
            "pattern": c["pattern"] or "", "unique": "key" if c["unique"] else "",
            "personal": "yes" if personal else "",
        })  # fmt: skip
    return rows


def _example(value: Any) -> str:
    """A value in a check or an expectation: numbers as elsewhere, text quoted."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | float):
        return format_number(value)
    return str(value)


def _dataset_label(dataset_id: Any) -> str:
    """``clean@v2`` from ``1a2b3c4d:clean@v2``."""
    text = str(dataset_id or "")
    return text.split(":", 1)[1] if ":" in text else text


def _size(n: Any) -> str:
    size = float(n or 0)
    for unit in ("bytes", "kB", "MB"):
        if size < 1000:
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


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


def _group_metrics(
    log: Any, record: Any, declared: Any, task: dict[str, Any]
) -> dict[str, Any] | None:
    """Results per group when the card declares them::

        groups: {column: contract, data: X_test, target: y_test, prediction: predicted}

    accuracy for a classifier (and the predicted positive rate for a binary one), errors for a
    regressor. The values are the run's checkpoints (saved by pipeline runs), so the numbers
    are the recorded run's own, recomputed exactly."""
    if not declared:
        return None
    needed = ("column", "data", "target", "prediction")
    if not isinstance(declared, dict) or any(not declared.get(k) for k in needed):
        return {"note": "the card's groups need column, data, target and prediction", "rows": []}
    if task["kind"] == "clusterer":
        return {"note": "a clusterer has no target: there are no per-group results", "rows": []}
    from mlops_nb.capture.checkpoint import load_value

    names = [declared["data"], declared["target"], declared["prediction"]]
    saved = log.checkpoints(record.run_id, names=names)
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
    groups = pd.Series(data[column]).astype(str).to_numpy()
    target, prediction = pd.Series(target).to_numpy(), pd.Series(prediction).to_numpy()
    if task["kind"] == "regressor":
        error = target.astype(float) - prediction.astype(float)
        frame = pd.DataFrame({"group": groups, "error": error})
        headers = ["count", "mean absolute error", "root mean squared error", "mean error"]
        values = [
            (group, [len(part), (e := part["error"]).abs().mean(), (e**2).mean() ** 0.5, e.mean()])
            for group, part in frame.groupby("group", sort=True)
        ]
    else:
        frame = pd.DataFrame({"group": groups, "correct": target == prediction})
        headers = ["count", "accuracy"]
        positive = task["classes"][-1] if task["kind"] == "binary" else None
        if positive is not None:  # the larger label: 1 of 0/1, True of False
            frame["positive"] = pd.Series(prediction).astype(str).to_numpy() == positive
            named = "" if positive in ("1", "True") else f" ({positive})"
            headers.append(f"predicted positive rate{named}")
        values = [
            (group, [len(part), part["correct"].mean()]
             + ([part["positive"].mean()] if positive is not None else []))
            for group, part in frame.groupby("group", sort=True)
        ]  # fmt: skip
    rows = [{"group": g, "values": [format_number(v) for v in vs]} for g, vs in values]
    return {"column": column, "note": None, "headers": headers, "rows": rows}


def _residuals(log, record, model, task, declared, datasets) -> dict[str, Any] | None:
    """A regressor's residuals (target - prediction) on its evaluation data, from the run's
    saved values: the card's groups name them, else the column a cell reading the model wrote
    (the prediction) and a column of as many rows read beside it (the target)."""
    if model is None or task["kind"] != "regressor":
        return None
    if isinstance(declared, dict) and declared.get("target") and declared.get("prediction"):
        names = (str(declared["target"]), str(declared["prediction"]))
    else:
        names = _evaluation_names(record, model, datasets)
    if names is None:
        return {"note": "no prediction of the model next to its target was recorded", "rows": []}
    from mlops_nb.capture.checkpoint import load_value

    saved = {row.name: row for row in log.checkpoints(record.run_id, names=names).itertuples()}
    if any(name not in saved for name in names):
        return {"note": f"no saved values for {' and '.join(names)} in this run (residuals "
                "need a run made with mlops-nb run)", "rows": []}  # fmt: skip
    target, prediction = (
        pd.Series(load_value(saved[n].format, log.artifacts_dir / saved[n].path)).to_numpy()
        for n in names
    )
    if len(target) != len(prediction):
        return {"note": f"{names[0]} and {names[1]} differ in length", "rows": []}
    residual = pd.Series(target.astype(float) - prediction.astype(float))
    summary = [
        ("rows", len(residual)), ("mean (bias)", residual.mean()), ("std", residual.std()),
        ("mean absolute", residual.abs().mean()), ("root mean square", (residual**2).mean() ** 0.5),
        ("min", residual.min()), ("median", residual.median()), ("max", residual.max()),
    ]  # fmt: skip
    rows = [(label, format_number(value)) for label, value in summary]
    return {"target": names[0], "prediction": names[1], "note": None, "rows": rows}


def _evaluation_names(record, model, datasets) -> tuple[str, str] | None:
    """(target, prediction): a column written by a cell that read the model after its fit,
    and a column with as many rows read by that cell or by a later one that read the
    prediction."""
    lineage_rows = record.lineage
    for cell in record.cells[record.cells["cell_seq"] > model["cell_seq"]].itertuples():
        if model["name"] not in (json.loads(cell.reads) if isinstance(cell.reads, str) else []):
            continue
        here = lineage_rows[lineage_rows["cell_seq"] == cell.cell_seq]
        for prediction_id in here.loc[here["direction"] == "out", "dataset_id"]:
            prediction = datasets.get(prediction_id)
            if not _is_column(prediction):
                continue
            reads = lineage_rows[lineage_rows["direction"] == "in"]
            readers = {cell.cell_seq, *reads.loc[reads["dataset_id"] == prediction_id, "cell_seq"]}
            beside = reads[reads["cell_seq"].isin(readers)]
            for target_id in beside["dataset_id"]:
                target = datasets.get(target_id)
                if (target is not prediction and _is_column(target)
                        and target.n_rows == prediction.n_rows):  # fmt: skip
                    return target.name, prediction.name
    return None


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
    rows = log.environment(run_id)
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
    notes = log.notes(record.run_id)
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
