"""Improper-payment findings (SPEC §10): follow every tenge paid against the rules and the card.

`run_audit` reads the payments registry, the population, the card, the levels, the scores and
the entitlements of the run, never the generator's truth, and writes `DIR/audit/findings.parquet`
with one row per finding. Every rule is one SQL query over the same views; see docs/audit.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from qamqor.card.build import PSEUDONYM_KEY
from qamqor.engine import atomic_dir

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
)
AMOUNT_TOLERANCE = 0.25  # a payment more than 25 % above or below the reference is a mismatch
# ASP families are checked below the model's own flag: an inspection, not a sanction.
HIDDEN_INCOME_SCORE = 2.5
CUT_OFF_DAY = 27  # a month's payment list closes on this day: a death before it stops the month
# Measures whose payment the audit checks against an entitlement row (the rules engine's
# coverage of the registry is close for these; age pensions depend on a work record the card
# lacks, births on a claim window longer than the extract).
CHECKED = ("asp", "large_family", "disability", "carer_disabled_child", "breadwinner_loss")
PROACTIVE = ("large_family", "carer_disabled_child", "childcare", "disability")
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


def _need(path: Path) -> str:
    if not path.exists():
        raise AuditError(f"{path} is missing: run `qamqor run DIR` (or the missing stage) first")
    return f"'{path.as_posix()}'"


def _views(con: duckdb.DuckDBPyConnection, d: Path) -> None:
    files = {
        "payments_raw": d / "ingested" / "payments.parquet",
        "population": d / "ingested" / "population.parquet",
        "ent": d / "entitlements" / "entitlements.parquet",
        "members": d / "cards" / "members.parquet",
        "card": d / "cards" / "families.parquet",
        "levels": d / "levels" / "families.parquet",
        "hidden": d / "scores" / "hidden_income.parquet",
        "facts": d / "entitlements" / "family_facts.parquet",
    }
    for name, path in files.items():
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_need(path)})")
    key = PSEUDONYM_KEY.replace("'", "''")
    con.execute(
        f"""
        CREATE TABLE pay AS
        SELECT p.*, substr(sha256('{key}' || p.iin), 1, 16) AS person_id, m.family_id
        FROM payments_raw p
        LEFT JOIN members m ON m.person_id = substr(sha256('{key}' || p.iin), 1, 16)
        """
    )
    con.execute(
        """
        CREATE TABLE paid_keys AS
        SELECT DISTINCT measure, person_id AS who FROM pay
        UNION SELECT DISTINCT measure, family_id FROM pay WHERE family_id IS NOT NULL;
        CREATE TABLE repeated AS
        SELECT * FROM pay SEMI JOIN (SELECT person_id, measure, period FROM pay
                                     GROUP BY ALL HAVING count(*) > 1) r
            USING (person_id, measure, period)
        """
    )
    months = con.execute("SELECT greatest(count(DISTINCT period), 1) FROM pay").fetchone()[0]
    con.execute(f"CREATE MACRO annual(x) AS round(x * 12 / {months}, 0)")


def _kzt(expr: str) -> str:
    """SQL for an amount as readable text: 1,234,567."""
    return f"format('{{:,.0f}}', {expr})"


def _queries(line: dict[str, float]) -> dict[str, str]:
    """One SELECT per finding type: family_id, person_id, measure, amount_at_risk, evidence,
    severity, keyx (what makes the finding unique beyond type, person and measure)."""
    lines = " ".join(f"WHEN '{r}' THEN {v}" for r, v in line.items()) or "WHEN '' THEN 0"
    income = "c.income_per_capita_3m - coalesce(f.asp_3m, 0) / c.members"  # as income_for_asp
    # childcare is the child's entitlement, paid to the parent: checked for the family
    who_person = "CASE WHEN e.measure = 'childcare' THEN NULL ELSE e.person_id END"
    checked = ", ".join(f"'{m}'" for m in CHECKED)
    proactive = ", ".join(f"'{m}'" for m in PROACTIVE)
    incompatible = " OR ".join(
        f"(a.measure = '{x}' AND b.measure = '{y}')" for x, y in INCOMPATIBLE
    )
    return {
        "paid_after_death": f"""
            SELECT any_value(p.family_id), p.person_id, p.measure, annual(sum(p.amount)),
                   'died ' || any_value(pp.death_date)::VARCHAR || '; paid ' || count(*)
                   || ' time(s) for months ' || string_agg(strftime(p.period, '%Y-%m'), ', '
                   ORDER BY p.period) || ', ' || {_kzt("sum(p.amount)")} || ' KZT in all',
                   'high', ''
            FROM pay p JOIN population pp ON pp.iin = p.iin
            WHERE pp.death_date IS NOT NULL
              AND pp.death_date < p.period + INTERVAL {CUT_OFF_DAY - 1} DAY
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
            FROM pay p JOIN card c ON c.family_id = p.family_id
            LEFT JOIN facts f ON f.family_id = p.family_id
            LEFT JOIN population pp ON pp.iin = p.iin
            WHERE p.measure IN ({checked}) AND pp.death_date IS NULL
              AND (p.measure <> 'asp' OR {income} > CASE c.region {lines} END)
              AND NOT EXISTS (SELECT 1 FROM ent e WHERE e.measure = p.measure
                              AND e.family_id = p.family_id)
            GROUP BY p.person_id, p.measure""",
        "duplicate_payment": f"""
            WITH kids AS (SELECT family_id, measure, count(*) AS n FROM ent
                          WHERE measure IN ('birth', 'childcare') GROUP BY ALL),
            bl AS (SELECT DISTINCT person_id, period FROM pay WHERE measure = 'breadwinner_loss')
            SELECT any_value(p.family_id), p.person_id, p.measure,
                   annual(sum(p.amount) - max(p.amount)),
                   p.measure || ' paid ' || count(*) || ' times for '
                   || strftime(p.period, '%Y-%m') || ' in ' || p.region || ': '
                   || string_agg({_kzt("p.amount")}, ' + ' ORDER BY p.payment_id) || ' KZT ('
                   || string_agg(p.payment_id, ', ' ORDER BY p.payment_id) || ')'
                   || CASE WHEN any_value(k.n) > 1 THEN '; ' || any_value(k.n)
                      || ' children entitled in the family' ELSE '' END,
                   'high', strftime(p.period, '%Y-%m')
            FROM repeated p
            LEFT JOIN kids k ON k.family_id = p.family_id AND k.measure = p.measure
            WHERE NOT (p.measure = 'disability' AND EXISTS (SELECT 1 FROM bl
                       WHERE bl.person_id = p.person_id AND bl.period = p.period))
            GROUP BY p.person_id, p.measure, p.period, p.region
            HAVING count(*) > greatest(coalesce(any_value(k.n), 1), 1)
               AND min(p.amount) = max(p.amount)""",
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
            WHERE p.measure = 'asp' AND l.level IN ('A', 'B')
            GROUP BY p.family_id""",
        "asp_commercial_property": f"""
            SELECT p.family_id, NULL, 'asp', annual(sum(p.amount)),
                   'ASP ' || {_kzt("sum(p.amount)")} || ' KZT to a family owning '
                   || any_value(c.commercial) || ' commercial propert(ies) and '
                   || any_value(c.dwellings) || ' dwelling(s), property value '
                   || {_kzt("any_value(c.property_value)")} || ' KZT', 'high', ''
            FROM pay p JOIN card c ON c.family_id = p.family_id
            WHERE p.measure = 'asp' AND (c.commercial > 0 OR c.dwellings >= 6)
            GROUP BY p.family_id""",
        "hidden_income": f"""
            SELECT p.family_id, NULL, 'asp', annual(sum(p.amount)),
                   'ASP ' || {_kzt("sum(p.amount)")} || ' KZT; hidden-income score '
                   || round(any_value(h.hidden_income_score), 2) || ': '
                   || any_value(h.explanation),
                   CASE WHEN any_value(h.hidden_income_flag) THEN 'medium' ELSE 'low' END, ''
            FROM pay p JOIN hidden h ON h.family_id = p.family_id
            WHERE p.measure = 'asp'
              AND (h.hidden_income_flag OR h.hidden_income_score >= {HIDDEN_INCOME_SCORE})
            GROUP BY p.family_id""",
        "incompatible_measures": f"""
            WITH m AS (SELECT person_id, any_value(family_id) AS family_id, measure, period,
                              count(*) AS n, sum(amount) AS amount, max(amount) AS top,
                              string_agg(payment_id, ', ' ORDER BY payment_id) AS ids
                       FROM pay GROUP BY person_id, measure, period)
            SELECT any_value(a.family_id), a.person_id, b.measure, annual(sum(b.amount - b.top)),
                   b.measure || ' paid with ' || a.measure || ' (not combined) for '
                   || string_agg(strftime(a.period, '%Y-%m'), ', ' ORDER BY a.period) || ': '
                   || {_kzt("sum(b.amount)")} || ' KZT ('
                   || string_agg(b.ids, ', ' ORDER BY b.ids) || ')',
                   'medium', a.measure
            FROM m a JOIN m b ON a.person_id = b.person_id AND a.period = b.period
            WHERE ({incompatible}) AND b.n > 1
            GROUP BY a.person_id, a.measure, b.measure""",
        "amount_mismatch": f"""
            WITH e AS (SELECT coalesce(person_id, family_id) AS who, measure,
                              sum(amount) AS amount
                       FROM ent WHERE period = 'monthly' GROUP BY 1, 2),
            ref AS (SELECT p.*, coalesce(e1.amount, e2.amount) AS rule_amount,
                           median(p.amount) OVER (PARTITION BY p.person_id, p.measure) AS usual
                    FROM pay p
                    LEFT JOIN e e1 ON e1.who = p.person_id AND e1.measure = p.measure
                    LEFT JOIN e e2 ON e2.who = p.family_id AND e2.measure = p.measure)
            SELECT any_value(family_id), person_id, measure, annual(sum(amount - rule_amount)),
                   measure || ' paid ' || string_agg({_kzt("amount")} || ' KZT for '
                   || strftime(period, '%Y-%m'), ', ' ORDER BY period) || '; the rule gives '
                   || {_kzt("any_value(rule_amount)")} || ' KZT a month', 'medium', ''
            FROM ref
            WHERE rule_amount > 0 AND abs(amount - rule_amount) > {AMOUNT_TOLERANCE} * rule_amount
              AND abs(amount - usual) > {AMOUNT_TOLERANCE} * usual
            GROUP BY person_id, measure""",
        "exclusion_error": f"""
            SELECT e.family_id, {who_person} AS person_id, e.measure, round(sum(e.amount) * 12, 0),
                   'entitled to ' || e.measure || ' (' || any_value(e.reasons) || '), '
                   || {_kzt("sum(e.amount)")} || ' KZT a month; no payment in the extract',
                   'medium', ''
            FROM ent e
            ANTI JOIN paid_keys k ON k.measure = e.measure
                AND k.who = coalesce({who_person}, e.family_id)
            WHERE e.period = 'monthly' AND e.measure IN ({proactive})
            GROUP BY e.family_id, {who_person}, e.measure""",
    }


def find(data_dir: Path, on: date | None = None) -> duckdb.DuckDBPyRelation:
    """All findings as one DuckDB table `findings` on a fresh connection (returned)."""
    d = Path(data_dir)
    con = duckdb.connect()
    _views(con, d)
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
    """Write `DIR/audit/findings.parquet` and `findings.json` (the date and counts by type)
    atomically; the inputs are those of the last run, `on` is its date."""
    d = Path(data_dir)
    con = find(d, on)
    final = d / "audit"
    with atomic_dir(final) as tmp:
        if final.exists():  # keep what other audit steps wrote beside the findings
            for f in final.iterdir():
                if f.is_file() and f.name not in ("findings.parquet", "findings.json"):
                    (tmp / f.name).write_bytes(f.read_bytes())
        con.execute(f"COPY findings TO '{(tmp / 'findings.parquet').as_posix()}' (FORMAT parquet)")
        rows = con.execute(
            "SELECT type, count(*), sum(amount_at_risk) FROM findings GROUP BY type ORDER BY type"
        ).fetchall()
        summary = {
            "date": on.isoformat() if on else None,
            "by_type": {t: {"findings": n, "amount_at_risk": a} for t, n, a in rows},
        }
        (tmp / "findings.json").write_text(json.dumps(summary, indent=2))
    by_type = {t: 0 for t in TYPES} | {t: n for t, n, _ in rows}
    return AuditResult(
        findings=sum(n for _, n, _ in rows),
        by_type=by_type,
        amount_at_risk=float(sum(a or 0 for _, _, a in rows)),
        path=final / "findings.parquet",
    )
