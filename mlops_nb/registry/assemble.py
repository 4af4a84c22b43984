"""From a notebook's separately fitted objects to one verified inference pipeline.

Notebooks fit the preprocessing and the model apart (``preprocess.fit(X_train)``, then
``model.fit(preprocess.transform(X_train), y_train)``). Registering chains them into one
scikit-learn ``Pipeline`` and proves the chain: its predictions on the evaluation input the run
recorded must have the same fingerprint as the predictions the notebook recorded, or
registration fails and names the first row that differs.

Without ``steps``, the chain is proposed from what the log recorded about the fitted objects:
a transformer whose output columns are exactly the columns the next step was fitted on comes
before it (the model's ``feature_names_in_`` equal ``preprocess.get_feature_names_out()``).

The objects come from the kernel's namespace (``%mlops register``) or, outside a kernel, from
the values a pipeline run saved (checkpoints) and the models the train stage stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.capture import data as capture_data
from mlops_nb.registry.register import (
    EvaluationData,
    RegistryError,
    describe_outputs,
    register_pipeline,
    warn,
)
from mlops_nb.registry.signature import signature_from_frame, signature_from_record

MAX_STEPS = 10


@dataclass
class Values:
    """Where the run's objects come from: a live namespace, else the run's saved values."""

    log: Any
    record: Any  # the run's RunRecord
    namespace: Mapping[str, Any] | None = None

    def get(self, name: str) -> Any:
        if self.namespace is not None and name in self.namespace:
            return self.namespace[name]
        saved = self.log.checkpoints(self.record.run_id, names=[name])
        if len(saved):
            from mlops_nb.capture.checkpoint import load_saved

            row = saved.iloc[0]
            return load_saved(self.log, name, str(row["format"]), str(row["path"]))
        stored = _stored_model(self.log, self.record, name)
        if stored is not None:
            return stored
        raise RegistryError(
            f"run {self.record.run_id[:8]} kept no value of {name!r}: register from the "
            "notebook (%mlops register), or run it with mlops-nb run so its values are saved"
        )

    def has(self, name: str) -> bool:
        try:
            self.get(name)
        except RegistryError:
            return False
        return True


def register_model(
    log: Any,
    name: str,
    run: str | None = None,
    model: str = "model",
    steps: list[str] | None = None,
    *,
    namespace: Mapping[str, Any] | None = None,
    verify: bool = True,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    alias: str | None = None,
    labels: str | None = None,
) -> dict[str, Any]:
    """Assemble, verify and register; returns the new version's record.

    ``labels`` names the true labels of the evaluation data (found in the run when not given):
    registration keeps a sample of them with the predictions, for performance monitoring.
    """
    record = log.run(run or "latest")
    values = Values(log, record, namespace)
    rows = _model_rows(record)
    if model not in rows:
        fitted = ", ".join(sorted(rows)) or "none"
        raise RegistryError(
            f"run {record.run_id[:8]} fitted no {model!r} (fitted: {fitted}): pass --model VAR"
        )
    chain = list(steps) if steps is not None else propose_steps(rows, model)
    unknown = [step for step in chain if step not in rows]
    if unknown:
        raise RegistryError(f"run {record.run_id[:8]} fitted no {unknown[0]!r}: check --steps")
    pipeline = build_pipeline([(step, values.get(step)) for step in [*chain, model]])
    verification = verify_pipeline(pipeline, record, values, chain, model) if verify else {
        "verified": False, "reason": "registered without verification"}  # fmt: skip
    first = rows[(chain or [model])[0]]
    training, frame = _training_data(record, values, first)
    evaluation = _evaluation_data(record, values, pipeline, chain, model, verification, labels)
    parts = [
        {"name": step, "class_name": rows[step].get("class_name"),
         "sha256": rows[step].get("artifact_sha256")}
        for step in [*chain, model]
    ]  # fmt: skip
    return register_pipeline(
        log, name, pipeline, signature=_signature(training, frame, first), training_frame=frame,
        training_dataset=training, evaluation=evaluation, run_id=record.run_id, model_var=model,
        steps=chain, parts=parts, verification=verification, description=description, tags=tags,
        alias=alias,
    )  # fmt: skip


def propose_steps(rows: Mapping[str, dict[str, Any]], model: str) -> list[str]:
    """The transformers whose outputs feed ``model``, first to last, judged by column names
    (or, without names, by the number of features)."""
    chain: list[str] = []
    current = rows[model]
    for _ in range(MAX_STEPS):
        wanted, width = current.get("feature_names"), current.get("n_features_in")
        candidates = []
        for name, row in rows.items():
            if name == model or name in chain or row["cell_seq"] > current["cell_seq"]:
                continue
            produced = row.get("output_features")
            by_names = bool(wanted) and produced == wanted
            by_width = not wanted and bool(produced) and len(produced) == width
            if by_names or by_width:
                candidates.append((row["cell_seq"], name))
        if not candidates:
            break
        step = max(candidates)[1]  # the most recent fit of a matching transformer
        chain.insert(0, step)
        current = rows[step]
    return chain


def build_pipeline(steps: list[tuple[str, Any]]) -> Any:
    from sklearn.pipeline import Pipeline

    if len(steps) == 1:
        return steps[0][1]
    return Pipeline(steps)


def verify_pipeline(
    pipeline: Any, record: Any, values: Values, chain: list[str], model: str
) -> dict[str, Any]:
    """Find the evaluation input and the predictions the notebook recorded, and check that the
    pipeline reproduces them exactly (same fingerprint)."""
    first = chain[0] if chain else model
    pairs = _evaluation_pairs(record, values, first, model)
    if not pairs:
        raise RegistryError(
            f"run {record.run_id[:8]} recorded no predictions of {model!r} on data that "
            f"{first!r} takes (e.g. predicted = {model}.predict(...) in a tracked cell) to verify "
            "the pipeline with; register with --no-verify to skip the check"
        )
    mismatches = []
    names = " -> ".join([*chain, model])
    for inputs_name, predictions in pairs:
        frame = values.get(inputs_name)
        try:
            predicted = pipeline.predict(frame)
        except Exception as error:  # noqa: BLE001 - a wrong chain fails in many ways
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise RegistryError(
                f"the pipeline {names} fails on {inputs_name}: {type(error).__name__}: {text} "
                "(check the steps, --steps)"
            ) from None
        fingerprint = capture_data.snapshot(np.asarray(predicted)).fingerprint
        same = fingerprint == predictions["fingerprint"]
        if same or _same_values(values, str(predictions["name"]), predicted):
            return {"verified": True, "input": inputs_name, "predictions": predictions["name"],
                    "rows": int(len(frame)), "fingerprint": fingerprint}  # fmt: skip
        mismatches.append((inputs_name, predictions, predicted))
    # report the recorded values most like ours (labels, not probabilities)
    like = [m for m in mismatches if _same_kind(m[1], m[2])]
    inputs_name, predictions, predicted = (like or mismatches)[0]
    detail = _first_difference(values, predictions["name"], predicted)
    raise RegistryError(
        f"the pipeline {names} does not reproduce {predictions['name']} on {inputs_name}"
        f"{detail}: check the steps (--steps)"
    )


@dataclass
class CellEvaluation:
    """Variable names of what a cell evaluated: the classifier, its predicted labels, the true
    labels and the input it predicted from (None when given by the user or unknown)."""

    model: str | None
    predictions: str
    labels: str
    input: str | None = None
    also: list[str] = field(default_factory=list)  # other predictions it could have been


def cell_evaluation(
    log: Any,
    run_id: str,
    cell_seq: int,
    namespace: Mapping[str, Any],
    *,
    labels: str | None = None,
    predictions: str | None = None,
) -> CellEvaluation:
    """The predicted and true labels a recorded cell evaluated, found as registration finds
    them: predictions are a one-column dataset written by a cell that reads a classifier
    (those of ``cell_seq`` first) whose values are its classes (not probabilities); labels are
    what ``_labels_name`` picks for the input they were predicted from. ``labels`` and
    ``predictions`` name them when they cannot be found."""
    record = log.run(run_id)
    values = Values(log, record, namespace)
    rows = _model_rows(record)
    reads = record.cells[record.cells["cell_seq"] == cell_seq]["reads"]
    read = set(json.loads(reads.iloc[0])) if len(reads) and isinstance(reads.iloc[0], str) else (
        set())  # fmt: skip
    classifiers = [n for n in reversed(list(rows))  # the cell's own first, then the latest
                   if getattr(namespace.get(n), "classes_", None) is not None]  # fmt: skip
    classifiers.sort(key=lambda name: name not in read)
    if labels and predictions:
        return CellEvaluation(next((n for n in classifiers if n in read), None), predictions,
                              labels)  # fmt: skip
    from mlops_nb.monitor.performance import class_indices

    position = {str(d): i for i, d in enumerate(record.datasets["dataset_id"])}
    found = []
    for model in classifiers:
        classes = describe_outputs(namespace[model]).get("classes") or []
        for input_name, made in _evaluation_pairs(record, values, model, model):
            name = str(made["name"])
            if predictions is not None and name != predictions:
                continue
            predicted = np.asarray(values.get(name)).ravel()
            if predictions is None and not (class_indices(predicted, classes) >= 0).all():
                continue  # probabilities or scores, not labels
            at = position.get(str(made["dataset_id"]), 0)
            this_cell = pd.notna(made["cell_seq"]) and int(made["cell_seq"]) == cell_seq
            # this cell's first predictions (code order: the main model's, usually), else
            # the latest ones of the run
            found.append(((0, at) if this_cell else (1, -at), model, name, input_name))
    if not found:
        raise RegistryError(
            "no predicted labels of a fitted classifier found for this cell (e.g. predicted = "
            "model.predict(X_test)): name them with --predictions VAR"
        )
    found.sort(key=lambda item: item[0])
    rank, model, name, input_name = found[0]
    makers = [f for f in found if f[2] == name]
    if len({f[1] for f in makers}) > 1:  # the cell read several classifiers: which made them?
        for _, other, _, other_input in makers:
            try:
                remade = np.asarray(namespace[other].predict(values.get(other_input))).ravel()
            except Exception:  # noqa: BLE001 - not its input: not its predictions either
                continue
            if np.array_equal(remade, np.asarray(values.get(name)).ravel()):
                model, input_name = other, other_input
                break
    also = sorted({f[2] for f in found if f[0][0] == rank[0] and f[2] != name})
    labels_name = labels or _labels_name(record, values, namespace[model], model, input_name)
    if labels_name is None:
        raise RegistryError(f"no true labels found for {name} (rows of {input_name}): name them "
                            "with --labels VAR")  # fmt: skip
    return CellEvaluation(model, name, labels_name, input_name, also)


# ---------------------------------------------------------------------- helpers
def _model_rows(record: Any) -> dict[str, dict[str, Any]]:
    """The latest fit of each fitted variable of the run, with JSON fields decoded."""
    rows: dict[str, dict[str, Any]] = {}
    for row in record.models.sort_values("cell_seq").to_dict(orient="records"):
        for key in ("feature_names", "output_features", "params"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        rows[str(row["name"])] = row
    return rows


def _evaluation_pairs(
    record: Any, values: Values, first: str, model: str
) -> list[tuple[str, dict[str, Any]]]:
    """(input variable, predictions dataset) candidates: one-column datasets written by a cell
    that reads the model, and a dataset with as many rows whose columns the first step takes."""
    cells = record.cells
    reads = {
        int(row.cell_seq): set(json.loads(row.reads) if isinstance(row.reads, str) else [])
        for row in cells.itertuples()
    }
    datasets = record.datasets.to_dict(orient="records")
    lineage = record.lineage
    written = {
        (int(r.cell_seq), str(r.dataset_id)) for r in lineage.itertuples() if r.direction == "out"
    }
    predictions = [
        d for d in datasets
        if pd.notna(d["cell_seq"]) and (int(d["cell_seq"]), d["dataset_id"]) in written
        and model in reads.get(int(d["cell_seq"]), set()) and int(d["n_cols"]) == 1
    ]  # fmt: skip
    first_row = _model_rows(record)[first]
    wanted = set(first_row.get("feature_names") or [])
    width = first_row.get("n_features_in")
    pairs = []
    for prediction in reversed(predictions):  # the latest predictions first
        for candidate in reversed(datasets):
            schema = json.loads(candidate["schema"]) if isinstance(candidate["schema"], str) else {}
            fits = wanted <= set(schema) if wanted else int(candidate["n_cols"]) == width
            same_rows = int(candidate["n_rows"]) == int(prediction["n_rows"])
            if fits and same_rows and candidate["name"] != prediction["name"]:
                pair = (str(candidate["name"]), prediction)
                if pair not in pairs and values.has(pair[0]):
                    pairs.append(pair)
    return pairs


def _evaluation_data(
    record: Any,
    values: Values,
    pipeline: Any,
    chain: list[str],
    model: str,
    verification: Mapping[str, Any],
    labels: str | None,
) -> EvaluationData | None:
    """The evaluation input the pipeline was verified on (or would be) and its true labels,
    for the monitoring baseline; None, with a warning, when they cannot be found."""
    try:
        input_name = verification.get("input") if verification.get("verified") else None
        if input_name is None:
            pairs = _evaluation_pairs(record, values, chain[0] if chain else model, model)
            input_name = pairs[0][0] if pairs else None
        if input_name is None:
            warn(f"no evaluation data of {model!r} found in run {record.run_id[:8]}: no "
                 "performance baseline kept for monitoring")  # fmt: skip
            return None
        frame = values.get(input_name)
        dataset = _latest_dataset(record, input_name)
        labels_name = labels or _labels_name(record, values, pipeline, model, input_name)
        if labels_name is not None and not values.has(labels_name):
            warn(f"run {record.run_id[:8]} kept no value of {labels_name!r} (--labels)")
            labels_name = None
        if labels_name is None:
            warn(f"no labels found for {input_name} (pass --labels VAR): performance can be "
                 "measured once feedback arrives, not estimated before")  # fmt: skip
        return EvaluationData(
            frame, values.get(labels_name) if labels_name else None, input_name, labels_name,
            None if dataset is None else str(dataset["dataset_id"]),
        )  # fmt: skip
    except Exception as error:  # noqa: BLE001 - monitoring extras never fail a registration
        why = (str(error).strip().splitlines() or [type(error).__name__])[0]
        warn(f"no evaluation data kept for monitoring ({why})")
        return None


def _labels_name(
    record: Any, values: Values, pipeline: Any, model: str, input_name: str
) -> str | None:
    """The true labels of the evaluation input: a one-column dataset of the run with as many
    rows, not written by a cell that reads the model (that would be its predictions), whose
    values are the model's classes; ``X_test`` prefers ``y_test``, else the latest."""
    inputs = _latest_dataset(record, input_name)
    if inputs is None:
        return None
    reading_model = {
        int(row.cell_seq)
        for row in record.cells.itertuples()
        if model in (json.loads(row.reads) if isinstance(row.reads, str) else [])
    }
    by_model = {
        str(r.dataset_id) for r in record.lineage.itertuples()
        if r.direction == "out" and pd.notna(r.cell_seq) and int(r.cell_seq) in reading_model
    }  # fmt: skip
    latest: dict[str, dict[str, Any]] = {}
    for dataset in record.datasets.to_dict(orient="records"):
        latest[str(dataset["name"])] = dataset  # the last version of each name
    suffix = input_name.split("_", 1)[1] if "_" in input_name else None
    candidates = sorted(
        (
            name.split("_", 1)[-1] != suffix if suffix else True,  # same suffix first
            -(int(d["cell_seq"]) if pd.notna(d["cell_seq"]) else 0),  # then the latest
            name,
        )
        for name, d in latest.items()
        if name != input_name and int(d["n_cols"]) == 1
        and int(d["n_rows"]) == int(inputs["n_rows"]) and str(d["dataset_id"]) not in by_model
    )  # fmt: skip
    classes = describe_outputs(pipeline).get("classes")
    for *_, name in candidates:
        if not values.has(name):
            continue
        if classes:
            from mlops_nb.monitor.performance import class_indices

            found = np.asarray(values.get(name)).ravel()
            if np.mean(class_indices(found, classes) >= 0) < 0.5:
                continue  # not labels of this classifier
        return name
    return None


def _latest_dataset(record: Any, name: str) -> dict[str, Any] | None:
    found = record.datasets[record.datasets["name"] == name]
    return None if found.empty else found.iloc[-1].to_dict()


def _same_kind(predictions: dict[str, Any], predicted: Any) -> bool:
    schema = json.loads(predictions["schema"]) if isinstance(predictions["schema"], str) else {}
    recorded = next(iter(schema.values()), "")
    return np.asarray(predicted).dtype.kind == np.dtype(recorded).kind if recorded else False


def _same_values(values: Values, name: str, predicted: Any) -> bool:
    """The recorded predictions held in another container (a Series, a list): same values."""
    if not values.has(name):
        return False
    recorded = np.asarray(values.get(name)).ravel()
    return bool(np.array_equal(recorded, np.asarray(predicted).ravel()))


def _first_difference(values: Values, name: str, predicted: Any) -> str:
    if not values.has(name):
        return ""
    recorded = np.asarray(values.get(name)).ravel()
    ours = np.asarray(predicted).ravel()
    if len(recorded) != len(ours):
        return f" ({len(ours)} predictions, {len(recorded)} recorded)"
    differ = np.flatnonzero(recorded != ours)
    if not len(differ):
        return " (same values, different types)"
    row = int(differ[0])
    return f" (first difference at row {row}: notebook {recorded[row]!r}, pipeline {ours[row]!r})"


def _training_data(
    record: Any, values: Values, first: dict[str, Any]
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """The recorded dataset the first step was fitted on, and the frame itself when at hand."""
    fit_id = first.get("fit_dataset_id")
    found = record.datasets[record.datasets["dataset_id"] == fit_id] if fit_id else None
    if found is None or found.empty:
        raise RegistryError(
            f"no record of the data {first['name']!r} was fitted on: cannot describe the inputs"
        )
    dataset = found.iloc[-1].to_dict()
    frame = values.get(str(dataset["name"])) if values.has(str(dataset["name"])) else None
    return dataset, frame if isinstance(frame, pd.DataFrame) else None


def _signature(dataset: dict[str, Any], frame: pd.DataFrame | None, first: dict[str, Any]):
    """From the data the first step was fitted on: the frame itself when at hand (exact
    categories), else its recorded schema and stats."""
    if frame is not None:
        wanted = first.get("feature_names") or list(frame.columns)
        return signature_from_frame(frame[[c for c in wanted if c in frame.columns]])
    schema = json.loads(dataset["schema"]) if isinstance(dataset["schema"], str) else {}
    stats = json.loads(dataset["stats"]) if isinstance(dataset["stats"], str) else {}
    wanted = first.get("feature_names") or list(schema)
    return signature_from_record({c: schema[c] for c in wanted if c in schema}, stats)


def _stored_model(log: Any, record: Any, name: str) -> Any:
    """A model the train stage stored as an artifact (the run's own, so its types are trusted)."""
    rows = record.models[record.models["name"] == name]
    shas = [s for s in rows["artifact_sha256"] if isinstance(s, str)]
    if not shas:
        return None
    import skops.io

    try:
        path = log.artifact_file(f"{shas[-1][:2]}/{shas[-1]}")
        return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    except Exception:  # noqa: BLE001 - a pickled fallback or a damaged file: not usable here
        return None
