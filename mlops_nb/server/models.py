"""The model registry as the sidebar's Models section shows it: plain data read from the log.

Called by the handlers in a thread (``off_loop``); the log's named questions
(``model_versions``, ``model_version``, ``aliases``, ``alias_history``, ``move_alias``, and for
monitoring ``latest_drift_checks``, ``latest_performance``, ``recent_monitor_events``) do the
reading and the atomic alias move, so nothing here knows SQL.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlops_nb.errors import MlopsError
from mlops_nb.log.filters import Condition
from mlops_nb.registry.register import NAME_RULE

MAX_REASON = 500
MONITOR_EVENTS = 20  # the model tab's timeline shows what monitor did lately, not all of it


class ModelNotFound(MlopsError):
    """No registered model of that name (the API answers 404)."""


class BadModelRequest(MlopsError):
    """A name, alias, version or reason the API refuses (400, one line)."""


def checked_name(value: Any, what: str = "model name") -> str:
    """A model or alias name as the registry allows them: letters, digits, _ . -."""
    if not isinstance(value, str) or not re.fullmatch(NAME_RULE, value):
        raise BadModelRequest(f"bad {what} {str(value)[:80]!r}: letters, digits, _ . - only")
    return value


def _metrics(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value) if isinstance(value, dict) else {}


def list_models(log: Any) -> list[dict[str, Any]]:
    """Each registered model: how many versions, the latest, where its aliases point, and
    when its first and last versions were registered. Sorted by name."""
    versions = log.model_versions()
    if versions.empty:
        return []
    pointers: dict[str, dict[str, int]] = {}
    for row in log.aliases().itertuples():
        pointers.setdefault(row.name, {})[row.alias] = int(row.version)
    out = []
    for name, group in versions.groupby("name", sort=True):
        created = group["created_at"]
        out.append({
            "name": name, "versions": len(group), "latest_version": int(group["version"].max()),
            "aliases": dict(sorted(pointers.get(name, {}).items())),
            "created_at": created.min(), "last_registered_at": created.max(),
        })  # fmt: skip
    return out


def _signature_summary(signature: Any) -> dict[str, Any]:
    columns = (signature or {}).get("columns", []) if isinstance(signature, dict) else []
    return {
        "n_columns": len(columns),
        "columns": [{"name": c.get("name"), "kind": c.get("kind")} for c in columns],
    }


def read_model(log: Any, name: str) -> dict[str, Any]:
    """A model's versions, newest first (aliases, metrics, source run and its experiment,
    verification, signature summary, outputs), its aliases now, and every alias move,
    newest first."""
    checked_name(name)
    versions = log.model_versions(name)
    if versions.empty:
        raise ModelNotFound(f"no registered model {name!r}: see mlops-nb models list")
    experiments: dict[str, str | None] = {}
    rows = []
    for row in versions.sort_values("version", ascending=False).to_dict(orient="records"):
        record = log.model_version(name, int(row["version"])) or {}
        run_id = row.get("run_id") if isinstance(row.get("run_id"), str) else None
        if run_id and run_id not in experiments:
            found = log.runs(filters=[Condition("run_id", "=", run_id)], limit=1)
            experiments[run_id] = None if found.empty else found["experiment"].iloc[0]
        verification = record.get("verification") or {}
        rows.append({
            "version": int(row["version"]), "aliases": list(row["aliases"]),
            "run_id": run_id, "experiment": experiments.get(run_id) if run_id else None,
            "model_var": row.get("model_var"), "steps": record.get("steps") or [],
            "format": row.get("format"), "artifact_sha256": row.get("artifact_sha256"),
            "metrics": _metrics(row.get("metrics")), "user": row.get("user"),
            "description": row.get("description"), "created_at": row.get("created_at"),
            "verified": bool(verification.get("verified")), "verification": verification,
            "signature": _signature_summary(record.get("signature")),
            "outputs": record.get("outputs") or {},
            "explanations": explanations(log, record) if record else None,
        })  # fmt: skip
    aliases = {r.alias: int(r.version) for r in log.aliases(name).itertuples()}
    history = log.alias_history(name).iloc[::-1]
    return {
        "name": name,
        "aliases": dict(sorted(aliases.items())),
        "versions": rows,
        "alias_history": history.to_dict(orient="records"),
        "monitoring": monitoring(log, name),
    }


def explanations(log: Any, record: dict[str, Any]) -> dict[str, Any]:
    """A version's permutation importance as numbers (the tab draws the chart: no markup
    from the server) and the fairness its source run measured (``--sensitive``)."""
    from mlops_nb.registry.explain import model_card_data

    found = model_card_data(log, record)
    importance = {k: v for k, v in found["importance"].items() if k != "svg"}
    return {"importance": importance, "fairness": found["fairness"]}


def monitoring(log: Any, name: str) -> dict[str, Any]:
    """What watches the model: its newest drift check (inputs, the dataset verdict, the
    predictions), the newest live or estimated value of each metric against its training-time
    baseline, and the last things ``mlops-nb monitor`` did, newest first."""
    return {
        "drift": latest_drift(log.latest_drift_checks(name)),
        "performance": latest_performance(log.latest_performance(name)),
        "events": [
            {
                "when": row["created_at"], "step": row["step"], "outcome": row["outcome"],
                "reason": row["reason"], "alias": row["alias"], "run_id": row["run_id"],
                "check_id": row["check_id"], "from_version": row["from_version"],
                "to_version": row["to_version"],
            }
            for row in log.recent_monitor_events(name, MONITOR_EVENTS).to_dict(orient="records")
        ],
    }  # fmt: skip


_DRIFT_COLUMN = ("column", "column_type", "method", "score", "threshold", "drifted", "exact")


def latest_drift(rows: Any) -> dict[str, Any] | None:
    """The newest check among ``log.latest_drift_checks`` rows, or None when none is recorded:
    when, what was compared, the share of drifted columns and the verdict, the summary line,
    and the per-column rows of the inputs and of the predictions."""
    from mlops_nb.monitor.drift import DriftReport

    if rows.empty:
        return None
    check = rows[rows["check_id"] == rows["check_id"].iloc[0]]
    first = check.iloc[0]
    inputs = check[check["target"] == "inputs"]
    dataset = check[check["target"] == "dataset"]
    drifted = [str(c) for c in inputs.loc[inputs["drifted"].astype(bool), "column"]]
    share = float(dataset["score"].iloc[0]) if len(dataset) else None
    verdict = bool(dataset["drifted"].iloc[0]) if len(dataset) else None
    summary = DriftReport(inputs, share or 0.0, bool(verdict), drifted).summary()
    sizes = dataset.iloc[0] if len(dataset) else first  # rows compared, before per-column NaNs
    return {
        "check_id": first["check_id"], "when": first["when"],
        "model_version": first["model_version"], "reference": first["reference"],
        "current": first["current"], "share": share, "dataset_drift": verdict,
        "drift_share": float(dataset["threshold"].iloc[0]) if len(dataset) else None,
        "summary": summary,
        "n_reference": sizes["n_reference"], "n_current": sizes["n_current"],
        "columns": _columns(inputs),
        "predictions": _columns(check[check["target"] == "predictions"]),
    }  # fmt: skip


def _columns(rows: Any) -> list[dict[str, Any]]:
    return [{key: row[key] for key in _DRIFT_COLUMN} for row in rows.to_dict(orient="records")]


def latest_performance(rows: Any) -> list[dict[str, Any]]:
    """Per (kind, metric) the newest window among ``log.latest_performance`` rows: its value,
    the baseline at training time, the version and the window measured."""
    if rows.empty:
        return []
    newest = rows.sort_values(["window_end", "created_at"]).groupby(["kind", "metric"]).tail(1)
    newest = newest.sort_values(["kind", "metric"], key=_realized_first)
    return [
        {
            "kind": row["kind"], "metric": row["metric"], "value": row["value"],
            "baseline": row["baseline"], "model_version": row["model_version"],
            "window_start": row["window_start"], "window_end": row["window_end"],
            "n_rows": row["n_rows"], "measured_at": row["created_at"],
        }
        for row in newest.to_dict(orient="records")
    ]  # fmt: skip


def _realized_first(column: Any) -> Any:
    """Sort key: measured (``realized``) performance before ``estimated``, then by name."""
    return column.map({"realized": "0", "estimated": "1"}) if column.name == "kind" else column


def move_alias(log: Any, name: str, data: dict[str, Any]) -> dict[str, Any]:
    """POST models/{name}/aliases: point ``alias`` at ``version``, recorded with ``reason``.

    Unknown model: ModelNotFound; a bad alias, an unknown version, or the version the alias
    already points at: BadModelRequest. Returns the alias, its new and its previous version.
    """
    checked_name(name)
    alias = checked_name(data.get("alias"), "alias")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadModelRequest(f"version must be a version number (1, 2, ...), got {version!r}")
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise BadModelRequest("reason must be text")
    reason = (reason or "").strip() or None
    if reason is not None and ("\n" in reason or len(reason) > MAX_REASON):
        raise BadModelRequest(f"reason must be one line of at most {MAX_REASON} characters")
    if log.model_version(name) is None:
        raise ModelNotFound(f"no registered model {name!r}: see mlops-nb models list")
    if log.model_version(name, version) is None:
        raise BadModelRequest(f"model {name!r} has no version {version}")
    now = log.model_version(name, alias=alias)
    if now is not None and int(now["version"]) == version:
        raise BadModelRequest(f"{name}@{alias} already points at version {version}")
    previous = log.move_alias(name, alias, version, reason)
    return {"name": name, "alias": alias, "version": version, "previous": previous}
