"""The operational end of the daily run: publish the run, make sure the centres exist, and
bring the cases (and the children's register) in line with the new levels."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from qamqor.engine import lookup_cursor, sql_path
from qamqor.ops.cases import SyncResult, sync_cases
from qamqor.ops.centres import seed_centres
from qamqor.ops.publish import PublishResult, publish
from qamqor.store.db import database_url, session_factory


@dataclass
class DailyResult:
    published: PublishResult
    cases: SyncResult


def children_of(data_dir: Path):
    """`family_id -> [{person_id, age}]` of the children (under 18) in the card's members."""
    members = Path(data_dir) / "cards" / "members.parquet"

    def lookup(family_id: str) -> list[dict]:
        con = lookup_cursor()
        try:
            rows = con.execute(
                f"SELECT person_id, age FROM read_parquet({sql_path(members)}) "
                "WHERE family_id = $1 AND age < 18 ORDER BY age",
                [family_id],
            ).fetchall()
        finally:
            con.close()
        return [{"person_id": p, "age": a} for p, a in rows]

    return lookup


def publish_and_sync(data_dir: Path, on: date, url: str | None = None) -> DailyResult:
    url = url or database_url(data_dir)
    published = publish(data_dir, on, url)
    sessions = session_factory(url)
    seed_centres(sessions)
    t0 = time.perf_counter()
    cases = sync_cases(sessions, on, members=children_of(data_dir))
    published.seconds["cases"] = round(time.perf_counter() - t0, 1)
    return DailyResult(published, cases)
