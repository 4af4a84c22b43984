"""The log file: created, migrated from older versions, refused when it is not ours."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest

import mlops_nb as mn
from mlops_nb.errors import LogVersionError, NotALogError
from mlops_nb.log import schema

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "log_v1.duckdb.gz"
OLD_RUN = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _v1_log(folder: Path) -> Path:
    target = folder / "old" / "log.duckdb"
    target.parent.mkdir(parents=True)
    with gzip.open(FIXTURE_V1) as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)
    return target


def test_a_new_log_has_the_current_schema_and_every_stable_view(log_path):
    mn.open_log(log_path)
    con = duckdb.connect(str(log_path), read_only=True)
    assert schema.read_version(con) == schema.SCHEMA_VERSION
    views = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    con.close()
    assert set(schema.STABLE_VIEWS) <= views


def test_a_version_1_log_migrates_with_no_data_lost(tmp_path):
    path = _v1_log(tmp_path)
    con = duckdb.connect(str(path), read_only=True)
    assert schema.read_version(con) == 1
    con.close()

    log = mn.open_log(path)
    assert log.sql("SELECT value FROM store.meta WHERE key = 'schema_version'")["value"][0] == str(
        schema.SCHEMA_VERSION
    )
    runs = log.runs(order_by="start_time")
    assert runs["name"].tolist() == ["baseline", "tuned"]
    assert runs["status"].tolist() == ["finished", "failed"]
    assert runs["error"].tolist()[1] == "ValueError: bad split"
    assert runs["params.lr"].tolist() == [0.1, 0.01]
    assert runs["params.model"].tolist()[0] == "forest"
    assert runs["metrics.loss"].tolist() == [0.3, 1.2]  # the latest, backfilled from history
    old = log.run(OLD_RUN)
    assert old.params == {"lr": 0.1, "model": "forest"}
    assert old.metric_history["value"].tolist() == [0.91, 0.9, 0.5, 0.3]
    assert old.tags == {"team": "churn"}
    assert old.artifacts["name"].tolist() == ["model.skops"]
    assert old.artifacts["kind"].tolist() == ["file"]
    # and it takes new records like any log
    with log.start_run(experiment="legacy", params={"lr": 0.5}) as run:
        run.log_metric("loss", 0.2)
    assert len(log.runs(experiment="legacy")) == 3


def test_a_log_from_a_newer_version_is_refused_and_left_alone(log_path):
    mn.open_log(log_path).close()
    con = duckdb.connect(str(log_path))
    con.execute("UPDATE store.meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    before = _sha(log_path)
    from mlops_nb.log import store

    store._close_all_stores()  # the next open checks the file again, as a new process would
    with pytest.raises(LogVersionError, match="newer mlops_nb .*schema 99.*pip install -U"):
        mn.open_log(log_path)
    assert _sha(log_path) == before


@pytest.mark.parametrize(
    "content",
    [b"name,score\nana,3\n", b"", b"\x00" * 8 + b"DUCK" + b"\xff" * 5000],
    ids=["csv", "empty", "corrupt-duckdb"],
)
def test_a_file_that_is_not_a_log_gives_a_clear_error_and_is_never_overwritten(tmp_path, content):
    path = tmp_path / "data.duckdb"
    path.write_bytes(content)
    with pytest.raises(NotALogError, match="left untouched"):
        mn.open_log(path)
    assert path.read_bytes() == content


def test_another_duckdb_database_is_not_taken_over(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales AS SELECT 1 AS id")
    con.close()
    before = _sha(path)
    with pytest.raises(NotALogError, match="not an mlops_nb log"):
        mn.open_log(path)
    assert _sha(path) == before


def test_a_failed_migration_leaves_the_old_log_as_it_was(tmp_path, monkeypatch):
    path = _v1_log(tmp_path)

    def broken(con):
        raise RuntimeError("disk full, say")

    monkeypatch.setitem(schema.MIGRATIONS, 3, [*schema.MIGRATIONS[3], broken])
    with pytest.raises(RuntimeError, match="disk full"):
        mn.open_log(path)
    con = duckdb.connect(str(path), read_only=True)
    assert schema.read_version(con) == 1
    assert con.execute("SELECT count(*) FROM store.runs").fetchone()[0] == 2
    con.close()
