"""Typed pipeline parameters, read from the notebook's ``parameters`` cell.

    lr: float = 0.1  # learning rate
    model: Literal["forest", "linear"] = "forest"  # which classifier
    layers: list[int] = [64, 32]
    limit: int | None = None

Values from ``-p NAME VALUE``, ``-f params.yaml`` and the sidebar are parsed and checked against
these annotations before any kernel starts: an unknown name or a bad value fails at once with
the parameter, the value and what was expected (papermill only warns, and injects anyway).

A comment line in the same cell declares the small values of a smoke run (``mlops-nb run
--smoke``, the test stage of ``mlops-nb cicd``)::

    # mlops: smoke n_customers=500 n_estimators=20
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import shlex
import tokenize
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from mlops_nb.errors import MlopsError


class ParameterError(MlopsError):
    """A parameter value or name that the notebook does not accept."""


@dataclass
class ParamType:
    """A parsed annotation: a base kind, element types, choices, and whether None is allowed."""

    kind: str  # int, float, bool, str, list, dict, literal, any
    items: list[ParamType] = field(default_factory=list)
    choices: list[Any] = field(default_factory=list)
    optional: bool = False

    def __str__(self) -> str:
        if self.kind == "literal":
            text = f"one of {', '.join(repr(c) for c in self.choices)}"
        elif self.items:
            text = f"{self.kind}[{', '.join(str(i) for i in self.items)}]"
        else:
            text = self.kind
        return f"{text} or None" if self.optional else text


@dataclass
class Parameter:
    name: str
    type: ParamType
    default: Any
    help: str = ""
    annotation: str = ""

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "type": str(self.type), "annotation": self.annotation,
                "default": self.default, "help": self.help,
                "choices": self.type.choices or None}  # fmt: skip


# ---------------------------------------------------------------------- reading the notebook
def parameters_cell(notebook: nbformat.NotebookNode) -> tuple[int, str] | None:
    """(index, source) of the cell tagged ``parameters``, as papermill finds it."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return index, cell.source
    return None


def load_parameters(notebook_path: str | Path) -> list[Parameter]:
    """The parameters a notebook declares (an empty list when it has no parameters cell)."""
    notebook = nbformat.read(str(notebook_path), as_version=4)
    found = parameters_cell(notebook)
    return parse_parameters(found[1]) if found else []


def parse_parameters(source: str, skipped: list[str] | None = None) -> list[Parameter]:
    """Top-level ``name: type = default  # help`` (or ``name = default``) in the cell's code.

    Like papermill's inspection, lines that do not parse are skipped, not fatal: each is
    described in ``skipped`` (when given) as ``line N: TEXT``. A ``# type: X`` comment gives
    an unannotated parameter its type, and the rest of the comment is its help.
    """
    comments = _line_comments(source)
    parameters = []
    for node in _statements(source, skipped if skipped is not None else []):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, annotation = node.target.id, ast.unparse(node.annotation)
            default = _literal_value(node.value) if node.value is not None else None
            kind = parse_annotation(node.annotation)
        elif (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            name, annotation = node.targets[0].id, ""
            default = _literal_value(node.value)
            # an expression default (``d = a == 3``) is kept as text, of no known type
            kind = _type_of_value(default) if _is_literal(node.value) else ParamType("any")
        else:
            continue
        help_text = comments.get(node.end_lineno or node.lineno, "")
        typed = _TYPE_COMMENT.fullmatch(help_text)
        if typed:
            help_text = typed["help"]
            if not annotation:
                with contextlib.suppress(SyntaxError, ValueError):
                    kind = parse_annotation(ast.parse(typed["type"], mode="eval").body)
                    annotation = typed["type"]
        parameters.append(Parameter(name, kind, default, help_text, annotation))
    return parameters


_TYPE_COMMENT = re.compile(r"type:\s*(?P<type>\S+)\s*(?P<help>.*)")
_SMOKE_LINE = re.compile(r"^[ \t]*#[ \t]*mlops:[ \t]*smoke\b(?P<values>.*)$", re.MULTILINE)


def smoke_pairs(source: str) -> list[tuple[str, str]]:
    """The smoke set a parameters cell declares, as ``-p`` pairs in the order written.

    ``# mlops: smoke n_rows=500 label='two words'``: NAME=VALUE words quoted as in a shell,
    each VALUE read as ``-p`` text is. Several such lines add up.
    """
    pairs = []
    for line in _SMOKE_LINE.finditer(source):
        try:
            words = shlex.split(line["values"])
        except ValueError as error:
            raise ParameterError(
                f"cannot read the smoke line {line[0].strip()!r}: {error}"
            ) from None
        for word in words:
            name, equals, text = word.partition("=")
            if not equals or not name.isidentifier():
                raise ParameterError(
                    f"the smoke line {line[0].strip()!r}: {word!r} is not NAME=VALUE"
                )
            pairs.append((name, text))
    return pairs


def load_smoke_pairs(notebook: str | Path | nbformat.NotebookNode) -> list[tuple[str, str]]:
    """The smoke set declared in a notebook's parameters cell (empty when there is none)."""
    if not isinstance(notebook, nbformat.NotebookNode):
        notebook = nbformat.read(str(notebook), as_version=4)
    found = parameters_cell(notebook)
    return smoke_pairs(found[1]) if found else []


def _statements(source: str, skipped: list[str]) -> list[ast.stmt]:
    """The cell's top-level statements; where the cell does not parse as a whole, statement by
    statement: from each line, the shortest run of lines that parses, else the line skipped."""
    try:
        return ast.parse(source).body
    except SyntaxError:
        pass
    lines = source.splitlines()
    statements: list[ast.stmt] = []
    start = 0
    while start < len(lines):
        if not lines[start].strip() or lines[start].lstrip().startswith("#"):
            start += 1
            continue
        for stop in range(start + 1, len(lines) + 1):
            try:
                tree = ast.parse("\n".join(lines[start:stop]))
            except SyntaxError:
                continue
            for node in tree.body:
                ast.increment_lineno(node, start)
            statements += tree.body
            start = stop
            break
        else:
            skipped.append(f"line {start + 1}: {lines[start].strip()}")
            start += 1
    return statements


def parse_annotation(node: ast.expr) -> ParamType:
    """``int``, ``list[int]``, ``Literal["a", "b"]``, ``Optional[X]``, ``X | None``..."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return parse_annotation(ast.parse(node.value, mode="eval").body)  # "int" as a string
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        nones = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
        others = [s for s in sides if s not in nones]
        if nones and len(others) == 1:
            inner = parse_annotation(others[0])
            inner.optional = True
            return inner
        return ParamType("any")
    if isinstance(node, ast.Constant) and node.value is None:
        return ParamType("any", optional=True)
    if isinstance(node, (ast.Name, ast.Attribute)):
        base = node.id if isinstance(node, ast.Name) else node.attr
        if base == "NoneType":
            return ParamType("any", optional=True)
        mapped = {"List": "list", "Dict": "dict", "Any": "any"}.get(base, base)
        return ParamType(mapped if mapped in _KINDS else "any")
    if isinstance(node, ast.Subscript):
        base = (
            node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        )
        arguments = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Literal":
            return ParamType("literal", choices=[_literal_value(a) for a in arguments])
        if base == "Optional":
            inner = parse_annotation(arguments[0])
            inner.optional = True
            return inner
        if base in ("list", "List", "dict", "Dict", "tuple", "Tuple", "set"):
            kind = "dict" if base in ("dict", "Dict") else "list"
            return ParamType(kind, items=[parse_annotation(a) for a in arguments])
    return ParamType("any")


_KINDS = ("int", "float", "bool", "str", "list", "dict", "any")


# ---------------------------------------------------------------------- checking values
def resolve(
    parameters: list[Parameter],
    cli_pairs: Iterable[tuple[str, str]] = (),
    file_values: Mapping[str, Any] | None = None,
    smoke: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Typed values for the given names: ``-f`` file values first, then the smoke set (of a
    smoke run), then ``-p`` overrides."""
    declared = {p.name: p for p in parameters}
    values: dict[str, Any] = {}
    for source, items, from_text in (
        ("file", (file_values or {}).items(), False),
        ("the smoke set", smoke, True),
        ("-p", cli_pairs, True),
    ):
        for name, raw in items:
            parameter = declared.get(name)
            if parameter is None:
                known = ", ".join(declared) or "none: the notebook has no parameters cell"
                raise ParameterError(f"unknown parameter {name!r} (from {source}); known: {known}")
            values[name] = check_value(parameter, raw, from_text=from_text)
    return values


def check_value(parameter: Parameter, raw: Any, from_text: bool = False) -> Any:
    """The value converted to the parameter's type, or a ParameterError saying why not."""
    try:
        return _convert(parameter.type, raw, from_text)
    except (ValueError, TypeError, SyntaxError) as error:
        detail = f": {error}" if str(error) else ""
        raise ParameterError(
            f"parameter {parameter.name!r}: {raw!r} is not {parameter.type}{detail}"
        ) from None


def load_values_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON) mapping of parameter values, for ``-f``."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ParameterError(f"cannot read parameters file {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ParameterError(f"parameters file {path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"parameters file {path} must be a mapping of name: value")
    return data


def _convert(kind: ParamType, raw: Any, from_text: bool) -> Any:
    if from_text and isinstance(raw, str):
        if kind.optional and raw.strip().lower() in ("none", "null", ""):
            return None
        raw = _parse_text(kind, raw)
    if raw is None:
        if kind.optional or kind.kind == "any":
            return None
        raise ValueError("None is not allowed")
    if kind.kind == "any":
        return raw
    if kind.kind == "literal":
        for choice in kind.choices:
            if raw == choice or (isinstance(choice, str) and str(raw) == choice):
                return choice
        raise ValueError("")
    if kind.kind == "bool":
        if isinstance(raw, bool):
            return raw
        raise ValueError("")
    if kind.kind == "int":
        if isinstance(raw, bool) or not isinstance(raw, int):
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            raise ValueError("")
        return raw
    if kind.kind == "float":
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ValueError("")
        return float(raw)
    if kind.kind == "str":
        if not isinstance(raw, str):
            raise ValueError("")
        return raw
    if kind.kind == "list":
        if not isinstance(raw, (list, tuple)):
            raise ValueError("")
        item = kind.items[0] if kind.items else ParamType("any")
        return [_convert(item, value, False) for value in raw]
    if kind.kind == "dict":
        if not isinstance(raw, dict):
            raise ValueError("")
        key_type, value_type = (kind.items + [ParamType("any")] * 2)[:2]
        return {
            _convert(key_type, k, False): _convert(value_type, v, False) for k, v in raw.items()
        }
    return raw


def _parse_text(kind: ParamType, text: str) -> Any:
    """What a value typed on a command line means for this kind of parameter."""
    stripped = text.strip()
    if kind.kind == "str" or (
        kind.kind == "literal" and all(isinstance(c, str) for c in kind.choices)
    ):
        return text
    if kind.kind == "bool":
        lowered = stripped.lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise ValueError("use true/false")
    if kind.kind in ("int", "float"):
        try:
            return int(stripped) if kind.kind == "int" else float(stripped)
        except ValueError:
            raise ValueError("") from None
    if kind.kind in ("list", "dict", "literal", "any"):
        try:
            return json.loads(stripped)
        except ValueError:
            pass
        try:
            return ast.literal_eval(stripped)
        except (ValueError, SyntaxError):
            if kind.kind == "any":
                return text
            raise ValueError("write it as JSON or a Python literal") from None
    return text


def _type_of_value(value: Any) -> ParamType:
    """Without an annotation, the default's type is the parameter's type (as papermill does)."""
    if value is None:
        return ParamType("any", optional=True)
    for python_type, kind in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
                              (list, "list"), (dict, "dict")):  # fmt: skip
        if isinstance(value, python_type):
            return ParamType(kind)
    return ParamType("any")


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return False
    return True


def _literal_value(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError):
        return ast.unparse(node)  # an expression default: keep its text


def _line_comments(source: str) -> dict[int, str]:
    comments = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return comments
