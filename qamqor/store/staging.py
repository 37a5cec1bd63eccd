"""Bulk replacement of a PostgreSQL table's contents: load a staging copy, then swap it in.

`create` makes `T_staging` with T's columns, defaults and checks but no index; `copy_in` streams
rows into it with COPY (over one or more connections); `index` builds T's indexes on it afterwards,
side by side (much faster than keeping them up to date row by row), and analyses it; `swap`, inside
the caller's transaction, retires T and renames the staging table and its indexes to T's names.
Until that transaction commits every reader sees the old T; a crash before leaves only a staging
table, which the next `create` drops."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, text

STAGING = "_staging"
MAINTENANCE_MEMORY = "1GB"  # for each index build of a load (the server's default is 64 MB)


def _indexes(conn: Connection, table: str) -> list[tuple[str, str, bool]]:
    """(name, definition, is the primary key) of each index of `table`."""
    rows = conn.execute(
        text(
            """SELECT i.indexname, i.indexdef, c.contype = 'p'
               FROM pg_indexes i
               LEFT JOIN pg_constraint c
                 ON c.conname = i.indexname AND c.conrelid = to_regclass(:t)
               WHERE i.schemaname = current_schema() AND i.tablename = :t
               ORDER BY i.indexname"""
        ),
        {"t": table},
    )
    return [(name, definition, bool(pk)) for name, definition, pk in rows]


def create(conn: Connection, table: str) -> str:
    """A fresh, unindexed `table_staging` (any leftover of a crashed load is dropped first)."""
    staging = table + STAGING
    conn.execute(text(f'DROP TABLE IF EXISTS "{staging}"'))
    conn.execute(
        text(
            f'CREATE TABLE "{staging}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
            "INCLUDING IDENTITY INCLUDING GENERATED)"
        )
    )
    return staging


def _csv_producer(batches: Iterable, consumers: int) -> queue.Queue:
    """CSV chunks (no header) made on a producer thread so that DuckDB and COPY work at the
    same time; `consumers` end markers (None, or the producer's exception) close the queue."""
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4 * consumers)
    options = pacsv.WriteOptions(include_header=False)

    def produce() -> None:
        end: BaseException | None = None
        try:
            for batch in batches:
                buf = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buf, options)
                chunks.put(buf.getvalue())
        except BaseException as e:  # handed to the consumers, which raise it
            end = e
        for _ in range(consumers):
            chunks.put(end)

    threading.Thread(target=produce, name="staging-csv", daemon=True).start()
    return chunks


def copy_in(
    engine: Engine, staging: str, columns: list[str], batches: Iterable, streams: int = 1
) -> int:
    """COPY Arrow record batches (exact: shortest round-trip floats) into `staging` over
    `streams` connections at once (each commits its share; the table is unread until `swap`)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    chunks = _csv_producer(batches, streams)

    def consume() -> int:
        failed: BaseException | None = None
        with engine.begin() as conn, conn.connection.driver_connection.cursor() as cur:
            with cur.copy(f'COPY "{staging}" ({cols}) FROM STDIN (FORMAT csv)') as cp:
                while (chunk := chunks.get()) is not None:
                    if isinstance(chunk, BaseException):
                        failed = chunk
                        break
                    cp.write(chunk)
                if failed is not None:
                    raise failed
            return cur.rowcount

    if streams == 1:
        return consume()
    with ThreadPoolExecutor(streams) as pool:
        return sum(f.result() for f in [pool.submit(consume) for _ in range(streams)])


def index(engine: Engine, table: str) -> None:
    """Build `table`'s indexes (primary key included) on its staging copy, each on its own
    connection at the same time, then ANALYZE it."""
    staging = table + STAGING
    with engine.connect() as conn:
        indexes = _indexes(conn, table)

    def build(name: str, definition: str) -> None:
        ddl = definition.replace(f"INDEX {name} ON ", f'INDEX "{name}{STAGING}" ON ', 1)
        ddl = ddl.replace(f".{table} ", f'."{staging}" ', 1)
        with engine.begin() as conn:
            conn.execute(text(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_MEMORY}'"))
            conn.execute(text(ddl))

    with ThreadPoolExecutor(max(1, len(indexes))) as pool:
        for job in [pool.submit(build, name, definition) for name, definition, _ in indexes]:
            job.result()
    with engine.begin() as conn:
        for name, _, pk in indexes:
            if pk:
                conn.execute(
                    text(
                        f'ALTER TABLE "{staging}" ADD CONSTRAINT "{name}{STAGING}" '
                        f'PRIMARY KEY USING INDEX "{name}{STAGING}"'
                    )
                )
        conn.execute(text(f'ANALYZE "{staging}"'))


def swap(conn: Connection, table: str) -> None:
    """Within the caller's transaction: the staging copy becomes `table`, the old one is
    dropped (sequences it owned pass to the new one)."""
    staging, retired = table + STAGING, table + "_retired"
    names = [name for name, _, _ in _indexes(conn, table)]
    owned = conn.execute(
        text(
            """SELECT s.relname, a.attname
               FROM pg_depend d
               JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
               JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
               WHERE d.refobjid = to_regclass(:t) AND d.deptype = 'a'"""
        ),
        {"t": table},
    ).all()
    for seq, column in owned:
        conn.execute(text(f'ALTER SEQUENCE "{seq}" OWNED BY "{staging}"."{column}"'))
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{retired}"'))
    conn.execute(text(f'ALTER TABLE "{staging}" RENAME TO "{table}"'))
    conn.execute(text(f'DROP TABLE "{retired}"'))
    for name in names:
        conn.execute(text(f'ALTER INDEX "{name}{STAGING}" RENAME TO "{name}"'))
