"""Entitlements of a later day of the month: the families nothing happened to keep theirs.

A family's entitlements are a function of its card, its members' facts and the rules with the
dated values of the day (`compute.entitlements_sql`, whose text holds every value as a literal).
When the card of `on` kept most families' indicators from an earlier date `before`
(`qamqor.card.build`: same members, no birthday, no dated registry event), the run of `before`
used the same ingested files, code and rule text (`basis`), and none of a family's members had a
fact of their own change between the two dates (an award, a parent's death: `_touched`), that
family's person and family facts of `before` are those of `on`, and so are its entitlements
unless a member is a month older (the months of age are computed from the stored birth date
when the rules run: `qamqor.measures.persons`). `update_entitlements` computes the others, as
`compute_entitlements` computes every family, and keeps the rest: the month's persons file
is linked, not copied.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date
from pathlib import Path

from qamqor.card.build import BASIS, COMPUTED, ingested_stamp
from qamqor.engine import (
    PARQUET_COMPRESSION,
    code_hash,
    connect,
    publish_file,
    scratch_dir,
    sql_path,
)
from qamqor.ids import pseudonym_number_sql
from qamqor.levels.compute import card_path
from qamqor.measures import compute
from qamqor.measures.persons import (
    PERSONS,
    PERSONS_SINCE,
    SUPERSEDED,
    age_months_sql,
    stored_sql,
)
from qamqor.registries.views import registry_view

_HERE = Path(__file__).parent
# the code whose output a later date may keep (the rules' SQL is compared itself)
_CODE = (
    *(_HERE / n for n in ("compute.py", "update.py", "catalogue.py", "persons.py")),
    _HERE.parent / "registries" / "views.py",
)
# as `run_query` writes the entitlements; no dictionary for the ids (mostly distinct: trying
# one costs ≈ 0.6 of 8.7 s copying 19 M persons), one for the codes
_COMPRESSION = f", COMPRESSION {PARQUET_COMPRESSION}, DICTIONARY_SIZE_LIMIT 4096"
# what a run writes that a later run of the month copies from (the persons: `persons`)
OUTPUTS = ("family_facts.parquet", "entitlements.parquet")
COPIED = (PERSONS, *OUTPUTS, compute.PAID)


def basis(data_dir: Path, on: date, sql: str, pension_ages: tuple[float, float]) -> dict:
    """What the entitlements of `on` are computed from, besides the card: the month (of the
    money facts), the code, the rules' SQL (every dated value in it), the pension ages the
    facts use and the ingested files (size and modification time)."""
    code = code_hash(_CODE)
    return {
        "month": on.replace(day=1).isoformat(),
        "code": code,
        "rules": hashlib.sha256(sql.encode()).hexdigest(),
        "pension_ages": list(pension_ages),
        "inputs": ingested_stamp(Path(data_dir) / "ingested"),
    }


def usable_base(data_dir: Path, on: date, current: Path, now: dict) -> date | None:
    """The date of the run in `current` (DIR/entitlements) if the card of `on` kept its
    indicators from that date and the run had the basis `now`; else None."""
    try:
        ran = json.loads((current / BASIS).read_text())
        card = json.loads((card_path(data_dir, on).parent / BASIS).read_text())
    except (OSError, ValueError):
        return None
    if card.get("kept_from") != ran.get("date") or {k: ran.get(k) for k in now} != now:
        return None
    if not all((current / n).exists() for n in COPIED):
        return None
    if (current / PERSONS_SINCE).exists() != (current / SUPERSEDED).exists():
        return None  # the persons computed since the month's run without their list, or so
    return date.fromisoformat(ran["date"])


# `compute.MEMBER_REGISTER` for a part of the members: joined on the pseudonyms' text (the
# numbers pay off when both sides are the whole register)
REGISTER = """CREATE TEMP TABLE member_register AS
    SELECT m.person_id, m.family_id, m.role, m.sex, m.age,
           r.iin, r.birth_date, r.father_iin, r.mother_iin
    FROM members m JOIN population r ON r.person_id = m.person_id"""


def _touched(d: str, b: str) -> str:
    """The living people whose own facts, besides their age in months, differ between the
    dates `b` and `d` although their card did not change: an award, a parent's death."""
    return f"""
    WITH died AS (SELECT iin FROM population WHERE death_date > {b} AND death_date <= {d})
    SELECT person_id FROM population
    WHERE birth_date <= {d} AND (death_date IS NULL OR death_date > {d}) AND (
        iin IN (SELECT iin FROM awards WHERE award_date > {b} AND award_date <= {d})
        OR father_iin IN (SELECT iin FROM died) OR mother_iin IN (SELECT iin FROM died))"""


def update_entitlements(
    data_dir: Path,
    on: date,
    before: date,
    country,
    sql: str,
    current: Path,
    out: Path,
    months: str,
) -> tuple[dict, int, dict[str, int]]:
    """Write the person facts, family facts and entitlements of `on` to `out`, kept from
    `current` (the run of `before`) except for:

    - `redo`, the families the card computed or with a member `_touched`: their person and
      family facts are computed, as `compute.write_facts` computes them; their persons join
      those computed since the month's full run (`persons.PERSONS_SINCE`);
    - `rerun`, those and the families with a member a month older who meets `months` (a
      condition on a person's facts that the recipients of every rule reading the months of
      age meet: `compute.person_prefilter`) on either date: their entitlements are computed
      (listed in `out/COMPUTED`: only they can have an entitlement the run before did not
      have).

    Returns what the payments registry paid, the entitlement rows, and how many families had
    their facts and their entitlements computed."""
    data_dir = Path(data_dir)
    d, b = f"DATE '{on.isoformat()}'", f"DATE '{before.isoformat()}'"
    men = country.parameter("pension_age_men").at(on)
    women = country.parameter("pension_age_women").at(on)
    persons, families = compute.facts_sql(on, men, women, part=True)
    cards = card_path(data_dir, on)
    limit = os.environ.get("QAMQOR_MEMORY_LIMIT", compute.FACTS_MEMORY_LIMIT)
    with scratch_dir(out.parent, "facts-spill") as spill:
        con = connect(memory_limit=limit, temp_directory=spill)
        try:
            for t in compute.INGESTED:
                con.execute(registry_view(con, data_dir / "ingested" / f"{t}.parquet"))
            members = sql_path(cards.with_name("members.parquet"))
            con.execute(f"CREATE VIEW members_all AS SELECT * FROM read_parquet({members})")
            con.execute(
                f"""CREATE TEMP TABLE redo AS
                SELECT family_id FROM read_parquet({sql_path(cards.with_name(COMPUTED))})
                UNION
                SELECT family_id FROM members_all WHERE person_id IN ({_touched(d, b)})"""
            )
            # what the previous outputs lose: the families computed now, and the dissolved
            changes = sql_path(cards.with_name("changes.parquet"))
            dissolved = f"SELECT family_id FROM read_parquet({changes}) WHERE change = 'dissolved'"
            con.execute(f"CREATE TEMP TABLE dropped AS SELECT * FROM redo UNION {dissolved}")
            # the kept families with a member a month older whom the rules reading the months
            # can pay on either date (their rows are the same: the months come from the birth
            # date); `months` is tested on the months of each date, one row per date
            on_, before_ = (age_months_sql("person_birth_date", x) for x in (on, before))
            con.execute(
                f"""CREATE TEMP TABLE rerun AS SELECT family_id FROM redo
                UNION SELECT family_id FROM (
                    SELECT * EXCLUDE (m_on, m_before),
                           unnest([m_on, m_before]) AS person_age_months
                    FROM (SELECT *, {on_} AS m_on, {before_} AS m_before
                          FROM ({stored_sql(current)}) p ANTI JOIN dropped USING (family_id))
                    WHERE m_on <> m_before)
                WHERE ({months})"""
            )
            con.execute(f"CREATE TEMP TABLE stale AS SELECT * FROM rerun UNION {dissolved}")
            con.execute(
                "CREATE VIEW members AS SELECT * FROM members_all SEMI JOIN redo USING (family_id)"
            )
            con.execute(REGISTER)
            new = {n: out / f".new-{n}" for n in (PERSONS, *OUTPUTS)}
            fresh = sql_path(new[PERSONS])
            con.execute(f"COPY ({persons}) TO {fresh} (FORMAT parquet)")
            con.execute(f"CREATE VIEW persons AS SELECT * FROM read_parquet({fresh})")
            facts = sql_path(new["family_facts.parquet"])
            con.execute(f"COPY ({families}) TO {facts} (FORMAT parquet)")
            # the month's persons file stays; the families computed since it are replaced
            publish_file(current / PERSONS, out / PERSONS)
            since, superseded = f"SELECT * FROM read_parquet({fresh})", "SELECT * FROM dropped"
            if (current / PERSONS_SINCE).exists():
                since = f"""SELECT * FROM read_parquet({sql_path(current / PERSONS_SINCE)})
                    ANTI JOIN dropped USING (family_id)
                    UNION ALL BY NAME SELECT * FROM read_parquet({fresh})"""
                superseded = f"""SELECT family_id FROM read_parquet(
                    {sql_path(current / SUPERSEDED)}) UNION SELECT family_id FROM dropped"""
            old_facts = sql_path(current / "family_facts.parquet")
            for name, rows in (
                (PERSONS_SINCE, since),
                (SUPERSEDED, superseded),
                (
                    "family_facts.parquet",
                    f"""SELECT * FROM read_parquet({old_facts}) ANTI JOIN dropped USING (family_id)
                    UNION ALL BY NAME SELECT * FROM read_parquet({facts})""",
                ),
            ):
                con.execute(
                    f"COPY ({rows}) TO {sql_path(out / name)} (FORMAT parquet{_COMPRESSION})"
                )
            con.execute(f"CREATE VIEW persons_now AS {stored_sql(out)}")
            for name, table in (
                ("cards", f"read_parquet({sql_path(cards)})"),
                ("persons", "persons_now"),
                ("family_facts", f"read_parquet({sql_path(out / 'family_facts.parquet')})"),
            ):
                con.execute(
                    f"""CREATE OR REPLACE VIEW {name} AS
                    SELECT * FROM {table} SEMI JOIN rerun USING (family_id)"""
                )
            ent = new["entitlements.parquet"]
            con.execute(f"COPY ({sql}) TO {sql_path(ent)} (FORMAT parquet)")
            con.execute(
                f"""COPY (SELECT * FROM read_parquet({sql_path(current / "entitlements.parquet")})
                          ANTI JOIN stale USING (family_id)
                          UNION ALL BY NAME
                          SELECT * FROM read_parquet({sql_path(ent)}))
                    TO {sql_path(out / "entitlements.parquet")} (FORMAT parquet{_COMPRESSION})"""
            )
            for path in new.values():
                path.unlink()
            con.execute(f"COPY rerun TO {sql_path(out / COMPUTED)} (FORMAT parquet)")
            # the same people were paid in the quarter; a person's family is the one found
            # now if in a family computed now, none if that family was dropped (they died),
            # else the family of the run before (kept: the same members)
            number = pseudonym_number_sql("family_id")
            paid = compute.registry_paid(
                con,
                on,
                out,
                f"""SELECT o.iin, o.measure,
                       CASE WHEN n.iin IS NOT NULL THEN n.family
                            WHEN o.family IN (SELECT {number} FROM dropped) THEN NULL
                            ELSE o.family END AS family
                FROM read_parquet({sql_path(current / compute.PAID)}) o
                LEFT JOIN (SELECT iin, {number} AS family FROM member_register) n USING (iin)""",
            )
            (rows,) = con.execute(
                f"SELECT count(*) FROM read_parquet({sql_path(out / 'entitlements.parquet')})"
            ).fetchone()
            counts = {
                "facts": con.execute("SELECT count(*) FROM redo").fetchone()[0],
                "entitlements": con.execute("SELECT count(*) FROM rerun").fetchone()[0],
            }
        finally:
            con.close()
    return paid, int(rows), {k: int(v) for k, v in counts.items()}
