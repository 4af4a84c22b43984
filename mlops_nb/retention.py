"""Retention and erasure: ``mlops-nb purge``, ``forget``, ``retention`` and ``storage``.

- ``purge`` removes pipeline checkpoints, stored request payloads (the request rows stay, so
  counts, latencies and statuses still add up) and artifacts no registered version needs, by
  age, by run, or (payloads) before a date; log/erasure.py says what "needed" means and how a
  crash midway is finished later.
- ``forget`` finds one person's value in a column: in served requests through the keyed hash
  the server stored instead of the value (or the value itself, where a column was not
  hashed), and in checkpoints by reading them (decrypting the encrypted ones with the log's
  key). It removes those payloads and whole checkpoints (a frame rewritten without the rows
  would no longer be what the cell made, and a cache hit would restore it as if it were), and
  records the erasure with the column and the keyed hash of the value, never the value.
- ``retention`` sets the policy kept in the log's settings; a writer that opens a log file
  applies it at most once a day (log/store.py). A team log is opened by the whole team, so
  there ``mlops-nb team maintain`` and a maintainer's ``retention --apply`` apply it.
- On a team log all of it is a maintainer's, and what was removed stays in the lake's older
  snapshots until ``team maintain`` expires them: the result says so (``complete_after``).
- ``storage_report(log)`` says where personal data of the project lives: which checkpoints
  (run, cell, dataset, columns, encrypted or not, size, age), which request logs (model,
  payloads, oldest, hashed columns), where the key is, the policy and the last erasures.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mlops_nb.capture import pii
from mlops_nb.capture.checkpoint import ENCRYPTED, load_saved
from mlops_nb.log.erasure import (
    LAST_APPLIED_KEY,
    RETENTION_KINDS,
    ErasureError,
    Scope,
    parse_duration,
    retention_policy,
)
from mlops_nb.log.lake import ERASURE_COMPLETE
from mlops_nb.log.location import is_team_location

_FRAME_FORMATS = ("parquet", "polars.parquet", "pickle")  # formats that can hold a DataFrame
_OFF = ("off", "none", "never")


# ---------------------------------------------------------------------- purge
def purge(
    log: Any,
    *,
    older_than: str | None = None,
    run_id: str | None = None,
    requests_before: str | datetime | None = None,
    dry_run: bool = False,
    compact: bool = False,
) -> dict[str, Any]:
    """Remove checkpoints, request payloads and unregistered artifacts older than a duration
    (``"90d"``), or the checkpoints and artifacts of one run, or request payloads from before
    a date (UTC when it has no zone); returns what was (or would be) removed. ``compact``
    rewrites the log file afterwards, so no byte of the removed payloads stays in it."""
    chosen = [x for x in (older_than, run_id, requests_before) if x is not None]
    if len(chosen) != 1:
        raise ErasureError("say what to purge: one of --older-than, --run, --requests-before")
    if older_than is not None:
        before = _utc(time.time() - parse_duration(older_than))
        scope = Scope(checkpoints_before=before, artifacts_before=before, requests_before=before)
        criteria: dict[str, Any] = {"older_than": older_than, "before": before.isoformat()}
    elif run_id is not None:
        info = log.run(run_id).info
        if info["status"] == "running":
            raise ErasureError(f"run {info['run_id'][:8]} is still running: purge it once it ends")
        scope = Scope(run_id=info["run_id"])
        criteria = {"run_id": info["run_id"]}
    else:
        before = parse_date(requests_before)
        scope = Scope(requests_before=before)
        criteria = {"requests_before": before.isoformat()}
    removed = log.erase(scope, action="purge", criteria=criteria, dry_run=dry_run,
                        compact=compact)  # fmt: skip
    return {"action": "purge", "criteria": criteria, "dry_run": dry_run, "removed": removed,
            **_team_note(log, dry_run)}  # fmt: skip


def _team_note(log: Any, dry_run: bool) -> dict[str, str]:
    """On a team log, when the removal is complete (its older snapshots keep the values)."""
    if dry_run or not is_team_location(log.location):
        return {}
    return {"complete_after": ERASURE_COMPLETE}


def parse_date(value: str | datetime | None) -> datetime:
    """``2024-05-01`` or an ISO date-time -> naive UTC (a time without a zone is UTC)."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ErasureError(
                f"{value!r} is not a date: write e.g. 2024-05-01 or 2024-05-01T12:00"
            ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


# ---------------------------------------------------------------------- forget
def forget(
    log: Any, column: str, value: Any, *, dry_run: bool = False, compact: bool = True
) -> dict[str, Any]:
    """Find ``value`` in ``column`` of every stored request and checkpoint, remove them, and
    record the erasure (column and keyed hash only); returns where it was found. The log file
    is then rewritten (``compact``) so the removed payloads leave no bytes behind."""
    key = _hash_key(log)
    hashed = pii.keyed_hash(value, key) if key is not None else None
    text = pii.canonical_text(value)
    requests = _requests_holding(log, column, text, hashed)
    checkpoints, unreadable = _checkpoints_holding(log, column, text, hashed)
    scope = Scope(
        request_ids=tuple(r["request_id"] for r in requests),
        checkpoint_paths=tuple(sorted({c["path"] for c in checkpoints})),
    )
    criteria = {"column": column, "value_hash": hashed}
    removed = log.erase(scope, action="forget", criteria=criteria, dry_run=dry_run,
                        compact=compact)  # fmt: skip
    by_model: dict[str, dict[str, Any]] = {}
    for request in requests:
        name = request["model_name"]
        model = by_model.setdefault(
            name, {"model": name, "requests": 0, "rows": 0, "versions": set()}
        )
        model["requests"] += 1
        model["rows"] += request["rows"]
        model["versions"].add(request["model_version"])
    found_requests = [{**m, "versions": sorted(v for v in m["versions"] if v is not None)}
                      for m in by_model.values()]  # fmt: skip
    return {
        "action": "forget", "column": column, "value_hash": hashed, "dry_run": dry_run,
        "found": {"requests": found_requests, "checkpoints": [
            {k: c[k] for k in ("run_id", "cell_seq", "name", "rows", "encrypted")}
            for c in checkpoints]},
        "runs": sorted({c["run_id"] for c in checkpoints}),
        "unreadable": unreadable, "removed": removed, **_team_note(log, dry_run),
    }  # fmt: skip


def _hash_key(log: Any) -> bytes | None:
    """The log's keyed-hash key; None when there is none and nothing was hashed or encrypted
    with one (a project that never stored personal data)."""
    try:
        return pii.hash_key(log.path, create=False, team=log.is_team)
    except pii.PersonalDataKeyError as error:
        saved = log.stored_checkpoints()
        encrypted = saved["format"].astype(str).str.endswith(ENCRYPTED).any()
        if encrypted or not log.payloads_holding(['"' + pii.HASH_PREFIX]).empty:
            raise pii.PersonalDataKeyError(
                f"{error}: without it hashed request columns and encrypted checkpoints "
                "cannot be searched"
            ) from None
        return None


def _requests_holding(log: Any, column: str, text: str, hashed: str | None) -> list[dict[str, Any]]:
    """Requests whose stored inputs hold the value (or its hash) in ``column``."""
    needles = [text, json.dumps(text)[1:-1]] + ([hashed] if hashed else [])
    found = []
    for row in log.payloads_holding(dict.fromkeys(needles)).itertuples(index=False):
        rows = _rows_holding(row.inputs, column, text, hashed)
        if rows:
            found.append({"request_id": row.request_id, "model_name": row.model_name,
                          "model_version": None if pd.isna(row.model_version)
                          else int(row.model_version), "rows": rows})  # fmt: skip
    return found


def _rows_holding(inputs: str, column: str, text: str, hashed: str | None) -> int:
    """How many rows of one stored request hold the value in ``column`` (split or records)."""
    try:
        data = json.loads(inputs)
    except (TypeError, ValueError):
        return 0
    if isinstance(data, dict) and isinstance(data.get("columns"), list):
        if column not in data["columns"]:
            return 0
        at = data["columns"].index(column)
        cells = [
            row[at] for row in data.get("data") or [] if isinstance(row, list) and at < len(row)
        ]
    elif isinstance(data, list):
        cells = [row.get(column) for row in data if isinstance(row, dict)]
    else:
        return 0
    return sum(1 for cell in cells if cell is not None and _matches(cell, text, hashed))


def _matches(cell: Any, text: str, hashed: str | None) -> bool:
    found = pii.canonical_text(cell)
    return found == text or (hashed is not None and found == hashed)


def _checkpoints_holding(
    log: Any, column: str, text: str, hashed: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Checkpoints whose ``column`` holds the value, and those that could not be read."""
    found, unreadable = [], []
    for row in log.stored_checkpoints().itertuples(index=False):
        fmt = str(row.format)
        if fmt.removesuffix(ENCRYPTED) not in _FRAME_FORMATS:
            continue
        place = {"run_id": row.run_id, "cell_seq": int(row.cell_seq), "name": row.name}
        try:  # a team log fetches a checkpoint saved on another machine from its storage
            series = _column_of(load_saved(log, str(row.name), fmt, str(row.path)), column)
        except FileNotFoundError:
            if log.is_team:  # an older checkpoint, kept in the spool of the machine that ran it
                unreadable.append({**place, "reason": "its file is not on this machine: run "
                                   "forget on the machine that ran the pipeline"})  # fmt: skip
            continue
        except pii.PersonalDataKeyError as error:
            unreadable.append({**place, "reason": str(error)})
            continue
        except Exception as error:  # noqa: BLE001 - a damaged file: say which
            unreadable.append({**place, "reason": f"{type(error).__name__}: {error}"})
            continue
        if series is None:
            continue
        texts = series.dropna().map(pii.canonical_text)
        rows = int(((texts == text) | (texts == hashed if hashed else False)).sum())
        if rows:
            found.append({**place, "path": str(row.path), "rows": rows,
                          "encrypted": fmt.endswith(ENCRYPTED)})  # fmt: skip
    return found, unreadable


def _column_of(value: Any, column: str) -> pd.Series | None:
    """``column`` of a saved pandas or polars frame (or a Series of that name), else None."""
    if isinstance(value, pd.DataFrame):
        if column not in value.columns:
            return None
        found = value[column]  # a frame when the name is repeated
        return found.stack() if isinstance(found, pd.DataFrame) else found
    if isinstance(value, pd.Series):
        return value if str(value.name) == column else None
    if type(value).__module__.startswith("polars") and column in getattr(value, "columns", []):
        return value.get_column(column).to_pandas()
    return None


# ---------------------------------------------------------------------- the policy
def set_retention(log: Any, **durations: str | None) -> dict[str, str]:
    """Set how long checkpoints, requests (payloads) and artifacts are kept (``"30d"``;
    ``"off"`` removes one); returns the policy now in force."""
    changes: dict[str, str | None] = {}
    for kind, text in durations.items():
        if kind not in RETENTION_KINDS:
            raise ErasureError(f"no retention for {kind!r}: {', '.join(RETENTION_KINDS)}")
        if text is None:
            continue
        if str(text).strip().lower() in _OFF:
            changes[f"retention.{kind}"] = None
        else:
            if parse_duration(text) <= 0:
                raise ErasureError(f"a retention of {text!r} would keep nothing: give a duration")
            changes[f"retention.{kind}"] = str(text).strip().lower()
    if changes:
        log.set_settings(changes)
    return retention_policy(log.settings("retention."))


def retention_status(log: Any) -> dict[str, Any]:
    """The policy and when it last ran (it runs next at the first writer's open of a log
    file, at the next ``team maintain`` of a team log)."""
    settings = log.settings("retention.")
    last = settings.get(LAST_APPLIED_KEY)
    return {
        "policy": retention_policy(settings),
        "last_applied": _iso(float(last)) if last else None,
    }


# ---------------------------------------------------------------------- storage report
def storage_report(log: Any, run_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """Where personal data of this project lives, as plain data (for ``mlops-nb storage`` and
    the datasheet): checkpoints holding it (only those of ``run_ids`` when given), request
    logs, artifacts, where the key is, the retention policy and the latest erasures."""
    now = time.time()
    saved = log.stored_checkpoints()
    if run_ids is not None:
        saved = saved[saved["run_id"].isin(list(run_ids))]
    checkpoints = []
    for row in saved.itertuples(index=False):
        encrypted = str(row.format).endswith(ENCRYPTED)
        columns = [str(c) for c in row.personal_columns] if row.personal_columns is not None else []
        if not (encrypted or columns):
            continue
        checkpoints.append({
            "run_id": row.run_id, "experiment": _text(row.experiment),
            "run_status": _text(row.run_status), "cell_seq": int(row.cell_seq),
            "stage": _text(row.stage), "name": row.name, "dataset": _dataset(row.dataset_id),
            "personal_columns": columns, "encrypted": encrypted, "format": row.format,
            "bytes": _int(row.size), "created_at": _iso_ts(row.created_at),
            "age_days": _age_days(row.created_at, now),
            "on_disk": (log.artifacts_dir / str(row.path)).is_file(),
        })  # fmt: skip
    requests = []
    for row in log.request_logs().itertuples(index=False):
        requests.append({
            "model": row.model_name, "version": None if pd.isna(row.model_version)
            else int(row.model_version), "requests": int(row.requests),
            "payloads": int(row.payloads), "payload_bytes": _int(row.payload_bytes),
            "oldest_payload": _iso_ts(row.oldest_payload),
            "newest_payload": _iso_ts(row.newest_payload),
            "age_days": _age_days(row.oldest_payload, now),
            "hashed_columns": _hashed_columns(row.latest_inputs),
            "plain_columns": _plain_columns(row.latest_inputs),
            "encrypted": False,
        })  # fmt: skip
    artifacts = [
        {"kind": _text(row.kind), "artifacts": int(row.artifacts), "bytes": _int(row.bytes),
         "oldest": _iso_ts(row.oldest), "age_days": _age_days(row.oldest, now)}
        for row in log.stored_artifacts().itertuples(index=False)
    ]  # fmt: skip
    erasures = [
        {"erasure_id": row.erasure_id, "action": row.action, "user": _text(row.user),
         "created_at": _iso_ts(row.created_at), "criteria": json.loads(row.criteria or "{}"),
         "removed": json.loads(row.removed or "{}")}
        for row in log.erasures(limit=10).itertuples(index=False)
    ]  # fmt: skip
    return {
        "log": str(log.path),
        "generated_at": _iso(now),
        "checkpoints": checkpoints,
        "checkpoint_totals": {
            "checkpoints": len(saved), "bytes": _int(saved["size"].sum()) if len(saved) else 0,
            "personal": len(checkpoints),
            "encrypted": sum(1 for c in checkpoints if c["encrypted"]),
            "personal_not_encrypted": sum(1 for c in checkpoints if not c["encrypted"]),
        },
        "requests": requests,
        "artifacts": artifacts,
        "key": _key_location(log),
        "retention": retention_status(log),
        "erasures": erasures,
    }  # fmt: skip


def _hashed_columns(inputs: Any) -> list[str]:
    """Columns of a stored request whose values are all keyed hashes."""
    return [name for name, cells in _stored_columns(inputs).items()
            if cells and all(isinstance(c, str) and c.startswith(pii.HASH_PREFIX)
                             for c in cells)]  # fmt: skip


def _plain_columns(inputs: Any) -> list[str]:
    """Columns of a stored request kept as sent whose name says they hold personal data."""
    hashed = set(_hashed_columns(inputs))
    return [name for name in _stored_columns(inputs)
            if name not in hashed and pii.kind_from_name(name)]  # fmt: skip


def _stored_columns(inputs: Any) -> dict[str, list[Any]]:
    if not isinstance(inputs, str):
        return {}
    try:
        data = json.loads(inputs)
    except ValueError:
        return {}
    if not (isinstance(data, dict) and isinstance(data.get("columns"), list)):
        return {}
    columns = [str(c) for c in data["columns"]]
    rows = [r for r in data.get("data") or [] if isinstance(r, list)]
    return {name: [r[i] for r in rows if i < len(r) and r[i] is not None]
            for i, name in enumerate(columns)}  # fmt: skip


def _key_location(log: Any) -> dict[str, Any]:
    """Where the personal-data key is (never the key): the environment or the key file."""
    if os.environ.get(pii.KEY_ENV):
        return {"source": "environment", "name": pii.KEY_ENV, "present": True}
    if log.is_team:  # a team log's key is only ever the environment's
        return {"source": "environment", "name": pii.KEY_ENV, "present": False}
    path = pii.key_file(log.path.parent)
    if not path.is_file():
        return {"source": "file", "path": str(path), "present": False}
    mode = stat.S_IMODE(path.stat().st_mode)
    return {"source": "file", "path": str(path), "present": True, "mode": f"{mode:04o}",
            "private": mode & 0o077 == 0}  # fmt: skip


# ---------------------------------------------------------------------- the command line
def purge_from_cli(args: argparse.Namespace, log: Any) -> int:
    result = purge(log, older_than=args.older_than, run_id=args.run,
                   requests_before=args.requests_before, dry_run=args.dry_run,
                   compact=args.compact)  # fmt: skip
    _print(result, args.format,
           lambda r: _with_note(r, _removed_text(r["removed"], r["dry_run"])))  # fmt: skip
    return 0


def _with_note(result: Mapping[str, Any], text: str) -> str:
    return f"{text}\n{result['complete_after']}" if result.get("complete_after") else text


def forget_from_cli(args: argparse.Namespace, log: Any) -> int:
    result = forget(log, args.column, args.value, dry_run=args.dry_run,
                    compact=not args.no_compact)  # fmt: skip
    _print(result, args.format, lambda r: _with_note(r, _forget_text(r)))
    return 0


def retention_from_cli(args: argparse.Namespace, log: Any) -> int:
    set_retention(log, checkpoints=args.checkpoints, requests=args.requests,
                  artifacts=args.artifacts)  # fmt: skip
    status = retention_status(log)
    if args.apply and is_team_location(log.location):
        status["complete_after"] = ERASURE_COMPLETE
    if args.apply:
        if not status["policy"]:
            raise ErasureError("no retention policy to apply: set one, e.g. --checkpoints 30d")
        status["applied"] = log.apply_retention(dry_run=args.dry_run)
        status["dry_run"] = args.dry_run
    _print(status, args.format, lambda r: _with_note(r, _retention_text(r)))
    return 0


def storage_from_cli(args: argparse.Namespace, log: Any) -> int:
    _print(storage_report(log), args.format, storage_text)
    return 0


def _print(result: Mapping[str, Any], fmt: str, as_text: Any) -> None:
    print(json.dumps(result, indent=2, default=str) if fmt == "json" else as_text(result))


def _removed_text(removed: Mapping[str, Any], dry_run: bool) -> str:
    parts = [
        _count(removed.get("checkpoints", 0), "checkpoint"),
        _count(removed.get("request_payloads", 0), "request payload"),
        _count(removed.get("artifacts", 0), "artifact"),
        _count(removed.get("models_unstored", 0), "stored model"),
    ]
    files = f"{_count(removed.get('files', 0), 'file')} ({_bytes(removed.get('bytes', 0))})"
    runs = removed.get("runs") or []
    line = f"{'would remove' if dry_run else 'removed'}: {', '.join(parts)}; {files}"
    if runs:
        shown = ", ".join(r[:8] for r in runs[:10]) + (" ..." if len(runs) > 10 else "")
        line += f"\nruns: {shown}"
    if not dry_run and removed.get("erasure_id"):
        line += f"\nrecorded as erasure {removed['erasure_id'][:12]} (the erasures view)"
    return line


def _forget_text(result: Mapping[str, Any]) -> str:
    hashed = result["value_hash"] or "no key"
    lines = [f"{result['column']} = <value> (keyed hash {hashed})"]
    found = result["found"]
    if not found["requests"] and not found["checkpoints"]:
        lines.append("found nowhere in the log's requests and checkpoints")
    for model in found["requests"]:
        versions = ", ".join(f"v{v}" for v in model["versions"])
        lines.append(f"  requests of {model['model']} ({versions}): {model['requests']} "
                     f"({_count(model['rows'], 'row')})")  # fmt: skip
    for place in found["checkpoints"]:
        sealed = "encrypted " if place["encrypted"] else ""
        lines.append(f"  {sealed}checkpoint {place['name']} of run {place['run_id'][:8]} cell "
                     f"{place['cell_seq']} ({_count(place['rows'], 'row')})")  # fmt: skip
    for place in result["unreadable"]:
        lines.append(f"  could not read checkpoint {place['name']} of run "
                     f"{place['run_id'][:8]}: {place['reason']}")  # fmt: skip
    lines.append(_removed_text(result["removed"], result["dry_run"]))
    return "\n".join(lines)


def _retention_text(status: Mapping[str, Any]) -> str:
    policy = status["policy"]
    if policy:
        kept = ", ".join(f"{kind} {policy[kind]}" for kind in RETENTION_KINDS if kind in policy)
        line = f"retention: {kept}; last applied {status['last_applied'] or 'never'}"
    else:
        line = "retention: none (everything is kept until purged)"
    if "applied" in status and status["applied"] is not None:
        line += "\n" + _removed_text(status["applied"], status.get("dry_run", False))
    return line


def storage_text(report: Mapping[str, Any]) -> str:
    """The storage report for a terminal."""
    totals = report["checkpoint_totals"]
    lines = [f"personal data kept by {report['log']}", "",
             f"checkpoints: {totals['checkpoints']} ({_bytes(totals['bytes'])}); "
             f"{totals['personal']} hold personal data: {totals['encrypted']} encrypted, "
             f"{totals['personal_not_encrypted']} not encrypted"]  # fmt: skip
    if report["checkpoints"]:
        frame = pd.DataFrame([{
            "run": c["run_id"][:8], "cell": c["cell_seq"], "stage": c["stage"] or "",
            "name": c["name"], "dataset": c["dataset"] or "",
            "columns": ", ".join(c["personal_columns"]) or "?",
            "encrypted": "yes" if c["encrypted"] else "NO", "size": _bytes(c["bytes"]),
            "age": f"{c['age_days']:.1f} d",
        } for c in report["checkpoints"]])  # fmt: skip
        lines += ["  " + line for line in frame.to_string(index=False).splitlines()]
    lines += ["", f"request logs: {len(report['requests'])} model versions"]
    if report["requests"]:
        frame = pd.DataFrame([{
            "model": r["model"], "version": r["version"], "requests": r["requests"],
            "payloads": r["payloads"], "size": _bytes(r["payload_bytes"]),
            "oldest": r["oldest_payload"] or "", "age": f"{r['age_days'] or 0:.1f} d",
            "hashed": ", ".join(r["hashed_columns"]) or "-",
            "plain, named personal": ", ".join(r["plain_columns"]) or "-",
        } for r in report["requests"]])  # fmt: skip
        lines += ["  " + line for line in frame.to_string(index=False).splitlines()]
        lines.append("  payloads are stored as sent except hashed columns (keyed hashes, not "
                     "encrypted)")  # fmt: skip
    if report["artifacts"]:
        kinds = ", ".join(f"{a['kind']} {a['artifacts']} ({_bytes(a['bytes'])})"
                          for a in report["artifacts"])  # fmt: skip
        lines += ["", f"artifacts: {kinds}; executed notebooks show what their cells printed"]
    key = report["key"]
    where = key["name"] if key["source"] == "environment" else key["path"]
    state = "present" if key["present"] else "MISSING"
    if key.get("mode"):
        state += f", mode {key['mode']}" + ("" if key["private"] else " (readable by others!)")
    lines += ["", f"key: {where} ({state})", _retention_text(report["retention"])]
    if report["erasures"]:
        latest = report["erasures"][0]
        lines.append(f"erasures: {len(report['erasures'])} recent, latest {latest['action']} "
                     f"at {latest['created_at']} by {latest['user']}")  # fmt: skip
    return "\n".join(lines)


# ---------------------------------------------------------------------- small helpers
def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _bytes(n: Any) -> str:
    size = float(n or 0)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC).replace(tzinfo=None)


def _iso(epoch_seconds: float) -> str:
    return _utc(epoch_seconds).isoformat(timespec="seconds")


def _iso_ts(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def _age_days(value: Any, now: float) -> float | None:
    if value is None or pd.isna(value):
        return None
    created = pd.Timestamp(value).tz_localize("UTC").timestamp()
    return round(max(now - created, 0.0) / 86400, 2)


def _int(value: Any) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _text(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _dataset(dataset_id: Any) -> str | None:
    """``clean@v2`` from ``1a2b3c4d:clean@v2``."""
    if not isinstance(dataset_id, str):
        return None
    return dataset_id.split(":", 1)[1] if ":" in dataset_id else dataset_id


__all__ = ["purge", "forget", "set_retention", "retention_status", "storage_report"]
