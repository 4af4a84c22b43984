"""Quoting values and names for SQL text, in one place (DuckDB's rules: double the quote)."""


def literal(text: str) -> str:
    """``it's`` -> ``'it''s'``: a string literal."""
    return "'" + text.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """``params.lr`` -> ``"params.lr"``: a quoted column or table name."""
    return '"' + name.replace('"', '""') + '"'
