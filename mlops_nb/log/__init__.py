"""The experiment log: the only package that opens DuckDB and writes SQL."""

from mlops_nb.log.api import Log, Run, RunRecord, active_run
from mlops_nb.log.location import default_log_path

__all__ = ["Log", "Run", "RunRecord", "active_run", "default_log_path"]
