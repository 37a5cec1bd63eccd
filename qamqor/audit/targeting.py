"""Targeting and fairness against true need: an EVALUATION step, it reads `DIR/truth/`.

The findings never read the truth; this step does, because true need is only known there (the
generator's true wages, hidden part included, and pensions). A family is *poor* when its true
per-capita income before social benefits is below the regional poverty line in force on the run
date (the line of `DIR/entitlements/summary.json`). Against that, for every measure of the
payments registry but age pensions (part of that income) and for all of them together (the
system): inclusion and exclusion errors, coverage of the poor, the share of spending reaching
the poor, the poorest 20 % and levels D–E, by region, urban/rural, level and the head's sex,
with concentration curves; and the Alkire–Foster figures of the levels. Every figure is
defined in docs/audit.md.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import numpy as np

from qamqor.countries import load_country
from qamqor.engine import connect, sql_path
from qamqor.ids import pseudonym_sql
from qamqor.registries.views import registry_text_view

SYSTEM = "system"  # every measure assessed, together
# Not assessed: age pensions are income replacement, part of the true income that defines need.
NOT_ASSESSED = ("age_pension",)
POOREST = 0.2
GRID = tuple(round(i / 50, 2) for i in range(51))  # population shares of the curves
GROUPS = {  # name: SQL key over `fam`
    "by_region": "region",
    "by_area": "CASE WHEN urban THEN 'urban' ELSE 'rural' END",
    "by_head_sex": "CASE WHEN head_sex = 'F' THEN 'women' ELSE 'men' END",
    "by_level": "level",
}
GAP_FIGURES = (
    "poverty_rate",
    "coverage_of_poor",
    "exclusion_error",
    "inclusion_error",
    "share_to_poor",
    "mean_benefit",
)


class TargetingError(RuntimeError):
    """An input of the targeting report is missing."""


def _need(path: Path) -> str:
    if not path.exists():
        raise TargetingError(f"{path} is missing: run `qamqor run DIR` first")
    return sql_path(path)


def poverty_lines(data_dir: Path) -> dict:
    """The poverty line in force on the run date, by region (from the entitlements step)."""
    path = Path(data_dir) / "entitlements" / "summary.json"
    _need(path)
    line = json.loads(path.read_text()).get("poverty_line") or {}
    if not line.get("by_region"):
        raise TargetingError(f"{path} has no poverty_line.by_region")
    return line


def _tables(con, d: Path, lines: dict[str, float]) -> None:
    """`fam`: one row per card family with its true need; `spend`: paid per family and measure
    (family_id NULL: a payee with no card family), plus the `system` rows."""
    line = " ".join(f"WHEN '{r}' THEN {float(v)!r}" for r, v in lines.items())
    excluded = ", ".join(f"'{m}'" for m in NOT_ASSESSED)
    payments = d / "ingested" / "payments.parquet"
    _need(payments)
    con.execute(registry_text_view(con, payments, "payments"))  # IINs as text, to hash
    con.execute(
        f"""
        CREATE TABLE truth AS
        SELECT {pseudonym_sql("iin")} AS person_id, true_family >= 0 AND alive AS real,
               coalesce(true_wage, 0) + coalesce(pension, 0) AS income
        FROM read_parquet({_need(d / "truth" / "persons.parquet")});
        CREATE TABLE fam0 AS
        SELECT m.family_id, any_value(c.region) AS region, any_value(c.urban) AS urban,
               coalesce(any_value(m.sex) FILTER (WHERE m.role = 'head'), arg_max(m.sex, m.age))
                 AS head_sex,
               coalesce(count(*) FILTER (WHERE t.real), 0) AS people,
               sum(t.income) FILTER (WHERE t.real) AS income
        FROM read_parquet({_need(d / "cards" / "members.parquet")}) m
        JOIN read_parquet({_need(d / "cards" / "families.parquet")}) c USING (family_id)
        LEFT JOIN truth t USING (person_id)
        GROUP BY m.family_id;
        CREATE TABLE fam AS
        SELECT f.*, l.level, people = 0 AS phantom,
               CASE WHEN people > 0 THEN income / people END AS pc,
               CASE region {line} END AS line,
               people > 0 AND income / people < CASE region {line} END AS poor,
               CASE WHEN people > 0 THEN
                 sum(people) OVER (ORDER BY income / people NULLS LAST, family_id)
                 / sum(people) OVER () END AS q
        FROM fam0 f
        LEFT JOIN (SELECT family_id, level
                   FROM read_parquet({_need(d / "levels" / "families.parquet")})) l
          USING (family_id);
        CREATE TABLE pay AS
        SELECT p.measure, p.amount, p.period, m.family_id
        FROM payments p
        LEFT JOIN read_parquet({sql_path(d / "cards" / "members.parquet")}) m
          ON m.person_id = {pseudonym_sql("p.iin")};
        CREATE TABLE spend AS
        SELECT family_id, measure, sum(amount) AS amount FROM pay
        WHERE measure NOT IN ({excluded}) GROUP BY ALL
        UNION ALL
        SELECT family_id, '{SYSTEM}', sum(amount) FROM pay
        WHERE measure NOT IN ({excluded}) GROUP BY ALL;
        """
    )


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not b else round(float(a or 0) / float(b), 6)


def _figures(base: dict, rec: dict, annual: float, unattributed: float = 0.0) -> dict:
    """The figures of one measure in one group (definitions: docs/audit.md)."""
    spending = float(rec.get("spending") or 0) + unattributed
    recipients, poor_rec = rec.get("recipients", 0), rec.get("poor_recipients", 0)
    cov = _ratio(poor_rec, base["poor_families"])
    return {
        "recipients": recipients,
        "poor_recipients": poor_rec,
        "inclusion_error": None if not recipients else round(1 - poor_rec / recipients, 6),
        "exclusion_error": None if cov is None else round(1 - cov, 6),
        "coverage_of_poor": cov,
        "spending_annual": round(spending * annual, 0),
        "mean_benefit": _ratio(spending * annual, recipients),
        "share_to_poor": _ratio(rec.get("to_poor"), spending),
        "share_to_poorest_20": _ratio(rec.get("to_q20"), spending),
        "share_to_levels_de": _ratio(rec.get("to_de"), spending),
        "share_no_real_family": _ratio(float(rec.get("to_phantom") or 0) + unattributed, spending),
    }


def _group(con, key: str, annual: float, unattributed: dict[str, float] | None = None) -> dict:
    """Population and per-measure figures of every value of `key` (a SQL expression)."""
    base = con.execute(
        f"""SELECT {key} AS g, count(*) FILTER (WHERE NOT phantom), sum(people),
                   count(*) FILTER (WHERE poor), coalesce(sum(people) FILTER (WHERE poor), 0)
            FROM fam GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    rec = con.execute(
        f"""SELECT {key} AS g, s.measure, count(*) AS recipients,
                   count(*) FILTER (WHERE poor) AS poor_recipients, sum(amount) AS spending,
                   sum(amount) FILTER (WHERE poor) AS to_poor,
                   sum(amount) FILTER (WHERE q <= {POOREST}) AS to_q20,
                   sum(amount) FILTER (WHERE level IN ('D', 'E')) AS to_de,
                   sum(amount) FILTER (WHERE phantom) AS to_phantom
            FROM spend s JOIN fam f USING (family_id) WHERE s.amount > 0 GROUP BY 1, 2"""
    )
    cols = [c[0] for c in rec.description]
    by: dict[tuple, dict] = {(r[0], r[1]): dict(zip(cols, r, strict=True)) for r in rec.fetchall()}
    measures = sorted({m for _, m in by} | set(unattributed or {}))
    out = {}
    for g, families, people, poor_f, poor_p in base:
        b = {"families": families, "people": int(people or 0), "poor_families": poor_f}
        b |= {"poor_people": int(poor_p), "poverty_rate": _ratio(poor_p, people)}
        out[str(g)] = b | {
            "measures": {
                m: _figures(b, by.get((g, m), {}), annual, (unattributed or {}).get(m, 0.0))
                for m in measures
            }
        }
    return out


def _curves(con) -> dict:
    """Concentration curves (cumulative share of the spending reaching real families against
    the people-weighted share of the population ranked by true per-capita income) on GRID, the
    concentration index, and the spending share by quintile."""
    q = con.execute("SELECT q FROM fam WHERE NOT phantom ORDER BY q").fetchnumpy()["q"]
    q = np.asarray(q, dtype=float)
    rows = con.execute(
        """SELECT s.measure, f.q, s.amount FROM spend s JOIN fam f USING (family_id)
           WHERE NOT f.phantom AND s.amount > 0"""
    ).fetchnumpy()
    out: dict = {"x": list(GRID), "measures": {}}
    if not len(q):
        return out
    grid = np.searchsorted(q, np.array(GRID) + 1e-12, side="right") - 1
    measure = np.asarray(rows["measure"], dtype=object)
    for m in sorted(set(measure.tolist())):
        sel = measure == m
        idx = np.searchsorted(q, np.asarray(rows["q"][sel], dtype=float))
        s = np.zeros(len(q))
        np.add.at(s, idx, np.asarray(rows["amount"][sel], dtype=float))
        cum = np.cumsum(s) / s.sum()
        y = np.where(grid >= 0, cum[np.maximum(grid, 0)], 0.0)
        p_prev, c_prev = np.concatenate([[0.0], q[:-1]]), np.concatenate([[0.0], cum[:-1]])
        area = float(np.sum((q - p_prev) * (cum + c_prev) / 2))
        quint = np.diff(np.concatenate([[0.0], y[[10, 20, 30, 40, 50]]]))
        out["measures"][m] = {
            "y": [round(float(v), 6) for v in y],
            "concentration_index": round(1 - 2 * area, 6),
            "quintile_shares": [round(float(v), 6) for v in quint],
        }
    return out


def _gap(by_sex: dict) -> dict:
    """Women- minus men-headed families, for every measure and figure of GAP_FIGURES."""
    w, m = by_sex.get("women"), by_sex.get("men")
    if not (w and m):
        return {}

    def diff(a, b):
        return None if a is None or b is None else round(a - b, 6)

    out = {"poverty_rate": diff(w["poverty_rate"], m["poverty_rate"]), "measures": {}}
    for k in sorted(set(w["measures"]) & set(m["measures"])):
        a, b = w["measures"][k], m["measures"][k]
        out["measures"][k] = {f: diff(a[f], b[f]) for f in GAP_FIGURES if f in a}
    return out


def alkire_foster(data_dir: Path) -> dict:
    """H, A and M0 of the levels summary: national, urban/rural and by region."""
    path = Path(data_dir) / "levels" / "summary.json"
    _need(path)
    s = json.loads(path.read_text())
    return {
        "poverty_cutoff": s["methodology"]["poverty_cutoff"],
        "methodology": f"{s['methodology']['id']} {s['methodology']['version']}",
        "national": s["national"]["alkire_foster"],
        "by_area": {k: v["alkire_foster"] for k, v in s["by_area"].items()},
        "by_region": {k: v["alkire_foster"] for k, v in s["by_region"].items()},
    }


def targeting(data_dir: Path, on: date | None = None, country: str = "kz") -> dict:
    """Compute the report, write `DIR/audit/targeting.json` and return it."""
    d = Path(data_dir)
    line = poverty_lines(d)
    con = connect()
    _tables(con, d, line["by_region"])
    months = con.execute("SELECT greatest(count(DISTINCT period), 1) FROM pay").fetchone()[0]
    annual = 12 / months
    unattributed = dict(
        con.execute(
            "SELECT measure, sum(amount) FROM spend WHERE family_id IS NULL GROUP BY 1"
        ).fetchall()
    )
    national = _group(con, "'all'", annual, unattributed)["all"]
    groups = {name: _group(con, key, annual) for name, key in GROUPS.items()}
    names = {r.code: r.name["en"] for r in load_country(country).regions}
    for code, g in groups["by_region"].items():
        g["name"] = names.get(code, code)
        g["poverty_line"] = line["by_region"].get(code)
    curves = _curves(con)
    for m, c in curves["measures"].items():
        national["measures"][m]["concentration_index"] = c["concentration_index"]
    (phantoms,) = con.execute("SELECT count(*) FROM fam WHERE phantom").fetchone()
    con.close()
    out = {
        "date": on.isoformat() if on else None,
        "reads_truth": "truth/persons.parquet (true wages, pensions): an evaluation step",
        "poor": "true per-capita income (wages incl. hidden, pensions; before social benefits) "
        "below the regional poverty line in force",
        "poverty_line": line,
        "system": f"every measure paid except {', '.join(NOT_ASSESSED)} (not assessed)",
        "months_paid": months,
        "phantom_families": phantoms,
        "national": national,
        **groups,
        "head_sex_gap": _gap(groups["by_head_sex"]),
        "curves": curves,
        "alkire_foster": alkire_foster(d),
    }
    target = d / "audit" / "targeting.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(".targeting.json.tmp")
    tmp.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    os.replace(tmp, target)
    return out
