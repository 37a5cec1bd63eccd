"""Publish a daily run's results into the operational store, all or nothing.

The card summary with level and scores, the entitlements and the audit findings of run D are
written with `run_date = D` and the `publication` pointer is moved to D in ONE transaction: a run
that fails half-way leaves the previous run fully visible. A re-run of a day whose inputs have the
same fingerprint changes nothing. On PostgreSQL each table's new contents are streamed with COPY
into an unindexed staging copy (the cards beside the rest, on two connections), indexed, and
swapped in by that one transaction (`qamqor.store.staging`); SQLite gets batched inserts, and
rows of older runs are pruned after the commit."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
from sqlalchemy import Connection, delete, insert, select, text, update

from qamqor.engine import connect, sql_path
from qamqor.levels.compute import card_path
from qamqor.ops.appeals import reapply_corrections
from qamqor.store import staging
from qamqor.store.cardjson import card_json_sql
from qamqor.store.db import database_url, engine_for
from qamqor.store.published import FamilyCard, FamilyEntitlement, Publication, PublishedFinding, Run

BATCH = 50_000
PUBLISH_LOCK = 0x7161_6D71  # the advisory lock key publishers share on PostgreSQL


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


def _load_staging(engine, duck, table: str, query: str) -> tuple[int, float, float]:
    """PostgreSQL: stream the query's rows into `table`'s staging copy (the cards over two
    connections), then index it; nobody reads it until `staging.swap`. Returns the rows and the
    seconds of the copy and of the indexing."""
    t0 = time.perf_counter()
    rel = duck.cursor().sql(query)
    with engine.begin() as conn:
        name = staging.create(conn, table)
    streams = 2 if table == "family_cards" else 1
    n = staging.copy_in(engine, name, rel.columns, rel.to_arrow_reader(BATCH), streams)
    t1 = time.perf_counter()
    staging.index(engine, table)
    return n, t1 - t0, time.perf_counter() - t1


def _load_postgres(engine, duck, queries: dict[str, str], fail_after: str | None) -> dict:
    """Load every table's staging copy, the cards beside the others (two connections)."""
    counts: dict[str, tuple[int, float, float]] = {}

    def load(tables: list[str]) -> None:
        for table in tables:
            counts[table] = _load_staging(engine, duck, table, queries[table])
            if fail_after == table:
                raise PublishError(f"simulated crash after loading {table}")

    with ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(load, ["family_cards"]),
            pool.submit(load, ["family_entitlements", "findings"]),
        ]
        for job in jobs:
            job.result()
    return counts


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
    with _one_publisher(engine):
        return _publish(engine, files, on, fp, seconds, fail_after)


@contextmanager
def _one_publisher(engine) -> Iterator[None]:
    """On PostgreSQL, hold an advisory lock so that two publishers never interleave (on SQLite
    the write transaction already serialises them)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PUBLISH_LOCK})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PUBLISH_LOCK})


def _publish(
    engine, files: dict[str, Path], on: date, fp: str, seconds: dict, fail_after: str | None
) -> PublishResult:
    with engine.connect() as conn:
        now = current_run(conn)
        if now is not None and on < now:
            raise PublishError(f"cannot publish {on}: the newer run {now} is already published")
        old = conn.execute(select(Run).where(Run.run_date == on)).first()
        if old is not None and old.fingerprint == fp and now == on:
            return PublishResult(on, old.families, old.entitlements, old.findings, True)
    duck = connect(threads=2)
    counts: dict[str, int] = {}
    queries = _queries(files, on)
    postgres = engine.dialect.name == "postgresql"
    try:
        if postgres:
            for table, (n, copy, idx) in _load_postgres(engine, duck, queries, fail_after).items():
                counts[table], seconds[table], seconds[f"{table}_index"] = n, copy, idx
        with engine.begin() as conn:
            t0 = time.perf_counter()
            if postgres:  # the loaded copies replace the tables in this one transaction
                conn.execute(text("SET LOCAL lock_timeout = '60s'"))
                for table in TABLES:
                    staging.swap(conn, table)
            else:
                for table in TABLES.values():  # a re-publish of the same day replaces its rows
                    conn.execute(delete(table).where(table.c.run_date == on))
                for table, query in queries.items():
                    t1 = time.perf_counter()
                    counts[table] = _insert_batches(conn, duck, table, query)
                    seconds[table] = time.perf_counter() - t1
                    if fail_after == table:
                        raise PublishError(f"simulated crash after loading {table}")
            conn.execute(delete(Run).where(Run.run_date == on))
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
            seconds["commit"] = time.perf_counter() - t0
    finally:
        duck.close()
    if not postgres:  # (on PostgreSQL the swap dropped the old run's tables whole)
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
