"""Bulk replacement of a PostgreSQL table's contents: load a staging copy, then swap it in.

`create` makes `T_staging` with T's columns, defaults and checks but no index; `copy_in` streams
rows into it with COPY; `index` builds T's indexes on it afterwards (much faster than keeping them
up to date row by row) and analyses it; `swap`, inside the caller's transaction, retires T and
renames the staging table and its indexes to T's names. Until that transaction commits every
reader sees the old T; a crash before leaves only a staging table, which the next `create`
drops."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, text

STAGING = "_staging"
MAINTENANCE_MEMORY = "1GB"  # for the index builds of one load (the server's default is 64 MB)


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


def _csv_chunks(batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """CSV without header, made on a producer thread so DuckDB and COPY work at the same time."""
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4)
    options = pacsv.WriteOptions(include_header=False)

    def produce() -> None:
        try:
            for batch in batches:
                buf = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buf, options)
                chunks.put(buf.getvalue())
            chunks.put(None)
        except BaseException as e:  # handed to the consumer, which raises it
            chunks.put(e)

    threading.Thread(target=produce, name="staging-csv", daemon=True).start()
    while (chunk := chunks.get()) is not None:
        if isinstance(chunk, BaseException):
            raise chunk
        yield chunk


def copy_in(conn: Connection, staging: str, columns: list[str], batches: Iterable) -> int:
    """COPY Arrow record batches (exact: shortest round-trip floats) into `staging`."""
    cols = ", ".join(f'"{c}"' for c in columns)
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f'COPY "{staging}" ({cols}) FROM STDIN (FORMAT csv)') as cp:
            for chunk in _csv_chunks(batches):
                cp.write(chunk)
        return cur.rowcount


def index(conn: Connection, table: str) -> None:
    """Build `table`'s indexes (primary key included) on its staging copy, then ANALYZE it."""
    staging = table + STAGING
    conn.execute(text(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_MEMORY}'"))  # sorts in RAM
    for name, definition, pk in _indexes(conn, table):
        ddl = definition.replace(f"INDEX {name} ON ", f'INDEX "{name}{STAGING}" ON ', 1)
        ddl = ddl.replace(f".{table} ", f'."{staging}" ', 1)
        conn.execute(text(ddl))
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
