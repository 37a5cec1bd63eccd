"""The person facts of an entitlements run: the month's file and the families computed since.

A full run (`compute.write_facts`) writes every member's facts to `persons.parquet`. A person's
row holds their birth date rather than their months of age, which `with_age_months` computes on
the day the rules read it: so the row stays the same all month unless something happens to the
family. A later day of the month (`qamqor.measures.update`) computes the facts of the families
that changed only; instead of rewriting 19 M rows it keeps `persons.parquet` (a hard link), and
writes the rows of the families it computed since that full run to `persons_since.parquet` and
their ids, with those of the families dissolved since, to `superseded.parquet`. `stored_sql`
reads the three as one table; `family_persons` reads one family.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa

from qamqor.engine import sql_path
from qamqor.engine.lookup import family_rows

PERSONS = "persons.parquet"  # every member's facts, as of the month's full run
PERSONS_SINCE = "persons_since.parquet"  # the members of the families computed since that run
SUPERSEDED = "superseded.parquet"  # family_id: those families and the ones dissolved since


def age_months_sql(born: str, on: date) -> str:
    """SQL of the whole months of age on `on` of someone born on the SQL date `born` (the
    calendar months between, less one if the day of the month is not reached yet). Plain
    year/month/day arithmetic: the same on DuckDB and Spark."""
    now = on.year * 12 + on.month
    return (
        f"({now} - (year({born}) * 12 + month({born}))"
        f" - CASE WHEN day({born}) > {on.day} THEN 1 ELSE 0 END)"
    )


def with_age_months(on: date, source: str = "persons") -> str:
    """The stored person facts of `source` (a table name or a parenthesised SELECT) with
    `person_age_months` on `on`, the fact the rules read."""
    return f"SELECT *, {age_months_sql('person_birth_date', on)} AS person_age_months FROM {source}"


def stored_sql(ent: Path) -> str:
    """A SELECT of the current stored person facts of the run in `ent` (DIR/entitlements)."""
    base = f"SELECT * FROM read_parquet({sql_path(ent / PERSONS)})"
    if not (ent / PERSONS_SINCE).exists():
        return base
    return f"""{base} p ANTI JOIN read_parquet({sql_path(ent / SUPERSEDED)}) s USING (family_id)
        UNION ALL BY NAME SELECT * FROM read_parquet({sql_path(ent / PERSONS_SINCE)})"""


def family_persons(data_dir: Path, family_id: str) -> pa.Table:
    """The stored person facts of one family of DIR/entitlements (read through the lookup
    copies): its rows in `persons_since.parquet` if it was computed since the month's full run,
    else in `persons.parquet` (a family dissolved since is not in the card read beside)."""
    since = Path(data_dir) / "entitlements" / PERSONS_SINCE
    if since.exists():
        rows = family_rows(data_dir, f"entitlements/{PERSONS_SINCE}", family_id)
        if rows.num_rows:
            return rows
    return family_rows(data_dir, f"entitlements/{PERSONS}", family_id)
