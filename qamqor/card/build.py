"""The Digital Family Card: families formed by SPEC §5 as of a date, and their indicators.

Pure SQL over the ingested registries (DuckDB by default; kept to portable joins, aggregates
and CASE so SQLGlot can transpile it for Spark). No per-row Python.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from qamqor.engine import atomic_dir, connect, sql_path

PSEUDONYM_KEY = os.environ.get("QAMQOR_PSEUDONYM_KEY", "qamqor-demo-key")


def _pseudo(expr: str) -> str:
    """Keyed hash of an identifier: IINs never leave the card step in clear."""
    return f"substr(sha256('{PSEUDONYM_KEY}' || {expr}), 1, 16)"


def _age(col: str, d: str) -> str:
    return (
        f"(date_diff('year', {col}, {d}) - CASE WHEN month({col}) * 100 + day({col}) > "
        f"month({d}) * 100 + day({d}) THEN 1 ELSE 0 END)"
    )


def formation_sql(d: str) -> list[str]:
    """SQL statements that create `alive`, `couples` and `membership` (iin → family key)."""
    age = _age("birth_date", d)
    return [
        f"""CREATE TEMP TABLE alive AS
        SELECT p.iin, p.sex, p.birth_date, p.address_id, p.region, p.district, p.urban,
               p.language, p.father_iin, p.mother_iin, {age} AS age,
               coalesce(e.full_time AND e.level IN ('college', 'university'), false) AS student,
               coalesce(h.disability_group, 0) AS disability_group,
               h.disability_since IS NOT NULL AND h.disability_since <= {d} AS disabled
        FROM population p
        LEFT JOIN education e USING (iin)
        LEFT JOIN health h USING (iin)
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
        """CREATE TEMP TABLE head_key AS
        SELECT a.iin, coalesce(c1.husband, c2.husband, a.iin) AS fkey
        FROM alive a
        LEFT JOIN couples c1 ON c1.husband = a.iin
        LEFT JOIN couples c2 ON c2.wife = a.iin""",
        # Dependants: under 18, full-time students under 23, adult disabled children, living
        # at a parent's address and not married themselves: they join that parent's family.
        """CREATE TEMP TABLE membership AS
        WITH dep AS (
            SELECT c.iin,
                   coalesce(
                     CASE WHEN m.address_id = c.address_id THEN mk.fkey END,
                     CASE WHEN f.address_id = c.address_id THEN fk.fkey END) AS parent_key
            FROM alive c
            LEFT JOIN alive m ON m.iin = c.mother_iin
            LEFT JOIN head_key mk ON mk.iin = c.mother_iin
            LEFT JOIN alive f ON f.iin = c.father_iin
            LEFT JOIN head_key fk ON fk.iin = c.father_iin
            WHERE (c.age < 18 OR (c.age < 23 AND c.student) OR c.disabled)
              AND c.iin NOT IN (SELECT husband FROM couples UNION ALL SELECT wife FROM couples)
              -- a parent of a child at their own address heads that child's family
              AND c.iin NOT IN (
                SELECT k.mother_iin FROM alive k JOIN alive pm ON pm.iin = k.mother_iin
                WHERE pm.address_id = k.address_id
                UNION ALL
                SELECT k.father_iin FROM alive k JOIN alive pf ON pf.iin = k.father_iin
                WHERE pf.address_id = k.address_id)
        )
        SELECT a.iin, coalesce(dep.parent_key, h.fkey) AS fkey,
               CASE WHEN dep.parent_key IS NOT NULL THEN 'child'
                    WHEN h.fkey = a.iin THEN 'head' ELSE 'spouse' END AS role
        FROM alive a
        JOIN head_key h USING (iin)
        LEFT JOIN dep USING (iin)""",
    ]


def indicators_sql(d: str) -> str:
    """One row per family with every indicator the methodology and the measures need."""
    m3 = f"{d} - INTERVAL 3 MONTH"
    m12 = f"{d} - INTERVAL 12 MONTH"
    pid = _pseudo("fkey")
    return f"""
    WITH mem AS (
        SELECT ms.fkey, ms.role, a.* FROM membership ms JOIN alive a USING (iin)
    ),
    wages AS (
        SELECT iin,
               sum(income) FILTER (WHERE period >= {m3}) / 3 AS wage_3m,
               sum(income) FILTER (WHERE period >= {m12}) / 12 AS wage_12m,
               sum(pension_contribution) FILTER (WHERE period >= {m12}) AS contributions_12m
        FROM income WHERE period < {d} GROUP BY iin
    ),
    selfemp AS (
        SELECT iin,
               sum(declared_income) FILTER (WHERE period >= {m3}) / 3 AS self_3m,
               sum(declared_income) FILTER (WHERE period >= {m12}) / 12 AS self_12m
        FROM tax WHERE period < {d} GROUP BY iin
    ),
    paid AS (
        SELECT iin,
               sum(amount) FILTER (WHERE measure = 'age_pension' AND period >= {m3}) / 3
                 AS pension_3m,
               sum(amount) FILTER (WHERE measure NOT IN ('age_pension', 'birth')
                 AND period >= {m3}) / 3 AS benefits_3m
        FROM payments WHERE period < {d} GROUP BY iin
    ),
    prop AS (
        SELECT iin, count(*) FILTER (WHERE kind = 'dwelling') AS dwellings,
               count(*) FILTER (WHERE kind = 'commercial') AS commercial,
               count(*) FILTER (WHERE kind = 'land') AS land_plots,
               sum(value) AS property_value
        FROM real_estate WHERE acquired_date <= {d} GROUP BY iin
    ),
    veh AS (SELECT iin, count(*) AS vehicles, sum(value) AS vehicle_value FROM vehicles GROUP BY iin),
    cred AS (
        SELECT iin, sum(balance) AS debt, sum(monthly_payment) AS loan_payments,
               max(overdue_days) AS max_overdue_days,
               sum(balance) FILTER (WHERE overdue_days > 90) AS overdue_debt,
               sum(balance) FILTER (WHERE kind = 'microcredit') AS microcredit_debt,
               sum(balance) FILTER (WHERE kind <> 'mortgage') AS non_mortgage_debt
        FROM credit WHERE opened_date <= {d} GROUP BY iin
    ),
    dep AS (SELECT iin, sum(balance) AS deposits FROM deposits GROUP BY iin),
    agr AS (
        SELECT iin, sum(heads) FILTER (WHERE kind IN ('cattle', 'horse', 'camel')) AS large_livestock,
               sum(heads) FILTER (WHERE kind IN ('sheep', 'goat')) AS small_livestock
        FROM agriculture GROUP BY iin
    ),
    emp AS (
        SELECT iin, bool_or(status = 'registered_unemployed') AS unemployed,
               bool_or(status = 'social_contract') AS social_contract
        FROM employment WHERE since <= {d} GROUP BY iin
    ),
    enr AS (SELECT iin, level FROM education WHERE enrolled_from <= {d}),
    per AS (
        SELECT m.*, coalesce(w.wage_3m, 0) AS wage_3m, coalesce(w.wage_12m, 0) AS wage_12m,
               coalesce(w.contributions_12m, 0) AS contributions_12m,
               coalesce(s.self_3m, 0) AS self_3m, coalesce(s.self_12m, 0) AS self_12m,
               coalesce(pd.pension_3m, 0) AS pension_3m,
               coalesce(pd.benefits_3m, 0) AS benefits_3m,
               (m.sex = 'F' AND m.age >= 61) OR (m.sex = 'M' AND m.age >= 63) AS pension_age,
               enr.level AS enrolled
        FROM mem m
        LEFT JOIN wages w USING (iin) LEFT JOIN selfemp s USING (iin)
        LEFT JOIN paid pd USING (iin) LEFT JOIN enr USING (iin)
    ),
    fam AS (
        SELECT fkey, {pid} AS family_id,
               any_value(region) FILTER (WHERE role = 'head') AS region,
               any_value(district) FILTER (WHERE role = 'head') AS district,
               any_value(urban) FILTER (WHERE role = 'head') AS urban,
               any_value(language) FILTER (WHERE role = 'head') AS language,
               any_value(address_id) FILTER (WHERE role = 'head') AS address_id,
               count(*) AS members,
               count(*) FILTER (WHERE age < 18) AS children,
               count(*) FILTER (WHERE age < 1) AS infants,
               count(*) FILTER (WHERE age >= 1 AND age < 7) AS children_1_6,
               count(*) FILTER (WHERE age < 7) AS children_under_7,
               count(*) FILTER (WHERE role = 'child' AND (age < 18 OR student)) AS dependent_children,
               count(*) FILTER (WHERE student) AS students,
               count(*) FILTER (WHERE sex = 'F') AS women,
               count(*) FILTER (WHERE sex = 'M') AS men,
               count(*) FILTER (WHERE pension_age) AS pensioners,
               count(*) FILTER (WHERE disabled) AS disabled,
               count(*) FILTER (WHERE disabled AND age < 18) AS disabled_children,
               count(*) FILTER (WHERE disability_group = 1) AS disabled_group1,
               count(*) FILTER (WHERE disability_group = 2) AS disabled_group2,
               count(*) FILTER (WHERE disability_group = 3) AS disabled_group3,
               count(*) FILTER (WHERE age >= 18 AND NOT pension_age AND NOT student
                                AND disability_group NOT IN (1, 2)) AS able_bodied,
               count(*) FILTER (WHERE wage_3m + self_3m > 0) AS working,
               count(*) FILTER (WHERE age >= 6 AND age < 18 AND enrolled IS NULL)
                 AS school_age_not_enrolled,
               count(*) FILTER (WHERE age >= 3 AND age < 6 AND enrolled IS NULL)
                 AS preschool_not_enrolled,
               sum(wage_3m) AS wages_3m, sum(wage_12m) AS wages_12m,
               sum(self_3m) AS self_employment_3m, sum(self_12m) AS self_employment_12m,
               sum(pension_3m) AS pensions_3m, sum(benefits_3m) AS benefits_3m,
               sum(contributions_12m) AS contributions_12m,
               min(age) FILTER (WHERE role IN ('head', 'spouse')) AS youngest_adult_age
        FROM per GROUP BY fkey
    ),
    assets AS (
        SELECT ms.fkey,
               sum(coalesce(dwellings, 0)) AS dwellings, sum(coalesce(commercial, 0)) AS commercial,
               sum(coalesce(land_plots, 0)) AS land_plots,
               sum(coalesce(property_value, 0)) AS property_value,
               sum(coalesce(vehicles, 0)) AS vehicles,
               sum(coalesce(vehicle_value, 0)) AS vehicle_value,
               sum(coalesce(debt, 0)) AS debt, sum(coalesce(loan_payments, 0)) AS loan_payments,
               max(coalesce(max_overdue_days, 0)) AS max_overdue_days,
               sum(coalesce(overdue_debt, 0)) AS overdue_debt,
               sum(coalesce(microcredit_debt, 0)) AS microcredit_debt,
               sum(coalesce(non_mortgage_debt, 0)) AS non_mortgage_debt,
               sum(coalesce(deposits, 0)) AS deposits,
               sum(coalesce(large_livestock, 0)) AS large_livestock,
               sum(coalesce(small_livestock, 0)) AS small_livestock,
               count(*) FILTER (WHERE unemployed) AS registered_unemployed,
               count(*) FILTER (WHERE social_contract) AS social_contract
        FROM membership ms
        LEFT JOIN prop USING (iin) LEFT JOIN veh USING (iin) LEFT JOIN cred USING (iin)
        LEFT JOIN dep USING (iin) LEFT JOIN agr USING (iin) LEFT JOIN emp USING (iin)
        GROUP BY ms.fkey
    )
    SELECT f.* EXCLUDE (fkey, address_id),
           (wages_3m + self_employment_3m + pensions_3m + benefits_3m) / members
             AS income_per_capita_3m,
           (wages_12m + self_employment_12m + pensions_3m + benefits_3m) / members
             AS income_per_capita_12m,
           (members - working) / greatest(working, 1) AS dependency_ratio,
           a.* EXCLUDE (fkey),
           h.tenure, h.area_m2 AS housing_area_m2, h.area_m2 / members AS area_per_person,
           h.water, h.sewerage, h.gas, h.heating, h.internet,
           h.housing_cost + h.utilities_cost AS housing_costs
    FROM fam f JOIN assets a USING (fkey)
    LEFT JOIN housing h ON h.address_id = f.address_id
    ORDER BY family_id
    """


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
    con = connect()
    for f in sorted(src.glob("*.parquet")):
        con.execute(f"CREATE VIEW {f.stem} AS SELECT * FROM read_parquet({sql_path(f)})")
    d = f"DATE '{on.isoformat()}'"
    for stmt in formation_sql(d):
        con.execute(stmt)
    history = data_dir / "cards" / "history"
    previous = sorted(p for p in history.glob("*") if p.is_dir() and p.name < on.isoformat())
    with atomic_dir(history / on.isoformat()) as tmp:
        con.execute(
            f"COPY ({indicators_sql(d)}) TO {sql_path(tmp / 'families.parquet')} (FORMAT parquet)"
        )
        con.execute(
            f"""COPY (SELECT {_pseudo("iin")} AS person_id, {_pseudo("fkey")} AS family_id, role,
                       a.sex, a.age
                FROM membership JOIN alive a USING (iin) ORDER BY family_id, person_id)
            TO {sql_path(tmp / "members.parquet")} (FORMAT parquet)"""
        )
    out = history / on.isoformat()
    changed = None
    if previous:
        changed = _changes(con, previous[-1], out)
    for name in ("families.parquet", "members.parquet", "changes.parquet"):
        if (out / name).exists():
            shutil.copyfile(out / name, data_dir / "cards" / f".{name}.tmp")
            os.replace(data_dir / "cards" / f".{name}.tmp", data_dir / "cards" / name)
    fam, ppl = con.execute(
        f"SELECT count(*), sum(members) FROM read_parquet({sql_path(out / 'families.parquet')})"
    ).fetchone()
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
