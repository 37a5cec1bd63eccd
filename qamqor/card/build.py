"""The Digital Family Card: families formed by SPEC §5 as of a date, and their indicators.

Pure SQL over the ingested registries (DuckDB by default; kept to portable joins, aggregates
and CASE so SQLGlot can transpile it for Spark). No per-row Python.

Built for 6 M families on a small machine (docs/card.md): IINs are joined as the BIGINTs
ingestion stores (`registry_view`), the keyed pseudonym comes from ingestion, each person's
attributes are computed once (`alive`) and carried in `membership`; a family's demography and
money are one aggregate over `membership`; asset and debt registries reach their families as
one union joined once; intermediate tables are narrow and dropped after their last use, and
DuckDB works under a memory limit, spilling to a scratch folder rather than growing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from qamqor.engine import atomic_dir, code_hash, connect, publish_file, scratch_dir, sql_path
from qamqor.ids import pseudonym_sql
from qamqor.registries.views import registry_view

# Bytes of a column chunk's dictionary beyond which the families' Parquet writer stops trying
# one: the amounts and ids are mostly distinct, and the attempt cost ≈ 1.5 s of 7.4 at 6.3 M
# (the names of regions, districts and kinds still get theirs; DuckDB reads both alike).
DICTIONARY_LIMIT = 4096
# DuckDB's buffer limit for the card step (QAMQOR_MEMORY_LIMIT overrides): beyond it, joins,
# aggregates and sorts spill to a scratch folder under DIR/cards instead of growing.
MEMORY_LIMIT = "7GB"


def _age(col: str, d: str) -> str:
    return (
        f"(date_diff('year', {col}, {d}) - CASE WHEN month({col}) * 100 + day({col}) > "
        f"month({d}) * 100 + day({d}) THEN 1 ELSE 0 END)"
    )


# The columns of `membership` besides iin, fkey and role: what the outputs need of a person.
PERSON = "person_id, sex, age, student, disabled, disability_group"
# kept beside each date's cards: family_id, members, members_hash (`_changes`)
DIGEST = "membership.parquet"
# a family's members as one number (XOR of their ids' hashes): the same in `family` and in the
# kept path's `digest`, whose values are compared with each other from one date to the next
MEMBERS_HASH = "bit_xor(hash(nullif(person_id, '')))"


def formation_sql(d: str) -> list[str]:
    """SQL statements that create `alive`, `couples`, `head_key`, `dependants` and `membership`.

    `alive` holds each living person's attributes and pseudonym `person_id` (from ingestion).
    `membership` maps every living person to a family key `fkey` (the head's IIN), a role, and
    carries the attributes the outputs need (`PERSON`). `couples`, `head_key` and `dependants`
    are narrow steps on the way. A family's `family_id` is its head's `person_id`: `family`
    reads it once per family (carried through these 19 M-row steps it cost ≈ 8 s at 6.3 M).
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
        SELECT p.iin, p.person_id, p.sex, {age} AS age, p.address_id, p.father_iin, p.mother_iin,
               e.iin IS NOT NULL AS student,
               coalesce(h.disability_group, 0) AS disability_group,
               h.disability_since IS NOT NULL AND h.disability_since <= {d} AS disabled
        FROM population p
        LEFT JOIN e ON e.iin = p.iin
        LEFT JOIN h ON h.iin = p.iin
        WHERE p.birth_date <= {d} AND (p.death_date IS NULL OR p.death_date > {d})""",
        # Both partners of a couple, each with the couple's family key (the husband's IIN):
        # one row per married person, one join to find them.
        f"""CREATE TEMP TABLE couples AS
        WITH c AS (
            SELECT m.iin AS husband, m.other_iin AS wife
            FROM civil_events m
            JOIN alive a ON a.iin = m.iin
            JOIN alive b ON b.iin = m.other_iin AND b.address_id = a.address_id
            WHERE m.event_type = 'marriage' AND m.event_date <= {d}
              AND NOT EXISTS (
                SELECT 1 FROM civil_events x
                WHERE x.event_type = 'divorce' AND x.iin = m.iin AND x.other_iin = m.other_iin
                  AND x.event_date > m.event_date AND x.event_date <= {d})
        )
        SELECT husband AS iin, husband FROM c
        UNION ALL SELECT wife, husband FROM c""",
        # Adults' own family key: the husband's for a couple, else their own.
        """CREATE TEMP TABLE head_key AS
        SELECT a.iin, a.address_id, coalesce(c.husband, a.iin) AS fkey
        FROM alive a LEFT JOIN couples c ON c.iin = a.iin""",
        # Dependants: under 18, full-time students under 23, adult disabled children, living
        # at a parent's address (the mother's first) and not the parent of a child at their
        # own address: they join that parent's family. (Not married either: `membership`
        # checks that, as it joins `couples` anyway.)
        """CREATE TEMP TABLE dependants AS
        WITH parents AS (
            -- each person with a registered parent: is that parent alive at their address?
            SELECT c.iin, (c.age < 18 OR (c.age < 23 AND c.student) OR c.disabled) AS dependant,
                   CASE WHEN m.address_id = c.address_id THEN m.iin END AS mother_here,
                   CASE WHEN f.address_id = c.address_id THEN f.iin END AS father_here,
                   CASE WHEN m.address_id = c.address_id THEN m.fkey
                        WHEN f.address_id = c.address_id THEN f.fkey END AS parent_key
            FROM alive c
            LEFT JOIN head_key m ON m.iin = c.mother_iin
            LEFT JOIN head_key f ON f.iin = c.father_iin
            WHERE c.mother_iin IS NOT NULL OR c.father_iin IS NOT NULL
        ),
        here AS (  -- parents of a child at their own address
            SELECT mother_here AS iin FROM parents WHERE mother_here IS NOT NULL
            UNION ALL SELECT father_here FROM parents WHERE father_here IS NOT NULL
        )
        SELECT p.iin, p.parent_key FROM parents p
        WHERE p.dependant AND p.parent_key IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM here x WHERE x.iin = p.iin)""",
        f"""CREATE TEMP TABLE membership AS
        WITH m AS (
            SELECT a.*, CASE WHEN c.iin IS NULL THEN dep.parent_key END AS parent_key,
                   coalesce(c.husband, a.iin) AS own_key
            FROM alive a
            LEFT JOIN couples c ON c.iin = a.iin
            LEFT JOIN dependants dep ON dep.iin = a.iin
        )
        SELECT iin, coalesce(parent_key, own_key) AS fkey,
               CASE WHEN parent_key IS NOT NULL THEN 'child'
                    WHEN own_key = iin THEN 'head' ELSE 'spouse' END AS role,
               {PERSON}
        FROM m""",
    ]


def month_sql(d: str, back: int = 0) -> str:
    """SQL of the first day of the month of the SQL date `d`, `back` months earlier: money is
    counted by whole months (registries report by month), the same on every day of a month."""
    start = f"date_trunc('month', {d})"
    return f"{start} - INTERVAL {back} MONTH" if back else start


def money_sql(d: str, members: str = "membership") -> list[str]:
    """SQL statements that create `earnings` and `paid`: per person of `members`, the money the
    methodology averages per person over the 3 and 12 whole months before the month of `d` (a
    family's figure is the sum of its members')."""
    month, m3, m12 = month_sql(d), month_sql(d, 3), month_sql(d, 12)
    # every living person has money rows worth reading: only a part of them needs a filter
    among = "" if members == "membership" else f" AND iin IN (SELECT iin FROM {members})"
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
        WHERE period < {month}{among} GROUP BY iin""",
        f"""CREATE TEMP TABLE paid AS  -- pensions and benefits paid
        SELECT iin,
               sum(amount) FILTER (WHERE measure = 'age_pension' AND period >= {m3}) / 3
                 AS pension_3m,
               sum(amount) FILTER (WHERE measure NOT IN ('age_pension', 'birth')
                 AND period >= {m3}) / 3 AS benefits_3m
        FROM payments WHERE period < {month}{among} GROUP BY iin""",
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
}

# Counts are summed three to a DOUBLE, 17 bits apart: DuckDB's hash aggregate costs about as
# much per aggregate as per group, so 25 counts as 9 sums save most of their cost. Every partial
# sum is a whole number below 2**53, so the sums are exact in any order and each count unpacks
# exactly, as long as a family has fewer than 2**17 (131,072) members or assets of one kind.
_BITS = 17


def _packed(counts: dict[str, str], prefix: str) -> tuple[list[str], dict[str, str]]:
    """Aggregates `sum(...) AS {prefix}k` counting the rows where each condition of `counts`
    (name → SQL condition) holds, and each name's unpacking (a whole DOUBLE)."""
    aggs, unpack = [], {}
    names = list(counts)
    for k in range(0, len(names), 3):
        pack = f"{prefix}{k // 3}"
        terms = []
        for j, name in enumerate(names[k : k + 3]):
            flag = f"CAST(coalesce({counts[name]}, FALSE) AS DOUBLE)"
            scale = float(2 ** (_BITS * j))
            terms.append(flag if j == 0 else f"{flag} * {scale!r}")
            shifted = pack if j == 0 else f"floor({pack} / {scale!r})"
            unpack[name] = shifted if j == 2 else f"({shifted} % {float(2**_BITS)!r})"
        aggs.append(f"sum({' + '.join(terms)}) AS {pack}")
    return aggs, unpack


_PENSION_AGE = "((sex = 'F' AND age >= 61) OR (sex = 'M' AND age >= 63))"
# A family's members by kind: name → condition on a member (`membership`, with `enrolled`
# and the member's money).
_COUNTS = {
    "members": "TRUE",
    "children": "age < 18",
    "infants": "age < 1",
    "children_1_6": "age >= 1 AND age < 7",
    "children_under_7": "age < 7",
    "dependent_children": "role = 'child' AND (age < 18 OR student)",
    "students": "student",
    "women": "sex = 'F'",
    "men": "sex = 'M'",
    "pensioners": _PENSION_AGE,
    "disabled": "disabled",
    "disabled_children": "disabled AND age < 18",
    "disabled_group1": "disability_group = 1",
    "disabled_group2": "disability_group = 2",
    "disabled_group3": "disability_group = 3",
    "able_bodied": f"age >= 18 AND NOT {_PENSION_AGE} AND NOT student"
    " AND disability_group NOT IN (1, 2)",
    "school_age_not_enrolled": "age >= 6 AND age < 18 AND enrolled IS NULL",
    "preschool_not_enrolled": "age >= 3 AND age < 6 AND enrolled IS NULL",
    "working": "coalesce(wage_3m, 0) + coalesce(self_3m, 0) > 0",
}


def family_sql(d: str, members: str = "membership") -> str:
    """`family`: one row per family key of `members`: the family's id and place (its head's),
    demography and money, in one aggregate."""
    packs, unpack = _packed(_COUNTS, "n")
    money = ", ".join(f"coalesce({e}, 0) AS {c}" for c, e in _MONEY.items())
    unpack = {c: f"CAST({e} AS BIGINT)" for c, e in unpack.items()}
    counts = ", ".join(f"{e} AS {c}" for c, e in unpack.items() if c != "working")
    return f"""CREATE TEMP TABLE family AS
    WITH agg AS (
        SELECT fkey, {", ".join(packs)},
               min(age) FILTER (WHERE role IN ('head', 'spouse')) AS youngest_adult_age,
               {MEMBERS_HASH} AS members_hash,  -- `_changes`
               {money}
        FROM {members}
        LEFT JOIN (SELECT iin, level AS enrolled FROM education WHERE enrolled_from <= {d}) e
          USING (iin)
        LEFT JOIN earnings USING (iin)
        LEFT JOIN paid USING (iin)
        GROUP BY fkey
    )
    -- the family key is the head's IIN: the family's id and place are the head's (read from
    -- the register here, so that `alive` need not carry them for everyone)
    SELECT hd.person_id AS family_id, hd.region, hd.district, hd.urban, hd.language,
           hd.address_id, agg.fkey, {counts}, youngest_adult_age, members_hash,
           {", ".join(_MONEY)}, {unpack["working"]} AS working
    FROM agg JOIN population hd ON hd.iin = agg.fkey"""


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
# Counts of a family's assets, packed as above; the card always wrote the first four as DOUBLE
# (DuckDB's sum of integers), the others as BIGINT (counts).
_ASSET_COUNTS = {
    "dwellings": "property = 'dwelling'",
    "commercial": "property = 'commercial'",
    "land_plots": "property = 'land'",
    "vehicles": "vehicle IS NOT NULL",
    "registered_unemployed": "status = 'registered_unemployed'",
    "social_contract": "status = 'social_contract'",
}
_AS_DOUBLE = ("dwellings", "commercial", "land_plots", "vehicles")
# Livestock heads are summed as they are: a herd can be larger than a packed field.
_ASSETS = {
    "property_value": "sum(property_value)",
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
}
# Every column `assets` gives a family, in the card's order.
ASSET_COLUMNS = (
    "dwellings", "commercial", "land_plots", "property_value", "vehicles", "vehicle_value",
    "debt", "loan_payments", "max_overdue_days", "overdue_debt", "microcredit_debt",
    "non_mortgage_debt", "deposits", "large_livestock", "small_livestock",
    "registered_unemployed", "social_contract",
)  # fmt: skip


def assets_sql(d: str, members: str = "membership") -> str:
    """`assets`: per family key of `members`, property, vehicles, debt, deposits, livestock,
    employment."""
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
    packs, unpack = _packed(_ASSET_COUNTS, "k")
    cols = {
        **{c: e if c in _AS_DOUBLE else f"CAST({e} AS BIGINT)" for c, e in unpack.items()},
        **{c: f"coalesce({c}, 0)" for c in _ASSETS},
    }
    return f"""CREATE TEMP TABLE assets AS
    WITH agg AS (
        SELECT ms.fkey, {", ".join(packs)}, {", ".join(f"{e} AS {c}" for c, e in _ASSETS.items())}
        FROM (
            {union}
        ) x
        JOIN {members} ms USING (iin)
        GROUP BY ms.fkey
    )
    SELECT fkey, {", ".join(f"{cols[c]} AS {c}" for c in ASSET_COLUMNS)} FROM agg"""


def indicators_sql(d: str) -> str:
    """One row per family with every indicator the methodology and the measures need."""
    return f"""
    WITH fam AS (
        SELECT f.*, {", ".join(f"coalesce(a.{c}, 0) AS {c}" for c in ASSET_COLUMNS)}
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
    """


def members_sql(families: str = "family") -> str:
    """One row per member: pseudonymous person and family ids, role, sex and age (the family's
    id from `families`, by the family key)."""
    # nullif(x, ''): the ids were always written as optional Parquet fields, and DuckDB writes
    # REQUIRED when it can prove a column has no NULLs (as it can for a stored column).
    return f"""
    SELECT nullif(m.person_id, '') AS person_id, nullif(f.family_id, '') AS family_id, m.role,
           m.sex, m.age
    FROM membership m JOIN {families} f USING (fkey)"""


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
        "DROP TABLE alive",
        *money_sql(d),
        family_sql(d),
        "DROP TABLE earnings",
        "DROP TABLE paid",
        assets_sql(d),
    ]


# Registry dates that change a person's card inputs without changing any family's membership
# (births, deaths, marriages and divorces change memberships, which the digests compare).
_DATED = {
    "health": "disability_since",
    "education": "enrolled_from",
    "real_estate": "acquired_date",
    "credit": "opened_date",
    "employment": "since",
}


def update_sql(d: str, before: Path) -> list[str]:
    """The statements of `card_sql` for a date after the card date `before` of the same month
    and inputs: families are formed for the whole nation, but indicators are computed only for
    the families in `redo` (see `build_cards`).

    `touched` holds the living people whose inputs differ between the two dates: a birthday
    (an age changed) or one of the `_DATED` registry dates between them. `digest` is every
    family's id, member count and member hash (as in `family`), and whether a member was
    touched. The families with the same members as on `before` and none touched keep their
    indicators of `before` (the money months are the same): `redo` holds the others, the
    families to compute (`fkey` NULL: dissolved since `before`).
    """
    b = f"DATE '{before.name}'"
    dated = "".join(
        f"\n        UNION SELECT iin FROM {table} WHERE {col} > {b} AND {col} <= {d}"
        for table, col in _DATED.items()
    )
    return [
        *formation_sql(d),
        "DROP TABLE head_key",
        "DROP TABLE dependants",
        "DROP TABLE couples",
        "DROP TABLE alive",
        f"""CREATE TEMP TABLE touched AS
        SELECT iin FROM population
        WHERE birth_date <= {d} AND {_age("birth_date", d)} <> {_age("birth_date", b)}{dated}""",
        f"""CREATE TEMP TABLE digest AS
        SELECT fkey, max(person_id) FILTER (WHERE iin = fkey) AS family_id, count(*) AS members,
               {MEMBERS_HASH} AS members_hash,
               bool_or(t.iin IS NOT NULL) AS touched
        FROM membership LEFT JOIN touched t USING (iin)
        GROUP BY fkey""",
        "DROP TABLE touched",
        # small tables to build the joins below on (not the 6.2 M families kept)
        # (with each family's change of members since `before`: `_changes`)
        f"""CREATE TEMP TABLE redo AS
        SELECT g.fkey, coalesce(g.family_id, o.family_id) AS family_id,
               CASE WHEN o.family_id IS NULL THEN 'new' WHEN g.family_id IS NULL THEN 'dissolved'
                    WHEN g.members <> o.members OR g.members_hash <> o.members_hash
                    THEN 'changed' END AS change,
               coalesce(o.members, 0) AS members_before, coalesce(g.members, 0) AS members_after
        FROM digest g FULL JOIN read_parquet({sql_path(before / DIGEST)}) o USING (family_id)
        WHERE g.family_id IS NULL OR o.family_id IS NULL OR g.touched
           OR g.members <> o.members OR g.members_hash <> o.members_hash""",
        "CREATE TEMP TABLE part AS SELECT * FROM membership SEMI JOIN redo USING (fkey)",
        *money_sql(d, "part"),
        family_sql(d, "part"),
        "DROP TABLE earnings",
        "DROP TABLE paid",
        assets_sql(d, "part"),
        "DROP TABLE part",
    ]


# kept beside each date's cards: what its inputs were (`_basis`), and the earlier date whose
# indicators it kept, if any ("kept_from"; then COMPUTED lists the families it computed)
BASIS = "basis.json"
COMPUTED = "computed.parquet"
# the code whose output a later date may keep: this module and the registry views
_CODE = (Path(__file__), Path(__file__).parent.parent / "registries" / "views.py")


def ingested_stamp(src: Path) -> dict[str, list[int]]:
    """Each ingested file's size and modification time (ingestion replaces files whole)."""
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(src.glob("*.parquet"))}


def _basis(src: Path, on: date) -> dict:
    """What a date's cards are computed from: the month (of the money), this code and the
    ingested files."""
    code = code_hash(_CODE)
    month = on.replace(day=1).isoformat()
    return {"month": month, "code": code, "inputs": ingested_stamp(src)}


def _reusable(before: Path, basis: dict) -> bool:
    """Whether the cards of the earlier date `before` were computed from the same `basis`."""
    try:
        kept = json.loads((before / BASIS).read_text())
        same = {k: kept.get(k) for k in basis} == basis
    except (OSError, ValueError):
        return False
    return same and all((before / n).exists() for n in (DIGEST, "families.parquet"))


def _check_pseudonym_key(con) -> None:
    """The population's pseudonyms were made with this run's key (else every id would change)."""
    (wrong,) = con.execute(
        "SELECT count(*) FROM (SELECT person_id, iin_text FROM population LIMIT 100) "
        f"WHERE person_id <> {pseudonym_sql('iin_text')}"
    ).fetchone()
    if wrong:
        raise ValueError(
            "the population was ingested with another pseudonym key (QAMQOR_PSEUDONYM_KEY):"
            " run `qamqor ingest` again with this one"
        )


@dataclass(frozen=True)
class CardsResult:
    families: int
    people: int
    changed: int | None
    out: Path
    # families whose indicators were computed (the others kept from `kept_from`); None: all
    recomputed: int | None = None
    kept_from: str | None = None


def build_cards(data_dir: Path, on: date, reuse: bool = True) -> CardsResult:
    """Write DIR/cards/families.parquet and members.parquet for date `on`, keeping history.

    Families are always formed for the whole nation. With `reuse`, when the latest earlier card
    date is of the same month and was computed from the same ingested files by the same code
    (its `basis.json`), a family whose members are the same and none of whom had a birthday or
    a dated registry event since then keeps that date's indicators (`update_sql`); the others
    are computed. Otherwise every family is computed.
    """
    data_dir = Path(data_dir)
    src = data_dir / "ingested"
    if not (src / "population.parquet").exists():
        raise FileNotFoundError(
            f"{src / 'population.parquet'} not found: run `qamqor ingest` first"
        )
    d = f"DATE '{on.isoformat()}'"
    history = data_dir / "cards" / "history"
    previous = sorted(p for p in history.glob("*") if p.is_dir() and p.name < on.isoformat())
    basis = _basis(src, on)
    base = previous[-1] if previous and reuse and _reusable(previous[-1], basis) else None
    families = "family" if base is None else "digest"
    limit = os.environ.get("QAMQOR_MEMORY_LIMIT", MEMORY_LIMIT)
    with scratch_dir(data_dir / "cards", "spill") as spill:
        con = connect(memory_limit=limit, temp_directory=spill)
        try:
            for f in sorted(src.glob("*.parquet")):
                con.execute(registry_view(con, f))
            _check_pseudonym_key(con)
            for stmt in card_sql(d) if base is None else update_sql(d, base):
                con.execute(stmt)
            cards = indicators_sql(d)
            if base is not None:
                cards = f"""SELECT * FROM read_parquet({sql_path(base / "families.parquet")})
                ANTI JOIN redo USING (family_id)
                UNION ALL BY NAME ({cards})"""
            with atomic_dir(history / on.isoformat()) as tmp:
                con.execute(
                    f"COPY ({cards}) TO {sql_path(tmp / 'families.parquet')}"
                    f" (FORMAT parquet, DICTIONARY_SIZE_LIMIT {DICTIONARY_LIMIT})"
                )
                con.execute(
                    f"COPY ({members_sql(families)}) TO {sql_path(tmp / 'members.parquet')}"
                    " (FORMAT parquet)"
                )
                con.execute(
                    f"COPY (SELECT family_id, members, members_hash FROM {families}) TO"
                    f" {sql_path(tmp / DIGEST)} (FORMAT parquet)"
                )
                if base is None:
                    changed = _changes(con, previous[-1], tmp) if previous else None
                else:  # the families computed, for the steps that follow; the changes from
                    # `redo`, which compared the digests already
                    con.execute(
                        f"COPY (SELECT family_id FROM family) TO {sql_path(tmp / COMPUTED)}"
                        " (FORMAT parquet)"
                    )
                    changed = _write_changes(
                        con,
                        "SELECT family_id, change, members_before, members_after FROM redo"
                        " WHERE change IS NOT NULL",
                        tmp,
                    )
                    basis = {**basis, "kept_from": base.name}
                (tmp / BASIS).write_text(json.dumps(basis, indent=1))
            out = history / on.isoformat()
            for name in ("families.parquet", "members.parquet", "changes.parquet"):
                if (out / name).exists():
                    publish_file(out / name, data_dir / "cards" / name)
            fam, ppl = con.execute(
                f"SELECT count(*), sum(members) FROM read_parquet({sql_path(out / 'families.parquet')})"
            ).fetchone()
            recomputed = None
            if base is not None:
                recomputed = int(con.execute("SELECT count(*) FROM family").fetchone()[0])
        finally:
            con.close()
    return CardsResult(
        int(fam), int(ppl or 0), changed, out, recomputed, base.name if base else None
    )


def _changes(con, before: Path, after: Path) -> int:
    """Families whose membership differs from the previous card date, written to
    `after/changes.parquet`.

    Each family's members are compared as a count and an XOR of their ids' 64-bit hashes (no
    sorting, no lists). The new side comes from the family aggregate (`family.members_hash`),
    which `build_cards` keeps as `DATE/membership.parquet` (6.3 M narrow rows): the old side of
    the next date (a date written before that file existed is digested from its members). Two
    different memberships of one family match only if their hashes collide (a chance of about
    2**-64 per family).
    """
    if (before / DIGEST).exists():
        old = f"SELECT * FROM read_parquet({sql_path(before / DIGEST)})"
    else:
        old = f"""SELECT family_id, count(*) AS members, bit_xor(hash(person_id)) AS members_hash
                  FROM read_parquet({sql_path(before / "members.parquet")}) GROUP BY 1"""
    q = f"""
    WITH a AS ({old}),
         b AS (SELECT family_id, members, members_hash FROM family)
    SELECT coalesce(b.family_id, a.family_id) AS family_id,
           CASE WHEN a.family_id IS NULL THEN 'new' WHEN b.family_id IS NULL THEN 'dissolved'
                ELSE 'changed' END AS change,
           coalesce(a.members, 0) AS members_before, coalesce(b.members, 0) AS members_after
    FROM a FULL JOIN b USING (family_id)
    WHERE a.members_hash IS DISTINCT FROM b.members_hash
       OR a.members IS DISTINCT FROM b.members
    """
    return _write_changes(con, q, after)


def _write_changes(con, q: str, after: Path) -> int:
    """Write the changes `q` selects (family_id, change, members_before, members_after) to
    `after/changes.parquet`, ordered by family; their count."""
    q = f"SELECT * FROM ({q}) ORDER BY family_id"
    con.execute(f"COPY ({q}) TO {sql_path(after / 'changes.parquet')} (FORMAT parquet)")
    return int(
        con.execute(
            f"SELECT count(*) FROM read_parquet({sql_path(after / 'changes.parquet')})"
        ).fetchone()[0]
    )
