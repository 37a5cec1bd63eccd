"""The audit report: `DIR/audit/report.json` and the self-contained `DIR/audit/report.html`.

It gathers the findings (all of them summarised by type, region, severity and measure; the top
N by amount listed with their trace: the type's rule, the measure's legal basis and conditions,
the payment and entitlement rows, the run date) and the targeting report of
`qamqor.audit.targeting`, the one part that reads `DIR/truth/` (an evaluation: skipped when
there is no truth, e.g. on real registries). The page is rendered by `report_html`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from qamqor.countries import load_country
from qamqor.engine import connect, sql_path
from qamqor.ids import pseudonym_sql
from qamqor.measures.catalogue import load_catalogue
from qamqor.registries.views import registry_text_view

TOP = 2000  # findings listed in the page; the full list is findings.parquet
PER_FINDING_ROWS = 12  # payment rows shown per finding
RULES = {  # type: (rule, data read) — the table of docs/audit.md
    "paid_after_death": (
        "a payment for a month whose list closed (day 27) on or after the death date",
        "payments, population (death date)",
    ),
    "not_entitled": (
        "a payment of a checked measure to a family with no entitlement under the rules in force "
        "(ASP: only above the regional poverty line); the evidence names the failing conditions",
        "payments, entitlements, card",
    ),
    "duplicate_payment": (
        "the same person, measure, period, region and amount paid more times than the rules "
        "give it (once; for births once per child born that month; for childcare once per "
        "entitled child with that amount)",
        "payments, entitlements (children entitled)",
    ),
    "paid_in_two_regions": (
        "the same person, measure and period paid in two or more regions",
        "payments",
    ),
    "asp_level_a_b": ("ASP to a family at well-being level A or B", "payments, levels"),
    "asp_commercial_property": (
        "ASP to a family owning commercial real estate or 6+ dwellings",
        "payments, card (real-estate registry)",
    ),
    "hidden_income": (
        "ASP to a family flagged by the hidden-income model (declared earned income far "
        "below what its assets and spending imply)",
        "payments, scores/hidden_income",
    ),
    "incompatible_measures": (
        "state social benefits that are not combined paid together (breadwinner loss and an "
        "extra disability line)",
        "payments",
    ),
    "amount_mismatch": (
        "a payment more than 25 % away from every amount the rules give the person or family "
        "(ASP: the quarter's assigned amount; age pensions: the person's usual amount)",
        "payments, entitlements",
    ),
    "exclusion_error": (
        "entitled to a proactive monthly measure and nothing of it paid in the extract",
        "entitlements, payments",
    ),
    "hidden_household_member": (
        "ASP to a family with a person registered at its address, not in the family, whose "
        "declared income would lift the family above the poverty line if counted",
        "payments, population (addresses), income, card",
    ),
    "duplicate_identity": (
        "the same person paid under a second population record (Splink identity linkage): "
        "the second record's payments, with both records and the match probability",
        "payments, population, linkage",
    ),
}  # a type missing here is shown with "see docs/audit.md"


class ReportError(RuntimeError):
    """An input of the report is missing."""


@dataclass
class ReportResult:
    findings: int
    listed: int
    targeting: bool
    html: Path
    json: Path


def _need(path: Path) -> str:
    if not path.exists():
        raise ReportError(f"{path} is missing: run `qamqor audit DIR` (or `qamqor run`) first")
    return sql_path(path)


def _rows(con, sql: str) -> list[dict]:
    cur = con.execute(sql)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _views(con, d: Path) -> None:
    payments = d / "ingested" / "payments.parquet"
    _need(payments)
    con.execute(registry_text_view(con, payments, "payments"))  # IINs as text, to hash
    con.execute(
        f"""
        CREATE VIEW findings AS SELECT *
            FROM read_parquet({_need(d / "audit" / "findings.parquet")});
        CREATE VIEW card AS SELECT family_id, region
            FROM read_parquet({_need(d / "cards" / "families.parquet")});
        CREATE VIEW ent AS SELECT *
            FROM read_parquet({_need(d / "entitlements" / "entitlements.parquet")});
        CREATE TABLE pay AS
        SELECT p.payment_id, {pseudonym_sql("p.iin")} AS person_id, m.family_id,
               p.measure, p.period, p.amount, p.region, p.paid_date
        FROM payments p
        LEFT JOIN read_parquet({_need(d / "cards" / "members.parquet")}) m
          ON m.person_id = {pseudonym_sql("p.iin")};
        CREATE TABLE f AS
        WITH pr AS (SELECT person_id, min(region) AS region FROM pay GROUP BY 1)
        SELECT x.*, coalesce(c.region, pr.region, 'unknown') AS region
        FROM findings x LEFT JOIN card c USING (family_id) LEFT JOIN pr USING (person_id);
        """
    )


def _summary(con) -> dict:
    """Counts and amounts at risk over every finding, by type, region, severity, measure."""

    def by(key: str) -> list[dict]:
        return _rows(
            con,
            f"""SELECT {key} AS key, count(*) AS findings,
                       coalesce(sum(amount_at_risk), 0) AS amount_at_risk
                FROM f GROUP BY 1 ORDER BY 3 DESC, 1""",
        )

    total = _rows(
        con, "SELECT count(*) AS findings, coalesce(sum(amount_at_risk), 0) AS amount FROM f"
    )[0]
    return {
        "total": total["findings"],
        "amount_at_risk": total["amount"],
        "by_type": by("type"),
        "by_region": by("region"),
        "by_severity": by("severity"),
        "by_measure": by("measure"),
        "by_type_region": _rows(
            con, "SELECT type, region, count(*) AS findings FROM f GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    }


def _listed(con, top: int) -> list[dict]:
    """The top findings by amount at risk, each with its payment and entitlement rows."""
    con.execute(
        f"""CREATE TABLE top AS SELECT * FROM f
            ORDER BY amount_at_risk DESC NULLS LAST, finding_id LIMIT {int(top)}"""
    )
    pays: dict[str, list] = {}
    for r in con.execute(
        f"""SELECT finding_id, payment_id, strftime(period, '%Y-%m'), amount, region,
                   paid_date::VARCHAR FROM (
              SELECT *, row_number() OVER (
                       PARTITION BY finding_id ORDER BY period, payment_id) AS k
              FROM (SELECT t.finding_id, p.* FROM top t JOIN pay p
                      ON p.measure = t.measure AND p.person_id = t.person_id
                    UNION ALL
                    SELECT t.finding_id, p.* FROM top t JOIN pay p
                      ON p.measure = t.measure AND p.family_id = t.family_id
                    WHERE t.person_id IS NULL))
            WHERE k <= {PER_FINDING_ROWS} ORDER BY finding_id, k"""
    ).fetchall():
        pays.setdefault(r[0], []).append(list(r[1:]))
    ents: dict[str, list] = {}
    for r in con.execute(
        """SELECT t.finding_id, e.measure, e.person_id, e.amount, e.period, e.reasons
           FROM top t JOIN ent e ON e.family_id = t.family_id AND e.measure = t.measure
            AND (t.person_id IS NULL OR e.person_id IS NULL OR e.person_id = t.person_id)
           ORDER BY 1, 3"""
    ).fetchall():
        ents.setdefault(r[0], []).append(list(r[1:]))
    rows = _rows(
        con,
        """SELECT finding_id AS id, type, severity, measure, region, family_id AS family,
                  person_id AS person, amount_at_risk AS amount, evidence
           FROM top ORDER BY amount_at_risk DESC NULLS LAST, finding_id""",
    )
    for r in rows:
        r["payments"] = pays.get(r["id"], [])
        r["entitlements"] = ents.get(r["id"], [])
    return rows


def _measures(on: date, country: str) -> dict:
    """Every national measure of the registry: name, legal basis, conditions, amount rule."""
    out = {}
    for m in load_catalogue(country).in_force(on):
        key = m.registry_measure or m.id
        if m.region or key in out:
            continue
        out[key] = {
            "name": m.name["en"],
            "legal_basis": m.legal_basis,
            "conditions": [f"{c.id}: {c.text}" for c in m.eligibility],
            "amount": m.amount_text or m.amount,
            "period": m.period,
        }
    return out


def report_data(
    data_dir: Path,
    on: date | None = None,
    top: int = TOP,
    truth: bool = True,
    country: str = "kz",
) -> dict:
    """Everything the page shows, as one JSON-ready dict (targeting: runs that step)."""
    d = Path(data_dir)
    meta = d / "audit" / "findings.json"
    audited = json.loads(meta.read_text()).get("date") if meta.exists() else None
    run_date = on or (date.fromisoformat(audited) if audited else date.today())
    con = connect()
    _views(con, d)
    summary = _summary(con)
    listed = _listed(con, top)
    con.close()
    target, why = None, "no truth/persons.parquet: targeting against true need not measured"
    if not truth:
        why = "targeting not requested (--no-truth)"
    elif (d / "truth" / "persons.parquet").exists():
        from qamqor.audit.targeting import targeting

        target, why = targeting(d, run_date, country), None
    regions = {r.code: r.name["en"] for r in load_country(country).regions}
    return {
        "title": "Social audit report",
        "run_date": run_date.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "nation": d.name,
        "findings": summary,
        "listed": {
            "shown": len(listed),
            "total": summary["total"],
            "order": "amount at risk, largest first",
            "full_list": "audit/findings.parquet",
            "rows": listed,
        },
        "rules": {t: {"rule": r, "data": s} for t, (r, s) in RULES.items()},
        "measures": _measures(run_date, country),
        "regions": regions,
        "targeting": target,
        "targeting_note": why,
    }


def build_report(
    data_dir: Path, on: date | None = None, top: int = TOP, truth: bool = True
) -> ReportResult:
    """Write `DIR/audit/report.json` and `DIR/audit/report.html` (and targeting.json)."""
    from qamqor.audit.report_html import render

    d = Path(data_dir)
    data = report_data(d, on, top, truth)
    out = d / "audit"
    text = json.dumps(data, indent=1, ensure_ascii=False, default=str)
    paths = {"report.json": text, "report.html": render(data)}
    for name, content in paths.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, out / name)
    return ReportResult(
        findings=data["findings"]["total"],
        listed=data["listed"]["shown"],
        targeting=data["targeting"] is not None,
        html=out / "report.html",
        json=out / "report.json",
    )
