"""What a cell's code reads and writes, found statically (no execution)."""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field

# Methods that change the object they are called on (pandas methods only with inplace=True).
_MUTATING_METHODS = frozenset({
    "append", "extend", "insert", "pop", "remove", "clear", "update", "sort", "fit",
    "fit_transform", "partial_fit", "set_params", "resize", "fill", "setdefault",
})  # fmt: skip


@dataclass
class CodeNames:
    """Top-level names a cell reads, assigns, and may change in place."""

    reads: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    mutates: set[str] = field(default_factory=set)

    @property
    def touched(self) -> set[str]:
        return self.reads | self.writes | self.mutates


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def names_in(source: str) -> CodeNames:
    """Names read/written by ``source``; an unparsable cell (magics, syntax errors) gives none."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return CodeNames()
    collector = _Collector()
    collector.visit(tree)
    found = collector.names
    found.reads -= collector.local_only
    return found


class _Collector(ast.NodeVisitor):
    def __init__(self) -> None:
        self.names = CodeNames()
        self.local_only: set[str] = set()  # names bound inside functions/comprehensions

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.names.reads.add(node.id)
        else:
            self.names.writes.add(node.id)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        # df["x"] = ... changes df in place
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            root = _root_name(node.value)
            if root:
                self.names.mutates.add(root)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            root = _root_name(node.value)
            if root:
                self.names.mutates.add(root)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            root = _root_name(func.value)
            inplace = any(
                k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value
                for k in node.keywords
            )
            if root and (func.attr in _MUTATING_METHODS or inplace):
                self.names.mutates.add(root)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.names.writes.add(node.name)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for decorator in node.decorator_list:
            self.visit(decorator)
        inner = _Collector()
        for statement in node.body:
            inner.visit(statement)
        arguments = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        # globals a function body reads count as reads of the cell
        self.names.reads |= inner.names.reads - inner.names.writes - arguments
        self.names.mutates |= inner.names.mutates - inner.names.writes - arguments

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        arguments = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        inner = _Collector()
        inner.visit(node.body)
        self.names.reads |= inner.names.reads - arguments

    def _comprehension(self, node: ast.AST) -> None:
        inner = _Collector()
        for child in ast.iter_child_nodes(node):
            inner.visit(child)
        targets = {
            n.id
            for generator in node.generators  # type: ignore[attr-defined]
            for n in ast.walk(generator.target)
            if isinstance(n, ast.Name)
        }
        self.names.reads |= inner.names.reads - targets
        self.names.mutates |= inner.names.mutates - targets

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            if name != "*":
                self.names.writes.add(name)

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.names.writes.add(node.name)
        for base in node.bases:
            self.visit(base)


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


# ---------------------------------------------------------------------- facts for the cache key
_READER_CALL = re.compile(r"(read|scan|load|open|imread|loadtxt|genfromtxt|fromfile)(_\w+)?")
_DYNAMIC_CALLS = frozenset({"exec", "eval", "globals", "vars", "locals", "__import__", "compile"})


@dataclass(frozen=True)
class Definition:
    """A top-level ``def``/``class`` (or ``name = lambda ...``) statement of a cell."""

    name: str
    source: str  # the statement as written, decorators included
    facts: CodeFacts


@dataclass
class CodeFacts:
    """What a cache key needs to know about code beyond the names it reads and writes."""

    reads: set[str] = field(default_factory=set)  # globals read, method bodies included
    strings: set[str] = field(default_factory=set)  # string constants: paths hide in them
    reader_calls: set[str] = field(default_factory=set)  # read_csv(...), open(...), load(...)
    # reader -> the variables its first argument names, when every call passes a bare name
    # (``read_csv(data_path)``): a reader whose path variables are all empty reads nothing
    reader_paths: dict[str, set[str] | None] = field(default_factory=dict)
    dynamic: set[str] = field(default_factory=set)  # exec/eval/globals(): reads nobody can see
    assigns_globals: set[str] = field(default_factory=set)  # `global x` then x = ...
    definitions: dict[str, Definition] = field(default_factory=dict)  # top-level ones


def code_facts(source: str) -> CodeFacts | None:
    """Facts about ``source`` and each of its top-level definitions; None if it is not plain
    Python (a magic or shell line hides what it reads)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    facts = _facts_of(tree)
    rebound: set[str] = set()
    for statement in tree.body:
        named = _defined_name(statement)
        if named is not None:
            segment = _segment(source, statement)
            facts.definitions[named] = Definition(named, segment, _facts_of(statement))
        else:
            written = names_in(ast.unparse(statement))
            rebound |= written.writes | written.mutates
    for name in rebound:  # `f = wrap(f)` or `f.x = 1` beside `def f`: the source is not all
        facts.definitions.pop(name, None)
    return facts


def definitions_in(source: str) -> dict[str, Definition]:
    """Top-level definitions of a cell; IPython lines (``%``, ``!``) are ignored."""
    python = "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )
    facts = code_facts(python)
    return facts.definitions if facts is not None else {}


def _defined_name(statement: ast.stmt) -> str | None:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return statement.name
    if (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
        and isinstance(statement.value, ast.Lambda)
    ):
        return statement.targets[0].id
    return None


def _segment(source: str, node: ast.stmt) -> str:
    decorators = getattr(node, "decorator_list", [])
    start = min([node.lineno, *(d.lineno for d in decorators)])
    lines = source.splitlines()[start - 1 : node.end_lineno]
    return "\n".join(lines)


def _facts_of(node: ast.AST) -> CodeFacts:
    collector = _Collector()
    collector.visit(node)
    facts = CodeFacts(reads=set(collector.names.reads))
    for inner in ast.walk(node):
        if isinstance(inner, ast.ClassDef):  # method bodies read globals too
            facts.reads |= _class_reads(inner)
        elif isinstance(inner, ast.Global):
            facts.assigns_globals |= set(inner.names)
            facts.reads |= set(inner.names)
        elif isinstance(inner, ast.Constant) and isinstance(inner.value, str):
            facts.strings.add(inner.value)
        elif isinstance(inner, ast.Call):
            func = inner.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if isinstance(func, ast.Name) and called in _DYNAMIC_CALLS:
                facts.dynamic.add(called)
            if (inner.args or inner.keywords) and _READER_CALL.fullmatch(called):
                facts.reader_calls.add(called)
                first = inner.args[0] if inner.args else None
                named = {first.id} if isinstance(first, ast.Name) else None
                known = facts.reader_paths.get(called, set())
                facts.reader_paths[called] = None if named is None or known is None else (
                    known | named)  # fmt: skip
    return facts


def _class_reads(node: ast.ClassDef) -> set[str]:
    collector = _Collector()
    for part in [*node.bases, *(k.value for k in node.keywords), *node.decorator_list]:
        collector.visit(part)
    for statement in node.body:
        collector.visit(statement)
    return collector.names.reads


_KEPT_MAGICS = ("%load_ext", "%mlops track")


def definitions_only(source: str) -> str:
    """The imports, ``def``/``class`` (and ``f = lambda``) statements and mlops setup magics
    of a cell's code: what a skipped or cached cell must still run."""
    kept_magics = [line for line in source.splitlines() if line.lstrip().startswith(_KEPT_MAGICS)]
    python = "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return "\n".join(kept_magics)
    kept = [
        _segment(python, node)  # decorators included
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom)) or _defined_name(node) is not None
    ]
    return "\n".join([*kept_magics, *kept])
