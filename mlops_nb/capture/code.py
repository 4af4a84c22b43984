"""What a cell's code reads and writes, found statically (no execution)."""

from __future__ import annotations

import ast
import hashlib
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
