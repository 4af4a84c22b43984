"""scikit-learn estimators as plain records: what kind of model, its parameters, what it
was fitted on and what it produces, and a cheap token that says when it was (re)fitted.

Estimators are recognised by duck typing (``get_params`` and ``fit``), so models that follow
scikit-learn's API (XGBoost, LightGBM...) are described too. scikit-learn itself is imported
only when an estimator is actually looked at.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any

_SMALL_ARRAY = 100  # parameter arrays up to this many values are logged whole
_TEXT_CHARS = 200  # reprs of odd parameter values are cut to this length
_PLAIN = (type(None), bool, int, float, str)  # parameter values that hold no estimator


def is_estimator(value: Any) -> bool:
    """An estimator instance (not a class): has callable ``get_params`` and ``fit``."""
    if isinstance(value, type):
        return False
    try:
        return callable(getattr(value, "get_params", None)) and callable(
            getattr(value, "fit", None)
        )
    except Exception:  # objects whose __getattr__ misbehaves are not estimators
        return False


def is_fitted(value: Any) -> bool:
    """scikit-learn's ``check_is_fitted`` as a yes/no; never raises."""
    if not is_estimator(value):
        return False
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(value)
    except Exception:  # NotFittedError, or not a scikit-learn estimator after all
        return False
    return True


def fit_token(value: Any) -> tuple | None:
    """Identity of the fitted state: equal while the estimator is untouched, different once
    it is fitted again; None when not fitted.

    ``fit`` binds new objects to the fitted attributes (those ending in ``_``), so their ids
    change; a Pipeline refits its steps in place, so steps are looked into. It costs
    microseconds whatever the model's size: only ids are read, never the fitted values. A refit
    that binds only interned values (small ints, None) to its attributes would go unseen.
    """
    if not is_fitted(value):
        return None
    return _state_ids(value)


def describe_estimator(value: Any) -> dict:
    """A JSON-able description (see the keys below); works on unfitted estimators too."""
    fitted = is_fitted(value)
    return {
        "class_name": _class_name(value),
        "kind": _kind(value),
        "fitted": fitted,
        "params": _json_params(value),
        "n_features_in": _n_features_in(value),
        "feature_names_in": _string_list(_attribute(value, "feature_names_in_")),
        "output_features": _output_features(value) if fitted else None,
        "classes": _classes(value),
        "steps": _steps(value),
    }


def recorded_kind(class_name: str, params: dict | None = None) -> str:
    """classifier, regressor, clusterer, transformer or estimator for a model known only by
    its record (dotted class name, parameters as ``describe_estimator`` gave them).

    A Pipeline is what its last step is; a meta-estimator (a search, a calibrator) what its
    ``estimator`` is. The class is imported from its recorded path and asked through
    scikit-learn's mixins or ``_estimator_type``; a class that cannot be imported (defined in
    a notebook, a package not installed here) is judged by its name."""
    params = params if isinstance(params, dict) else {}
    short = class_name.rsplit(".", 1)[-1]
    steps = params.get("steps")
    if short == "Pipeline" and isinstance(steps, list) and steps:
        last = steps[-1]
        step = last[1] if isinstance(last, list | tuple) and len(last) >= 2 else last
        if isinstance(step, str) and step not in ("passthrough", "drop"):
            return recorded_kind(step)
        return "transformer" if len(steps) > 1 else "estimator"
    cls = _import_class(class_name)
    kind = _class_kind(cls) if cls is not None else None
    if kind is None:
        inner = next(
            (params[key] for key in ("estimator", "base_estimator", "regressor", "classifier")
             if isinstance(params.get(key), str)), None,
        )  # fmt: skip
        kind = recorded_kind(inner) if inner else _kind_by_name(short)
    return kind


def _import_class(class_name: str) -> type | None:
    module, _, qualname = class_name.rpartition(".")
    if not module or module == "__main__":
        return None
    import importlib

    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:  # not installed here, renamed since, or broken on import
        return None
    return found if isinstance(found, type) else None


def _class_kind(cls: type) -> str | None:
    try:
        from sklearn.base import ClassifierMixin, ClusterMixin, RegressorMixin, TransformerMixin
    except ImportError:
        return None
    for mixin, kind in ((ClassifierMixin, "classifier"), (RegressorMixin, "regressor"),
                        (ClusterMixin, "clusterer")):  # fmt: skip
        if issubclass(cls, mixin):
            return kind
    declared = getattr(cls, "_estimator_type", None)  # a property on meta-estimators
    if declared in ("classifier", "regressor", "clusterer"):
        return declared
    if issubclass(cls, TransformerMixin):
        return "transformer"
    return None


def _kind_by_name(short: str) -> str:
    lowered = short.lower()
    if short.endswith("NB") or any(word in lowered for word in ("classif", "logistic", "svc")):
        return "classifier"
    if any(word in lowered for word in ("regress", "svr", "lasso", "ridge", "elasticnet")):
        return "regressor"
    if any(word in lowered for word in ("cluster", "means", "dbscan", "optics", "birch")):
        return "clusterer"
    if any(word in lowered for word in ("scaler", "encoder", "transformer", "pca", "imputer")):
        return "transformer"
    return "estimator"


# --- fit tokens ----------------------------------------------------------------------------


def _state_ids(value: Any) -> tuple:
    fitted = tuple(
        (name, id(attribute))
        for name, attribute in getattr(value, "__dict__", {}).items()
        if name.endswith("_") and not name.startswith("_")
    )
    nested = tuple(_state_ids(inner) for inner in _inner_estimators(value))
    return (id(value), fitted, nested)


def _inner_estimators(value: Any) -> list[Any]:
    """Estimators held as parameters (Pipeline steps, a ColumnTransformer's transformers, a
    meta-estimator's ``estimator``): they may be fitted in place. Read from the instance's
    attributes, not get_params(), which inspects signatures and is a hundred times slower."""
    inner = []
    for name, param in getattr(value, "__dict__", {}).items():
        if name.endswith("_") or name.startswith("_") or isinstance(param, _PLAIN):
            continue
        if is_estimator(param):
            inner.append(param)
        elif isinstance(param, list | tuple):
            for item in param:
                if isinstance(item, tuple) and len(item) >= 2 and is_estimator(item[1]):
                    inner.append(item[1])  # (name, estimator[, columns])
                elif is_estimator(item):
                    inner.append(item)
    return inner


# --- describing ----------------------------------------------------------------------------


def _class_name(value: Any) -> str:
    """The shortest public path of the estimator's class: ``sklearn.ensemble.Random...``
    rather than ``sklearn.ensemble._forest.RandomForestClassifier``."""
    return _public_path(type(value))


@functools.lru_cache(maxsize=512)
def _public_path(cls: type) -> str:
    """module.qualname, with the module shortened to the first parent package that exports
    the class (only packages already imported are looked at: nothing gets imported here)."""
    module = cls.__module__ or ""
    parts = module.split(".")
    for end in range(1, len(parts)):
        candidate = ".".join(parts[:end])
        if getattr(sys.modules.get(candidate), cls.__qualname__, None) is cls:
            return f"{candidate}.{cls.__qualname__}"
    return f"{module}.{cls.__qualname__}" if module else cls.__qualname__


def _kind(value: Any) -> str:
    """classifier, regressor, clusterer, transformer, pipeline, or estimator."""
    from sklearn.pipeline import Pipeline

    if isinstance(value, Pipeline):
        return "pipeline"
    estimator_type = _estimator_type(value)
    if estimator_type in ("classifier", "regressor", "clusterer"):
        return estimator_type
    if callable(getattr(value, "transform", None)) or callable(
        getattr(value, "fit_transform", None)
    ):
        return "transformer"
    return "estimator"


def _estimator_type(value: Any) -> str | None:
    """scikit-learn's estimator type, from its tags (1.6+) or the older attribute."""
    try:
        from sklearn.utils import get_tags
    except ImportError:  # scikit-learn before 1.6
        return getattr(value, "_estimator_type", None)
    try:
        return get_tags(value).estimator_type
    except Exception:  # an estimator that does not implement tags
        return getattr(value, "_estimator_type", None)


def _json_params(value: Any) -> dict:
    try:
        params = value.get_params(deep=False)
    except Exception:
        return {}
    return {str(name): _json_safe(param) for name, param in params.items()}


def _json_safe(value: Any) -> Any:
    """Parameter values that json.dumps accepts and a person can read."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if is_estimator(value):
        return _class_name(value)
    if isinstance(value, type):
        return _public_path(value)
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((_json_safe(item) for item in value), key=repr)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # numpy arrays, pandas objects
        return _json_array(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return _json_safe(item())
    if callable(value):
        return (
            getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or _repr(value)
        )
    return _repr(value)


def _json_array(value: Any) -> Any:
    import numpy as np

    array = np.asarray(value)
    if array.ndim == 0:
        return _json_safe(array.item())
    if array.size <= _SMALL_ARRAY:
        return [_json_safe(item) for item in array.tolist()]
    shape = "x".join(str(n) for n in array.shape)
    return f"{type(value).__name__}({shape}, {array.dtype})"


def _repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _TEXT_CHARS else text[: _TEXT_CHARS - 1] + "\u2026"


def _attribute(value: Any, name: str) -> Any:
    """A fitted attribute or None: properties of unfitted meta-estimators raise."""
    try:
        return getattr(value, name, None)
    except Exception:
        return None


def _n_features_in(value: Any) -> int | None:
    n = _attribute(value, "n_features_in_")
    return int(n) if n is not None else None


def _string_list(values: Any) -> list[str] | None:
    if values is None:
        return None
    return [str(item) for item in values]


def _output_features(value: Any) -> list[str] | None:
    """get_feature_names_out() where the estimator (or every step of it) supports it."""
    method = _attribute(value, "get_feature_names_out")
    if not callable(method):
        return None
    try:
        return _string_list(method())
    except Exception:  # a step without feature names (a classifier at the end of a Pipeline)
        return None


def _classes(value: Any) -> list | None:
    """The classes a classifier predicts, as strings (a list per output when several)."""
    classes = _attribute(value, "classes_")
    if classes is None:
        return None
    if isinstance(classes, list) and classes and hasattr(classes[0], "__len__"):
        return [_string_list(output) for output in classes]
    return _string_list(classes)


def _steps(value: Any) -> list[list] | None:
    """Pipeline: [name, class]; ColumnTransformer: [name, class, columns], the fitted
    transformers once fitted (with the remainder); FeatureUnion: [name, class]."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(value, Pipeline):
        return [[str(name), _step_name(step)] for name, step in value.steps]
    if isinstance(value, ColumnTransformer):
        transformers = _attribute(value, "transformers_") or value.transformers
        return [
            [str(name), _step_name(step), _json_safe(columns)]
            for name, step, columns in transformers
        ]
    if isinstance(value, FeatureUnion):
        return [[str(name), _step_name(step)] for name, step in value.transformer_list]
    return None


def _step_name(step: Any) -> str:
    """A step's class, or the word standing in for one ("drop", "passthrough")."""
    if step is None:
        return "passthrough"
    return step if isinstance(step, str) else _class_name(step)
