"""Registering a model: save the fitted inference pipeline, describe it, number the version.

``register_pipeline`` records an already assembled, fitted pipeline. ``assemble`` (in
``assemble.py``) builds that pipeline from the objects a notebook fitted separately and proves
it reproduces the notebook's predictions before anything is registered.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_nb.errors import MlopsError
from mlops_nb.log.api import store_artifact
from mlops_nb.registry.signature import Signature, signature_from_frame

NAME_RULE = r"[A-Za-z0-9_.-]+"


class RegistryError(MlopsError):
    """A registration or alias move that cannot be done (one line saying why)."""


def register_pipeline(
    log: Any,
    name: str,
    pipeline: Any,
    *,
    signature: Signature | None = None,
    training_frame: pd.DataFrame | None = None,
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
    versions from the source run when there is one.
    """
    import re

    if not re.fullmatch(NAME_RULE, name or ""):
        raise RegistryError(f"bad model name {name!r}: letters, digits, _ . - only")
    if signature is None:
        if training_frame is None:
            raise RegistryError("give the training data (or a signature) to describe the inputs")
        signature = signature_from_frame(training_frame)
    sha, fmt = _save(pipeline, log.artifacts_dir)
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
        "signature": signature.to_dict(), "outputs": describe_outputs(pipeline),
        "metrics": metrics, "packages": packages, "verification": dict(verification or {}),
        "description": description, "tags": {str(k): str(v) for k, v in (tags or {}).items()},
    })  # fmt: skip
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


def _save(pipeline: Any, artifacts_dir: Path) -> tuple[str, str]:
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
        sha, _, _ = store_artifact(path, artifacts_dir)
    return sha, "skops"
