"""National entitlements: every measure in force, for every family and person, in one SELECT.

Three steps, all SQL:
1. `facts`: the per-person facts the card does not hold yet (birth order, the mother's
   insurance, a deceased parent, long illness, awards, ASP received) from the ingested
   registries, joined to the card's pseudonymous ids (DuckDB). Written beside the output.
2. The dated values of the run date: MRP, regional PM, poverty line (SPEC §8: from 2025,
   max(35 % of the previous quarter's median per-capita income from the card, 70 % of the
   regional PM)), housing shares — as literals in the SQL.
3. `entitlements_sql`: one SELECT over `cards`, `family_facts` and `persons`: for each measure
   its conditions and amount, then incompatible measures resolved (the larger amount stays).
   It runs on DuckDB or Spark (`qamqor.engine.run_query`); `qamqor.measures.explain` runs the
   same conditions over one family.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from qamqor.card.build import month_sql
from qamqor.countries import Country, NotInForceError, load_country
from qamqor.engine import atomic_dir, connect, publish_file, run_query, scratch_dir, sql_path
from qamqor.expressions import check_expression, names_used
from qamqor.ids import pseudonym_number_sql
from qamqor.levels.compute import card_dates, card_path
from qamqor.measures.catalogue import (
    FAMILY_FACTS,
    PERSON_FACTS,
    Catalogue,
    Measure,
    load_catalogue,
)
from qamqor.measures.persons import PERSONS, PERSONS_SINCE, SUPERSEDED, with_age_months
from qamqor.registries.views import registry_view

ANNUAL = {"monthly": 12, "quarterly": 4, "once": 1}
FAMILIES_NATIONAL = 6_300_000  # SPEC §2: families in the Digital Family Card
INGESTED = ("population", "health", "income", "awards", "education", "payments")
FACTS_MEMORY_LIMIT = "5GB"
PAID = "paid.parquet"  # the people the payments registry paid in the quarter, with their family


def _num(x: float | None) -> str:
    return "CAST(NULL AS DOUBLE)" if x is None else f"CAST({float(x)!r} AS DOUBLE)"


@lru_cache(maxsize=4096)
def expr_sql(text: str, names: tuple[str, ...]) -> str:
    """A checked expression as SQL with every numeric literal cast to DOUBLE (same arithmetic
    on DuckDB and Spark); cached, as explaining one family generates every rule's SQL."""
    return _tree_sql(check_expression(text, names))


def _tree_sql(tree: exp.Expression, values: dict[str, float | None] | None = None) -> str:
    """A checked expression tree as `expr_sql` writes it; with `values`, the names among them
    (dated values) replaced by their values as literals."""
    values = values or {}

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.name in values:
            return sqlglot.parse_one(f"CAST({float(values[node.name])!r} AS DOUBLE)")
        if isinstance(node, exp.Literal) and not node.is_string:
            return sqlglot.parse_one(f"CAST({node.this} AS DOUBLE)")
        return node

    return f"({tree.transform(swap).sql('duckdb')})"


# --- 1. person and family facts -----------------------------------------------------------------

# The card's members with their register rows (both sides narrow, joined on the pseudonym's
# number): what the person facts and the registry comparison start from.
MEMBER_REGISTER = f"""CREATE TEMP TABLE member_register AS
    SELECT m.person_id, m.family_id, m.role, m.sex, m.age,
           r.iin, r.birth_date, r.father_iin, r.mother_iin
    FROM members m
    JOIN (SELECT iin, {pseudonym_number_sql("person_id")} AS pkey,
                 birth_date, father_iin, mother_iin
          FROM population) r ON r.pkey = {pseudonym_number_sql("m.person_id")}"""


def facts_sql(
    on: date, pension_age_men: float, pension_age_women: float, part: bool = False
) -> tuple[str, str]:
    """Two SELECTs (DuckDB, over the ingested registries and the `member_register` table):
    per-person facts and their family aggregates. With `part` (`member_register` holds a small
    part of the register) each registry is first narrowed to the people it can concern."""
    d = f"DATE '{on.isoformat()}'"

    def among(col: str = "iin", *of: str) -> str:
        """With `part`, a condition that `col` is one of the members' `of` columns."""
        tests = " OR ".join(f"{col} IN (SELECT {o} FROM member_register)" for o in of or (col,))
        return f" AND ({tests})" if part else ""

    month, m3 = month_sql(d), month_sql(d, 3)  # the 3 whole months before the month of `on`
    persons = f"""
    WITH p AS (SELECT * FROM member_register),
    -- the deceased only (a few per cent of the register): the parents are looked up in them
    dead AS (SELECT iin FROM population WHERE death_date <= {d}),
    -- birth order among the mother's children (by birth date, then IIN): the window runs over
    -- the people with a registered mother only (the others are first), not the whole register
    sib AS (
        SELECT iin, row_number() OVER (PARTITION BY mother_iin ORDER BY birth_date, iin)
                      AS birth_order
        FROM population WHERE mother_iin IS NOT NULL{among("mother_iin")}
    ),
    h AS (  -- only the rows that can give a disability group or a long illness
        SELECT iin, max(CASE WHEN disability_since IS NULL OR disability_since <= {d}
                        THEN coalesce(disability_group, 0) ELSE 0 END) AS disability_group,
               bool_or(coalesce(long_illness, FALSE)) AS long_ill
        FROM health WHERE (disability_group IS NOT NULL OR long_illness){among()}
        GROUP BY iin
    ),
    ins AS (SELECT DISTINCT iin FROM income
            WHERE period >= {m3} AND period < {month} AND social_contribution > 0
                  {among("iin", "iin", "mother_iin")}),
    aw AS (
        SELECT iin, CASE max(CASE award WHEN 'mother_heroine' THEN 3 WHEN 'altyn_alka' THEN 2
                                        WHEN 'kumis_alka' THEN 1 ELSE 0 END)
                    WHEN 3 THEN 'mother_heroine' WHEN 2 THEN 'altyn_alka'
                    WHEN 1 THEN 'kumis_alka' END AS award
        FROM awards WHERE award_date <= {d}{among()} GROUP BY iin
    ),
    stu AS (SELECT DISTINCT iin FROM education
            WHERE full_time AND level IN ('college', 'university'){among()}),
    asp AS (SELECT iin, sum(amount) / 3 AS asp_3m FROM payments
            WHERE measure = 'asp' AND period >= {m3} AND period < {month}{among()}
            GROUP BY iin)
    SELECT p.person_id, p.family_id, p.role AS person_role, p.sex AS person_sex,
           p.age AS person_age, p.birth_date AS person_birth_date,
           coalesce(h.disability_group, 0) AS person_disability_group,
           stu.iin IS NOT NULL AS person_student,
           (p.sex = 'M' AND p.age >= {pension_age_men})
             OR (p.sex = 'F' AND p.age >= {pension_age_women}) AS person_pension_age,
           ins.iin IS NOT NULL AS person_insured,
           mi.iin IS NOT NULL AS person_mother_insured,
           aw.award AS person_award,
           coalesce(sib.birth_order, 1) AS person_birth_order,
           coalesce(h.long_ill, FALSE) AS person_long_ill,
           f.iin IS NOT NULL OR mo.iin IS NOT NULL AS person_parent_died,
           coalesce(asp.asp_3m, 0) AS asp_3m
    FROM p
    LEFT JOIN h ON h.iin = p.iin
    LEFT JOIN ins ON ins.iin = p.iin
    LEFT JOIN ins mi ON mi.iin = p.mother_iin
    LEFT JOIN aw ON aw.iin = p.iin
    LEFT JOIN stu ON stu.iin = p.iin
    LEFT JOIN asp ON asp.iin = p.iin
    LEFT JOIN sib ON sib.iin = p.iin
    LEFT JOIN dead f ON f.iin = p.father_iin
    LEFT JOIN dead mo ON mo.iin = p.mother_iin"""
    families = """
    SELECT family_id,
           count(*) FILTER (WHERE person_parent_died AND person_role = 'child'
             AND (person_age < 18 OR (person_age < 23 AND person_student)))
             AS breadwinner_dependents,
           count(*) FILTER (WHERE person_long_ill AND person_age >= 18
             AND NOT person_pension_age AND NOT person_student
             AND person_disability_group NOT IN (1, 2)) AS long_ill_able,
           sum(asp_3m) AS asp_3m
    FROM persons
    -- only the persons that can count (a few per cent): a family without any has no row, and
    -- its facts are 0 (every reader joins LEFT and fills 0)
    WHERE (person_parent_died AND person_role = 'child') OR person_long_ill OR asp_3m > 0
    GROUP BY family_id"""
    return persons, families


def write_facts(data_dir: Path, on: date, country: Country, out: Path) -> dict[str, dict]:
    """persons.parquet and family_facts.parquet in `out`, from the ingested registries; returns
    what the payments registry paid (`registry_paid`), for the summary."""
    data_dir = Path(data_dir)
    men = country.parameter("pension_age_men").at(on)
    women = country.parameter("pension_age_women").at(on)
    persons, families = facts_sql(on, men, women)
    # a buffer limit (QAMQOR_MEMORY_LIMIT overrides): the joins over the whole register spill
    # to a scratch folder rather than growing (at 6.3 M families the step peaked at 8.4 GiB)
    limit = os.environ.get("QAMQOR_MEMORY_LIMIT", FACTS_MEMORY_LIMIT)
    with scratch_dir(out.parent, "facts-spill") as spill:
        con = connect(memory_limit=limit, temp_directory=spill)
        for t in INGESTED:
            f = data_dir / "ingested" / f"{t}.parquet"
            if not f.exists():
                raise FileNotFoundError(f"{f} not found: run `qamqor ingest` first")
            con.execute(registry_view(con, f))  # IINs as BIGINT, the population's person_id
        members = card_path(data_dir, on).with_name("members.parquet")
        con.execute(f"CREATE VIEW members AS SELECT * FROM read_parquet({sql_path(members)})")
        con.execute(MEMBER_REGISTER)
        written = sql_path(out / PERSONS)
        con.execute(f"COPY ({persons}) TO {written} (FORMAT parquet)")
        con.execute(f"CREATE VIEW persons AS SELECT * FROM read_parquet({written})")
        con.execute(
            f"COPY ({families}) TO {sql_path(out / 'family_facts.parquet')} (FORMAT parquet)"
        )
        paid = registry_paid(con, on, out)
        con.close()
    return paid


# --- 2. dated values ------------------------------------------------------------------------------


@dataclass
class PovertyLine:
    method: str
    median_income: float | None
    median_source: str
    by_region: dict[str, float]


def median_income(data_dir: Path, on: date) -> tuple[float, str]:
    """Person-weighted median per-capita income of the previous quarter, from the card built
    on the first day of the current quarter (that card's last 3 months are the previous
    quarter), or from the card of `on` if that one was not built."""
    q_start = date(on.year, 3 * ((on.month - 1) // 3) + 1, 1)
    source = on if q_start not in card_dates(data_dir) else q_start
    cards = card_path(data_dir, source)
    why = f"card of {source.isoformat()}, income of the 3 months before"
    # kept beside the card, for as long as the card is the same file (the quarter's runs)
    memo, st = cards.with_name("median.json"), cards.stat()
    stamp = f"{st.st_size}:{st.st_mtime_ns}"
    try:
        known = json.loads(memo.read_text())
        if known["stamp"] == stamp:
            return float(known["median"]), why
    except (OSError, ValueError, KeyError):
        pass
    # the smallest income at which the people of the families ordered by income reach half of
    # all people: two columns and a sort in NumPy (a SQL window would sort the whole card)
    t = pq.read_table(cards, columns=["income_per_capita_3m", "members"])
    x = t.column("income_per_capita_3m").to_numpy(zero_copy_only=False).astype(float)
    w = t.column("members").to_numpy(zero_copy_only=False).astype(np.int64)
    keep = ~np.isnan(x)  # NULL incomes are left out, as the SQL's min() leaves them out
    total = w.sum()  # ... but their people count, as in sum(members) OVER ()
    x, w = x[keep], w[keep]
    # any order of equal incomes gives the same income at the crossing: no stable sort needed
    # (6.3 M families: 1.9 → 0.8 s)
    order = np.argsort(x)
    cum = np.cumsum(w[order])
    crossing = np.nonzero(cum >= total / 2.0)[0]
    value = float(x[order][crossing[0]] if len(crossing) else 0.0)
    tmp = memo.with_name(f".{memo.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"stamp": stamp, "median": value}))
    tmp.replace(memo)
    return value, why


def poverty_line(country: Country, on: date, median: float | None, source: str = "") -> PovertyLine:
    method = str(country.parameter("poverty_line_method").at(on))
    lines = {}
    for r in country.regions:
        pm = country.regional_pm(r.code, on)
        if method == "median_share":
            share = float(country.parameter("poverty_line_median_share").at(on))
            floor = float(country.parameter("poverty_line_floor_pm_share").at(on))
            lines[r.code] = max(share * (median or 0.0), floor * pm)
        else:
            lines[r.code] = float(country.parameter("poverty_line_pm_share").at(on)) * pm
    return PovertyLine(method, median if method == "median_share" else None, source, lines)


def _param(country: Country, name: str, on: date) -> float | None:
    try:
        return float(country.parameter(name).at(on))
    except NotInForceError:
        return None


def parameters(country: Country, on: date, line: PovertyLine) -> dict[str, float | None]:
    """National dated values; regional ones are added per region by `parameters_sql`."""
    return {
        "mrp": _param(country, "mrp", on),
        "national_pm": _param(country, "pm", on),
        "median_income": line.median_income,
        "min_pension": _param(country, "min_pension", on),
        "base_pension": _param(country, "base_pension", on),
        "pension_age_men": _param(country, "pension_age_men", on),
        "pension_age_women": _param(country, "pension_age_women", on),
    }


def parameters_sql(country: Country, on: date, line: PovertyLine) -> str:
    def by_region(values: dict[str, float]) -> str:
        cases = " ".join(f"WHEN '{k}' THEN {_num(v)}" for k, v in values.items())
        return f"CASE region {cases} END"

    pm = {r.code: country.regional_pm(r.code, on) for r in country.regions}
    share = {r.code: r.housing_share_of_income for r in country.regions}
    cols = [f"{_num(v)} AS {k}" for k, v in parameters(country, on, line).items()]
    cols += [
        f"{by_region(pm)} AS pm",
        f"{by_region(line.by_region)} AS poverty_line",
        f"{by_region(share)} AS housing_share",
    ]
    return ", ".join(cols)


# --- 3. the entitlements SELECT -----------------------------------------------------------------

PERSON_COLUMNS = tuple(PERSON_FACTS)


def base_sql(
    country: Country,
    on: date,
    line: PovertyLine,
    persons_where: str = "TRUE",
    ages_on: date | None = None,
) -> str:
    """CTEs `fam` (card + family facts + dated values) and `per` (persons x their family, with
    their months of age on `ages_on`, by default `on`; only the persons that meet
    `persons_where`, a condition on their own facts)."""
    facts = ", ".join(
        f"coalesce(x.{k}, {_num(0) if v == 'float' else 0}) AS {k}"
        for k, v in FAMILY_FACTS.items()
        if k != "income_for_asp"
    )
    person = ", ".join(f"p.{c}" for c in PERSON_COLUMNS)
    return f"""
WITH fam0 AS (
  SELECT c.*, {facts}, {parameters_sql(country, on, line)}
  FROM cards c LEFT JOIN family_facts x ON x.family_id = c.family_id
), fam AS (
  SELECT *, income_per_capita_3m - asp_3m / members AS income_for_asp FROM fam0
), per AS (
  SELECT p.person_id, {person}, f.*
  FROM (SELECT * FROM ({with_age_months(ages_on or on)}) a WHERE {persons_where}) p
  JOIN fam f ON f.family_id = p.family_id
)"""


def active_conditions(m: Measure, switches: dict[str, bool] | None = None):
    switches = switches or {}
    return [c for c in m.eligibility if not c.switch or switches.get(c.switch, c.default)]


@dataclass(frozen=True)
class Rule:
    """A measure's rule as SQL over its source (`fam` or `per`): the region test, each active
    condition `(id, SQL)` and the amount."""

    source: str
    region: str
    conditions: tuple[tuple[str, str], ...]
    amount: str


def rule_sql(m: Measure, switches: dict[str, bool] | None = None) -> Rule:
    return Rule(
        "per" if m.level == "person" else "fam",
        f"region = '{m.region}'" if m.region else "TRUE",
        tuple((c.id, expr_sql(c.when, m.names)) for c in active_conditions(m, switches)),
        expr_sql(m.amount, m.names),
    )


def person_prefilter(
    measures: list[Measure],
    switches: dict[str, bool],
    values: dict[str, float | None],
    reading: str | None = None,
) -> str:
    """A condition on a person's own facts that every recipient of a person-level measure meets:
    for each measure, its active conditions that read only person facts and national dated
    values (as literals), joined by AND; the measures joined by OR. `per` then joins only
    these persons to their families (at 6.3 M: ≈ 3.8 M of 19 M people) instead of all.

    With `reading` (a person fact), only the measures whose conditions or amount read it: a
    person who fails the condition whatever that fact's value gets the same from every measure
    (the family-level ones read no person fact)."""
    known = {k for k, v in values.items() if v is not None}
    arms = []
    for m in measures:
        if m.level != "person":
            continue
        if reading is not None and not _reads(m, switches, reading):
            continue
        own = []
        for c in active_conditions(m, switches):
            tree = check_expression(c.when, m.names)
            used = names_used(tree)
            if used <= set(PERSON_FACTS) | known:
                own.append(_tree_sql(tree, values))
        if not own:  # nothing to narrow the persons by: every person is a candidate
            return "TRUE"
        arms.append("(" + " AND ".join(own) + ")")
    return " OR ".join(arms) or "FALSE"


def _reads(m: Measure, switches: dict[str, bool], name: str) -> bool:
    """Whether the active conditions or the amount of `m` read the fact `name`."""
    texts = [c.when for c in active_conditions(m, switches)] + [m.amount]
    return any(name in names_used(check_expression(t, m.names)) for t in texts)


def measure_sql(m: Measure, switches: dict[str, bool] | None = None) -> str:
    """One measure's candidates: the rows of its source where every active condition holds
    (`qamqor.measures.explain` evaluates the same `rule_sql` row by row)."""
    r = rule_sql(m, switches)
    person = "person_id" if m.level == "person" else "CAST(NULL AS VARCHAR) AS person_id"
    reasons = "; ".join(c for c, _ in r.conditions).replace("'", "")
    where = " AND ".join([r.region] + [sql for _, sql in r.conditions])
    return (
        f"SELECT family_id, {person}, region, '{m.id}' AS measure, {r.amount} AS amount, "
        f"'{m.period}' AS period, '{reasons}' AS reasons FROM {r.source} WHERE {where}"
    )


def entitlements_sql(
    cat: Catalogue,
    country: Country,
    on: date,
    line: PovertyLine,
    switches: dict[str, bool] | None = None,
    ages_on: date | None = None,
) -> str:
    """The entitlements of `on` (the months of age on `ages_on`, by default `on`)."""
    measures = cat.in_force(on)
    union = "\n  UNION ALL ".join(measure_sql(m, switches) for m in measures)
    level = {m.id: m.level for m in measures}
    pairs = sorted(
        {(m.id, o) for m in measures for o in m.incompatible_with if o in level}
        | {(o, m.id) for m in measures for o in m.incompatible_with if o in level}
    )
    final = "SELECT family_id, person_id, region, measure, amount, period, reasons FROM cand c"
    if pairs:
        clash = " OR ".join(f"(c.measure = '{a}' AND d.measure = '{b}')" for a, b in pairs)
        final += f"""
WHERE NOT EXISTS (
  SELECT 1 FROM cand d
  WHERE d.family_id = c.family_id AND ({clash})
    AND (c.person_id IS NULL OR d.person_id IS NULL OR c.person_id = d.person_id)
    AND (d.amount > c.amount OR (d.amount = c.amount AND d.measure < c.measure)))"""
    where = person_prefilter(measures, switches or {}, parameters(country, on, line))
    return f"""{base_sql(country, on, line, where, ages_on)}, cand AS (
  SELECT * FROM (
  {union}
  ) u WHERE amount > 0
)
{final}"""


# --- the run -----------------------------------------------------------------------------------


@dataclass
class EntitlementsResult:
    rows: int
    summary: dict
    out: Path


def compute_entitlements(
    data_dir: Path,
    on: date,
    engine: str = "duckdb",
    switches: dict[str, bool] | None = None,
    catalogue: Catalogue | None = None,
    country: str = "kz",
    pack: Country | None = None,
    out: Path | None = None,
    keep: bool = True,
) -> EntitlementsResult:
    """Write DIR/entitlements/{entitlements.parquet, summary.json, persons.parquet,
    family_facts.parquet} atomically. `pack` (a loaded country, e.g. with a reform's parameters)
    replaces the country `country`; `out` replaces DIR/entitlements (reform simulation).

    With `keep`, a later day of the month whose card kept most families from the date of the
    run in DIR/entitlements computes only the families that changed (`qamqor.measures.update`).
    """
    data_dir = Path(data_dir)
    cards = card_path(data_dir, on)
    cat = catalogue or load_catalogue(country)
    c = pack or load_country(country)
    median, source = median_income(data_dir, on)
    line = poverty_line(c, on, median, source)
    switches = {**cat.switches, **(switches or {})}
    final = Path(out) if out else data_dir / "entitlements"
    from qamqor.measures import update  # (it builds on this module)

    sql = entitlements_sql(cat, c, on, line, switches)
    ages = (c.parameter("pension_age_men").at(on), c.parameter("pension_age_women").at(on))
    # the rules of the day but the months of age of the first of the month, which are the same
    # for any day of the month: a later day updates the families whose months changed itself
    first = entitlements_sql(cat, c, on, line, switches, ages_on=on.replace(day=1))
    now = update.basis(data_dir, on, first, ages)
    keeping = keep and out is None and engine == "duckdb"
    before = update.usable_base(data_dir, on, final, now) if keeping else None
    with atomic_dir(final) as tmp:
        if before is None:
            paid = write_facts(data_dir, on, c, tmp)
            tables = {
                "cards": cards,
                "persons": tmp / PERSONS,
                "family_facts": tmp / "family_facts.parquet",
            }
            rows = run_query(sql, tables, tmp / "entitlements.parquet", engine)
            computed = None
        else:
            # the months of age matter to a person only where the rules that read them can
            # pay them (at 6.3 M: ≈ 20 k of the ≈ 650 k people a month older each day)
            months = person_prefilter(
                cat.in_force(on), switches, parameters(c, on, line), "person_age_months"
            )
            paid, rows, computed = update.update_entitlements(
                data_dir, on, before, c, sql, final, tmp, months
            )
        summary = summarise(tmp / "entitlements.parquet", cards, cat, on, paid)
        summary.update(
            date=on.isoformat(),
            engine=engine,
            switches=switches,
            poverty_line={
                "method": line.method,
                "median_income": line.median_income,
                "median_source": line.median_source,
                "by_region": line.by_region,
            },
        )
        if before is not None:
            summary.update(computed_families=computed, kept_from=before.isoformat())
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
        (tmp / update.BASIS).write_text(json.dumps({**now, "date": on.isoformat()}, indent=1))
    if out is None:  # keep each date's run for offers (qamqor/measures/offers.py: the
        # entitlements, and the persons for the advance notices); beside, not inside,
        # DIR/entitlements, which atomic_dir replaces whole
        with atomic_dir(data_dir / "entitlements_history" / on.isoformat()) as tmp:
            for name in (
                "entitlements.parquet",
                "summary.json",
                update.COMPUTED,
                PERSONS,
                PERSONS_SINCE,
                SUPERSEDED,
            ):
                if (final / name).exists():  # a hard link: none is written again
                    publish_file(final / name, tmp / name)
    return EntitlementsResult(rows, summary, final)


def summarise(ent: Path, cards: Path, cat: Catalogue, on: date, paid: dict[str, dict]) -> dict:
    """Recipients, families and annual cost per measure (national and by region), beside the
    SPEC §2 figures scaled to this nation and what the payments registry paid."""
    con = connect()
    con.execute(f"CREATE VIEW e AS SELECT * FROM read_parquet({sql_path(ent)})")
    (families,) = con.execute(f"SELECT count(*) FROM read_parquet({sql_path(cards)})").fetchone()
    scale = families / FAMILIES_NATIONAL
    annual = " ".join(f"WHEN '{k}' THEN {v}" for k, v in ANNUAL.items())
    rows = con.execute(
        f"""SELECT measure, region, count(*), count(DISTINCT family_id),
                   sum(amount * CASE period {annual} END)
            FROM e GROUP BY 1, 2"""
    ).fetchall()
    out: dict = {"families": int(families), "scale": scale, "measures": {}}
    for m in cat.in_force(on):
        out["measures"][m.id] = {
            "name": m.name["en"],
            "region": m.region,
            "level": m.level,
            "period": m.period,
            "recipients": 0,
            "families": 0,
            "annual_cost": 0.0,
            "by_region": {},
        }
        if m.spec_recipients:
            out["measures"][m.id]["spec"] = {
                "recipients_6_3m": m.spec_recipients,
                "unit": m.spec_unit,
                "scaled": round(m.spec_recipients * scale, 1),
            }
        if m.registry_measure in paid:
            out["measures"][m.id]["registry_paid"] = paid[m.registry_measure]
    for measure, region, n, fam, cost in rows:
        s = out["measures"][measure]
        s["recipients"] += n
        s["families"] += fam
        s["annual_cost"] += float(cost or 0)
        s["by_region"][region] = {"recipients": n, "families": fam, "annual_cost": float(cost)}
    for s in out["measures"].values():
        spec = s.get("spec")
        if spec:
            got = s["recipients"] if spec["unit"] == "people" else s["families"]
            spec["ratio"] = round(got / spec["scaled"], 3) if spec["scaled"] else None
            spec["within_15pct"] = spec["ratio"] is not None and abs(spec["ratio"] - 1) <= 0.15
    (bc,) = con.execute(
        "SELECT count(DISTINCT family_id) FROM e WHERE measure IN ('birth', 'childcare')"
    ).fetchone()
    out["birth_or_childcare_families"] = {
        "families": int(bc),
        "spec_lower_bound_scaled": round(200_000 * scale, 1),
        "registry_paid": paid.get("birth_or_childcare", {}).get("families"),
    }
    con.close()
    return out


def registry_paid(con, on: date, out: Path, paid: str | None = None) -> dict[str, dict]:
    """People and families paid per measure in the 3 months before `on` (the payments
    registry; families through `member_register`, on a connection of `write_facts`).

    Each paid person and measure of the quarter once, with their family as a number (one to
    one with its pseudonym: distinct counts of numbers cost less than of the text), is kept as
    `out/PAID` for the next run of the month; `paid` replaces the SELECT that finds them
    (`qamqor.measures.update`)."""
    d = f"DATE '{on.isoformat()}'"
    paid = (
        paid
        or f"""
            WITH paid AS (
              SELECT DISTINCT iin, measure FROM payments
              WHERE period >= {month_sql(d, 3)} AND period < {month_sql(d)})
            SELECT paid.iin, paid.measure, {pseudonym_number_sql("r.family_id")} AS family
            FROM paid LEFT JOIN (SELECT iin, family_id FROM member_register) r USING (iin)"""
    )
    con.execute(f"CREATE TEMP TABLE p AS {paid}")
    con.execute(f"COPY p TO {sql_path(out / PAID)} (FORMAT parquet)")
    rows = con.execute(
        "SELECT measure, count(*), count(DISTINCT family) FROM p GROUP BY measure"
    ).fetchall()
    (bc,) = con.execute(
        "SELECT count(DISTINCT family) FROM p WHERE measure IN ('birth', 'childcare')"
    ).fetchone()
    con.execute("DROP TABLE p")
    out = {m: {"people": int(n), "families": int(f)} for m, n, f in rows if m}
    out["birth_or_childcare"] = {"families": int(bc)}
    return out
