"""Where the log lives: ``$MLOPS_NB_LOG``, else the nearest ``.mlops/`` folder, else here."""

from __future__ import annotations

import os
from pathlib import Path

LOG_ENV_VAR = "MLOPS_NB_LOG"
LOG_DIR_NAME = ".mlops"
LOG_FILE_NAME = "log.duckdb"


def default_log_path(cwd: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the log file path by the rules in DESIGN.md (env var, ancestor ``.mlops/``, cwd)."""
    from_env = os.environ.get(LOG_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser().absolute()
    start = Path(cwd or os.getcwd()).absolute()
    for folder in (start, *start.parents):
        if (folder / LOG_DIR_NAME).is_dir():
            return folder / LOG_DIR_NAME / LOG_FILE_NAME
    return start / LOG_DIR_NAME / LOG_FILE_NAME


def artifacts_dir_for(log_path: Path) -> Path:
    """Artifacts are stored beside the log file, in ``artifacts/``."""
    return log_path.parent / "artifacts"
