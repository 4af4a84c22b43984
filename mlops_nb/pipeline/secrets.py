"""Secret-looking parameters (``db_password``, ``api_token``...) never written in clear.

The log already stores them as ``***`` (``log.values.is_secret_name``). What remains is what
papermill writes: the output notebook holds an injected-parameters cell with every value as a
literal, and the same values in its metadata. So the runner hands papermill a stand-in for a
secret (``FromEnvironment``): its text is ``***`` (the metadata), and our translator writes it
as a lookup in the kernel's environment, where the value travels instead::

    api_token = __import__("os").environ.pop("MLOPS_NB_SECRET_API_TOKEN")  # secret

(``pop``: the kernel's own subprocesses do not inherit it). A scheduled run gets a secret the
same way, from ``MLOPS_NB_SECRET_<NAME>`` in its environment: schedule files refuse secret
values, which would sit in a crontab or a manifest in clear.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mlops_nb.log.values import REDACTED, is_secret_name

SECRET_ENV_PREFIX = "MLOPS_NB_SECRET_"


class FromEnvironment(str):
    """A parameter value that papermill writes as an environment lookup; its text is ``***``."""

    variable: str
    as_json: bool

    def __new__(cls, variable: str, as_json: bool = False) -> FromEnvironment:
        stand_in = super().__new__(cls, REDACTED)
        stand_in.variable = variable
        stand_in.as_json = as_json
        return stand_in

    @property
    def expression(self) -> str:
        """The Python the injected-parameters cell holds instead of the value."""
        lookup = f"__import__('os').environ.pop({self.variable!r})"
        return f"__import__('json').loads({lookup})" if self.as_json else lookup


def secret_variable(name: str) -> str:
    """The environment variable that carries parameter ``name``: ``MLOPS_NB_SECRET_API_TOKEN``."""
    return SECRET_ENV_PREFIX + re.sub(r"\W", "_", name).upper()


def hide_secrets(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(the values to give papermill, the environment to give the kernel): each secret value
    is replaced by a ``FromEnvironment`` stand-in and moved to the environment."""
    install_translator()
    shown: dict[str, Any] = {}
    environment: dict[str, str] = {}
    for name, value in values.items():
        if not is_secret_name(name) or value is None or isinstance(value, FromEnvironment):
            shown[name] = value
            continue
        variable = secret_variable(name)
        as_json = not isinstance(value, str)
        environment[variable] = json.dumps(value) if as_json else value
        shown[name] = FromEnvironment(variable, as_json)
    return shown, environment


def secrets_from_environment(
    declared: Iterable[str], values: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """``values`` plus, for each declared secret parameter not given, a stand-in for
    ``MLOPS_NB_SECRET_<NAME>`` when that variable is set (a scheduled run's way to get it);
    the kernel inherits the variable and reads it."""
    found = dict(values)
    for name in declared:
        variable = secret_variable(name)
        if name not in found and is_secret_name(name) and variable in environ:
            found[name] = FromEnvironment(variable)
    return found


def check_schedulable(values: Mapping[str, Any]) -> None:
    """Refuse secret values in a schedule (its files would hold them in clear)."""
    for name in values:
        if is_secret_name(name):
            from mlops_nb.errors import MlopsError

            raise MlopsError(
                f"parameter {name!r} looks secret and would be written in clear into the "
                f"schedule's files: leave it out and set {secret_variable(name)} in the job's "
                "environment"
            )


_INSTALLED = False


def install_translator() -> None:
    """Make papermill write ``FromEnvironment`` values as lookups (once per process; every
    other value is written exactly as papermill's own Python translator writes it)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from papermill.translators import PythonTranslator, papermill_translators

    class SecretAwareTranslator(PythonTranslator):
        @classmethod
        def translate_str(cls, val: Any) -> str:
            if isinstance(val, FromEnvironment):
                return val.expression
            return super().translate_str(val)

        @classmethod
        def assign(cls, name: str, str_val: str) -> str:
            assigned = super().assign(name, str_val)
            secret = str_val.startswith("__import__(") and "environ.pop(" in str_val
            return assigned + "  # secret" if secret else assigned

    papermill_translators.register("python", SecretAwareTranslator)
    _INSTALLED = True
