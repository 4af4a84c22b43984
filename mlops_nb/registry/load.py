"""Loading a registered model safely: by reference, sha256 checked, skops with a trusted list.

A reference is ``NAME`` (the latest version), ``NAME@ALIAS`` or ``NAME:VERSION``. The file is
hashed before it is read; a mismatch means it was changed after registration and it is refused.
skops refuses any type it does not know to be safe unless the caller lists it: we trust a short
list of types plain scikit-learn models need (``TRUSTED_TYPES``) and whatever the caller adds
with ``trust=``; anything else is refused with the list of types in the message. Pickle files
load only with ``allow_pickle=True`` and a warning: unpickling runs arbitrary code.

A model can also be exported to a folder (``model.skops`` + ``manifest.json``) that serves
without the log, which is what the deploy files copy into an image.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_nb.errors import MlopsError
from mlops_nb.registry.signature import Signature

# Types skops does not trust by default but scikit-learn's own estimators are made of.
TRUSTED_TYPES = (
    "sklearn.tree._tree.Tree",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils._bunch.Bunch",
    "numpy.dtype",
    "collections.OrderedDict",
)
MANIFEST = "manifest.json"
_REF = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:@(?P<alias>[A-Za-z0-9_.-]+)|:(?P<version>\d+))?$")


class ModelLoadError(MlopsError):
    """A model that may not or cannot be loaded (unknown, tampered, untrusted types)."""


@dataclass
class LoadedModel:
    """A fitted inference pipeline ready to predict, with what the registry knows about it."""

    name: str
    version: int
    pipeline: Any
    signature: Signature
    outputs: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    record: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ModelRef:
    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        return f"{self.name}:{self.version}" if self.version is not None else self.name


def parse_ref(text: str) -> ModelRef:
    """``churn``, ``churn@champion`` or ``churn:3``."""
    match = _REF.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ModelLoadError(
            f"bad model reference {text!r}: use NAME, NAME@ALIAS or NAME:VERSION "
            "(letters, digits, _ . -)"
        )
    version = match["version"]
    return ModelRef(match["name"], match["alias"], int(version) if version else None)


def resolve(log: Any, ref: str | ModelRef) -> dict[str, Any]:
    """The version record a reference points at now."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    record = log.model_version(ref.name, ref.version, ref.alias)
    if record is None:
        what = f"alias {ref.alias!r}" if ref.alias else (
            f"version {ref.version}" if ref.version is not None else "versions")  # fmt: skip
        raise ModelLoadError(f"model {ref.name!r} has no {what}: see mlops-nb models list")
    return record


def load_model(
    log: Any, ref: str | ModelRef, trust: Iterable[str] = (), allow_pickle: bool = False
) -> LoadedModel:
    """The pipeline of a registered version, checked (sha256) and loaded (skops)."""
    record = resolve(log, ref)
    sha = record.get("artifact_sha256")
    if not isinstance(sha, str):
        raise ModelLoadError(f"{record['name']}:{record['version']} has no stored model file")
    path = log.artifact_file(f"{sha[:2]}/{sha}")
    pipeline = load_file(path, sha, str(record.get("format") or "skops"), trust, allow_pickle)
    return _loaded(record, pipeline)


def load_file(
    path: Path, sha256: str, fmt: str, trust: Iterable[str] = (), allow_pickle: bool = False
) -> Any:
    """Hash-check then deserialise one model file."""
    if not path.is_file():
        raise ModelLoadError(f"the model file {path} is missing")
    if file_sha256(path) != sha256:
        raise ModelLoadError(
            f"{path} does not match its recorded sha256 {sha256[:12]}…: it was changed after "
            "registration; refusing to load it"
        )
    if fmt == "pickle":
        if not allow_pickle:
            raise ModelLoadError(
                "this model was saved with pickle, which runs code when loaded: pass "
                "allow_pickle=True (--allow-pickle) only if you trust who made it"
            )
        warnings.warn(f"loading {path.name} with pickle: it can run arbitrary code", stacklevel=2)
        import pickle

        return pickle.loads(path.read_bytes())  # noqa: S301 - explicit opt-in above
    import skops.io

    allowed = set(TRUSTED_TYPES) | set(trust)
    untrusted = [t for t in skops.io.get_untrusted_types(file=path) if t not in allowed]
    if untrusted:
        raise ModelLoadError(
            f"{path.name} holds types that are not trusted: {', '.join(untrusted)}; "
            "if you trust them, pass trust=[...] (--trust TYPE)"
        )
    trusted = list(allowed & set(skops.io.get_untrusted_types(file=path)))
    return skops.io.load(path, trusted=trusted)


def export_model(log: Any, ref: str | ModelRef, out: Path) -> Path:
    """Copy a version's model file and a manifest (what it is, its sha256, signature,
    outputs, packages) into ``out``: all a server needs, without the log."""
    record = resolve(log, ref)
    sha = record.get("artifact_sha256")
    if not isinstance(sha, str):
        raise ModelLoadError(f"{record['name']}:{record['version']} has no stored model file")
    out.mkdir(parents=True, exist_ok=True)
    fmt = str(record.get("format") or "skops")
    target = out / ("model.skops" if fmt == "skops" else "model.pkl")
    shutil.copyfile(log.artifact_file(f"{sha[:2]}/{sha}"), target)
    manifest = {
        "name": record["name"], "version": int(record["version"]), "file": target.name,
        "sha256": sha, "format": fmt, "signature": record.get("signature"),
        "outputs": record.get("outputs"), "packages": record.get("packages"),
        "metrics": record.get("metrics"), "run_id": record.get("run_id"),
    }  # fmt: skip
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return out / MANIFEST


def load_exported(folder: Path, trust: Iterable[str] = (), allow_pickle: bool = False):
    """A model exported by ``export_model``; its file's sha256 is checked against the
    manifest before anything is deserialised."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{folder} has no readable {MANIFEST}: {error}") from None
    pipeline = load_file(folder / manifest["file"], manifest["sha256"], manifest["format"],
                         trust, allow_pickle)  # fmt: skip
    return _loaded(manifest, pipeline)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _loaded(record: dict[str, Any], pipeline: Any) -> LoadedModel:
    return LoadedModel(
        name=str(record["name"]), version=int(record["version"]), pipeline=pipeline,
        signature=Signature.from_dict(record.get("signature")),
        outputs=record.get("outputs") or {}, sha256=str(record.get("artifact_sha256")
                                                        or record.get("sha256")),
        record=record,
    )  # fmt: skip
