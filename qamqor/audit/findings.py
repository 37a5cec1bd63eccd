"""Improper-payment findings (SPEC §10): follow every tenge paid against the rules and the card.

`run_audit` reads the payments registry, the population, the card, the levels, the scores and
the entitlements of the run, never the generator's truth, and writes `DIR/audit/findings.parquet`
with one row per finding. Every rule is one SQL query over the same views; the same person under
two population records is found first by identity linkage (Splink, `qamqor.linkage.identities`)
and used by the rules. See docs/audit.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb

from qamqor.engine import atomic_dir
from qamqor.ids import pseudonym_sql
from qamqor.linkage.identities import PAIRS, same_person
from qamqor.registries.views import registry_text_view

TYPES = (
    "paid_after_death",
    "not_entitled",
    "duplicate_payment",
    "paid_in_two_regions",
    "asp_level_a_b",
    "asp_commercial_property",
    "hidden_income",
    "incompatible_measures",
    "amount_mismatch",
    "exclusion_error",
    "hidden_household_member",
    "duplicate_identity",
)
NOT_PLANTED = ("asp_level_a_b",)  # a targeting signal, not an error the generator plants
AMOUNT_TOLERANCE = 0.25  # a payment more than 25 % above or below the reference is a mismatch
CUT_OFF_DAY = 27  # a month's payment list closes on this day: a death by then stops the month
# Measures whose payment the audit checks against an entitlement row (the rules engine's
# coverage of the registry is close for these; age pensions depend on a work record the card
# lacks, births on a claim window longer than the extract).
CHECKED = ("asp", "large_family", "disability", "carer_disabled_child", "breadwinner_loss")
# Proactive monthly measures checked for exclusion errors, by who is entitled: the person, the
# family, or each child (childcare: the child's entitlement, paid to the mother).
PROACTIVE_PERSON = ("disability",)
PROACTIVE_FAMILY = ("large_family", "carer_disabled_child")
# Amounts the card cannot compute exactly: the pension (a work record the card lacks) and ASP
# (assigned per quarter on the income and the poverty line of the assignment): checked against
# the person's own usual amount only.
OWN_AMOUNT_ONLY = ("age_pension", "asp")
# State social benefits one person cannot draw together (one of them is chosen).
INCOMPATIBLE = (("breadwinner_loss", "disability"),)


class AuditError(RuntimeError):
    """An input of the audit is missing."""


@dataclass
class AuditResult:
    findings: int
    by_type: dict[str, int]
    amount_at_risk: float
    path: Path
    linked_pairs: int = 0


def _need(path: Path) -> str:
    if not path.exists():
        raise AuditError(f"{path} is missing: run `qamqor run DIR` (or the missing stage) first")
    return f"'{path.as_posix()}'"


def _views(con: duckdb.DuckDBPyConnection, d: Path, on: date | None) -> None:
    registries = {  # IINs as text: the audit shows and hashes them
        "payments_raw": "payments",
        "population": "population",
        "civil_events": "civil_events",
        "income": "income",
        "tax": "tax",
    }
    for name, registry in registries.items():
        path = d / "ingested" / f"{registry}.parquet"
        _need(path)
        con.execute(registry_text_view(con, path, name))
    files = {
        "ent": d / "entitlements" / "entitlements.parquet",
        "members": d / "cards" / "members.parquet",
        "card": d / "cards" / "families.parquet",
        "levels": d / "levels" / "families.parquet",
        "hidden": d / "scores" / "hidden_income.parquet",
        "facts": d / "entitlements" / "family_facts.parquet",
    }
    for name, path in files.items():
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_need(path)})")
    con.execute(f"CREATE MACRO pid(iin) AS {pseudonym_sql('iin')}")
    # Everyone paid, once: the pseudonym, the card's family and the population record
    # (`registered`: the IIN is on the register). The rules read the payees' own records here
    # rather than joining the whole register again.
    con.execute(
        """
        CREATE TABLE payee AS
        WITH who AS (SELECT iin, pid(iin) AS person_id FROM (SELECT DISTINCT iin FROM payments_raw))
        SELECT who.iin, who.person_id, m.family_id, pp.iin IS NOT NULL AS registered,
               pp.surname, pp.first_name, pp.patronymic, pp.birth_date, pp.sex, pp.death_date,
               pp.region, pp.address_id, pp.father_iin, pp.mother_iin
        FROM who LEFT JOIN members m USING (person_id)
        LEFT JOIN population pp USING (iin)
        """
    )
    con.execute(
        """
        CREATE TABLE pay AS
        SELECT p.payment_id, p.iin, p.measure, p.period, p.amount, p.region, p.paid_date,
               w.person_id, w.family_id
        FROM payments_raw p JOIN payee w USING (iin)
        """
    )
    # The payments repeated for a person, measure and period (a few in a thousand): found among
    # those whose hash of the three repeats, a cheaper grouping than of the three themselves.
    con.execute(
        """
        CREATE TABLE repeated AS
        WITH h AS (SELECT hash(person_id, measure, period) AS h FROM pay
                   GROUP BY ALL HAVING count(*) > 1),
        maybe AS (SELECT * FROM pay WHERE hash(person_id, measure, period) IN (SELECT h FROM h))
        SELECT * FROM maybe SEMI JOIN (SELECT person_id, measure, period FROM maybe
                                       GROUP BY ALL HAVING count(*) > 1) r
            USING (person_id, measure, period)
        """
    )
    months, last = con.execute(
        "SELECT greatest(count(DISTINCT period), 1), max(period) FROM pay"
    ).fetchone()
    con.execute(f"CREATE MACRO annual(x) AS round(x * 12 / {months}, 0)")
    # the income window: the three months before the run date (or after the last payment)
    end = on or ((last or date.today()) + timedelta(days=31)).replace(day=1)
    con.execute(f"CREATE MACRO in_window(d) AS d >= DATE '{end}' - INTERVAL 3 MONTH "
                f"AND d < DATE '{end}'")  # fmt: skip


def _identities(con: duckdb.DuckDBPyConnection, out: Path | None) -> int:
    """Link the population records of everyone paid (Splink) and decide, for each linked pair,
    which record is the second identity. Tables `linked` (every pair) and `second` (the
    records reported); writes `out/identities.parquet` and the model if `out` is given."""
    people = con.sql(
        """
        SELECT pp.iin, pp.surname, pp.first_name, pp.patronymic, pp.birth_date, pp.sex,
               b.benefits
        FROM payee pp
        JOIN (SELECT iin, array_to_string(list_sort(list(DISTINCT measure || ':'
                          || round(amount)::BIGINT)), '|') AS benefits
              FROM pay GROUP BY iin) b USING (iin)
        WHERE pp.registered
        """
    ).to_arrow_table()
    model = out / "identity_model.json" if out else None
    pairs = same_person(people, save_model=model)
    con.execute(
        "CREATE TABLE pairs_in (id_l VARCHAR, id_r VARCHAR, match_probability DOUBLE, "
        "match_weight DOUBLE, surname_l VARCHAR, surname_r VARCHAR, first_name_l VARCHAR, "
        "first_name_r VARCHAR, patronymic_l VARCHAR, patronymic_r VARCHAR, dob_l VARCHAR, "
        "dob_r VARCHAR)"
    )
    if len(pairs):
        con.register("pairs_df", pairs[PAIRS])
        con.execute("INSERT INTO pairs_in SELECT * FROM pairs_df")
        con.unregister("pairs_df")
    con.execute(
        """
        CREATE TABLE pairs AS
        SELECT id_l, id_r, match_probability, match_weight,
               concat_ws(', ',
                 CASE WHEN surname_l = surname_r THEN 'same surname'
                      WHEN jaro_winkler_similarity(surname_l, surname_r) >= 0.8
                      THEN 'surname spelled differently' ELSE 'another surname' END,
                 CASE WHEN first_name_l = first_name_r THEN 'same first name'
                      ELSE 'first name spelled differently' END,
                 CASE WHEN patronymic_l = patronymic_r THEN 'same patronymic'
                      ELSE 'patronymic spelled differently' END,
                 CASE WHEN dob_l = dob_r THEN 'same birth date'
                      WHEN strftime(dob_l::DATE, '%Y-%d-%m') = dob_r
                      THEN 'birth day and month swapped' ELSE 'birth dates differ' END)
                 AS agreement
        FROM pairs_in
        """
    )
    # Registry ties of each linked record: a genuine record sits in a family (parents or
    # children name it, a marriage, others at its address); a second identity made to draw
    # benefits has none.
    con.execute(
        """
        CREATE TABLE rec AS
        WITH ids AS (SELECT id_l AS iin FROM pairs UNION SELECT id_r FROM pairs),
        own AS MATERIALIZED (SELECT * FROM payee SEMI JOIN ids USING (iin) WHERE registered),
        -- the linked records named as someone's mother or father (one pass over the register)
        parents AS MATERIALIZED (SELECT mother_iin, father_iin FROM population
                                 WHERE mother_iin IN (SELECT iin FROM ids)
                                    OR father_iin IN (SELECT iin FROM ids)),
        kids AS (SELECT mother_iin AS iin FROM parents WHERE mother_iin IN (SELECT iin FROM ids)
                 UNION SELECT father_iin FROM parents WHERE father_iin IN (SELECT iin FROM ids)),
        wed AS (SELECT iin FROM civil_events
                WHERE event_type = 'marriage' AND iin IN (SELECT iin FROM ids)
                UNION SELECT other_iin FROM civil_events
                WHERE event_type = 'marriage' AND other_iin IN (SELECT iin FROM ids)),
        -- the living at the linked records' addresses (the addresses first, then the count)
        addr AS (SELECT address_id, count(*) AS n FROM population
                 SEMI JOIN (SELECT DISTINCT address_id FROM own) USING (address_id)
                 WHERE death_date IS NULL
                 GROUP BY address_id)
        SELECT pp.iin, pp.person_id, pp.region,
               NOT (pp.father_iin IS NOT NULL OR pp.mother_iin IS NOT NULL
                    OR pp.iin IN (SELECT iin FROM kids) OR pp.iin IN (SELECT iin FROM wed)
                    OR coalesce(a.n, 1) > 1) AS alone
        FROM own pp
        LEFT JOIN addr a USING (address_id)
        """
    )
    # The second identity: the record with no ties beside one with ties; if neither has any,
    # the later IIN (a higher serial for the same birth date: issued later). Both with ties:
    # two people (namesakes), not reported. A record linked to several others names the most
    # probable one (the smallest pseudonym among equals, so that runs agree).
    con.execute(
        """
        CREATE TABLE linked AS
        SELECT p.*, l.person_id AS pid_l, r.person_id AS pid_r, l.region AS region_l,
               r.region AS region_r, l.alone AS alone_l, r.alone AS alone_r,
               CASE WHEN l.alone AND NOT r.alone THEN 'l'
                    WHEN r.alone AND NOT l.alone THEN 'r'
                    WHEN l.alone AND r.alone THEN
                      CASE WHEN (left(p.id_l, 6) = left(p.id_r, 6)
                                 AND substr(p.id_l, 8, 4) > substr(p.id_r, 8, 4))
                                OR (left(p.id_l, 6) <> left(p.id_r, 6) AND p.id_l > p.id_r)
                           THEN 'l' ELSE 'r' END END AS second_side
        FROM pairs p JOIN rec l ON l.iin = p.id_l JOIN rec r ON r.iin = p.id_r;
        CREATE TABLE second AS
        SELECT person_id,
               first(other_person_id ORDER BY match_probability DESC, other_person_id)
                 AS other_person_id,
               max(match_probability) AS match_probability,
               first(agreement ORDER BY match_probability DESC, other_person_id) AS agreement,
               first(other_region ORDER BY match_probability DESC, other_person_id)
                 AS other_region,
               bool_or(sure) AS sure
        FROM (SELECT CASE second_side WHEN 'l' THEN pid_l ELSE pid_r END AS person_id,
                     CASE second_side WHEN 'l' THEN pid_r ELSE pid_l END AS other_person_id,
                     CASE second_side WHEN 'l' THEN region_r ELSE region_l END AS other_region,
                     match_probability, agreement, alone_l <> alone_r AS sure
              FROM linked WHERE second_side IS NOT NULL)
        GROUP BY person_id
        """
    )
    if out is not None:
        con.execute(
            f"""
            COPY (SELECT CASE second_side WHEN 'r' THEN pid_r ELSE pid_l END AS person_id,
                         CASE second_side WHEN 'r' THEN pid_l ELSE pid_r END
                           AS other_person_id,
                         match_probability, match_weight, agreement,
                         second_side IS NOT NULL AS reported,
                         CASE WHEN second_side IS NULL THEN 'both records have family ties'
                              WHEN alone_l AND alone_r THEN 'neither has family ties: the later IIN'
                              ELSE 'person_id has no family ties' END AS reason
                  FROM linked ORDER BY person_id, other_person_id)
            TO '{(out / "identities.parquet").as_posix()}' (FORMAT parquet)
            """
        )
    return con.execute("SELECT count(*) FROM linked").fetchone()[0]


def _shared(con: duckdb.DuckDBPyConnection) -> None:
    """Tables several rules read: the families of second identities; the children born from
    two years before the extract."""
    con.execute(
        """
        CREATE TABLE second_family AS
        SELECT family_id FROM members SEMI JOIN second USING (person_id);
        CREATE TABLE young AS
        SELECT iin, pid(iin) AS person_id, birth_date, mother_iin FROM population
        WHERE birth_date >= (SELECT min(period) FROM pay) - INTERVAL 2 YEAR
        """
    )


def _kzt(expr: str) -> str:
    """SQL for an amount as readable text: 1,234,567."""
    return f"format('{{:,.0f}}', {expr})"


def _queries(line: dict[str, float]) -> dict[str, str]:
    """One SELECT per finding type: family_id, person_id, measure, amount_at_risk, evidence,
    severity, keyx (what makes the finding unique beyond type, person and measure)."""
    lines = " ".join(f"WHEN '{r}' THEN {v}" for r, v in line.items()) or "WHEN '' THEN 0"
    income = "c.income_per_capita_3m - coalesce(f.asp_3m, 0) / c.members"  # as income_for_asp
    checked = ", ".join(f"'{m}'" for m in CHECKED)
    per_person = ", ".join(f"'{m}'" for m in PROACTIVE_PERSON)
    per_family = ", ".join(f"'{m}'" for m in PROACTIVE_FAMILY)
    own_only = ", ".join(f"'{m}'" for m in OWN_AMOUNT_ONLY)
    incompatible = " OR ".join(
        f"(a.measure = '{x}' AND b.measure = '{y}')" for x, y in INCOMPATIBLE
    )
    incompatible_measures = ", ".join(sorted({f"'{m}'" for pair in INCOMPATIBLE for m in pair}))
    # a second identity's payments are reported once, as duplicate_identity: the rules that
    # judge a payment by the record's own family (fictitious) skip them
    genuine = "p.person_id NOT IN (SELECT person_id FROM second)"
    genuine_fam = "p.family_id NOT IN (SELECT family_id FROM second_family)"
    return {
        "paid_after_death": f"""
            SELECT any_value(p.family_id), p.person_id, p.measure, annual(sum(p.amount)),
                   'died ' || any_value(pp.death_date)::VARCHAR || '; paid ' || count(*)
                   || ' time(s) for months ' || string_agg(strftime(p.period, '%Y-%m'), ', '
                   ORDER BY p.period) || ', ' || {_kzt("sum(p.amount)")} || ' KZT in all',
                   'high', ''
            FROM pay p JOIN payee pp ON pp.iin = p.iin
            WHERE pp.death_date IS NOT NULL
              AND pp.death_date <= p.period + INTERVAL {CUT_OFF_DAY - 1} DAY
            GROUP BY p.person_id, p.measure""",
        "not_entitled": f"""
            SELECT any_value(p.family_id), p.person_id, p.measure, annual(sum(p.amount)),
                   'paid ' || {_kzt("sum(p.amount)")} || ' KZT of ' || p.measure
                   || ' in ' || count(*) || ' payment(s); the rules in force give the family no '
                   || p.measure || CASE WHEN p.measure = 'asp' THEN
                   ': failing condition income_below_line (income per member '
                   || {_kzt(f"any_value({income})")} || ' KZT/month without ASP, line '
                   || {_kzt(f"CASE any_value(c.region) {lines} END")} || ')'
                   || CASE WHEN any_value(c.able_bodied) > any_value(c.social_contract)
                      THEN '; social_contract not met (' || any_value(c.able_bodied)
                      || ' able-bodied, ' || any_value(c.social_contract) || ' with a contract)'
                      ELSE '' END ELSE '' END,
                   CASE WHEN p.measure = 'asp' THEN 'high' ELSE 'medium' END, ''
            FROM (SELECT * FROM pay p
                  WHERE p.measure IN ({checked}) AND {genuine}
                    AND NOT EXISTS (SELECT 1 FROM payee d WHERE d.iin = p.iin
                                    AND d.death_date IS NOT NULL)
                    AND NOT EXISTS (SELECT 1 FROM ent e WHERE e.measure IN ({checked})
                                    AND e.measure = p.measure AND e.family_id = p.family_id)) p
            JOIN card c ON c.family_id = p.family_id
            LEFT JOIN facts f ON f.family_id = p.family_id
            WHERE (p.measure <> 'asp' OR {income} > CASE c.region {lines} END)
            GROUP BY p.person_id, p.measure""",
        # the same amount paid more often than the rules give it: births once per child born
        # that month, childcare once per entitled child (the amount follows the birth order);
        # for a second identity, the children of the genuine record's family
        "duplicate_payment": f"""
            WITH babies AS (SELECT person_id, date_trunc('month', birth_date) AS m FROM young),
            kids AS (SELECT e.family_id, e.measure,
                            CASE WHEN e.measure = 'birth' THEN b.m END AS month,
                            round(e.amount) AS amount, count(*) AS n
                     FROM ent e LEFT JOIN babies b USING (person_id)
                     WHERE e.measure IN ('birth', 'childcare') GROUP BY ALL),
            bl AS (SELECT DISTINCT person_id, period FROM pay WHERE measure = 'breadwinner_loss'),
            rp AS (SELECT p.*, coalesce(gm.family_id, p.family_id) AS kin
                   FROM repeated p LEFT JOIN second s USING (person_id)
                   LEFT JOIN payee gm ON gm.person_id = s.other_person_id)
            SELECT any_value(p.family_id), p.person_id, p.measure,
                   annual(sum(p.amount) - max(p.amount) * greatest(coalesce(any_value(k.n), 1), 1)),
                   p.measure || ' paid ' || count(*) || ' times for '
                   || strftime(p.period, '%Y-%m') || ' in ' || p.region || ': '
                   || string_agg({_kzt("p.amount")}, ' + ' ORDER BY p.payment_id) || ' KZT ('
                   || string_agg(p.payment_id, ', ' ORDER BY p.payment_id) || ')'
                   || CASE WHEN any_value(k.n) > 1 THEN '; ' || any_value(k.n)
                      || ' children entitled to this amount in the family' ELSE '' END,
                   'high', strftime(p.period, '%Y-%m') || ' ' || round(p.amount)::BIGINT
            FROM rp p
            LEFT JOIN kids k ON k.family_id = p.kin AND k.measure = p.measure
                AND abs(k.amount - p.amount) < 1 AND (p.measure <> 'birth' OR k.month = p.period)
            WHERE NOT (p.measure = 'disability' AND EXISTS (SELECT 1 FROM bl
                       WHERE bl.person_id = p.person_id AND bl.period = p.period))
            GROUP BY p.person_id, p.measure, p.period, p.region, p.amount
            HAVING count(*) > greatest(coalesce(any_value(k.n), 1), 1)""",
        "paid_in_two_regions": f"""
            SELECT any_value(family_id), person_id, measure,
                   annual(sum(amount) - max(amount)),
                   measure || ' for ' || strftime(period, '%Y-%m') || ' paid in '
                   || count(DISTINCT region) || ' regions: ' || string_agg(region || ' '
                   || {_kzt("amount")} || ' KZT (' || payment_id || ')', ', '
                   ORDER BY payment_id), 'high', strftime(period, '%Y-%m')
            FROM repeated
            GROUP BY person_id, measure, period
            HAVING count(DISTINCT region) > 1""",
        "asp_level_a_b": f"""
            SELECT p.family_id, NULL, 'asp', annual(sum(p.amount)),
                   'ASP ' || {_kzt("sum(p.amount)")} || ' KZT to a family at level '
                   || any_value(l.level) || ' (score ' || round(any_value(l.score), 1) || ')',
                   'medium', ''
            FROM pay p JOIN levels l ON l.family_id = p.family_id
            WHERE p.measure = 'asp' AND l.level IN ('A', 'B') AND {genuine}
            GROUP BY p.family_id""",
        "asp_commercial_property": f"""
            SELECT p.family_id, NULL, 'asp', annual(sum(p.amount)),
                   'ASP ' || {_kzt("sum(p.amount)")} || ' KZT to a family owning '
                   || any_value(c.commercial) || ' commercial propert(ies) and '
                   || any_value(c.dwellings) || ' dwelling(s), property value '
                   || {_kzt("any_value(c.property_value)")} || ' KZT', 'high', ''
            FROM pay p JOIN card c ON c.family_id = p.family_id
            WHERE p.measure = 'asp' AND (c.commercial > 0 OR c.dwellings >= 6) AND {genuine}
            GROUP BY p.family_id""",
        "hidden_income": f"""
            SELECT p.family_id, NULL, 'asp', annual(sum(p.amount)),
                   'ASP ' || {_kzt("sum(p.amount)")} || ' KZT; hidden-income score '
                   || round(any_value(h.hidden_income_score), 2) || ': '
                   || coalesce(any_value(h.explanation), 'declared earned income '
                      || {_kzt("any_value(h.declared_earned_income)")} || ' vs expected '
                      || {_kzt("any_value(h.expected_income)")} || ' a month (z '
                      || round(any_value(h.z), 1) || ')'),
                   'medium', ''
            FROM pay p JOIN hidden h ON h.family_id = p.family_id
            WHERE p.measure = 'asp' AND {genuine} AND h.hidden_income_flag
            GROUP BY p.family_id""",
        # a person registered at the family's address, not in the family, whose own declared
        # income (wages, self-employment) would lift the family above the poverty line
        "hidden_household_member": f"""
            WITH fam AS (SELECT p.family_id, any_value(pp.address_id) AS address_id,
                                sum(p.amount) AS amount, count(*) AS n,
                                string_agg(p.payment_id, ', ' ORDER BY p.payment_id) AS ids
                         FROM pay p JOIN population pp USING (iin)
                         WHERE p.measure = 'asp' AND {genuine} GROUP BY p.family_id),
            co AS (SELECT f.family_id, q.iin, pid(q.iin) AS person_id
                   FROM fam f JOIN population q USING (address_id)
                   WHERE q.death_date IS NULL),
            earn AS (SELECT iin, sum(x) / 3 AS monthly FROM (
                       SELECT iin, income AS x FROM income WHERE in_window(period)
                       UNION ALL SELECT iin, declared_income FROM tax WHERE in_window(period))
                     WHERE iin IN (SELECT iin FROM co) GROUP BY iin),
            hid AS (SELECT co.family_id, count(*) AS k, sum(e.monthly) AS monthly,
                           string_agg(co.person_id || ' (' || m.role || ' of family '
                             || m.family_id || ', ' || {_kzt("e.monthly")} || ' KZT/month)', '; '
                             ORDER BY co.person_id) AS who
                    FROM co JOIN earn e USING (iin)
                    JOIN members m ON m.person_id = co.person_id AND m.family_id <> co.family_id
                    GROUP BY co.family_id)
            SELECT a.family_id, NULL, 'asp', annual(a.amount),
                   'ASP ' || {_kzt("a.amount")} || ' KZT (' || a.ids || '); registered at the '
                   || 'family''s address and not declared in it: ' || h.who
                   || '; with this income the family''s income per member would be '
                   || {_kzt(f"(({income}) * c.members + h.monthly) / (c.members + h.k)")}
                   || ' KZT/month against a line of '
                   || {_kzt(f"CASE c.region {lines} END")}, 'high', ''
            FROM fam a JOIN hid h USING (family_id) JOIN card c USING (family_id)
            LEFT JOIN facts f USING (family_id)
            WHERE (({income}) * c.members + h.monthly) / (c.members + h.k)
                  >= CASE c.region {lines} END""",
        "incompatible_measures": f"""
            WITH m AS (SELECT person_id, any_value(family_id) AS family_id, measure, period,
                              region, count(*) AS n, sum(amount) AS amount, max(amount) AS top
                       FROM pay WHERE measure IN ({incompatible_measures})
                       GROUP BY person_id, measure, period, region),
            hit AS MATERIALIZED (
                SELECT a.person_id, a.family_id, a.measure AS measure_a, a.period,
                       b.measure, b.region, b.amount, b.top
                FROM m a JOIN m b ON a.person_id = b.person_id AND a.period = b.period
                WHERE ({incompatible}) AND b.n > 1),
            ids AS (SELECT person_id, measure, period, region,
                           string_agg(payment_id, ', ' ORDER BY payment_id) AS ids
                    FROM pay SEMI JOIN hit USING (person_id, measure, period, region)
                    GROUP BY ALL)
            SELECT any_value(a.family_id), a.person_id, a.measure, annual(sum(a.amount - a.top)),
                   a.measure || ' paid with ' || a.measure_a || ' (not combined) for '
                   || string_agg(strftime(a.period, '%Y-%m'), ', ' ORDER BY a.period) || ': '
                   || {_kzt("sum(a.amount)")} || ' KZT ('
                   || string_agg(i.ids, ', ' ORDER BY i.ids) || ')',
                   'medium', a.measure_a
            FROM hit a JOIN ids i USING (person_id, measure, period, region)
            GROUP BY a.person_id, a.measure_a, a.measure""",
        # the reference: the rule's amounts for the person or the family (per child for births
        # and childcare), or the person's own usual amount where the card cannot compute it
        "amount_mismatch": f"""
            WITH e AS (SELECT family_id, person_id, measure, amount FROM ent
                       WHERE period IN ('monthly', 'once') AND amount > 0),
            -- the nearest rule amount depends on the person (and so the family), the measure
            -- and the amount paid: found once for the months paid the same
            paid AS (SELECT person_id, any_value(family_id) AS family_id, measure, amount
                     FROM pay WHERE measure NOT IN ({own_only})
                     GROUP BY person_id, measure, amount),
            cand AS (SELECT k.person_id, k.measure, k.amount AS paid, e.amount FROM paid k
                     JOIN e ON e.measure = k.measure AND e.person_id = k.person_id
                     UNION ALL
                     SELECT k.person_id, k.measure, k.amount AS paid, e.amount FROM paid k
                     JOIN e ON e.measure = k.measure AND e.family_id = k.family_id),
            near AS (SELECT person_id, measure, paid,
                            arg_min(amount, abs(amount - paid)) AS rule_amount
                     FROM cand GROUP BY person_id, measure, paid),
            off AS (SELECT * FROM near WHERE rule_amount > 0
                      AND abs(paid - rule_amount) > {AMOUNT_TOLERANCE} * rule_amount),
            -- the extra lines of an incompatible award are reported as incompatible_measures
            extra AS (SELECT b.person_id, b.period, b.measure
                      FROM (SELECT person_id, period, measure, count(*) AS n FROM pay
                            WHERE measure IN ({incompatible_measures}) GROUP BY ALL) b
                      JOIN (SELECT DISTINCT person_id, period, measure FROM pay
                            WHERE measure IN ({incompatible_measures})) a
                        USING (person_id, period)
                      WHERE ({incompatible}) AND b.n > 1),
            -- the usual amount (median) where it varies: paid the same every month, nothing
            -- is more than 25 % away from it
            varied AS (SELECT person_id, measure FROM pay WHERE measure IN ({own_only})
                       GROUP BY ALL HAVING min(amount) <> max(amount)),
            usual AS (SELECT person_id, measure, median(amount) AS rule_amount
                      FROM pay SEMI JOIN varied USING (person_id, measure)
                      WHERE measure IN ({own_only}) GROUP BY ALL),
            ref AS (SELECT p.payment_id, p.person_id, p.family_id, p.measure, p.period,
                           p.amount, n.rule_amount
                    FROM pay p JOIN off n ON n.person_id = p.person_id
                      AND n.measure = p.measure AND n.paid = p.amount
                    UNION ALL
                    SELECT p.payment_id, p.person_id, p.family_id, p.measure, p.period,
                           p.amount, u.rule_amount
                    FROM pay p JOIN usual u USING (person_id, measure)
                    WHERE u.rule_amount > 0
                      AND abs(p.amount - u.rule_amount) > {AMOUNT_TOLERANCE} * u.rule_amount)
            SELECT any_value(family_id), person_id, measure, annual(sum(amount - rule_amount)),
                   measure || ' paid ' || string_agg({_kzt("amount")} || ' KZT for '
                   || strftime(period, '%Y-%m'), ', ' ORDER BY period) || '; '
                   || CASE WHEN measure IN ({own_only}) THEN 'the person is usually paid '
                      ELSE 'the rule gives ' END
                   || {_kzt("min(rule_amount)")} || ' KZT a month', 'medium', ''
            FROM ref p ANTI JOIN extra x USING (person_id, period, measure)
            WHERE {genuine}
            GROUP BY person_id, measure""",
        "exclusion_error": f"""
            WITH mom AS (SELECT person_id, mother_iin FROM young),
            cc AS (SELECT e.family_id, count(*) AS n, sum(e.amount) AS amount,
                          any_value(e.reasons) AS reasons
                   FROM ent e JOIN mom USING (person_id)
                   WHERE e.measure = 'childcare' AND e.period = 'monthly'
                     AND mom.mother_iin IS NOT NULL
                   GROUP BY e.family_id),
            cc_paid AS (SELECT family_id, max(n) AS n FROM (
                          SELECT family_id, period, count(*) AS n FROM pay
                          WHERE measure = 'childcare' GROUP BY ALL) GROUP BY family_id),
            paid_person AS (SELECT DISTINCT person_id, measure FROM pay
                            WHERE measure IN ({per_person})),
            paid_family AS (SELECT DISTINCT family_id, measure FROM pay
                            WHERE measure IN ({per_family}))
            SELECT e.family_id, e.person_id, e.measure, round(sum(e.amount) * 12, 0),
                   'entitled to ' || e.measure || ' (' || any_value(e.reasons) || '), '
                   || {_kzt("sum(e.amount)")} || ' KZT a month; no payment in the extract',
                   'medium', ''
            FROM ent e ANTI JOIN paid_person k USING (person_id, measure)
            WHERE e.period = 'monthly' AND e.measure IN ({per_person})
              AND e.person_id NOT IN (SELECT person_id FROM second)
            GROUP BY e.family_id, e.person_id, e.measure
            UNION ALL
            SELECT e.family_id, NULL, e.measure, round(sum(e.amount) * 12, 0),
                   'entitled to ' || e.measure || ' (' || any_value(e.reasons) || '), '
                   || {_kzt("sum(e.amount)")} || ' KZT a month; nothing paid to the family '
                   || 'in the extract', 'medium', ''
            FROM ent e ANTI JOIN paid_family k USING (family_id, measure)
            WHERE e.period = 'monthly' AND e.measure IN ({per_family})
              AND {genuine_fam.replace("p.family_id", "e.family_id")}
            GROUP BY e.family_id, e.measure
            UNION ALL
            SELECT cc.family_id, NULL, 'childcare',
                   round(cc.amount / cc.n * (cc.n - coalesce(k.n, 0)) * 12, 0),
                   cc.n || ' child(ren) under 1.5 entitled to childcare (' || cc.reasons
                   || ', mother on the register), ' || coalesce(k.n, 0)
                   || ' childcare payment(s) a month in the extract', 'medium', ''
            FROM cc LEFT JOIN cc_paid k USING (family_id)
            WHERE coalesce(k.n, 0) < cc.n
              AND {genuine_fam.replace("p.family_id", "cc.family_id")}""",
        "duplicate_identity": f"""
            SELECT any_value(p.family_id), p.person_id, p.measure, annual(sum(p.amount)),
                   'this record (' || min(p.region) || ') is the same person as record '
                   || any_value(s.other_person_id) || ' (' || any_value(s.other_region)
                   || '): match probability ' || round(any_value(s.match_probability), 4)
                   || ' (' || any_value(s.agreement) || '); '
                   || CASE WHEN any_value(s.sure) THEN 'no parents, children or spouse on the '
                      || 'register and alone at its address, unlike the other record'
                      ELSE 'neither record has family ties; this one has the later IIN' END
                   || '. Paid ' || p.measure || ' ' || count(*) || ' time(s), '
                   || {_kzt("sum(p.amount)")} || ' KZT ('
                   || string_agg(p.payment_id, ', ' ORDER BY p.payment_id) || ')'
                   || CASE WHEN bool_or(o.person_id IS NOT NULL) THEN '; the other record is '
                      || 'paid ' || p.measure || ' too' ELSE '' END,
                   CASE WHEN any_value(s.sure) THEN 'high' ELSE 'medium' END, ''
            FROM pay p JOIN second s USING (person_id)
            LEFT JOIN (SELECT DISTINCT person_id, measure FROM pay
                       WHERE person_id IN (SELECT other_person_id FROM second)) o
              ON o.person_id = s.other_person_id AND o.measure = p.measure
            GROUP BY p.person_id, p.measure""",
    }


def find(data_dir: Path, on: date | None = None, out: Path | None = None):
    """All findings as one DuckDB table `findings` on a fresh connection (returned); the linked
    identities are written to `out` if given."""
    d = Path(data_dir)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    _views(con, d, on)
    _identities(con, out)
    _shared(con)
    summary = d / "entitlements" / "summary.json"
    line = json.loads(summary.read_text()).get("poverty_line", {}).get("by_region", {})
    parts = [
        f"SELECT '{t}' AS type, * FROM ({q}) "
        f"t(family_id, person_id, measure, amount_at_risk, evidence, severity, keyx)"
        for t, q in _queries(line).items()
    ]
    con.execute(
        f"""
        CREATE TABLE findings AS
        SELECT substr(sha256(type || '|' || coalesce(family_id, '') || '|'
                      || coalesce(person_id, '') || '|' || measure || '|' || keyx), 1, 16)
                 AS finding_id,
               type, family_id, person_id, measure, amount_at_risk::DOUBLE AS amount_at_risk,
               evidence, severity
        FROM ({" UNION ALL ".join(parts)})
        ORDER BY type, family_id, person_id, measure, finding_id
        """
    )
    return con


def run_audit(data_dir: Path, on: date | None = None) -> AuditResult:
    """Write `DIR/audit/findings.parquet`, `findings.json` (the date and counts by type),
    `identities.parquet` (the linked records) and `identity_model.json` (the Splink model)
    atomically; the inputs are those of the last run, `on` is its date."""
    d = Path(data_dir)
    final = d / "audit"
    own = (
        "findings.parquet",
        "findings.json",
        "identities.parquet",
        "identity_model.json",
        "payments.parquet",
    )
    with atomic_dir(final) as tmp:
        con = find(d, on, tmp)
        if final.exists():  # keep what other audit steps wrote beside the findings
            for f in final.iterdir():
                if f.is_file() and f.name not in own:
                    (tmp / f.name).write_bytes(f.read_bytes())
        con.execute(f"COPY findings TO '{(tmp / 'findings.parquet').as_posix()}' (FORMAT parquet)")
        con.execute(  # the payment trail by family, pseudonymous, sorted for quick lookups
            "COPY (SELECT payment_id, family_id, person_id, measure,"
            " CAST(period AS DATE) AS period, amount, region, CAST(paid_date AS DATE) AS paid_date"
            " FROM pay"
            " ORDER BY family_id, paid_date, payment_id)"
            f" TO '{(tmp / 'payments.parquet').as_posix()}' (FORMAT parquet, ROW_GROUP_SIZE 20000)"
        )
        rows = con.execute(
            "SELECT type, count(*), sum(amount_at_risk) FROM findings GROUP BY type ORDER BY type"
        ).fetchall()
        linked = con.execute("SELECT count(*) FROM linked").fetchone()[0]
        summary = {
            "date": on.isoformat() if on else None,
            "by_type": {t: {"findings": n, "amount_at_risk": a} for t, n, a in rows},
            "identity_linkage": {"linked_pairs": linked},
        }
        (tmp / "findings.json").write_text(json.dumps(summary, indent=2))
    by_type = {t: 0 for t in TYPES} | {t: n for t, n, _ in rows}
    return AuditResult(
        findings=sum(n for _, n, _ in rows),
        by_type=by_type,
        amount_at_risk=float(sum(a or 0 for _, _, a in rows)),
        path=final / "findings.parquet",
        linked_pairs=linked,
    )
