"""Explanations of a registered model: which raw input columns it relies on, and why it
answered what it did for one request.

**Global: permutation importance** (scikit-learn's ``sklearn.inspection``), measured when a
version is registered, on the evaluation data the registration found (at most
``MAX_ROWS`` rows, a deterministic sample), through the whole registered pipeline: each raw
input column (``contract``, not its one-hot columns) is shuffled ``N_REPEATS`` times and the
drop of the score is its importance (mean, and std over the repeats). The score is accuracy
(classifiers) or R² (regressors) against the true labels; without labels, against the model's
own predictions (metric ``agreement`` / ``r2_agreement``: how much the answers depend on the
column). Rows go to the ``importances`` table; ``mlops-nb models explain`` shows them, and
computes them later from a pipeline run's saved values when registration could not.

**Per request: sampled Shapley values** (``Explainer``, served as ``POST /explain``). The
contribution of column j to a row x is its Shapley value for f = the predicted probability
of the class the model predicts for x (the prediction itself for a regressor), with absent
columns filled from reference rows drawn from the training data's profile (the 'inputs'
profile kept at registration), estimated by the permutation method of Štrumbelj & Kononenko
(2014): for each of ``SAMPLES`` orderings of the columns (antithetic pairs: an ordering and its
reverse) and a reference row z, columns are switched one by one from z to x and each change
of f is credited to the column switched. Why this method: the contributions add up exactly to
f(x) minus the average f over the reference (``base``), so they read as "this column moved
the churn probability from the usual 0.27 by +0.21", they account for interactions (an
occlusion that resets one column at a time does not, and its numbers add up to nothing), and
all orderings go to the model as one batch of SAMPLES x (columns + 1) rows: one predict call,
about 45 ms for the example's 200-tree forest on its 10 columns (benchmarks/bench_explain.py).
The server computes them in a worker process, never in the thread that scores /invocations
(``ExplainWorker``). Assumptions: reference columns are drawn
independently (the profile keeps each column's distribution, not their joint one), and the
estimate has sampling noise (fixed seed: the same request gets the same answer). A column
whose values the profile does not keep (personal data, dates) is held at the request's value
and gets no contribution (listed as ``fixed``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.errors import MlopsError
from mlops_nb.registry.signature import Signature

MAX_ROWS = 1000  # evaluation rows permutation importance is measured on
N_REPEATS = 5
SAMPLES = 32  # orderings per explained row (an even number: antithetic pairs)
POOL_SIZE = 256  # reference values kept per column for /explain
MAX_EXPLAIN_ROWS = 20  # rows one /explain request may ask about
METHOD = "sampled Shapley values (permutation method, training-profile reference)"


class ExplainError(MlopsError):
    """No explanation can be given (no evaluation data, no reference data, a bad request);
    ``status`` is the HTTP status ``/explain`` answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------- permutation importance
def permutation_importances(
    pipeline: Any,
    frame: pd.DataFrame,
    labels: Any,
    outputs: Mapping[str, Any],
    *,
    columns: Sequence[str] | None = None,
    n_repeats: int = N_REPEATS,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
) -> pd.DataFrame:
    """Importance of each raw input column (``feature``, ``importance_mean``,
    ``importance_std``, ``metric``, ``n_repeats``, ``n_rows``), most important first."""
    from sklearn.inspection import permutation_importance

    from mlops_nb.monitor.performance import sample_positions

    if not isinstance(frame, pd.DataFrame):
        raise ExplainError("permutation importance needs the evaluation input as a DataFrame")
    wanted = [c for c in (columns or frame.columns) if c in frame.columns]
    if not wanted:
        raise ExplainError("the evaluation input has none of the model's input columns")
    rows = sample_positions(len(frame), max_rows)
    inputs = frame[wanted].iloc[rows]
    classifier = outputs.get("task") == "classification"
    if outputs.get("task") not in ("classification", "regression"):
        raise ExplainError(f"no importance for a {outputs.get('task') or 'model'} without a score")
    if labels is not None:
        truth = np.asarray(labels.iloc[:, 0] if isinstance(labels, pd.DataFrame) else labels)
        truth = truth.ravel()
        if len(truth) != len(frame):
            raise ExplainError(f"{len(truth)} labels for {len(frame)} evaluation rows")
        truth, metric = truth[rows], "accuracy" if classifier else "r2"
    else:  # how much the model's own answers depend on each column
        truth, metric = np.asarray(pipeline.predict(inputs)).ravel(), (
            "agreement" if classifier else "r2_agreement")  # fmt: skip
    found = permutation_importance(
        pipeline, inputs, truth, scoring="accuracy" if classifier else "r2",
        n_repeats=n_repeats, random_state=seed, n_jobs=1,
    )  # fmt: skip
    table = pd.DataFrame({
        "feature": [str(c) for c in wanted], "importance_mean": found.importances_mean,
        "importance_std": found.importances_std, "metric": metric, "n_repeats": n_repeats,
        "n_rows": len(inputs),
    })  # fmt: skip
    return table.sort_values(["importance_mean", "feature"], ascending=[False, True],
                             ignore_index=True)  # fmt: skip


def record_importances(log: Any, name: str, version: int, table: pd.DataFrame) -> None:
    """Journal one ``importances`` row per feature (one computation shares its created_at)."""
    now = time.time()
    for row in table.to_dict(orient="records"):
        log.record("importances", {
            "model_name": name, "model_version": int(version), "feature": row["feature"],
            "metric": row["metric"], "importance_mean": float(row["importance_mean"]),
            "importance_std": float(row["importance_std"]), "n_repeats": int(row["n_repeats"]),
            "n_rows": int(row["n_rows"]), "created_at": now,
        })  # fmt: skip


def keep_importances(
    log: Any,
    name: str,
    version: int,
    pipeline: Any,
    outputs: Mapping[str, Any],
    signature: Signature,
    evaluation: Any,
) -> None:
    """At registration, while the evaluation frame is at hand: measure and record; whatever
    fails is one warning line, never a failed registration."""
    from mlops_nb.registry.register import warn

    if evaluation is None or outputs.get("task") not in ("classification", "regression"):
        return
    try:
        table = permutation_importances(pipeline, evaluation.frame, evaluation.labels, outputs,
                                        columns=signature.names or None)  # fmt: skip
        record_importances(log, name, version, table)
    except Exception as error:  # noqa: BLE001 - explanations never fail a registration
        text = (str(error).strip().splitlines() or [type(error).__name__])[0]
        warn(f"{name}:{version}: no permutation importance recorded ({text})")


def version_importances(
    log: Any, ref: str, *, recompute: bool = False
) -> tuple[dict, pd.DataFrame]:
    """The version ``ref`` points at and its importances: as recorded, else (or with
    ``recompute``) measured now on the evaluation data its source run saved, and recorded."""
    from mlops_nb.registry.load import resolve

    record = resolve(log, ref)
    name, version = str(record["name"]), int(record["version"])
    table = pd.DataFrame() if recompute else log.importances(name, version)
    if not table.empty:
        return record, table
    frame, labels = _saved_evaluation(log, record)
    from mlops_nb.registry.load import load_model

    model = load_model(log, f"{name}:{version}")
    table = permutation_importances(model.pipeline, frame, labels, model.outputs,
                                    columns=model.signature.names or None)  # fmt: skip
    record_importances(log, name, version, table)
    log.flush()
    return record, log.importances(name, version)


def importances_text(record: Mapping[str, Any], table: pd.DataFrame) -> str:
    """A readable table: feature, importance ± std, a bar."""
    name, version = record["name"], record["version"]
    if table.empty:
        return f"{name}:{version}: no importances"
    first = table.iloc[0]
    lines = [
        f"{name}:{version} permutation importance (drop of {first['metric']} when a column "
        f"is shuffled; {int(first['n_repeats'])} repeats on {int(first['n_rows']):,} rows)"
    ]
    width = max(len(str(f)) for f in table["feature"])
    top = max(float(table["importance_mean"].abs().max()), 1e-12)
    for row in table.itertuples():
        bar = "#" * int(round(30 * max(row.importance_mean, 0.0) / top))
        lines.append(f"  {row.feature:<{width}}  {row.importance_mean:+.4f} ± "
                     f"{row.importance_std:.4f}  {bar}")  # fmt: skip
    return "\n".join(lines)


def importance_card(table: pd.DataFrame) -> dict[str, Any]:
    """What the model card and the sidebar show: the rows (plain values, most important
    first), what was measured, and the chart (inline SVG with std whiskers)."""
    from mlops_nb.charts import importance_chart

    if table is None or table.empty:
        return {"rows": [], "metric": None, "n_rows": 0, "n_repeats": 0, "svg": ""}
    rows = [{"feature": str(r.feature), "importance": float(r.importance_mean),
             "std": float(r.importance_std)} for r in table.itertuples()]  # fmt: skip
    first = table.iloc[0]
    metric = str(first["metric"])
    return {
        "rows": rows, "metric": metric, "n_rows": int(first["n_rows"]),
        "n_repeats": int(first["n_repeats"]),
        "svg": importance_chart([(r["feature"], r["importance"], r["std"]) for r in rows],
                                title=f"Permutation importance (drop of {metric})"),
    }  # fmt: skip


def _saved_evaluation(log: Any, record: Mapping[str, Any]) -> tuple[pd.DataFrame, Any]:
    """The evaluation input and labels of a version, from its source run's saved values."""
    from mlops_nb.registry.assemble import Values

    label = f"{record['name']}:{record['version']}"
    run_id = record.get("run_id")
    if not isinstance(run_id, str):
        raise ExplainError(f"{label} has no source run whose evaluation data could be used")
    evaluation = log.profiles(model_name=record["name"], model_version=int(record["version"]),
                              kind="evaluation")  # fmt: skip
    kept = json.loads(evaluation["profile"].iloc[0]) if len(evaluation) else {}
    input_name = kept.get("input") or (record.get("verification") or {}).get("input")
    if not input_name:
        raise ExplainError(f"no evaluation input is known for {label}")
    values = Values(log, log.run(run_id))
    if not values.has(input_name):
        raise ExplainError(
            f"no importances recorded for {label}, and run {run_id[:8]} kept no value of "
            f"{input_name!r} to measure them (register from the notebook, or run it with "
            "mlops-nb run so its values are saved)"
        )
    labels_name = kept.get("labels_from")
    labels = values.get(labels_name) if labels_name and values.has(labels_name) else None
    return values.get(input_name), labels


# ---------------------------------------------------------------------- one request
@dataclass
class Explainer:
    """Sampled Shapley values of one model version's answers (see the module docstring)."""

    pipeline: Any
    signature: Signature
    outputs: dict[str, Any]
    pools: dict[str, np.ndarray | None]  # reference values per input column (None: fixed)
    samples: int = SAMPLES
    seed: int = 0
    classes: list[Any] = field(default_factory=list)

    @classmethod
    def from_profile(
        cls,
        pipeline: Any,
        signature: Signature,
        outputs: Mapping[str, Any],
        profile: Mapping[str, Any] | None,
        *,
        samples: int = SAMPLES,
        seed: int = 0,
    ) -> Explainer:
        """Reference pools drawn once from the 'inputs' profile (or, without one, from the
        signature's categories only)."""
        pools = reference_pools(signature, profile, seed=seed)
        classes = list(outputs.get("classes") or [])
        return cls(pipeline, signature, dict(outputs), pools, samples + samples % 2, seed, classes)

    def explain(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """Per row: the prediction, the explained value f(x) (``output`` says which), the
        reference average ``base`` and each column's contribution (they sum to value - base)."""
        if len(frame) > MAX_EXPLAIN_ROWS:
            raise ExplainError(f"{len(frame)} rows: /explain takes at most {MAX_EXPLAIN_ROWS}")
        checked = self.signature.check(frame) if self.signature.columns else frame
        names = list(self.signature.names or checked.columns)
        predictions = np.asarray(self.pipeline.predict(checked)).ravel()
        free = [j for j, n in enumerate(names) if self.pools.get(n) is not None]
        designs, orders = [], []
        raw = (
            (frame[names] if set(names) <= set(frame.columns) else checked[names])
            .astype(object)
            .to_numpy()
        )
        for x in raw:  # the same draws for every row: a row's answer never depends on others
            design, order = self._design(x, names, free, np.random.default_rng(self.seed))
            designs.append(design)
            orders.append(order)
        stacked = np.concatenate(designs)
        variants = pd.DataFrame({n: stacked[:, j].tolist() for j, n in enumerate(names)})
        variants = self.signature.check(variants) if self.signature.columns else variants
        scores = self._scores(variants, np.repeat(predictions, len(designs[0])))
        per_row = len(designs[0])
        results = []
        for i, order in enumerate(orders):
            values = scores[i * per_row : (i + 1) * per_row].reshape(self.samples, len(free) + 1)
            steps = np.diff(values, axis=1)  # steps[m, k]: switching column order[m, k]
            contributions = np.zeros(len(names))
            np.add.at(contributions, order.ravel(), steps.ravel())
            contributions /= self.samples
            results.append(self._answer(predictions[i], values, contributions, names, free))
        return results

    def _design(
        self, x: np.ndarray, names: list[str], free: list[int], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """SAMPLES paths of len(free)+1 rows from a reference row to x (row k of a path has its
        first k columns in the path's order switched to x), and the column each step switches."""
        n_free = len(free)
        steps = np.empty((self.samples, n_free), dtype=int)  # steps[m, r]: free column at step r
        reference = np.empty((self.samples, n_free), dtype=object)
        for m in range(0, self.samples, 2):
            reference[m] = reference[m + 1] = [
                self.pools[names[j]][rng.integers(len(self.pools[names[j]]))] for j in free
            ]
            steps[m] = rng.permutation(n_free)
            steps[m + 1] = steps[m][::-1]  # antithetic: the same path backwards
        rank = np.empty_like(steps)
        np.put_along_axis(rank, steps, np.broadcast_to(np.arange(n_free), steps.shape), axis=1)
        switched = rank[:, None, :] < np.arange(n_free + 1)[None, :, None]
        rows = np.empty((self.samples, n_free + 1, len(names)), dtype=object)
        rows[:, :, :] = x
        rows[:, :, free] = np.where(switched, x[free][None, None, :], reference[:, None, :])
        return rows.reshape(-1, len(names)), np.asarray(free)[steps]

    def _scores(self, variants: pd.DataFrame, predicted: np.ndarray) -> np.ndarray:
        """f for each variant: the probability of the class predicted for its row, or the
        predicted value of a regressor."""
        if self.outputs.get("task") == "classification":
            if hasattr(self.pipeline, "predict_proba") and self.classes:
                probabilities = np.asarray(self.pipeline.predict_proba(variants), dtype=float)
                from mlops_nb.monitor.performance import class_indices

                columns = class_indices(predicted, self.classes)
                return probabilities[np.arange(len(variants)), columns]
            return (np.asarray(self.pipeline.predict(variants)).ravel() == predicted).astype(float)
        return np.asarray(self.pipeline.predict(variants), dtype=float).ravel()

    def _answer(
        self,
        prediction: Any,
        values: np.ndarray,
        contributions: np.ndarray,
        names: list[str],
        free: list[int],
    ) -> dict[str, Any]:
        plain = prediction.item() if isinstance(prediction, np.generic) else prediction
        classifier = self.outputs.get("task") == "classification"
        return {
            "prediction": plain,
            "output": f"probability of {plain!r}" if classifier else "predicted value",
            "value": float(values[0, -1]), "base": float(values[:, 0].mean()),
            "contributions": {n: float(contributions[j]) for j, n in enumerate(names)},
            "fixed": [n for j, n in enumerate(names) if j not in free],
        }  # fmt: skip


def explainer_for(log: Any, model: Any, *, samples: int = SAMPLES) -> Explainer:
    """The explainer of a loaded version, with the 'inputs' profile registration kept."""
    return Explainer.from_profile(model.pipeline, model.signature, model.outputs,
                                  inputs_profile(log, model), samples=samples)  # fmt: skip


def inputs_profile(log: Any, model: Any) -> dict[str, Any] | None:
    """The 'inputs' profile kept when ``model`` (a LoadedModel) was registered, if any."""
    if log is None:
        return None
    kept = log.profiles(model_name=model.name, model_version=int(model.version), kind="inputs")
    if not len(kept):
        return None
    text = kept["profile"].iloc[0]
    return json.loads(text) if isinstance(text, str) else dict(text)


def reference_pools(
    signature: Signature, profile: Mapping[str, Any] | None, *, seed: int = 0
) -> dict[str, np.ndarray | None]:
    """POOL_SIZE reference values per input column, drawn once from the profile (or, without
    one, from the signature's categories); None for a column held fixed."""
    rng = np.random.default_rng(seed)
    columns = (profile or {}).get("columns", {})
    pools = {}
    for spec in signature.columns:
        pool = _pool(columns.get(spec.name), rng)
        if pool is None and spec.categories:
            pool = rng.choice(np.array(spec.categories, dtype=object), POOL_SIZE)
        if pool is not None and spec.kind == "integer":
            pool = np.round(pool.astype(float)).astype("int64")
        pools[spec.name] = pool
    if all(pool is None for pool in pools.values()):
        raise ExplainError("no reference data for this model's inputs (its 'inputs' profile "
                           "is missing): contributions cannot be measured", 409)  # fmt: skip
    return pools


# ---------------------------------------------------------------------- served: a worker process
@dataclass(frozen=True)
class ExplainJob:
    """What the explaining process needs for one version: where its model file is (loaded and
    sha256-checked once there), its signature and outputs, and the reference pools."""

    path: str
    sha256: str
    format: str
    trust: tuple[str, ...]
    signature: dict[str, Any]
    outputs: dict[str, Any]
    pools: dict[str, Any]
    samples: int = SAMPLES


class ExplainWorker:
    """``/explain`` off the serving process: one worker process (spawned on the first request)
    computes explanations, so their CPU time never holds the GIL that predictions need; the
    server keeps one small ``ExplainJob`` per version."""

    def __init__(self, log: Any = None, model_dir: str | None = None, trust: Sequence[str] = ()):
        self.log = log
        self.model_dir = model_dir
        self.trust = tuple(trust)
        self._jobs: dict[int, ExplainJob] = {}
        self._pool: Any = None

    def job(self, model: Any) -> ExplainJob:
        """The job of a LoadedModel (reads its profile from the log once per version)."""
        found = self._jobs.get(int(model.version))
        if found is None:
            record = model.record or {}
            if self.model_dir is not None:
                path = str(Path(self.model_dir) / str(record.get("file") or "model.skops"))
            else:
                path = str(self.log.artifact_file(f"{model.sha256[:2]}/{model.sha256}"))
            pools = reference_pools(model.signature, inputs_profile(self.log, model))
            found = ExplainJob(
                path, model.sha256, str(record.get("format") or "skops"), self.trust,
                model.signature.to_dict(), dict(model.outputs),
                {k: None if v is None else v.tolist() for k, v in pools.items()},
            )  # fmt: skip
            if len(self._jobs) > 4:
                self._jobs.clear()
            self._jobs[int(model.version)] = found
        return found

    def submit(self, job: ExplainJob, columns: Mapping[str, list[Any]]) -> Any:
        """A concurrent.futures.Future of ``run_job(job, columns)`` in the worker process."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # never fork a threaded server
            self._pool = ProcessPoolExecutor(1, mp_context=context, initializer=_worker_start,
                                             initargs=(os.getpid(),))  # fmt: skip
        return self._pool.submit(run_job, job, dict(columns))

    def reset(self) -> None:
        """Forget a broken worker (it died): the next request starts a new one."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    close = reset


_LOADED: dict[str, Any] = {}  # in the worker process: sha256 -> the loaded pipeline


def _worker_start(parent: int) -> None:
    """In the worker: a lower CPU priority than the server (when both want the CPU, the
    predictions go first), and an exit when the server is gone (no orphan after a SIGKILL)."""
    import threading

    with contextlib.suppress(OSError):
        os.nice(10)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="mlops-nb-parent", daemon=True).start()


def run_job(job: ExplainJob, columns: Mapping[str, list[Any]]) -> dict[str, Any]:
    """In the worker: the explanations of the request's rows, or ``{"error", "status"}``."""
    from mlops_nb.registry.load import load_file
    from mlops_nb.registry.signature import SignatureError

    try:
        n_rows = len(next(iter(columns.values()), []))
        if n_rows > MAX_EXPLAIN_ROWS:
            raise ExplainError(f"{n_rows} rows: /explain takes at most {MAX_EXPLAIN_ROWS}")
        pipeline = _LOADED.get(job.sha256)
        if pipeline is None:
            if len(_LOADED) > 4:
                _LOADED.clear()
            pipeline = _LOADED[job.sha256] = load_file(Path(job.path), job.sha256, job.format,
                                                       job.trust)  # fmt: skip
        pools = {k: None if v is None else np.array(v, dtype=object) for k, v in job.pools.items()}
        signature = Signature.from_dict(job.signature)
        explainer = Explainer(pipeline, signature, dict(job.outputs), pools, job.samples,
                              classes=list(job.outputs.get("classes") or []))  # fmt: skip
        return {"explanations": explainer.explain(pd.DataFrame(dict(columns)))}
    except ExplainError as error:
        return {"error": str(error), "status": error.status}
    except SignatureError as error:
        return {"error": str(error), "status": 400}
    except Exception as error:  # noqa: BLE001 - the model refused this input
        text = (str(error).strip().splitlines() or [""])[0]
        return {"error": f"the model could not explain this input ({type(error).__name__}: "
                f"{text})", "status": 400}  # fmt: skip


def _pool(entry: Mapping[str, Any] | None, rng: np.random.Generator) -> np.ndarray | None:
    """POOL_SIZE values drawn from one column of a profile (see monitor/profile.py), None when
    it keeps no values (private columns, dates, text)."""
    if not entry or entry.get("private") or entry.get("type") not in ("numerical", "categorical"):
        return None
    if entry.get("values"):
        return rng.choice(np.array(entry["values"], dtype=object), POOL_SIZE)
    if entry.get("counts"):
        values = np.array([v for v, _ in entry["counts"]], dtype=object)
        weights = np.array([n for _, n in entry["counts"]], dtype=float)
        return rng.choice(values, POOL_SIZE, p=weights / weights.sum())
    if entry.get("knots"):  # the distribution function at knots: invert it
        below, at = np.array(entry["below"], dtype=float), np.array(entry["at"], dtype=float)
        total = below[-1] + at[-1]
        return np.interp(rng.random(POOL_SIZE) * total, below, entry["knots"]).astype(object)
    if "mean" in entry and "std" in entry:  # recorded stats only: a normal within min..max
        drawn = rng.normal(entry["mean"], entry["std"] or 0.0, POOL_SIZE)
        low, high = entry.get("min", -np.inf), entry.get("max", np.inf)
        return np.clip(drawn, low, high).astype(object)
    return None


# ---------------------------------------------------------------------- the model card
def model_card_data(log: Any, record: Mapping[str, Any]) -> dict[str, Any]:
    """What the model card (and the sidebar) show of a version's fairness and explanations,
    as plain data: ``fairness`` (per sensitive column: summary, per-group table; from the
    evaluation its source run recorded with ``--sensitive``) and ``importance`` (rows, what
    was measured, the SVG chart)."""
    from mlops_nb.capture.fairness import fairness_card

    run_id = record.get("run_id")
    fairness_rows = pd.DataFrame()
    if isinstance(run_id, str):
        fairness_rows = log.fairness(run_id=run_id)
        model_var = record.get("model_var")
        mine = fairness_rows[fairness_rows["model_name"] == model_var] if model_var else None
        if mine is not None and len(mine):
            fairness_rows = mine  # the registered model's own evaluation, not another model's
    importances = log.importances(str(record["name"]), int(record["version"]))
    return {"fairness": fairness_card(fairness_rows), "importance": importance_card(importances)}
