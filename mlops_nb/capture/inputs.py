"""Identities of what a cell reads besides variables: files on disk, imported code, and the
global random state, so a cache key can tell whether a recorded result still holds.

A file's identity is the hash of its content when it is small, else its size and
modification time; a folder's is that of the files under it. Files are found two ways: paths
named in the code or held by the variables it reads (``"data/sales.csv"``, a ``data_path``
parameter, a glob), and files Python opened for reading while the cell ran (audit events; C++
readers such as pyarrow or DuckDB raise none, hence the first way). Pure: no IPython.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import site
import sys
import sysconfig
import threading
from collections.abc import Iterable
from pathlib import Path, PurePath
from types import ModuleType
from typing import Any

SMALL_FILE = 4 << 20  # bytes: hashed whole; bigger files are known by size and mtime
MAX_FILES = 2000  # files under one folder or glob; more and the input is not identified
_SKIPPED_FOLDERS = frozenset({".git", "__pycache__", ".ipynb_checkpoints"})
_REMOTE_PREFIXES = (
    "http://", "https://", "s3://", "s3a://", "gs://", "gcs://", "az://", "abfs://",
    "abfss://", "hdfs://", "ftp://", "sftp://", "wasb://", "wasbs://", "hf://",
)  # fmt: skip


class Unidentified(Exception):
    """An input exists but cannot be identified cheaply enough (a huge folder)."""


# ---------------------------------------------------------------------- files
def file_identity(path: str | Path, exclude: Iterable[Path] = ()) -> str | None:
    """Content hash (small file), size+mtime (big file), a digest of a folder's files, or
    None when nothing is there. Raises ``Unidentified`` for a folder with too many files."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if os.path.isdir(path):
        return _folder_identity(Path(path), [Path(p).resolve() for p in exclude])
    if info.st_size <= SMALL_FILE:
        try:
            with open(path, "rb") as handle:
                return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError:
            pass
    return f"stat:{info.st_size}:{info.st_mtime_ns}"


def _folder_identity(folder: Path, exclude: list[Path]) -> str:
    digest = hashlib.sha256()
    count = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(
            d for d in dirs
            if d not in _SKIPPED_FOLDERS and (Path(root) / d).resolve() not in exclude
        )  # fmt: skip
        for name in sorted(files):
            count += 1
            if count > MAX_FILES:
                raise Unidentified(f"{folder} holds more than {MAX_FILES} files")
            member = Path(root) / name
            digest.update(f"{member.relative_to(folder)}={file_identity(member)}\n".encode())
    return f"dir:{digest.hexdigest()}"


def strings_in_value(value: Any, limit: int = 1000) -> set[str]:
    """str and path values inside a value (lists, tuples, sets, dict keys and values)."""
    found: set[str] = set()
    stack = [value]
    while stack and len(found) < limit:
        item = stack.pop()
        if isinstance(item, str):
            found.add(item)
        elif isinstance(item, PurePath):
            found.add(str(item))
        elif isinstance(item, (list, tuple, set, frozenset)) and len(item) <= limit:
            stack.extend(item)
        elif isinstance(item, dict) and len(item) <= limit:
            stack.extend(item.keys())
            stack.extend(item.values())
    return found


def remote_location(strings: Iterable[str]) -> str | None:
    """The first string that names a remote location (``s3://...``, ``https://...``)."""
    for text in sorted(strings):
        if text.startswith(_REMOTE_PREFIXES) and len(text.split()) == 1:
            return text
    return None


def files_named(strings: Iterable[str], exclude: Iterable[Path] = ()) -> dict[str, str]:
    """Path -> identity for every string naming an existing file or folder (relative to the
    working directory), and for every match of a glob pattern. Raises ``Unidentified``."""
    excluded = [Path(p).resolve() for p in exclude]
    found: dict[str, str] = {}
    for text in sorted(strings):
        if not text or len(text) > 1024 or "\n" in text or "\0" in text:
            continue
        path = os.path.expanduser(text)
        if any(char in path for char in "*?[") and (os.sep in path or "." in path):
            matches = sorted(glob.glob(path, recursive=True))
            if len(matches) > MAX_FILES:
                raise Unidentified(f"{text!r} matches more than {MAX_FILES} files")
            found[f"glob:{text}"] = "|".join(matches)
            candidates = matches
        else:
            candidates = [path]
        for candidate in candidates:
            resolved = Path(candidate).resolve() if os.path.exists(candidate) else None
            if resolved is None or any(resolved == e or e in resolved.parents for e in excluded):
                continue
            identity = file_identity(candidate, excluded)
            if identity is not None:
                found[str(resolved)] = identity
    return found


def still_the_same(files: Iterable[tuple[str, str]]) -> str | None:
    """The first recorded (path, identity) that no longer holds, else None."""
    for path, identity in files:
        try:
            now = file_identity(path)
        except Unidentified:
            now = None
        if now != identity:
            return path
    return None


# ---------------------------------------------------------------------- files opened by a cell
_ACTIVE: list[set[str]] = []
_LOCK = threading.Lock()
_HOOKED = False


def _audit(event: str, args: tuple) -> None:
    if event != "open" or not _ACTIVE:
        return
    try:
        path, mode, flags = args
        if isinstance(path, int) or path is None:
            return
        if mode is None:
            reading = (flags & os.O_ACCMODE) != os.O_WRONLY and not flags & os.O_TRUNC
        else:
            reading = "r" in mode or ("a" in mode and "+" in mode)
        if reading:
            _ACTIVE[-1].add(os.path.abspath(os.fsdecode(path)))
    except Exception:  # noqa: BLE001, S110 - an audit hook must never break the user's open()
        pass


class OpenedFiles:
    """Files Python opened for reading between ``start()`` and ``stop()`` (any thread)."""

    def __init__(self) -> None:
        self._paths: set[str] = set()

    def start(self) -> None:
        global _HOOKED
        with _LOCK:
            if not _HOOKED:  # audit hooks cannot be removed: one for the process, idle when off
                sys.addaudithook(_audit)
                _HOOKED = True
            _ACTIVE.append(self._paths)

    def stop(self, exclude: Iterable[Path] = ()) -> dict[str, str]:
        """Path -> identity of the data files read (not Python's own files, not folders)."""
        with _LOCK:
            if self._paths in _ACTIVE:
                _ACTIVE.remove(self._paths)
        skipped = [*_installed_roots(), *(Path(p).resolve() for p in exclude)]
        found: dict[str, str] = {}
        for text in sorted(self._paths):
            path = Path(text)
            if path.suffix in (".py", ".pyc", ".pyi", ".so", ".pth") or not path.is_file():
                continue
            resolved = path.resolve()
            if any(root in resolved.parents for root in skipped):
                continue
            if str(resolved).startswith(("/proc/", "/sys/", "/dev/")):
                continue
            identity = file_identity(resolved)
            if identity is not None:
                found[str(resolved)] = identity
        return found


# ---------------------------------------------------------------------- code outside the notebook
_VERSIONS: dict[str, str] = {}


def module_identity(module: ModuleType) -> str:
    """An installed module: its distribution's version; a local one (a .py file beside the
    notebook): the size and mtime of every local module loaded, since they import each other."""
    file = getattr(module, "__file__", None)
    top = module.__name__.split(".", 1)[0]
    if not file or _is_installed(file):
        return f"{top}=={_version_of(top)}"
    local = []
    for loaded in list(sys.modules.values()):
        path = getattr(loaded, "__file__", None)
        if path and not _is_installed(path):
            try:
                info = os.stat(path)
            except OSError:
                continue
            local.append(f"{path}:{info.st_size}:{info.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(sorted(local)).encode()).hexdigest()
    return f"{module.__name__}@local:{digest}"


def _version_of(top: str) -> str:
    if top not in _VERSIONS:
        from importlib import metadata

        if top in sys.stdlib_module_names or top in sys.builtin_module_names:
            _VERSIONS[top] = "python" + sys.version.split()[0]
        else:
            names = _distributions().get(top, [])
            try:
                _VERSIONS[top] = metadata.version(names[0]) if names else "?"
            except metadata.PackageNotFoundError:
                _VERSIONS[top] = "?"
    return _VERSIONS[top]


@functools.cache
def _distributions() -> dict[str, list[str]]:
    from importlib import metadata

    return dict(metadata.packages_distributions())


@functools.cache
def _installed_roots() -> tuple[Path, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    roots |= {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib")}
    user = site.getusersitepackages()
    if isinstance(user, str):
        roots.add(user)
    return tuple(Path(root).resolve() for root in sorted(roots))


@functools.lru_cache(maxsize=4096)
def _is_installed(path: str) -> bool:
    resolved = Path(path).resolve()
    return any(root in resolved.parents for root in _installed_roots())


# ---------------------------------------------------------------------- global random state
def random_state() -> str:
    """A digest of the process-wide random generators (``random``, ``numpy.random``): a cell
    that changes it drew from or seeded them, which restoring its values cannot replay."""
    import random

    digest = hashlib.sha256(repr(random.getstate()).encode())
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        name, keys, position, has_gauss, gauss = numpy.random.get_state()
        digest.update(keys.tobytes())
        digest.update(f"{name}:{position}:{has_gauss}:{gauss}".encode())
    return digest.hexdigest()
