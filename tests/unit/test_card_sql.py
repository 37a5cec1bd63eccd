"""Pieces of the card SQL: packed counts unpack exactly to the counts they replace."""

from __future__ import annotations

import duckdb
import numpy as np

from qamqor.card.build import _packed


def test_packed_counts_equal_count_filter() -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (SELECT unnest($1) AS g, unnest($2) AS a, "
        "unnest($3) AS b)",
        [rng.integers(0, 3_000, n).tolist(), rng.integers(0, 100, n).tolist(),
         rng.choice(["x", "y", None], n).tolist()],
    )  # fmt: skip
    counts = {
        "all": "TRUE",
        "small": "a < 10",
        "big": "a >= 90",
        "x": "b = 'x'",  # NULL for a third of the rows: counted as false, like FILTER
        "not_y": "b <> 'y'",
    }
    aggs, unpack = _packed(counts, "p")
    assert len(aggs) == 2  # five counts in two sums
    packed = con.execute(
        f"WITH s AS (SELECT g, {', '.join(aggs)} FROM t GROUP BY g) "
        f"SELECT g, {', '.join(f'CAST({e} AS BIGINT)' for e in unpack.values())} FROM s ORDER BY g"
    ).fetchall()
    plain = con.execute(
        f"SELECT g, {', '.join(f'count(*) FILTER (WHERE {c})' for c in counts.values())} "
        "FROM t GROUP BY g ORDER BY g"
    ).fetchall()
    assert packed == plain


def test_packed_counts_are_exact_up_to_the_field_size() -> None:
    con = duckdb.connect()
    n = 2**17 - 1  # the largest count a field holds
    aggs, unpack = _packed({"a": "TRUE", "b": "TRUE", "c": "i % 2 = 0"}, "p")
    row = con.execute(
        f"WITH s AS (SELECT {', '.join(aggs)} FROM range({n}) r(i)) "
        f"SELECT {', '.join(f'CAST({e} AS BIGINT)' for e in unpack.values())} FROM s"
    ).fetchone()
    assert row == (n, n, (n + 1) // 2)
