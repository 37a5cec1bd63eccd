"""Comparisons of Parquet outputs shared by the tests."""

from __future__ import annotations

from pathlib import Path

import duckdb


def same_rows(a: Path, b: Path) -> int:
    """The rows of two Parquet files are the same (doubles to 6 decimals; any order, same
    schema); their count."""
    con = duckdb.connect()
    cols = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{a}')").fetchall()
    assert cols == con.execute(f"DESCRIBE SELECT * FROM read_parquet('{b}')").fetchall()
    row = ", ".join(f"round({c}, 6)" if t == "DOUBLE" else c for c, t, *_ in cols)
    one, other = (f"SELECT {row} FROM read_parquet('{p}')" for p in (a, b))
    [(differ,)] = con.execute(
        f"SELECT count(*) FROM (({one} EXCEPT ALL {other}) UNION ALL ({other} EXCEPT ALL {one}))"
    ).fetchall()
    [(rows,)] = con.execute(f"SELECT count(*) FROM read_parquet('{a}')").fetchall()
    assert differ == 0
    return rows
