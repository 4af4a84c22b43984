"""Registering a model: save the fitted inference pipeline, describe it, number the version.

``register_pipeline`` records an already assembled, fitted pipeline. ``assemble`` (in
``assemble.py``) builds that pipeline from the objects a notebook fitted separately and proves
it reproduces the notebook's predictions before anything is registered.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_nb.errors import MlopsError
from mlops_nb.registry.signature import Signature, signature_from_frame

NAME_RULE = r"[A-Za-z0-9_.-]+"


class RegistryError(MlopsError):
    """A registration or alias move that cannot be done (one line saying why)."""


@dataclass
class EvaluationData:
    """The data a model was evaluated on, kept (sampled) as the baseline monitoring compares
    live traffic with: inputs, and the true labels when known."""

    frame: Any
    labels: Any = None
    name: str | None = None  # the variable names, for the record
    labels_name: str | None = None
    dataset_id: str | None = None


def register_pipeline(
    log: Any,
    name: str,
    pipeline: Any,
    *,
    signature: Signature | None = None,
    training_frame: pd.DataFrame | None = None,
    training_dataset: Mapping[str, Any] | None = None,
    evaluation: EvaluationData | None = None,
    run_id: str | None = None,
    model_var: str | None = None,
    steps: list[str] | None = None,
    parts: list[dict[str, Any]] | None = None,
    verification: Mapping[str, Any] | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    alias: str | None = None,
) -> dict[str, Any]:
    """Save ``pipeline`` (skops), record a new version of ``name`` and return its record.

    The signature comes from ``signature`` or the data it was trained on; metrics and package
    versions from the source run when there is one. For monitoring, the profile of the training
    data (``training_frame``, else the recorded ``training_dataset``) and a sample of the
    ``evaluation`` data's predictions are kept in the ``profiles`` table; failing to keep them
    warns and never fails the registration.

    Personal-data columns of the training data (``personal_columns``) keep no values: the
    signature lists them under ``personal_data`` (the served model hashes them in its request
    log) without their categories, and the inputs profile keeps only their counts.
    """
    import re

    if not re.fullmatch(NAME_RULE, name or ""):
        raise RegistryError(f"bad model name {name!r}: letters, digits, _ . - only")
    if signature is None:
        if training_frame is None:
            raise RegistryError("give the training data (or a signature) to describe the inputs")
        signature = signature_from_frame(training_frame)
    personal = personal_columns(log, training_frame, training_dataset)
    signature = _without_values(signature, personal)
    expected = training_expectations(signature, training_frame, training_dataset, personal)
    sha, fmt = _save(pipeline, log)
    outputs = describe_outputs(pipeline)
    metrics, packages = {}, {}
    if run_id:
        record = log.run(run_id)
        run_id = record.run_id
        metrics = {k: float(v) for k, v in record.metrics.items()}
        environment = log.environment(run_id)
        packages = {
            row.name: row.version
            for row in environment.itertuples()
            if row.kind in ("package", "python")
        }
    number = log.add_model_version({
        "name": name, "run_id": run_id, "model_var": model_var, "steps": steps or [],
        "parts": parts or [], "artifact_sha256": sha, "format": fmt,
        "signature": {**signature.to_dict(), **({"personal_data": personal} if personal else {}),
                      **({"expectations": expected} if expected else {})},
        "outputs": outputs,
        "metrics": metrics, "packages": packages, "verification": dict(verification or {}),
        "description": description, "tags": {str(k): str(v) for k, v in (tags or {}).items()},
    })  # fmt: skip
    keep_for_monitoring(log, name, number, run_id, pipeline, outputs, signature, training_frame,
                        training_dataset, evaluation, private=list(personal))  # fmt: skip
    from mlops_nb.registry.explain import keep_importances

    keep_importances(log, name, number, pipeline, outputs, signature, evaluation)
    if alias:
        log.move_alias(name, alias, number, reason="registered")
    found = log.model_version(name, number)
    assert found is not None
    return found


def describe_outputs(pipeline: Any) -> dict[str, Any]:
    """What the model answers: its task, classes and whether it gives probabilities."""
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    classes = getattr(final, "classes_", None)
    outputs: dict[str, Any] = {"class_name": f"{type(final).__module__}.{type(final).__name__}"}
    if classes is not None:
        outputs["task"] = "classification"
        outputs["classes"] = [c.item() if hasattr(c, "item") else c for c in classes]
        outputs["probabilities"] = hasattr(pipeline, "predict_proba")
    elif hasattr(final, "cluster_centers_") or getattr(final, "_estimator_type", "") == "clusterer":
        outputs["task"] = "clustering"
    else:
        outputs["task"] = "regression"
    return outputs


def keep_for_monitoring(
    log: Any,
    name: str,
    version: int,
    run_id: str | None,
    pipeline: Any,
    outputs: Mapping[str, Any],
    signature: Signature,
    training_frame: pd.DataFrame | None,
    training_dataset: Mapping[str, Any] | None,
    evaluation: EvaluationData | None,
    private: list[str] | None = None,
) -> None:
    """Record the 'inputs' and 'evaluation' profiles of a new version (what drift and
    performance monitoring compare with); whatever cannot be kept is one warning line.
    ``private`` columns (personal data) keep no values in the inputs profile."""
    builders = {
        "inputs": lambda: _inputs_profile(
            log, signature, training_frame, training_dataset, private or []
        ),  # fmt: skip
        "evaluation": lambda: _evaluation_profile(pipeline, outputs, evaluation),
    }
    for kind, build in builders.items():
        try:
            found = build()
            if found is None:
                continue
            dataset_id, dataset_name, profile = found
            log.record("profiles", {
                "profile_id": uuid.uuid4().hex, "dataset_id": dataset_id, "run_id": run_id,
                "name": dataset_name, "model_name": name, "model_version": int(version),
                "kind": kind, "n_rows": int(profile.get("n_rows", 0)), "profile": profile,
                "created_at": time.time(),
            })  # fmt: skip
        except Exception as error:  # noqa: BLE001 - monitoring extras never fail a registration
            text = str(error).strip().splitlines()
            why = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
            warn(f"{name}:{version}: no {kind} profile kept for monitoring ({why})")


def personal_columns(
    log: Any, frame: pd.DataFrame | None, dataset: Mapping[str, Any] | None
) -> dict[str, str]:
    """Column -> kind of the personal data in the training data: the findings recorded for
    its dataset version (they carry the run's ``%mlops pii`` decisions), else a scan of the
    frame."""
    from mlops_nb.capture import pii

    dataset_id = None if dataset is None else dataset.get("dataset_id")
    if dataset_id:
        found = log.pii_findings(dataset_id=str(dataset_id))
        if len(found):
            latest = found.drop_duplicates("column_name", keep="last")
            return {row.column_name: row.kind for row in latest.itertuples()
                    if row.status != "allowed"}  # fmt: skip
    if isinstance(frame, pd.DataFrame):
        return pii.private_columns(pii.scan_frame(frame))
    return {}


def _without_values(signature: Signature, personal: Mapping[str, str]) -> Signature:
    """The signature with no training values of personal-data columns (no category list:
    requests are then not checked for unseen values in those columns)."""
    from dataclasses import replace

    if not personal:
        return signature
    return Signature([replace(c, categories=None) if c.name in personal else c
                      for c in signature.columns])  # fmt: skip


def training_expectations(
    signature: Signature,
    frame: pd.DataFrame | None,
    dataset: Mapping[str, Any] | None,
    personal: Mapping[str, str],
) -> dict[str, Any] | None:
    """The expectations of the training data's input columns (capture/expectations.py),
    kept in the version's signature so the served model (an exported one too) and
    ``mlops-nb validate --against NAME@ALIAS`` check new data against them: from the frame
    when at hand, else the dataset's recorded stats. Failing to infer them warns."""
    from mlops_nb.capture.expectations import expectations_from_stats, infer_expectations

    dataset_id = None if dataset is None else dataset.get("dataset_id")
    wanted = signature.names
    try:
        if isinstance(frame, pd.DataFrame):
            columns = [c for c in wanted if c in frame.columns] or list(frame.columns)
            inferred = infer_expectations(frame[columns], private=personal, dataset=dataset_id)
        elif dataset is not None:
            schema, stats = (_json(dataset.get(k)) for k in ("schema", "stats"))
            schema = {c: schema[c] for c in wanted if c in schema}
            inferred = expectations_from_stats(schema, stats, int(dataset.get("n_rows") or 0),
                                               private=personal, dataset=dataset_id)  # fmt: skip
        else:
            return None
    except Exception as error:  # noqa: BLE001 - data checks are extras: never fail a registration
        warn(f"no expectations kept for data checks ({type(error).__name__}: {error})")
        return None
    return inferred.to_dict()


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def warn(message: str) -> None:
    """One line on stderr: registration goes on."""
    print(f"mlops-nb register: warning: {message}", file=sys.stderr)


def _inputs_profile(
    log: Any,
    signature: Signature,
    frame: pd.DataFrame | None,
    dataset: Mapping[str, Any] | None,
    private: list[str],
) -> tuple[str | None, str | None, dict[str, Any]] | None:
    """The training data's profile, restricted to the columns the model takes: from the frame
    when at hand, else a profile already kept for that dataset version, else its recorded
    stats (approximate: no quantiles)."""
    from mlops_nb.monitor.profile import profile_frame

    dataset_id = None if dataset is None else dataset.get("dataset_id")
    dataset_name = None if dataset is None else dataset.get("name")
    wanted = signature.names
    if isinstance(frame, pd.DataFrame):
        columns = [c for c in wanted if c in frame.columns] or list(frame.columns)
        hidden = [c for c in columns if c in private]
        return dataset_id, dataset_name, profile_frame(frame[columns], private=hidden)
    if dataset_id is None:
        return None
    kept = log.profiles(dataset_id=dataset_id, kind="inputs")
    for text in kept["profile"] if len(kept) else []:
        profile = json.loads(text) if isinstance(text, str) else dict(text)
        if set(wanted) <= set(profile.get("columns", {})):
            profile["columns"] = {c: profile["columns"][c] for c in wanted}
            return dataset_id, dataset_name, profile
    return dataset_id, dataset_name, _profile_from_stats(dataset, wanted)


def _profile_from_stats(dataset: Mapping[str, Any], wanted: list[str]) -> dict[str, Any]:
    """What the dataset record's schema and stats give: category counts, min/max/mean/std."""
    from mlops_nb.monitor.profile import PROFILE_FORMAT

    def decoded(key: str) -> dict[str, Any]:
        value = dataset.get(key)
        return json.loads(value) if isinstance(value, str) else dict(value or {})

    schema, stats = decoded("schema"), decoded("stats")
    n_rows = int(dataset.get("n_rows") or 0)
    columns: dict[str, Any] = {}
    for column in [c for c in wanted if c in schema]:
        dtype, found = str(schema[column]), stats.get(column, {})
        counts = found.get("counts")
        entry: dict[str, Any] = {"dtype": dtype, "n": n_rows - int(found.get("nulls") or 0)}
        numeric = dtype.startswith(("float", "Float")) or (
            dtype.startswith(("int", "uint", "Int", "UInt")) and not (counts and len(counts) <= 10)
        )  # integers with few values are categorical (Evidently's rule)
        if numeric:
            entry["type"] = "numerical"
            entry.update({k: found[k] for k in ("min", "max", "mean", "std") if k in found})
        elif dtype.startswith("datetime"):
            entry["type"] = "datetime"
        else:
            entry["type"] = "categorical" if counts else "unknown"
        if counts and entry["type"] == "categorical":
            entry["counts"] = [[_stat_value(k, dtype), int(n)] for k, n in counts.items()]
            entry["n_unique"] = len(counts)
        columns[column] = entry
    return {"format": PROFILE_FORMAT, "n_rows": n_rows, "exact": False, "from_stats": True,
            "columns": columns}  # fmt: skip


def _stat_value(key: str, dtype: str) -> Any:
    """A count's key as recorded (text) back in the column's type."""
    if dtype.startswith(("int", "uint", "Int", "UInt")):
        return int(key)
    if dtype in ("bool", "boolean"):
        return key == "True"
    return key


def _evaluation_profile(
    pipeline: Any, outputs: Mapping[str, Any], evaluation: EvaluationData | None
) -> tuple[str | None, str | None, dict[str, Any]] | None:
    if evaluation is None:
        return None
    from mlops_nb.monitor.performance import evaluation_profile

    profile = evaluation_profile(pipeline, evaluation.frame, outputs, evaluation.labels)
    profile["input"] = evaluation.name
    if evaluation.labels is not None:
        profile["labels_from"] = evaluation.labels_name
    return evaluation.dataset_id, evaluation.name, profile


def _save(pipeline: Any, log: Any) -> tuple[str, str]:
    """skops when it can; never pickle silently (the loader refuses pickle without opt-in)."""
    import skops.io

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.skops"
        try:
            skops.io.dump(pipeline, path)
        except Exception as error:  # noqa: BLE001 - skops says what it cannot save
            raise RegistryError(
                f"the model cannot be saved with skops ({type(error).__name__}: {error}); "
                "functions defined in the notebook (e.g. in a FunctionTransformer) cannot be"
            ) from None
        sha, _, _ = log.store_artifact(path)
    return sha, "skops"
