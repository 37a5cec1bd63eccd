"""The Digital Family Card: families formed by SPEC §5 as of a date, and their indicators.

Pure SQL over the ingested registries (DuckDB by default; kept to portable joins, aggregates
and CASE so SQLGlot can transpile it for Spark). No per-row Python.

Built for 6 M families on a small machine (docs/card.md): each person's attributes and keyed
pseudonym are computed once (`alive`) and carried in `membership`; a family's demography and
money are one aggregate over `membership`; asset and debt registries reach their families as
one union joined once; intermediate tables are narrow and dropped after their last use, and
DuckDB works under a memory limit, spilling to a scratch folder rather than growing.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from qamqor.engine import atomic_dir, connect, scratch_dir, sql_path

PSEUDONYM_KEY = os.environ.get("QAMQOR_PSEUDONYM_KEY", "qamqor-demo-key")
# DuckDB's buffer limit for the card step (QAMQOR_MEMORY_LIMIT overrides): beyond it, joins,
# aggregates and sorts spill to a scratch folder under DIR/cards instead of growing.
MEMORY_LIMIT = "7GB"


def _pseudo(expr: str) -> str:
    """Keyed hash of an identifier: IINs never leave the card step in clear."""
    return f"substr(sha256('{PSEUDONYM_KEY}' || {expr}), 1, 16)"


def _age(col: str, d: str) -> str:
    return (
        f"(date_diff('year', {col}, {d}) - CASE WHEN month({col}) * 100 + day({col}) > "
        f"month({d}) * 100 + day({d}) THEN 1 ELSE 0 END)"
    )


# The columns of `membership` besides iin, fkey and role: what the outputs need of a person.
PERSON = "person_id, sex, age, student, disabled, disability_group"


# An adult's own family key: the husband of a couple, else themselves (`a` is a living person).
_HEAD_KEY = "coalesce(c1.husband, c2.husband, a.iin)"
_COUPLE_JOINS = """LEFT JOIN couples c1 ON c1.husband = a.iin
        LEFT JOIN couples c2 ON c2.wife = a.iin"""


def formation_sql(d: str) -> list[str]:
    """SQL statements that create `alive`, `couples`, `head_key`, `dependants` and `membership`.

    `alive` holds each living person's attributes and pseudonym `person_id` (computed once: a
    family's `family_id` is its head's `person_id`). `membership` maps every living person to
    a family key `fkey` (the head's IIN) and a role, and carries the attributes the outputs
    need (`PERSON`). `head_key` and `dependants` are narrow steps on the way.
    """
    age = _age("p.birth_date", d)
    return [
        f"""CREATE TEMP TABLE alive AS
        WITH e AS (  -- only the rows that can make someone a student or disabled
            SELECT iin FROM education WHERE full_time AND level IN ('college', 'university')
        ),
        h AS (
            SELECT iin, disability_group, disability_since FROM health
            WHERE disability_group IS NOT NULL OR disability_since IS NOT NULL
        )
        SELECT p.iin, {_pseudo("p.iin")} AS person_id, p.sex, {age} AS age, p.address_id,
               p.region, p.district, p.urban, p.language, p.father_iin, p.mother_iin,
               e.iin IS NOT NULL AS student,
               coalesce(h.disability_group, 0) AS disability_group,
               h.disability_since IS NOT NULL AND h.disability_since <= {d} AS disabled
        FROM population p
        LEFT JOIN e ON e.iin = p.iin
        LEFT JOIN h ON h.iin = p.iin
        WHERE p.birth_date <= {d} AND (p.death_date IS NULL OR p.death_date > {d})""",
        f"""CREATE TEMP TABLE couples AS
        SELECT m.iin AS husband, m.other_iin AS wife
        FROM civil_events m
        JOIN alive a ON a.iin = m.iin
        JOIN alive b ON b.iin = m.other_iin AND b.address_id = a.address_id
        WHERE m.event_type = 'marriage' AND m.event_date <= {d}
          AND NOT EXISTS (
            SELECT 1 FROM civil_events x
            WHERE x.event_type = 'divorce' AND x.iin = m.iin AND x.other_iin = m.other_iin
              AND x.event_date > m.event_date AND x.event_date <= {d})""",
        # Adults' own family key: the husband of a couple, else themselves.
        f"""CREATE TEMP TABLE head_key AS
        SELECT a.iin, a.address_id, {_HEAD_KEY} AS fkey
        FROM alive a
        {_COUPLE_JOINS}""",
        # Dependants: under 18, full-time students under 23, adult disabled children, living
        # at a parent's address and not married themselves: they join that parent's family.
        """CREATE TEMP TABLE dependants AS
        WITH parents AS (
            -- each person with a registered parent: is that parent alive at their address?
            SELECT c.iin, (c.age < 18 OR (c.age < 23 AND c.student) OR c.disabled) AS dependant,
                   CASE WHEN m.address_id = c.address_id THEN m.iin END AS mother_here,
                   CASE WHEN f.address_id = c.address_id THEN f.iin END AS father_here,
                   coalesce(
                     CASE WHEN m.address_id = c.address_id THEN m.fkey END,
                     CASE WHEN f.address_id = c.address_id THEN f.fkey END) AS parent_key
            FROM alive c
            LEFT JOIN head_key m ON m.iin = c.mother_iin
            LEFT JOIN head_key f ON f.iin = c.father_iin
            WHERE c.mother_iin IS NOT NULL OR c.father_iin IS NOT NULL
        )
        SELECT p.iin, p.parent_key FROM parents p
        WHERE p.dependant
          AND NOT EXISTS (SELECT 1 FROM couples x WHERE x.husband = p.iin)
          AND NOT EXISTS (SELECT 1 FROM couples x WHERE x.wife = p.iin)
          -- a parent of a child at their own address heads that child's family
          AND NOT EXISTS (SELECT 1 FROM parents x WHERE x.mother_here = p.iin)
          AND NOT EXISTS (SELECT 1 FROM parents x WHERE x.father_here = p.iin)""",
        f"""CREATE TEMP TABLE membership AS
        SELECT a.iin, coalesce(dep.parent_key, {_HEAD_KEY}) AS fkey,
               CASE WHEN dep.parent_key IS NOT NULL THEN 'child'
                    WHEN {_HEAD_KEY} = a.iin THEN 'head' ELSE 'spouse' END AS role,
               {", ".join("a." + c.strip() for c in PERSON.split(","))}
        FROM alive a
        {_COUPLE_JOINS}
        LEFT JOIN dependants dep ON dep.iin = a.iin""",
    ]


def money_sql(d: str) -> list[str]:
    """SQL statements that create `earnings` and `paid`: per person, the money the methodology
    averages per person over 3 and 12 months (a family's figure is the sum of its members')."""
    m3 = f"{d} - INTERVAL 3 MONTH"
    m12 = f"{d} - INTERVAL 12 MONTH"
    return [
        f"""CREATE TEMP TABLE earnings AS  -- wages and self-employment income
        SELECT iin,
               sum(income) FILTER (WHERE period >= {m3}) / 3 AS wage_3m,
               sum(income) FILTER (WHERE period >= {m12}) / 12 AS wage_12m,
               sum(pension_contribution) FILTER (WHERE period >= {m12}) AS contributions_12m,
               sum(declared_income) FILTER (WHERE period >= {m3}) / 3 AS self_3m,
               sum(declared_income) FILTER (WHERE period >= {m12}) / 12 AS self_12m
        FROM (SELECT iin, period, income, pension_contribution,
                     CAST(NULL AS DOUBLE) AS declared_income FROM income
              UNION ALL
              SELECT iin, period, NULL, NULL, declared_income FROM tax) t
        WHERE period < {d} GROUP BY iin""",
        f"""CREATE TEMP TABLE paid AS  -- pensions and benefits paid
        SELECT iin,
               sum(amount) FILTER (WHERE measure = 'age_pension' AND period >= {m3}) / 3
                 AS pension_3m,
               sum(amount) FILTER (WHERE measure NOT IN ('age_pension', 'birth')
                 AND period >= {m3}) / 3 AS benefits_3m
        FROM payments WHERE period < {d} GROUP BY iin""",
    ]


# A family's money: sums of its members' `earnings` and `paid`.
_MONEY = {
    "wages_3m": "sum(wage_3m)",
    "wages_12m": "sum(wage_12m)",
    "self_employment_3m": "sum(self_3m)",
    "self_employment_12m": "sum(self_12m)",
    "pensions_3m": "sum(pension_3m)",
    "benefits_3m": "sum(benefits_3m)",
    "contributions_12m": "sum(contributions_12m)",
    "working": "count(*) FILTER (WHERE coalesce(wage_3m, 0) + coalesce(self_3m, 0) > 0)",
}


def family_sql(d: str) -> str:
    """`family`: one row per family key: the family's id and place (its head's), demography and
    money, in one aggregate over `membership`."""
    pension_age = "((sex = 'F' AND age >= 61) OR (sex = 'M' AND age >= 63))"
    money = ", ".join(f"coalesce({e}, 0) AS {c}" for c, e in _MONEY.items())
    return f"""CREATE TEMP TABLE family AS
    WITH agg AS (
        SELECT fkey,
               count(*) AS members,
               count(*) FILTER (WHERE age < 18) AS children,
               count(*) FILTER (WHERE age < 1) AS infants,
               count(*) FILTER (WHERE age >= 1 AND age < 7) AS children_1_6,
               count(*) FILTER (WHERE age < 7) AS children_under_7,
               count(*) FILTER (WHERE role = 'child' AND (age < 18 OR student))
                 AS dependent_children,
               count(*) FILTER (WHERE student) AS students,
               count(*) FILTER (WHERE sex = 'F') AS women,
               count(*) FILTER (WHERE sex = 'M') AS men,
               count(*) FILTER (WHERE {pension_age}) AS pensioners,
               count(*) FILTER (WHERE disabled) AS disabled,
               count(*) FILTER (WHERE disabled AND age < 18) AS disabled_children,
               count(*) FILTER (WHERE disability_group = 1) AS disabled_group1,
               count(*) FILTER (WHERE disability_group = 2) AS disabled_group2,
               count(*) FILTER (WHERE disability_group = 3) AS disabled_group3,
               count(*) FILTER (WHERE age >= 18 AND NOT {pension_age} AND NOT student
                                AND disability_group NOT IN (1, 2)) AS able_bodied,
               count(*) FILTER (WHERE age >= 6 AND age < 18 AND enrolled IS NULL)
                 AS school_age_not_enrolled,
               count(*) FILTER (WHERE age >= 3 AND age < 6 AND enrolled IS NULL)
                 AS preschool_not_enrolled,
               min(age) FILTER (WHERE role IN ('head', 'spouse')) AS youngest_adult_age,
               {money}
        FROM membership
        LEFT JOIN (SELECT iin, level AS enrolled FROM education WHERE enrolled_from <= {d}) e
          USING (iin)
        LEFT JOIN earnings USING (iin)
        LEFT JOIN paid USING (iin)
        GROUP BY fkey
    )
    -- the family key is the head's IIN: the family's id and place are the head's
    SELECT hd.person_id AS family_id, hd.region, hd.district, hd.urban, hd.language,
           hd.address_id, agg.*
    FROM agg JOIN alive hd ON hd.iin = agg.fkey"""


# Asset and debt registry rows go to their family as they are, as one union (one join with
# `membership`, one aggregate): each registry fills its own columns, the others are NULL.
_ASSET_COLUMNS = {
    "property": "VARCHAR",
    "property_value": "DOUBLE",
    "vehicle": "INTEGER",
    "vehicle_value": "DOUBLE",
    "loan": "VARCHAR",
    "balance": "DOUBLE",
    "monthly_payment": "DOUBLE",
    "overdue_days": "BIGINT",
    "deposit": "DOUBLE",
    "livestock": "VARCHAR",
    "heads": "BIGINT",
    "status": "VARCHAR",
}
# A family's assets and debts (zero when it has none).
_ASSETS = {
    "dwellings": "sum(CASE WHEN property = 'dwelling' THEN 1 ELSE 0 END)",
    "commercial": "sum(CASE WHEN property = 'commercial' THEN 1 ELSE 0 END)",
    "land_plots": "sum(CASE WHEN property = 'land' THEN 1 ELSE 0 END)",
    "property_value": "sum(property_value)",
    "vehicles": "sum(vehicle)",
    "vehicle_value": "sum(vehicle_value)",
    "debt": "sum(balance)",
    "loan_payments": "sum(monthly_payment)",
    "max_overdue_days": "max(overdue_days)",
    "overdue_debt": "sum(balance) FILTER (WHERE overdue_days > 90)",
    "microcredit_debt": "sum(balance) FILTER (WHERE loan = 'microcredit')",
    "non_mortgage_debt": "sum(balance) FILTER (WHERE loan <> 'mortgage')",
    "deposits": "sum(deposit)",
    "large_livestock": "sum(heads) FILTER (WHERE livestock IN ('cattle', 'horse', 'camel'))",
    "small_livestock": "sum(heads) FILTER (WHERE livestock IN ('sheep', 'goat'))",
    "registered_unemployed": "count(*) FILTER (WHERE status = 'registered_unemployed')",
    "social_contract": "count(*) FILTER (WHERE status = 'social_contract')",
}


def assets_sql(d: str) -> str:
    """`assets`: per family key, property, vehicles, debt, deposits, livestock, employment."""
    sources = [
        (
            {"property": "kind", "property_value": "value"},
            f"real_estate WHERE acquired_date <= {d}",
        ),
        ({"vehicle": "1", "vehicle_value": "value"}, "vehicles"),
        (
            {
                "loan": "kind",
                "balance": "balance",
                "monthly_payment": "monthly_payment",
                "overdue_days": "overdue_days",
            },
            f"credit WHERE opened_date <= {d}",
        ),
        ({"deposit": "balance"}, "deposits"),
        ({"livestock": "kind", "heads": "heads"}, "agriculture"),
        ({"status": "status"}, f"employment WHERE since <= {d}"),
    ]
    union = "\n        UNION ALL ".join(
        "SELECT iin, "
        + ", ".join(
            f"{cols.get(c, f'CAST(NULL AS {t})')} AS {c}" for c, t in _ASSET_COLUMNS.items()
        )
        + f" FROM {source}"
        for cols, source in sources
    )
    return f"""CREATE TEMP TABLE assets AS
    SELECT ms.fkey, {", ".join(f"coalesce({e}, 0) AS {c}" for c, e in _ASSETS.items())}
    FROM (
        {union}
    ) x
    JOIN membership ms USING (iin)
    GROUP BY ms.fkey"""


def indicators_sql(d: str) -> str:
    """One row per family with every indicator the methodology and the measures need."""
    return f"""
    WITH fam AS (
        SELECT f.*, {", ".join(f"coalesce(a.{c}, 0) AS {c}" for c in _ASSETS)}
        -- every fkey of `assets` is in `family`, so this is a LEFT JOIN; FULL keeps the columns
        -- optional in Parquet (DuckDB writes REQUIRED when it can prove there are no NULLs)
        FROM family f FULL JOIN assets a USING (fkey)
    )
    SELECT f.family_id, f.region, f.district, f.urban, f.language,
           members, children, infants, children_1_6, children_under_7, dependent_children,
           students, women, men, pensioners, disabled, disabled_children, disabled_group1,
           disabled_group2, disabled_group3, able_bodied, working, school_age_not_enrolled,
           preschool_not_enrolled, wages_3m, wages_12m, self_employment_3m,
           self_employment_12m, pensions_3m, benefits_3m, contributions_12m,
           youngest_adult_age,
           (wages_3m + self_employment_3m + pensions_3m + benefits_3m) / members
             AS income_per_capita_3m,
           (wages_12m + self_employment_12m + pensions_3m + benefits_3m) / members
             AS income_per_capita_12m,
           (members - working) / greatest(working, 1) AS dependency_ratio,
           dwellings, commercial, land_plots, property_value, vehicles, vehicle_value, debt,
           loan_payments, max_overdue_days, overdue_debt, microcredit_debt, non_mortgage_debt,
           deposits, large_livestock, small_livestock, registered_unemployed, social_contract,
           h.tenure, h.area_m2 AS housing_area_m2, h.area_m2 / members AS area_per_person,
           h.water, h.sewerage, h.gas, h.heating, h.internet,
           h.housing_cost + h.utilities_cost AS housing_costs
    FROM fam f
    LEFT JOIN housing h ON h.address_id = f.address_id
    ORDER BY family_id
    """


def members_sql() -> str:
    """One row per member: pseudonymous person and family ids, role, sex and age."""
    # nullif(x, ''): the ids were always written as optional Parquet fields, and DuckDB writes
    # REQUIRED when it can prove a column has no NULLs (as it can for a stored column).
    return """
    SELECT nullif(m.person_id, '') AS person_id, nullif(f.family_id, '') AS family_id,
           m.role, m.sex, m.age
    FROM membership m JOIN family f USING (fkey)
    ORDER BY family_id, person_id"""


def card_sql(d: str) -> list[str]:
    """Every statement before the two outputs, in order, dropping each table after its last use.

    Intermediate tables stay narrow and are dropped early, so that the step needs the memory of
    its largest statement rather than of all of them.
    """
    return [
        *formation_sql(d),
        "DROP TABLE head_key",
        "DROP TABLE dependants",
        "DROP TABLE couples",
        *money_sql(d),
        family_sql(d),
        "DROP TABLE alive",
        "DROP TABLE earnings",
        "DROP TABLE paid",
        assets_sql(d),
    ]


@dataclass(frozen=True)
class CardsResult:
    families: int
    people: int
    changed: int | None
    out: Path


def build_cards(data_dir: Path, on: date) -> CardsResult:
    """Write DIR/cards/families.parquet and members.parquet for date `on`, keeping history."""
    data_dir = Path(data_dir)
    src = data_dir / "ingested"
    if not (src / "population.parquet").exists():
        raise FileNotFoundError(
            f"{src / 'population.parquet'} not found: run `qamqor ingest` first"
        )
    d = f"DATE '{on.isoformat()}'"
    history = data_dir / "cards" / "history"
    previous = sorted(p for p in history.glob("*") if p.is_dir() and p.name < on.isoformat())
    limit = os.environ.get("QAMQOR_MEMORY_LIMIT", MEMORY_LIMIT)
    with scratch_dir(data_dir / "cards", "spill") as spill:
        con = connect(memory_limit=limit, temp_directory=spill)
        try:
            for f in sorted(src.glob("*.parquet")):
                con.execute(f"CREATE VIEW {f.stem} AS SELECT * FROM read_parquet({sql_path(f)})")
            for stmt in card_sql(d):
                con.execute(stmt)
            with atomic_dir(history / on.isoformat()) as tmp:
                con.execute(
                    f"COPY ({indicators_sql(d)}) TO {sql_path(tmp / 'families.parquet')}"
                    " (FORMAT parquet)"
                )
                con.execute(
                    f"COPY ({members_sql()}) TO {sql_path(tmp / 'members.parquet')}"
                    " (FORMAT parquet)"
                )
                changed = _changes(con, previous[-1], tmp) if previous else None
            out = history / on.isoformat()
            for name in ("families.parquet", "members.parquet", "changes.parquet"):
                if (out / name).exists():
                    shutil.copyfile(out / name, data_dir / "cards" / f".{name}.tmp")
                    os.replace(data_dir / "cards" / f".{name}.tmp", data_dir / "cards" / name)
            fam, ppl = con.execute(
                f"SELECT count(*), sum(members) FROM read_parquet({sql_path(out / 'families.parquet')})"
            ).fetchone()
        finally:
            con.close()
    return CardsResult(int(fam), int(ppl or 0), changed, out)


def _changes(con, before: Path, after: Path) -> int:
    """Families whose membership differs from the previous card date."""
    q = f"""
    WITH a AS (SELECT family_id, list(person_id ORDER BY person_id) AS m
               FROM read_parquet({sql_path(before / "members.parquet")}) GROUP BY 1),
         b AS (SELECT family_id, list(person_id ORDER BY person_id) AS m
               FROM read_parquet({sql_path(after / "members.parquet")}) GROUP BY 1)
    SELECT coalesce(b.family_id, a.family_id) AS family_id,
           CASE WHEN a.family_id IS NULL THEN 'new' WHEN b.family_id IS NULL THEN 'dissolved'
                ELSE 'changed' END AS change,
           len(coalesce(a.m, [])) AS members_before, len(coalesce(b.m, [])) AS members_after
    FROM a FULL JOIN b USING (family_id)
    WHERE a.m IS DISTINCT FROM b.m
    ORDER BY 1
    """
    con.execute(f"COPY ({q}) TO {sql_path(after / 'changes.parquet')} (FORMAT parquet)")
    return int(
        con.execute(
            f"SELECT count(*) FROM read_parquet({sql_path(after / 'changes.parquet')})"
        ).fetchone()[0]
    )
