"""The log's tables, its stable SQL views, and forward migrations between schema versions.

Base tables live in the DuckDB schema ``store`` and may change between versions; the views in
``main`` (``runs``, ``params``, ``metrics``, ``cells``, ``datasets``, ``lineage``,
``artifacts``, ``models``) are the documented, stable surface (docs/schema.md).

A migration is a list of SQL statements that takes the log from version N-1 to N. They are
applied in one transaction, so a failed upgrade leaves the file as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import duckdb

from mlops_nb.log import wide

SCHEMA_VERSION = 10

_V1: list[Step] = [
    "CREATE SCHEMA IF NOT EXISTS store",
    "CREATE TABLE store.meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE store.experiments (name VARCHAR PRIMARY KEY, created_at TIMESTAMP)",
    """CREATE TABLE store.runs (
        run_id VARCHAR PRIMARY KEY, experiment VARCHAR, name VARCHAR, status VARCHAR,
        start_time TIMESTAMP, end_time TIMESTAMP, user_name VARCHAR, host VARCHAR,
        pid INTEGER, source VARCHAR, notebook_path VARCHAR, notebook_hash VARCHAR,
        git_commit VARCHAR, git_dirty BOOLEAN, parent_run_id VARCHAR, writer_id VARCHAR,
        error VARCHAR)""",
    """CREATE TABLE store.params (
        run_id VARCHAR, name VARCHAR, value VARCHAR, value_type VARCHAR, value_num DOUBLE,
        value_json VARCHAR, PRIMARY KEY (run_id, name))""",
    """CREATE TABLE store.metrics (
        run_id VARCHAR, key VARCHAR, value DOUBLE, step BIGINT, timestamp TIMESTAMP)""",
    """CREATE TABLE store.tags (
        run_id VARCHAR, key VARCHAR, value VARCHAR, PRIMARY KEY (run_id, key))""",
    """CREATE TABLE store.artifacts (
        run_id VARCHAR, name VARCHAR, sha256 VARCHAR, size BIGINT, stored_path VARCHAR,
        created_at TIMESTAMP)""",
    "CREATE TABLE store.journal_progress (journal VARCHAR PRIMARY KEY, applied_bytes BIGINT)",
    """CREATE VIEW runs AS SELECT run_id, experiment, name, status, start_time, end_time,
        user_name AS "user", host, pid, source, notebook_path, git_commit, parent_run_id
        FROM store.runs""",
    "CREATE VIEW params AS SELECT run_id, name, value, value_type FROM store.params",
    "CREATE VIEW metrics AS SELECT run_id, key, value, step, timestamp FROM store.metrics",
    "CREATE VIEW artifacts AS SELECT run_id, name, sha256, size, created_at FROM store.artifacts",
]

_V2: list[Step] = [
    # Latest value per (run, key), kept up to date when records are merged, so that filters
    # and sorts on metrics never scan the full history.
    """CREATE TABLE store.latest_metrics (
        run_id VARCHAR, key VARCHAR, value DOUBLE, step BIGINT, timestamp TIMESTAMP,
        PRIMARY KEY (run_id, key))""",
    """INSERT INTO store.latest_metrics
        SELECT run_id, key, arg_max(value, (step, timestamp)), max(step),
               arg_max(timestamp, (step, timestamp))
        FROM store.metrics GROUP BY run_id, key""",
    """CREATE TABLE store.cells (
        run_id VARCHAR, cell_seq INTEGER, cell_id VARCHAR, execution_count INTEGER,
        stage VARCHAR, name VARCHAR, source VARCHAR, source_hash VARCHAR,
        start_time TIMESTAMP, end_time TIMESTAMP, duration_s DOUBLE, status VARCHAR,
        error_type VARCHAR, error_message VARCHAR, reads VARCHAR, writes VARCHAR)""",
    """CREATE TABLE store.datasets (
        dataset_id VARCHAR, run_id VARCHAR, cell_seq INTEGER, name VARCHAR, version INTEGER,
        kind VARCHAR, fingerprint VARCHAR, n_rows BIGINT, n_cols BIGINT, schema VARCHAR,
        stats VARCHAR, diff VARCHAR, created_at TIMESTAMP)""",
    """CREATE TABLE store.lineage (
        run_id VARCHAR, cell_seq INTEGER, dataset_id VARCHAR, direction VARCHAR)""",
    """CREATE TABLE store.models (
        model_id VARCHAR, run_id VARCHAR, cell_seq INTEGER, name VARCHAR, class_name VARCHAR,
        params VARCHAR, n_features_in BIGINT, feature_names VARCHAR, output_features VARCHAR,
        fit_dataset_id VARCHAR, artifact_sha256 VARCHAR, created_at TIMESTAMP)""",
    "ALTER TABLE store.artifacts ADD COLUMN kind VARCHAR DEFAULT 'file'",
    # one row per run with a typed column per param and latest metric (see wide.py)
    f"CREATE TABLE store.run_values ({wide.RUN_COLUMNS_DDL})",
    wide.rebuild,
    """CREATE OR REPLACE VIEW runs AS
        WITH t AS (SELECT run_id, map(list(key), list(value)) AS tags
                   FROM store.tags GROUP BY run_id)
        SELECT r.run_id, r.experiment, r.name, r.status, r.start_time, r.end_time,
               date_diff('millisecond', r.start_time, r.end_time) / 1000.0 AS duration_s,
               r.user_name AS "user", r.host, r.pid, r.source, r.notebook_path,
               r.notebook_hash, r.git_commit, r.git_dirty, r.parent_run_id, r.error,
               coalesce(t.tags, MAP {}) AS tags
        FROM store.runs r LEFT JOIN t USING (run_id)""",
    """CREATE OR REPLACE VIEW params AS
        SELECT run_id, name, value, value_type, value_num, value_json FROM store.params""",
    """CREATE OR REPLACE VIEW latest_metrics AS
        SELECT run_id, key, value, step, timestamp FROM store.latest_metrics""",
    """CREATE OR REPLACE VIEW artifacts AS
        SELECT run_id, name, kind, sha256, size, stored_path, created_at FROM store.artifacts""",
    "CREATE OR REPLACE VIEW cells AS SELECT * FROM store.cells",
    "CREATE OR REPLACE VIEW datasets AS SELECT * FROM store.datasets",
    "CREATE OR REPLACE VIEW lineage AS SELECT * FROM store.lineage",
    "CREATE OR REPLACE VIEW models AS SELECT * FROM store.models",
]

_V3: list[Step] = [
    # what a run ran on: python, kernel, platform, and each imported package's version
    """CREATE TABLE store.environment (
        run_id VARCHAR, kind VARCHAR, name VARCHAR, version VARCHAR, created_at TIMESTAMP)""",
    # things a reader of the run must know: stale cells, out-of-order execution, lost records
    """CREATE TABLE store.notes (
        run_id VARCHAR, cell_seq INTEGER, kind VARCHAR, message VARCHAR, created_at TIMESTAMP)""",
    "CREATE OR REPLACE VIEW environment AS SELECT * FROM store.environment",
    "CREATE OR REPLACE VIEW notes AS SELECT * FROM store.notes",
]

_V4: list[Step] = [
    # pipeline schedules written by `mlops-nb schedule`, so `pipeline show` and docs know them
    """CREATE TABLE store.schedules (
        schedule_id VARCHAR, notebook_path VARCHAR, cron VARCHAR, target VARCHAR,
        params VARCHAR, out_dir VARCHAR, files VARCHAR, created_at TIMESTAMP)""",
    "CREATE OR REPLACE VIEW schedules AS SELECT * FROM store.schedules",
]

_V5: list[Step] = [
    # values a pipeline cell wrote, saved so a failed run can be resumed or a stage reused
    """CREATE TABLE store.checkpoints (
        run_id VARCHAR, cell_seq INTEGER, stage VARCHAR, name VARCHAR, format VARCHAR,
        path VARCHAR, size BIGINT, cache_key VARCHAR, created_at TIMESTAMP)""",
    "CREATE OR REPLACE VIEW checkpoints AS SELECT * FROM store.checkpoints",
]

_V6: list[Step] = [
    # the files a cell read (JSON [[path, identity], ...]), re-checked before a cache hit
    "ALTER TABLE store.checkpoints ADD COLUMN inputs VARCHAR",
    "CREATE OR REPLACE VIEW checkpoints AS SELECT * FROM store.checkpoints",
]

_V7: list[Step] = [
    # the model registry: versions (numbered at merge time, per name), aliases, alias moves
    """CREATE TABLE store.model_versions (
        version_id VARCHAR PRIMARY KEY, name VARCHAR, version INTEGER, run_id VARCHAR,
        model_var VARCHAR, steps VARCHAR, parts VARCHAR, artifact_sha256 VARCHAR,
        format VARCHAR, signature VARCHAR, outputs VARCHAR, metrics VARCHAR, packages VARCHAR,
        verification VARCHAR, user_name VARCHAR, description VARCHAR, tags VARCHAR,
        created_at TIMESTAMP, UNIQUE (name, version))""",
    """CREATE TABLE store.model_aliases (
        name VARCHAR, alias VARCHAR, version INTEGER, user_name VARCHAR, reason VARCHAR,
        updated_at TIMESTAMP, PRIMARY KEY (name, alias))""",
    """CREATE TABLE store.alias_history (
        name VARCHAR, alias VARCHAR, from_version INTEGER, to_version INTEGER,
        user_name VARCHAR, reason VARCHAR, moved_at TIMESTAMP)""",
    # acceptance gates: one row per condition checked
    """CREATE TABLE store.gate_results (
        gate_id VARCHAR, run_id VARCHAR, model_name VARCHAR, model_version INTEGER,
        condition VARCHAR, metric VARCHAR, value DOUBLE, baseline DOUBLE, baseline_ref VARCHAR,
        baseline_version INTEGER, passed BOOLEAN, detail VARCHAR, created_at TIMESTAMP)""",
    # served requests (one row per request) and ground truth sent back later
    """CREATE TABLE store.requests (
        request_id VARCHAR, model_name VARCHAR, model_version INTEGER, protocol VARCHAR,
        status INTEGER, n_rows INTEGER, latency_ms DOUBLE, inputs VARCHAR, outputs VARCHAR,
        error VARCHAR, server VARCHAR, created_at TIMESTAMP)""",
    """CREATE TABLE store.feedback (
        request_id VARCHAR, row_index INTEGER, label VARCHAR, user_name VARCHAR,
        created_at TIMESTAMP)""",
    """CREATE OR REPLACE VIEW model_versions AS SELECT name, version, run_id, model_var, steps,
        parts, artifact_sha256, format, signature, outputs, metrics, packages, verification,
        user_name AS "user", description, tags, created_at FROM store.model_versions""",
    """CREATE OR REPLACE VIEW model_aliases AS SELECT name, alias, version, user_name AS "user",
        reason, updated_at FROM store.model_aliases""",
    """CREATE OR REPLACE VIEW alias_history AS SELECT name, alias, from_version, to_version,
        user_name AS "user", reason, moved_at FROM store.alias_history""",
    "CREATE OR REPLACE VIEW gate_results AS SELECT * FROM store.gate_results",
    "CREATE OR REPLACE VIEW requests AS SELECT * FROM store.requests",
    "CREATE OR REPLACE VIEW feedback AS SELECT * FROM store.feedback",
    """CREATE OR REPLACE VIEW predictions AS
        SELECT r.request_id, r.model_name, r.model_version, r.created_at, r.inputs, r.outputs,
               r.latency_ms, f.row_index,
               CAST(json_extract(r.outputs, '$[' || f.row_index || ']') AS VARCHAR) AS prediction,
               f.label, f.created_at AS labelled_at
        FROM store.requests r LEFT JOIN store.feedback f USING (request_id)
        WHERE r.status = 200""",
]

_V8: list[Step] = [
    # what drift tests need of a reference, kept so drift can be computed without the raw data:
    # kind 'inputs' (a training dataset version), 'predictions' (a model's outputs on its
    # evaluation data), 'evaluation' (evaluation probabilities and labels, for estimation)
    """CREATE TABLE store.profiles (
        profile_id VARCHAR, dataset_id VARCHAR, run_id VARCHAR, name VARCHAR,
        model_name VARCHAR, model_version INTEGER, kind VARCHAR, n_rows BIGINT,
        profile VARCHAR, created_at TIMESTAMP)""",
    # one row per column tested, plus a 'dataset' row (share of drifted columns) per check
    """CREATE TABLE store.drift (
        check_id VARCHAR, model_name VARCHAR, model_version INTEGER, reference VARCHAR,
        current VARCHAR, target VARCHAR, column_name VARCHAR, column_type VARCHAR,
        method VARCHAR, score DOUBLE, threshold DOUBLE, drifted BOOLEAN, exact BOOLEAN,
        n_reference BIGINT, n_current BIGINT, created_at TIMESTAMP)""",
    # live performance: realized (from feedback labels) or estimated (before labels arrive)
    """CREATE TABLE store.performance (
        check_id VARCHAR, model_name VARCHAR, model_version INTEGER, kind VARCHAR,
        metric VARCHAR, value DOUBLE, baseline DOUBLE, window_start TIMESTAMP,
        window_end TIMESTAMP, n_rows BIGINT, created_at TIMESTAMP)""",
    # what `mlops-nb monitor` did and why (checked, retrained, gated, promoted)
    """CREATE TABLE store.monitor_events (
        event_id VARCHAR, model_name VARCHAR, alias VARCHAR, step VARCHAR, outcome VARCHAR,
        reason VARCHAR, run_id VARCHAR, check_id VARCHAR, from_version INTEGER,
        to_version INTEGER, detail VARCHAR, created_at TIMESTAMP)""",
    "CREATE OR REPLACE VIEW profiles AS SELECT * FROM store.profiles",
    """CREATE OR REPLACE VIEW drift AS SELECT check_id, created_at AS "when", model_name,
        model_version, reference, current, target, column_name AS "column", column_type,
        method, score, threshold, drifted, exact, n_reference, n_current FROM store.drift""",
    "CREATE OR REPLACE VIEW performance AS SELECT * FROM store.performance",
    "CREATE OR REPLACE VIEW monitor_events AS SELECT * FROM store.monitor_events",
]

_V9: list[Step] = [
    # personal data found per column of a recorded dataset version (never the values)
    """CREATE TABLE store.pii_findings (
        dataset_id VARCHAR, run_id VARCHAR, cell_seq INTEGER, dataset_name VARCHAR,
        column_name VARCHAR, kind VARCHAR, method VARCHAR, share DOUBLE, n_sampled BIGINT,
        status VARCHAR, created_at TIMESTAMP)""",
    # expectations inferred from (or written for) a dataset version; spec is JSON
    """CREATE TABLE store.expectations (
        expectation_id VARCHAR, dataset_id VARCHAR, run_id VARCHAR, dataset_name VARCHAR,
        source VARCHAR, spec VARCHAR, created_at TIMESTAMP)""",
    # one row per failed (or passed) check of data against expectations
    """CREATE TABLE store.check_results (
        check_id VARCHAR, run_id VARCHAR, cell_seq INTEGER, target VARCHAR,
        expectation VARCHAR, column_name VARCHAR, check_name VARCHAR, n_failing BIGINT,
        n_rows BIGINT, example_rows VARCHAR, example_values VARCHAR, passed BOOLEAN,
        created_at TIMESTAMP)""",
    # per-group fairness metrics (group '*' holds the summary differences and ratios)
    """CREATE TABLE store.fairness (
        run_id VARCHAR, cell_seq INTEGER, model_name VARCHAR, model_version INTEGER,
        sensitive VARCHAR, group_name VARCHAR, metric VARCHAR, value DOUBLE, n_rows BIGINT,
        created_at TIMESTAMP)""",
    # permutation importance of a registered version, per raw input column
    """CREATE TABLE store.importances (
        model_name VARCHAR, model_version INTEGER, feature VARCHAR, metric VARCHAR,
        importance_mean DOUBLE, importance_std DOUBLE, n_repeats INTEGER, n_rows BIGINT,
        created_at TIMESTAMP)""",
    # what purge / forget / a retention policy removed (counts, never contents)
    """CREATE TABLE store.erasures (
        erasure_id VARCHAR, action VARCHAR, criteria VARCHAR, removed VARCHAR,
        user_name VARCHAR, created_at TIMESTAMP)""",
    "CREATE TABLE store.settings (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE OR REPLACE VIEW pii_findings AS SELECT * FROM store.pii_findings",
    "CREATE OR REPLACE VIEW expectations AS SELECT * FROM store.expectations",
    """CREATE OR REPLACE VIEW check_results AS SELECT check_id, run_id, cell_seq, target,
        expectation, column_name AS "column", check_name AS "check", n_failing, n_rows,
        example_rows, example_values, passed, created_at FROM store.check_results""",
    """CREATE OR REPLACE VIEW fairness AS SELECT run_id, cell_seq, model_name, model_version,
        sensitive, group_name AS "group", metric, value, n_rows, created_at FROM store.fairness""",
    "CREATE OR REPLACE VIEW importances AS SELECT * FROM store.importances",
    """CREATE OR REPLACE VIEW erasures AS SELECT erasure_id, action, criteria, removed,
        user_name AS "user", created_at FROM store.erasures""",
]

_V10: list[Step] = [
    # who did it: the authenticated database user (a team log's PostgreSQL session_user; the
    # OS user for a file log), stamped when the record is merged
    "ALTER TABLE store.runs ADD COLUMN db_user VARCHAR",
    "ALTER TABLE store.model_versions ADD COLUMN db_user VARCHAR",
    "ALTER TABLE store.alias_history ADD COLUMN db_user VARCHAR",
    "ALTER TABLE store.gate_results ADD COLUMN db_user VARCHAR",
    # a gate that failed but was let through (mlops-nb gate --warn-only): an override
    "ALTER TABLE store.gate_results ADD COLUMN warn_only BOOLEAN",
    "ALTER TABLE store.erasures ADD COLUMN db_user VARCHAR",
    """CREATE OR REPLACE VIEW audit AS
        SELECT start_time AS "when", coalesce(db_user, user_name) AS who, 'run' AS action,
               run_id AS subject, concat_ws(' ', experiment, name, status) AS details
        FROM store.runs
        UNION ALL
        SELECT created_at, coalesce(db_user, user_name), 'register', name || ' v' || version,
               'from run ' || coalesce(run_id, '-')
        FROM store.model_versions
        UNION ALL
        SELECT moved_at, coalesce(db_user, user_name), 'alias', name || '@' || alias,
               coalesce(from_version::VARCHAR, '-') || ' -> ' || coalesce(to_version::VARCHAR, '-')
               || coalesce(': ' || reason, '')
        FROM store.alias_history
        UNION ALL
        SELECT min(created_at), any_value(db_user), 'gate_override',
               any_value(model_name) || coalesce(' v' || any_value(model_version), ''),
               'failed: ' || string_agg(condition, '; ') FILTER (WHERE NOT passed)
        FROM store.gate_results WHERE warn_only GROUP BY gate_id HAVING NOT bool_and(passed)
        UNION ALL
        SELECT created_at, coalesce(db_user, user_name), 'purge', erasure_id,
               concat_ws(' ', action, criteria, removed)
        FROM store.erasures""",
]

Step = str | Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: dict[int, list[Step]] = {
    1: _V1,
    2: _V2,
    3: _V3,
    4: _V4,
    5: _V5,
    6: _V6,
    7: _V7,
    8: _V8,
    9: _V9,
    10: _V10,
}

STABLE_VIEWS = (
    "runs", "params", "metrics", "cells", "datasets", "lineage", "artifacts", "models",
    "environment", "notes", "schedules", "checkpoints", "model_versions", "model_aliases",
    "alias_history", "gate_results", "requests", "feedback", "predictions", "profiles", "drift",
    "performance", "monitor_events", "pii_findings", "expectations", "check_results", "fairness",
    "importances", "erasures", "audit",
)  # fmt: skip


def read_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version recorded in the file, or None when it has no mlops_nb metadata."""
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'store' AND table_name = 'meta'"
    ).fetchone()
    if not has_meta or not has_meta[0]:
        return None
    row = con.execute("SELECT value FROM store.meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def is_empty_database(con: duckdb.DuckDBPyConnection) -> bool:
    """True for a DuckDB file with no tables at all (safe to initialise as a log)."""
    row = con.execute("SELECT count(*) FROM information_schema.tables").fetchone()
    return not row or row[0] == 0


def migrate(con: duckdb.DuckDBPyConnection, from_version: int, to_version: int = SCHEMA_VERSION):
    """Apply the migrations after ``from_version`` up to ``to_version`` in one transaction."""
    con.execute("BEGIN TRANSACTION")
    try:
        for version in range(from_version + 1, to_version + 1):
            for step in MIGRATIONS[version]:
                if callable(step):
                    step(con)
                else:
                    con.execute(step)
        con.execute(
            "INSERT OR REPLACE INTO store.meta VALUES ('schema_version', ?)", [str(to_version)]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def migrate_lake(con: duckdb.DuckDBPyConnection, from_version: int) -> None:
    """The same migrations on a team lake, inside the caller's transaction: DuckLake has no
    primary keys or unique constraints (merges keep keys unique instead), and the lake keeps
    no ``store.run_values`` (its reads pivot the long tables, see ``wide.view_query``)."""
    for version in range(from_version + 1, SCHEMA_VERSION + 1):
        for step in MIGRATIONS[version]:
            if callable(step) or "run_values" in step:
                continue
            con.execute(_without_keys(step))
    con.execute("DELETE FROM store.meta WHERE key = 'schema_version'")
    con.execute("INSERT INTO store.meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])


def _without_keys(statement: str) -> str:
    statement = re.sub(r",\s*(PRIMARY KEY|UNIQUE) \([^)]*\)", "", statement)
    return statement.replace(" PRIMARY KEY", "")
