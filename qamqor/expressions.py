"""Expressions over card indicators, as written in methodology and rule files.

An expression is a small SQL expression (DuckDB dialect): arithmetic, comparisons, AND/OR/NOT,
CASE, coalesce, greatest/least, abs, round and literals over known names. SQLGlot parses it;
anything else (subqueries, unknown names, other functions) is rejected with a clear message, so
a file can never inject SQL or refer to data that does not exist. The same text then runs on
DuckDB and, transpiled, on Spark.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

ALLOWED_FUNCTIONS = (exp.Greatest, exp.Least, exp.Coalesce, exp.Abs, exp.Round, exp.Case, exp.If)
OPERATORS = (exp.Connector, exp.Binary, exp.Unary, exp.Predicate, exp.Paren, exp.Not)
FORBIDDEN = (exp.Select, exp.Subquery, exp.Star, exp.Query, exp.Command, exp.Anonymous)


class ExpressionError(ValueError):
    """An expression that does not parse or uses something it may not."""


def check_expression(text: str, names: Iterable[str]) -> exp.Expression:
    """Parse `text` and check it uses only `names` and allowed constructs; return its tree."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("an expression must be a non-empty string")
    try:
        tree = sqlglot.parse_one(text, read="duckdb")
    except ParseError as e:
        raise ExpressionError(
            f"cannot parse expression {text!r}: {e.errors[0]['description']}"
        ) from None
    known = set(names)
    for node in tree.walk():
        if isinstance(node, FORBIDDEN):
            raise ExpressionError(f"{node.sql('duckdb')!r} is not allowed in an expression")
        if isinstance(node, exp.Column):
            if node.table or node.name not in known:
                raise ExpressionError(f"unknown indicator {node.sql('duckdb')!r} in {text!r}")
        elif isinstance(node, exp.Func) and not isinstance(node, ALLOWED_FUNCTIONS + OPERATORS):
            raise ExpressionError(f"function {node.sql('duckdb')!r} is not allowed in {text!r}")
    return tree


def names_used(tree: exp.Expression) -> set[str]:
    """The indicator names an expression reads."""
    return {c.name for c in tree.find_all(exp.Column)}
