"""Live performance of a registered model: measured once labels arrive, estimated before.

Realized: the served predictions joined with the labels sent back to ``/feedback``
(``log.labelled_predictions``), scored per time window with the metrics the model had at
training time (accuracy, precision, recall, F1, ROC AUC; or MAE, RMSE, R²), each next to its
baseline: the value on the evaluation data registration kept (the 'evaluation' profile),
else the source run's metric of the same name.

Estimated: confidence-based performance estimation (NannyML's CBPE). Each class's probability
is calibrated with isotonic regression on the model's evaluation predictions and labels; on
new, unlabelled data the calibrated probability of a row is the chance its prediction is right,
so the expected confusion matrix is a sum of calibrated probabilities and every metric follows
from it. It holds under covariate shift (the inputs move, P(label | inputs) does not) and fails
under concept drift, which only labels reveal.

Binary metrics take the second class (``classes[1]``) as the positive one; multiclass
precision, recall, F1 and ROC AUC are macro averages (one class against the rest).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.errors import MlopsError

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "r2")
EVALUATION_SAMPLE = 10_000  # rows of evaluation data registration keeps
COLUMNS = ["window_start", "window_end", "metric", "value", "baseline", "n_rows"]


class PerformanceError(MlopsError):
    """Performance that cannot be measured or estimated (one line saying what is missing)."""


def performance_from_log(
    log: Any,
    name_or_ref: str,
    *,
    since: Any = None,
    window: str = "1D",
    record: bool = True,
    trust: Iterable[str] = (),
) -> pd.DataFrame:
    """Realized and estimated performance of one registered version per time window, from what
    serving recorded; recorded into the ``performance`` table (one check_id) when ``record``.

    What could not be computed, and why, is in ``frame.attrs["notes"]`` (one line each).
    """
    from mlops_nb.registry.load import load_model, resolve

    version_record = resolve(log, name_or_ref)
    name, version = str(version_record["name"]), int(version_record["version"])
    outputs = version_record.get("outputs") or {}
    task, classes = outputs.get("task"), outputs.get("classes")
    evaluation = evaluation_of(log, name, version)
    baseline = baselines(evaluation, version_record)
    moment = since_moment(since)
    notes: list[str] = []
    loaded: list[Any] = []

    def model() -> Any:
        if not loaded:
            loaded.append(load_model(log, f"{name}:{version}", trust=trust))
        return loaded[0]

    parts = []
    labelled = log.labelled_predictions(name, version, moment)
    if labelled.empty:
        notes.append(f"no feedback labels for {name}:{version} yet: no realized performance")
    elif task not in ("classification", "regression"):
        notes.append(f"{name}:{version} is a {task} model: no performance to measure")
    else:
        probabilities = None
        if task == "classification" and outputs.get("probabilities"):
            try:
                rows = request_rows(labelled, row_index=labelled["row_index"])
                probabilities = predict_proba(model(), rows)
            except Exception as error:  # noqa: BLE001 - say why ROC AUC is missing, go on
                notes.append(f"no ROC AUC on the labelled rows: {_one_line(error)}")
        realized = realized_performance(labelled, task=task, classes=classes, window=window,
                                        baseline=baseline, probabilities=probabilities)  # fmt: skip
        parts.append(realized.assign(kind="realized"))
    try:
        estimated = _estimated_from_log(log, name, version, outputs, evaluation, baseline, moment,
                                        window, model)  # fmt: skip
        parts.append(estimated.assign(kind="estimated"))
    except PerformanceError as error:
        notes.append(str(error))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=[*COLUMNS, "kind"])  # fmt: skip
    check_id = uuid.uuid4().hex
    frame = frame.assign(check_id=check_id, model_name=name, model_version=version)
    frame = frame[["check_id", "model_name", "model_version", "kind", *COLUMNS]]
    if record:
        record_performance(log, frame)
    frame.attrs["notes"] = notes
    return frame


def realized_performance(
    labelled: pd.DataFrame,
    *,
    task: str,
    classes: list | None,
    window: str = "1D",
    baseline: Mapping[str, float] | None = None,
    probabilities: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per (window, metric) from rows with ``created_at``, ``prediction`` and ``label``
    (JSON text as the log keeps them, or plain values); ``probabilities`` (one row per
    labelled row, columns in ``classes`` order) add ROC AUC."""
    frame = labelled.reset_index(drop=True)
    if task == "classification":
        if not classes:
            raise PerformanceError("a classifier's performance needs its classes")
        truth = class_indices(frame["label"], classes)
        predicted = class_indices(frame["prediction"], classes)
        scores = None if probabilities is None else np.asarray(probabilities, dtype=float)

        def score(rows: np.ndarray) -> dict[str, float]:
            return classification_metrics(truth[rows], predicted[rows], len(classes),
                                          None if scores is None else scores[rows])  # fmt: skip
    elif task == "regression":
        truth = np.array([_number(v) for v in frame["label"]], dtype=float)
        predicted = np.array([_number(v) for v in frame["prediction"]], dtype=float)

        def score(rows: np.ndarray) -> dict[str, float]:
            return regression_metrics(truth[rows], predicted[rows])
    else:
        raise PerformanceError(f"no performance metrics for a {task} model")
    return _per_window(frame["created_at"], window, score, baseline)


class PerformanceEstimator:
    """Confidence-based performance estimation (CBPE): expected metrics of unlabelled data
    from probabilities calibrated on labelled evaluation data."""

    def __init__(self) -> None:
        self.classes: list[Any] = []
        self._calibrators: list[Any] = []

    def fit(self, probabilities: Any, labels: Any, classes: Sequence[Any]) -> PerformanceEstimator:
        """Calibrate each class's probability (one against the rest) on labelled data."""
        from sklearn.isotonic import IsotonicRegression

        if labels is None:
            raise PerformanceError(
                "estimating performance needs labels of the evaluation data the model was "
                "verified on (register with --labels VAR)"
            )
        scores = _probability_matrix(probabilities, classes)
        truth = class_indices(labels, classes)
        if len(truth) != len(scores):
            raise PerformanceError(
                f"{len(truth)} labels for {len(scores)} rows of probabilities: cannot calibrate"
            )
        if len(set(truth[truth >= 0].tolist())) < 2:
            raise PerformanceError("the evaluation labels hold fewer than two classes: cannot "
                                   "calibrate the probabilities")  # fmt: skip
        self.classes = list(classes)
        calibrated = [1] if len(classes) == 2 else range(len(classes))
        self._calibrators = [
            IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                scores[:, c], (truth == c).astype(float)
            )
            for c in calibrated
        ]
        return self

    def calibrate(self, probabilities: Any) -> np.ndarray:
        """Calibrated probabilities, rows summing to one."""
        if not self._calibrators:
            raise PerformanceError("fit the estimator on labelled evaluation data first")
        scores = _probability_matrix(probabilities, self.classes)
        if len(self.classes) == 2:
            positive = self._calibrators[0].predict(scores[:, 1])
            return np.column_stack([1.0 - positive, positive])
        calibrated = np.column_stack(
            [c.predict(scores[:, i]) for i, c in enumerate(self._calibrators)]
        )
        totals = calibrated.sum(axis=1, keepdims=True)
        # a row every calibrator scores 0 keeps the model's own probabilities
        return np.where(totals > 0, calibrated / np.where(totals > 0, totals, 1.0), scores)

    def estimate(self, probabilities: Any, predicted: Any = None) -> dict[str, float]:
        """Expected accuracy, precision, recall, F1 and ROC AUC of rows without labels;
        ``predicted`` (class indices) defaults to the most probable class."""
        scores = _probability_matrix(probabilities, self.classes)
        if not len(scores):
            return {}
        calibrated = self.calibrate(scores)
        chosen = scores.argmax(axis=1) if predicted is None else np.asarray(predicted, dtype=int)
        rows = np.arange(len(scores))
        estimates = {"accuracy": float(calibrated[rows, chosen].mean())}
        positives = [1] if len(self.classes) == 2 else range(len(self.classes))
        per_class = [_expected_counts(calibrated[:, c], chosen == c) for c in positives]
        for metric in ("precision", "recall", "f1"):
            estimates[metric] = float(np.mean([_from_counts(metric, *n) for n in per_class]))
        aucs = [expected_roc_auc(calibrated[:, c], scores[:, c]) for c in positives]
        aucs = [a for a in aucs if not math.isnan(a)]
        if aucs:
            estimates["roc_auc"] = float(np.mean(aucs))
        return estimates


def estimated_performance(
    times: pd.Series,
    probabilities: Any,
    estimator: PerformanceEstimator,
    *,
    window: str = "1D",
    baseline: Mapping[str, float] | None = None,
    predicted: Any = None,
) -> pd.DataFrame:
    """One row per (window, metric) of estimated performance for unlabelled rows served at
    ``times`` (their ``probabilities`` and, optionally, ``predicted`` class indices)."""
    scores = _probability_matrix(probabilities, estimator.classes)
    chosen = None if predicted is None else np.asarray(predicted, dtype=int)

    def score(rows: np.ndarray) -> dict[str, float]:
        return estimator.estimate(scores[rows], None if chosen is None else chosen[rows])

    return _per_window(pd.Series(times).reset_index(drop=True), window, score, baseline)


def performance_text(frame: pd.DataFrame) -> str:
    """A readable table: per window, each metric's value against its training-time baseline."""
    lines = []
    if len(frame) and "model_name" in frame:
        first = frame.iloc[0]
        lines.append(f"performance of {first['model_name']}:{int(first['model_version'])}")
    if len(frame):
        lines.append(f"{'window':33} {'kind':9} {'metric':9} {'value':>7} {'baseline':>8} "
                     f"{'change':>7} {'rows':>7}")  # fmt: skip
        for row in frame.sort_values(["window_start", "kind", "metric"]).itertuples():
            start, end = pd.Timestamp(row.window_start), pd.Timestamp(row.window_end)
            span = f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}"
            kind = getattr(row, "kind", "")
            has_baseline = row.baseline is not None and not pd.isna(row.baseline)
            base = f"{row.baseline:8.4f}" if has_baseline else f"{'-':>8}"
            change = f"{row.value - row.baseline:+7.4f}" if has_baseline else f"{'-':>7}"
            lines.append(f"{span:33} {kind:9} {row.metric:9} {row.value:7.4f} {base} {change} "
                         f"{int(row.n_rows):7,}")  # fmt: skip
    else:
        lines.append("no performance to show")
    lines += [f"note: {note}" for note in frame.attrs.get("notes", [])]
    return "\n".join(lines)


# ---------------------------------------------------------------------- at registration
def evaluation_profile(
    pipeline: Any,
    frame: Any,
    outputs: Mapping[str, Any],
    labels: Any = None,
    *,
    sample_limit: int = EVALUATION_SAMPLE,
) -> dict[str, Any]:
    """What monitoring needs of the evaluation data: a deterministic sample of at most
    ``sample_limit`` rows of the predictions, probabilities and labels, and the metrics on all
    of it (the training-time baseline)."""
    task, classes = outputs.get("task"), outputs.get("classes")
    predictions = np.asarray(pipeline.predict(frame)).ravel()
    probabilities = None
    if task == "classification" and hasattr(pipeline, "predict_proba"):
        probabilities = np.asarray(pipeline.predict_proba(frame), dtype=float)
    sample = sample_positions(len(predictions), sample_limit)
    profile: dict[str, Any] = {
        "task": task, "classes": classes, "n_rows": int(len(predictions)),
        "sample_rows": int(len(sample)), "predictions": _plain(predictions[sample]),
    }  # fmt: skip
    if probabilities is not None:
        profile["probabilities"] = probabilities[sample].tolist()
    metrics: dict[str, float] = {}
    if labels is not None:
        truth = np.asarray(labels.iloc[:, 0] if isinstance(labels, pd.DataFrame) else labels)
        truth = truth.ravel()
        if len(truth) != len(predictions):
            raise PerformanceError(f"{len(truth)} labels for {len(predictions)} evaluation rows")
        profile["labels"] = _plain(truth[sample])
        if task == "classification" and classes:
            metrics = classification_metrics(class_indices(truth, classes),
                                             class_indices(predictions, classes), len(classes),
                                             probabilities)  # fmt: skip
        elif task == "regression":
            metrics = regression_metrics(truth.astype(float), predictions.astype(float))
    profile["metrics"] = metrics
    return profile


def sample_positions(n_rows: int, limit: int) -> np.ndarray:
    """Row positions of a deterministic sample (all rows when there are few), in order."""
    if n_rows <= limit:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(0).choice(n_rows, size=limit, replace=False))


# ---------------------------------------------------------------------- metrics
def classification_metrics(
    truth: np.ndarray, predicted: np.ndarray, n_classes: int, probabilities: Any = None
) -> dict[str, float]:
    """Metrics on class indices (-1: a label that is none of the model's classes, always
    wrong); binary scores are for class 1, multiclass ones macro averages."""
    from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

    if not len(truth):
        return {}
    positives = [1] if n_classes == 2 else list(range(n_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, labels=positives, average="macro", zero_division=0
    )
    metrics = {"accuracy": float(np.mean(truth == predicted)), "precision": float(precision),
               "recall": float(recall), "f1": float(f1)}  # fmt: skip
    if probabilities is not None:
        scores = np.asarray(probabilities, dtype=float)
        aucs = [
            float(roc_auc_score(truth == c, scores[:, c]))
            for c in positives
            if 0 < np.count_nonzero(truth == c) < len(truth)
        ]
        if aucs:
            metrics["roc_auc"] = float(np.mean(aucs))
    return metrics


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² (R² only when the labels vary); rows without a number are left out."""
    known = np.isfinite(truth) & np.isfinite(predicted)
    truth, predicted = truth[known], predicted[known]
    if not len(truth):
        return {}
    errors = predicted - truth
    metrics = {"mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt((errors**2).mean()))}
    spread = float(((truth - truth.mean()) ** 2).sum())
    if len(truth) > 1 and spread > 0:
        metrics["r2"] = 1.0 - float((errors**2).sum()) / spread
    return metrics


def expected_roc_auc(calibrated: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC expected from calibrated probabilities: at each threshold on the model's scores,
    the expected true positives are the calibrated probabilities above it (CBPE). With 0/1
    labels in place of ``calibrated`` it is the ordinary ROC AUC."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    ordered, weights = np.asarray(scores, dtype=float)[order], np.asarray(calibrated)[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    true_positives = np.cumsum(weights)[last_of_each]
    false_positives = (last_of_each + 1) - true_positives
    if true_positives[-1] <= 0 or false_positives[-1] <= 0:
        return math.nan
    tpr = np.r_[0.0, true_positives / true_positives[-1]]
    fpr = np.r_[0.0, false_positives / false_positives[-1]]
    return float(np.trapezoid(tpr, fpr))


def class_indices(values: Iterable[Any], classes: Sequence[Any]) -> np.ndarray:
    """Each value's position in ``classes`` (-1 when it is none of them), whatever form it came
    in: JSON text from the log ("1", "\\"yes\\"", "true"), numpy scalars, Python values."""
    positions: dict[Any, int] = {}
    for index, value in enumerate(classes):
        positions.setdefault(_class_key(value), index)
    return np.array([positions.get(_class_key(v), -1) for v in values], dtype=int)


# ---------------------------------------------------------------------- reading the log
def evaluation_of(log: Any, name: str, version: int) -> dict[str, Any] | None:
    """The 'evaluation' profile registration kept for a version (None when it kept none)."""
    found = log.profiles(model_name=name, model_version=version, kind="evaluation")
    if found.empty:
        return None
    profile = found.iloc[0]["profile"]
    return json.loads(profile) if isinstance(profile, str) else dict(profile)


def baselines(
    evaluation: Mapping[str, Any] | None, version_record: Mapping[str, Any]
) -> dict[str, float]:
    """Training-time values per metric: the evaluation profile's, else the run's same names."""
    metrics = dict(version_record.get("metrics") or {})
    known = (evaluation or {}).get("metrics") or {}
    return {**{k: float(v) for k, v in metrics.items()}, **{k: float(v) for k, v in known.items()}}


def since_moment(since: Any) -> pd.Timestamp | None:
    """A naive UTC timestamp from a duration ("1d", "12h"), a datetime, ISO text or epoch."""
    if since is None:
        return None
    if isinstance(since, (int, float)):
        return pd.Timestamp(since, unit="s")
    if isinstance(since, str):
        try:
            return pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timedelta(since)
        except ValueError:
            pass
    moment = pd.Timestamp(since)
    return moment.tz_convert("UTC").tz_localize(None) if moment.tzinfo else moment


def request_rows(requests: pd.DataFrame, row_index: Iterable[int] | None = None) -> pd.DataFrame:
    """The input rows of recorded requests (``inputs`` as ``{"columns", "data"}`` JSON text):
    every row, or only row ``row_index[i]`` of request ``i``; the index is the position of
    each row's request in ``requests``."""
    parsed: dict[str, dict[str, Any]] = {}
    records: list[dict[str, Any]] = []
    positions: list[int] = []
    indexes = None if row_index is None else list(row_index)
    for position, (request_id, inputs) in enumerate(
        zip(requests["request_id"], requests["inputs"], strict=True)
    ):
        if request_id not in parsed:
            parsed[request_id] = json.loads(inputs) if isinstance(inputs, str) else inputs or {}
        split = parsed[request_id]
        columns, data = split.get("columns", []), split.get("data", [])
        wanted = data if indexes is None else [data[int(indexes[position])]]
        records += [dict(zip(columns, row, strict=True)) for row in wanted]
        positions += [position] * len(wanted)
    return pd.DataFrame.from_records(records, index=pd.Index(positions))


def predict_proba(model: Any, rows: pd.DataFrame) -> np.ndarray:
    """The loaded model's probabilities for request rows, checked against its signature as
    serving checks them."""
    checked = model.signature.check(rows) if model.signature.columns else rows
    return np.asarray(model.pipeline.predict_proba(checked), dtype=float)


# ---------------------------------------------------------------------- helpers
def _estimated_from_log(
    log: Any,
    name: str,
    version: int,
    outputs: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None,
    baseline: Mapping[str, float],
    moment: pd.Timestamp | None,
    window: str,
    model: Any,
) -> pd.DataFrame:
    ref = f"{name}:{version}"
    if outputs.get("task") != "classification" or not outputs.get("probabilities"):
        raise PerformanceError(f"no estimated performance for {ref}: estimation needs a "
                               "classifier with predict_proba")  # fmt: skip
    if evaluation is None or "probabilities" not in evaluation:
        raise PerformanceError(f"no estimated performance for {ref}: its registration kept no "
                               "evaluation predictions (register it again)")  # fmt: skip
    if "labels" not in evaluation:
        raise PerformanceError(
            f"no estimated performance for {ref}: estimation needs labels of the evaluation "
            "data, and none were found at registration (register with --labels VAR)"
        )
    classes = outputs["classes"]
    estimator = PerformanceEstimator().fit(evaluation["probabilities"], evaluation["labels"],
                                           classes)  # fmt: skip
    requests = log.served_requests(name, version, moment)
    requests = requests[requests["inputs"].notna()]
    if requests.empty:
        raise PerformanceError(f"no served requests of {ref} to estimate performance on")
    rows = request_rows(requests)
    times = pd.Series(requests["created_at"].to_numpy()[rows.index.to_numpy()])
    try:
        probabilities = predict_proba(model(), rows)
    except MlopsError:
        raise
    except Exception as error:  # noqa: BLE001 - a model that cannot score what it served
        raise PerformanceError(f"no estimated performance for {ref}: {_one_line(error)}") from None
    served = [p for o in requests["outputs"] for p in (json.loads(o) if isinstance(o, str) else [])]
    predicted = class_indices(served, classes) if len(served) == len(rows) else None
    if predicted is not None and (predicted < 0).any():
        predicted = None
    return estimated_performance(times, probabilities, estimator, window=window,
                                 baseline=baseline, predicted=predicted)  # fmt: skip


def _per_window(
    times: pd.Series, window: str, score: Any, baseline: Mapping[str, float] | None
) -> pd.DataFrame:
    step = _window_length(window)
    when = pd.to_datetime(times)
    if when.dt.tz is not None:
        when = when.dt.tz_convert("UTC").dt.tz_localize(None)
    starts = when.dt.floor(step)
    rows = []
    for start, positions in sorted(starts.groupby(starts).indices.items()):
        for metric, value in score(np.asarray(positions)).items():
            if value is None or math.isnan(value):
                continue
            known = (baseline or {}).get(metric)
            rows.append({"window_start": pd.Timestamp(start), "window_end": start + step,
                         "metric": metric, "value": float(value),
                         "baseline": None if known is None else float(known),
                         "n_rows": int(len(positions))})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def _window_length(window: str) -> pd.Timedelta:
    try:
        step = pd.Timedelta(window)
    except ValueError:
        step = None
    if step is None or step <= pd.Timedelta(0):
        raise PerformanceError(f"bad window {window!r}: give a duration such as 1D, 12h or 30min")
    return step


def record_performance(log: Any, frame: pd.DataFrame) -> None:
    """One ``performance`` row per (window, metric) of ``frame``."""
    now = time.time()
    for row in frame.to_dict(orient="records"):
        log.record("performance", {
            "check_id": row["check_id"], "model_name": row["model_name"],
            "model_version": int(row["model_version"]), "kind": row["kind"],
            "metric": row["metric"], "value": float(row["value"]),
            "baseline": None if pd.isna(row["baseline"]) else float(row["baseline"]),
            "window_start": _epoch(row["window_start"]), "window_end": _epoch(row["window_end"]),
            "n_rows": int(row["n_rows"]), "created_at": now,
        })  # fmt: skip


def _epoch(moment: Any) -> float:
    return (pd.Timestamp(moment) - pd.Timestamp(0)).total_seconds()


def _expected_counts(positive: np.ndarray, chosen: np.ndarray) -> tuple[float, float, float]:
    """Expected true positives, false positives and false negatives of one class."""
    return (float(positive[chosen].sum()), float((1.0 - positive[chosen]).sum()),
            float(positive[~chosen].sum()))  # fmt: skip


def _from_counts(metric: str, tp: float, fp: float, fn: float) -> float:
    denominator = {"precision": tp + fp, "recall": tp + fn, "f1": tp + 0.5 * (fp + fn)}[metric]
    return tp / denominator if denominator > 0 else 0.0


def _probability_matrix(probabilities: Any, classes: Sequence[Any]) -> np.ndarray:
    scores = np.asarray(probabilities, dtype=float)
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise PerformanceError(
            f"probabilities of shape {scores.shape} for {len(classes)} classes: one column per "
            "class expected"
        )
    return scores


def _class_key(value: Any) -> Any:
    """One spelling per class value: 1, 1.0, "1", true and "true" all meet (bools as 1/0)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "false"):
                return 1 if lowered == "true" else 0
            try:
                value = float(value)
            except ValueError:
                return value.strip()
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (bool, int, float)):
        number = float(value)
        return int(number) if number.is_integer() else number
    return str(value)


def _number(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _plain(values: np.ndarray) -> list[Any]:
    """JSON-able values: numpy scalars as Python ones, NaN as None, anything else as text."""
    plain = []
    for value in np.asarray(values, dtype=object).tolist():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif not isinstance(value, (str, int, float, bool)) and value is not None:
            value = str(value)
        plain.append(value)
    return plain


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
