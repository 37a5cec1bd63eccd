"""Publish a daily run's results into the operational store, all or nothing.

The card summary with level and scores, the entitlements and the audit findings of run D are
written with `run_date = D` and the `publication` pointer is moved to D in ONE transaction: a run
that fails half-way leaves the previous run fully visible. A re-run of a day whose inputs have the
same fingerprint changes nothing. PostgreSQL is loaded with COPY (CSV written by DuckDB and
streamed), SQLite with batched inserts. Rows of older runs are pruned after the commit."""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
from sqlalchemy import Connection, delete, insert, select, update

from qamqor.engine import connect, sql_path
from qamqor.levels.compute import card_path
from qamqor.ops.appeals import reapply_corrections
from qamqor.store.cardjson import card_json_sql
from qamqor.store.db import database_url, engine_for
from qamqor.store.published import FamilyCard, FamilyEntitlement, Publication, PublishedFinding, Run

BATCH = 50_000


class PublishError(RuntimeError):
    pass


@dataclass
class PublishResult:
    run_date: date
    families: int
    entitlements: int
    findings: int
    skipped: bool  # the same run was already published
    seconds: dict[str, float] = field(default_factory=dict)  # per phase, for the benchmarks


def _inputs(data_dir: Path, on: date) -> dict[str, Path]:
    try:
        cards = card_path(data_dir, on)
    except FileNotFoundError as e:
        raise PublishError(f"cannot publish {on}: missing {e}") from e
    files = {
        "cards": cards,
        "levels": data_dir / "levels" / "families.parquet",
        "scores": data_dir / "scores" / "families.parquet",
        "entitlements": data_dir / "entitlements" / "entitlements.parquet",
        "findings": data_dir / "audit" / "findings.parquet",
    }
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise PublishError(f"cannot publish {on}: missing {', '.join(missing)} (run the pipeline)")
    return files


def fingerprint(on: date, files: dict[str, Path]) -> str:
    h = hashlib.sha256(on.isoformat().encode())
    for name in sorted(files):
        h.update(name.encode())
        with open(files[name], "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _queries(files: dict[str, Path], on: date) -> dict[str, str]:
    d = f"DATE '{on.isoformat()}'"
    c, lv, sc = (sql_path(files[k]) for k in ("cards", "levels", "scores"))
    return {
        "family_cards": f"""
            SELECT {d} AS run_date, c.family_id, c.region, c.district, c.urban, c.language,
                   c.members, c.children, coalesce(c.income_per_capita_3m, 0) AS income_per_capita,
                   l.level, l.score, l.emergency_trigger, s.category,
                   CAST(s.total AS DOUBLE) AS vulnerability,
                   coalesce(s.hidden_income_flag, false) AS hidden_income_flag,
                   {card_json_sql("c")} AS card
            FROM read_parquet({c}) c
            JOIN read_parquet({lv}) l USING (family_id)
            LEFT JOIN read_parquet({sc}) s USING (family_id)""",
        "family_entitlements": f"""
            SELECT {d} AS run_date, family_id, person_id, region, measure,
                   round(amount, 2) AS amount, period, coalesce(reasons, '') AS reasons
            FROM read_parquet({sql_path(files["entitlements"])})""",
        "findings": f"""
            SELECT {d} AS run_date, f.finding_id, f.type, f.family_id, f.person_id,
                   c.region, f.measure, round(f.amount_at_risk, 2) AS amount_at_risk,
                   f.severity, coalesce(f.evidence, f.type) AS evidence
            FROM read_parquet({sql_path(files["findings"])}) f
            LEFT JOIN (SELECT family_id, region FROM read_parquet({c})) c USING (family_id)""",
    }


TABLES = {
    "family_cards": FamilyCard.__table__,
    "family_entitlements": FamilyEntitlement.__table__,
    "findings": PublishedFinding.__table__,
}


def _copy_postgres(conn: Connection, duck, table: str, query: str) -> int:
    """COPY the query's rows into `table`: DuckDB writes CSV, psycopg streams it."""
    with tempfile.TemporaryDirectory(prefix="qamqor-publish-") as tmp:
        csv = Path(tmp) / f"{table}.csv"
        duck.sql(f"COPY ({query}) TO {sql_path(csv)} (FORMAT csv, HEADER true)")
        columns = duck.sql(f"SELECT * FROM ({query}) LIMIT 0").columns
        raw = conn.connection.driver_connection
        cols = ", ".join(f'"{c}"' for c in columns)
        copy_sql = f"COPY {table} ({cols}) FROM STDIN (FORMAT csv, HEADER true)"
        with raw.cursor() as cur:
            with cur.copy(copy_sql) as cp, open(csv, "rb") as f:
                while chunk := f.read(1 << 22):
                    cp.write(chunk)
            return cur.rowcount


def _insert_batches(conn: Connection, duck, table: str, query: str) -> int:
    reader = duck.sql(query).to_arrow_reader(BATCH)
    n = 0
    for batch in reader:
        rows = pa.Table.from_batches([batch]).to_pylist()
        if rows:
            conn.execute(insert(TABLES[table]), rows)
            n += len(rows)
    return n


def current_run(conn: Connection) -> date | None:
    return conn.execute(select(Publication.run_date).where(Publication.id == 1)).scalar()


def publish(
    data_dir: Path, on: date, url: str | None = None, fail_after: str | None = None
) -> PublishResult:
    """Publish run `on` of DATA_DIR; `fail_after` (a table name) simulates a crash in tests."""
    data_dir = Path(data_dir)
    files = _inputs(data_dir, on)
    t0 = time.perf_counter()
    fp = fingerprint(on, files)
    seconds = {"fingerprint": time.perf_counter() - t0}
    engine = engine_for(url or database_url(data_dir))
    with engine.connect() as conn:
        now = current_run(conn)
        if now is not None and on < now:
            raise PublishError(f"cannot publish {on}: the newer run {now} is already published")
        old = conn.execute(select(Run).where(Run.run_date == on)).first()
        if old is not None and old.fingerprint == fp and now == on:
            return PublishResult(on, old.families, old.entitlements, old.findings, True)
    duck = connect(threads=2)
    counts: dict[str, int] = {}
    load = _copy_postgres if engine.dialect.name == "postgresql" else _insert_batches
    try:
        with engine.begin() as conn:
            for table in TABLES.values():  # a re-publish of the same day replaces its rows
                conn.execute(delete(table).where(table.c.run_date == on))
            conn.execute(delete(Run).where(Run.run_date == on))
            for table, query in _queries(files, on).items():
                t0 = time.perf_counter()
                counts[table] = load(conn, duck, table, query)
                seconds[table] = time.perf_counter() - t0
                if fail_after == table:
                    raise PublishError(f"simulated crash after loading {table}")
            reapply_corrections(conn, on)
            conn.execute(
                insert(Run).values(
                    run_date=on,
                    fingerprint=fp,
                    families=counts["family_cards"],
                    entitlements=counts["family_entitlements"],
                    findings=counts["findings"],
                    published_at=datetime.now(UTC).replace(tzinfo=None),
                )
            )
            if current_run(conn) is None:
                conn.execute(insert(Publication).values(id=1, run_date=on))
            else:
                conn.execute(update(Publication).where(Publication.id == 1).values(run_date=on))
    finally:
        duck.close()
    t0 = time.perf_counter()
    prune(engine, keep=on)
    seconds["prune"] = time.perf_counter() - t0
    return PublishResult(
        on,
        counts["family_cards"],
        counts["family_entitlements"],
        counts["findings"],
        False,
        {k: round(v, 1) for k, v in seconds.items()},
    )


def prune(engine, keep: date) -> None:
    """Delete the published rows of every run but `keep` (the `runs` rows stay as history)."""
    with engine.begin() as conn:
        for table in TABLES.values():
            conn.execute(delete(table).where(table.c.run_date != keep))
