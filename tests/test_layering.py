"""The layering rules of DESIGN.md, checked on the source: SQL only in log/, imports one way."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mlops_nb"
_SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+INTO\b|\bDELETE\s+FROM\b|\bUPDATE\s+\w+\s+SET\b"
    r"|\bCREATE\s+(TABLE|VIEW)\b|\bWHERE\b|\bQUALIFY\b|\bORDER\s+BY\b"
)
# What the log's query methods take as SQL text: only a user's own text may pass through.
_SQL_ARGUMENTS = {"sql": {0, "query"}, "runs": {1, 2, "where", "order_by"},
                  "count_runs": {1, "where"}}  # fmt: skip


def modules(*, outside: str | None = None) -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    return [p for p in found if outside is None or PACKAGE / outside not in p.parents]


def _messages(tree: ast.AST) -> set[int]:
    """ids of string nodes that are help texts or error messages (they may show SQL)."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        spans: list[ast.AST] = []
        if isinstance(node, ast.keyword) and node.arg == "help":
            spans.append(node.value)
        if isinstance(node, ast.Call):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
                node.func, "id", "")  # fmt: skip
            if callee.endswith("Error"):
                spans += node.args
        for span in spans:
            allowed |= {id(inner) for inner in ast.walk(span)}
    return allowed


@pytest.mark.parametrize("path", modules(outside="log"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_sql_text_outside_the_log_package(path):
    tree = ast.parse(path.read_text())
    allowed = _messages(tree)
    found = [
        f"line {node.lineno}: {node.value[:60]!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in allowed and _SQL.search(node.value)
    ]  # fmt: skip
    assert not found, f"SQL text in {path.name} (ask log/ by a named method): {found}"


@pytest.mark.parametrize("path", modules(outside="log"), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_but_a_users_own_text_is_passed_to_the_log_as_sql(path):
    """log.sql / log.runs(where=, order_by=) receive a variable (the user's text), never a
    string built here: programs use the named queries and ``filters=``/``Sort``."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        positions = _SQL_ARGUMENTS.get(node.func.attr)
        if positions is None:
            continue
        given = [*enumerate(node.args), *((k.arg, k.value) for k in node.keywords)]
        for where, value in given:
            if where in positions and _built_text(value):
                bad.append(f"line {node.lineno}: {node.func.attr}(... {ast.unparse(value)[:50]})")
    assert not bad, f"{path.name} builds SQL text for the log: {bad}"


def _built_text(node: ast.AST) -> bool:
    """A string written here: a literal, an f-string, or text glued or formatted from them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _built_text(node.left) or _built_text(node.right)
    if isinstance(node, ast.IfExp):
        return _built_text(node.body) or _built_text(node.orelse)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("format", "join") and _built_text(node.func.value)
    return False


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


_RULES = [  # (package, what its modules may not import)
    ("log", ("mlops_nb.capture", "mlops_nb.notebook", "mlops_nb.pipeline", "mlops_nb.server",
             "mlops_nb.docs", "mlops_nb.cli", "IPython", "tornado", "jupyter_server")),
    ("capture", ("mlops_nb.notebook", "mlops_nb.pipeline", "mlops_nb.server", "mlops_nb.docs",
                 "mlops_nb.cli", "IPython", "tornado", "jupyter_server", "duckdb")),
    ("pipeline", ("mlops_nb.notebook", "mlops_nb.server", "IPython", "tornado", "jupyter_server")),
    ("docs", ("mlops_nb.notebook", "mlops_nb.server", "IPython", "tornado", "jupyter_server")),
]  # fmt: skip


@pytest.mark.parametrize(("package", "forbidden"), _RULES, ids=[rule[0] for rule in _RULES])
def test_imports_go_one_way(package, forbidden):
    broken = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules()
        if PACKAGE / package in path.parents
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert not broken, broken


def test_duckdb_is_opened_only_in_the_log_package():
    users = [p.relative_to(PACKAGE) for p in modules(outside="log") if "duckdb" in _imports(p)]
    assert not users, f"import duckdb outside log/: {users}"


def test_documents_cited_in_the_code_are_in_the_repository():
    """A docstring that says "see docs/x.md" must point at a file a reader of the repo has."""
    root = PACKAGE.parent
    cited = {
        (path.relative_to(PACKAGE), match)
        for path in modules()
        for match in re.findall(r"\b((?:[\w.-]+/)+[\w.-]+\.md)\b", path.read_text())
    }
    missing = [f"{where}: {name}" for where, name in cited if not (root / name).is_file()]
    assert cited and not missing, missing


def test_make_test_checks_lint_and_formatting():
    recipe = (PACKAGE.parent / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "ruff check" in recipe and "ruff format --check" in recipe
