"""Where the log lives: ``$MLOPS_NB_LOG``, else the nearest ``.mlops/`` folder, else here.

A log location is either a DuckDB file's path (the default) or a team log on DuckLake,
``ducklake:postgres:<libpq conninfo>`` (``TeamLocation``). A ``.mlops/config`` file (TOML,
``log = "..."``, ``data = "..."``) in the nearest ``.mlops/`` folder may name a team log.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mlops_nb.errors import MlopsError

LOG_ENV_VAR = "MLOPS_NB_LOG"
DATA_ENV_VAR = "MLOPS_NB_DATA"
SPOOL_ENV_VAR = "MLOPS_NB_SPOOL"
LOG_DIR_NAME = ".mlops"
LOG_FILE_NAME = "log.duckdb"
CONFIG_FILE_NAME = "config"
TEAM_PREFIX = "ducklake:"
TEAM_ANCHOR_NAME = "lake"  # Log.path of a team log: <spool>/lake
_POSTGRES_PREFIX = "ducklake:postgres:"
# a password in a keyword conninfo (password=...) or in a URI (postgresql://user:secret@host)
_PASSWORD_IN_CONNINFO = re.compile(r"(^|\s)password\s*=|://[^/@\s]*:[^/@\s]*@", re.IGNORECASE)


class LocationError(MlopsError):
    """A log location that cannot be used as written."""


@dataclass(frozen=True)
class TeamLocation:
    """A team log: DuckLake with its catalog in PostgreSQL (``conninfo``, no password)."""

    location: str  # as written: ducklake:postgres:<conninfo>
    conninfo: str

    @property
    def spool(self) -> Path:
        """This machine's folder for the lake: journals, the artifact cache, outputs."""
        from_env = os.environ.get(SPOOL_ENV_VAR)
        if from_env:
            return Path(from_env).expanduser().absolute()
        digest = hashlib.sha256(self.location.encode()).hexdigest()[:16]
        return Path.home() / ".cache" / "mlops-nb" / "team" / digest


def is_team_location(location: object) -> bool:
    """True for ``ducklake:...`` text (a team log), False for a file path."""
    return isinstance(location, str) and location.strip().startswith(TEAM_PREFIX)


def parse_team_location(location: str) -> TeamLocation:
    """Check a ``ducklake:postgres:<conninfo>`` location; credentials never belong in it."""
    text = location.strip()
    if not text.startswith(_POSTGRES_PREFIX):
        raise LocationError(
            f"{text.split(':', 2)[:2]!r} is not supported: a team log is "
            "ducklake:postgres:<conninfo>, e.g. ducklake:postgres:host=db.example dbname=lake"
        )
    conninfo = text[len(_POSTGRES_PREFIX) :].strip()
    if not conninfo:
        raise LocationError("the team log's PostgreSQL connection is empty: ducklake:postgres:...")
    if _PASSWORD_IN_CONNINFO.search(conninfo):
        raise LocationError(
            "a password does not belong in MLOPS_NB_LOG or --log (it would be copied to child "
            "processes, schedules and logs): put it in PGPASSWORD, ~/.pgpass or a PGSERVICE file"
        )
    return TeamLocation(f"{_POSTGRES_PREFIX}{conninfo}", conninfo)


def default_log_location(cwd: str | os.PathLike[str] | None = None) -> str:
    """The log to use when none is given: ``$MLOPS_NB_LOG``, else the ``log`` of the nearest
    ``.mlops/config``, else that folder's ``log.duckdb``, else ``./.mlops/log.duckdb``."""
    from_env = os.environ.get(LOG_ENV_VAR)
    if from_env:
        return from_env.strip() if is_team_location(from_env) else str(_absolute(from_env))
    configured = config_value("log", cwd)
    if configured and is_team_location(configured):
        return configured
    if configured:  # a file path, relative to the project (the folder holding .mlops/)
        folder = _nearest_log_folder(cwd)
        assert folder is not None
        return str((folder.parent / Path(configured).expanduser()).absolute())
    return str(default_log_path(cwd))


def resolve_location(location: str | os.PathLike[str] | None) -> str:
    """A location as given (team text kept as is, a path made absolute), or the default."""
    if location is None or str(location) == "":
        return default_log_location()
    if is_team_location(location):
        return str(location).strip()
    return str(_absolute(location))


def default_log_path(cwd: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the log file path by the rules in DESIGN.md (env var, ancestor ``.mlops/``, cwd)."""
    from_env = os.environ.get(LOG_ENV_VAR)
    if from_env and not is_team_location(from_env):
        return _absolute(from_env)
    folder = _nearest_log_folder(cwd)
    if folder is not None:
        return folder / LOG_FILE_NAME
    return Path(cwd or os.getcwd()).absolute() / LOG_DIR_NAME / LOG_FILE_NAME


def config_value(key: str, cwd: str | os.PathLike[str] | None = None) -> str | None:
    """A value of the nearest ``.mlops/config`` (TOML), or None."""
    folder = _nearest_log_folder(cwd)
    config = folder / CONFIG_FILE_NAME if folder is not None else None
    if config is None or not config.is_file():
        return None
    try:
        value = tomllib.loads(config.read_text()).get(key)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise LocationError(f"{config} is not valid TOML: {error}") from None
    return str(value) if value else None


def local_anchor(location: str | os.PathLike[str]) -> Path:
    """What ``Log.path`` is for a location: the file, or for a team log a name in this
    machine's spool folder (its parent holds the artifact cache, outputs/, server-runs/)."""
    if is_team_location(location):
        return parse_team_location(str(location)).spool / TEAM_ANCHOR_NAME
    return _absolute(location)


def log_exists(location: str | os.PathLike[str]) -> bool:
    """A file log exists once written; a team log is taken to exist (opening it says if not)."""
    return is_team_location(location) or Path(location).exists()


def artifacts_dir_for(log_path: Path) -> Path:
    """Artifacts are stored beside the log file, in ``artifacts/``."""
    return log_path.parent / "artifacts"


_BLOB_PATH = re.compile(r"([0-9a-f]{2})/([0-9a-f]{64})")


def blob_path(sha256: str) -> str:
    """Where a content-addressed file (an artifact; a team log's checkpoint) is kept under
    the artifact folder: ``<sha[:2]>/<sha>``."""
    return f"{sha256[:2]}/{sha256}"


def blob_sha(stored_path: str) -> str | None:
    """The sha256 a stored path names when it is a ``blob_path``, else None."""
    found = _BLOB_PATH.fullmatch(stored_path)
    return found.group(2) if found and found.group(2).startswith(found.group(1)) else None


def _nearest_log_folder(cwd: str | os.PathLike[str] | None) -> Path | None:
    start = Path(cwd or os.getcwd()).absolute()
    for folder in (start, *start.parents):
        if (folder / LOG_DIR_NAME).is_dir():
            return folder / LOG_DIR_NAME
    return None


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().absolute()
