"""The batch engine: one DuckDB connection factory and atomic step outputs.

Batch steps are SQL over Parquet files. DuckDB is the embedded default; the same SQL is kept
portable (plain joins, aggregates, CASE) so that it can be transpiled for Spark by SQLGlot.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


def connect(
    threads: int | None = None, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection sized for this machine (override with QAMQOR_* env)."""
    con = duckdb.connect(":memory:")
    threads = threads or int(os.environ.get("QAMQOR_THREADS", os.cpu_count() or 2))
    con.execute(f"SET threads = {threads}")
    limit = memory_limit or os.environ.get("QAMQOR_MEMORY_LIMIT")
    if limit:
        con.execute(f"SET memory_limit = '{limit}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def sql_path(path: Path) -> str:
    """A file path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `final` whole, on failure it vanishes.

    A step killed half-way leaves `final` exactly as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
