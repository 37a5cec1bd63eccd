"""Well-being levels for every family: one SQL SELECT generated from the methodology.

The same SQL scores the whole nation (DuckDB or Spark, `qamqor.engine.run_query`) and one family
(`qamqor.levels.explain`), so an explanation always adds up to the batch score. Literals are cast
to DOUBLE so that both engines do the same floating-point arithmetic.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from qamqor.countries import Country, load_country
from qamqor.engine import atomic_dir, connect, publish_file, run_query, sql_path
from qamqor.levels.methodology import LEVELS, Methodology, methodology_in_force

KEY_COLUMNS = ("family_id", "region", "district", "urban", "members")


def _num(x: float) -> str:
    return f"CAST({float(x)!r} AS DOUBLE)"


def parameters_sql(country: Country, on: date) -> str:
    """Dated parameters as columns: the regional PM and the MRP in force on `on`."""
    pm = " ".join(
        f"WHEN '{r.code}' THEN {_num(country.regional_pm(r.code, on))}" for r in country.regions
    )
    return f"CASE region {pm} END AS pm, {_num(country.parameter('mrp').at(on))} AS mrp"


def levels_sql(m: Methodology, country: Country, on: date, values: bool = False) -> str:
    """One SELECT over table `cards`: points per indicator, score, trigger and level.

    With `values`, each indicator's value and applicability are returned too (for explanations).
    """
    cols, points = [], []
    for _, ind in m.indicators:
        applies = f"({ind.applies_if})" if ind.applies_if else "TRUE"
        cond = f"{applies} AND ({ind.value}) {ind.cutoff.sql()}"
        cols.append(
            f"CASE WHEN {cond} THEN {_num(ind.weight)} ELSE {_num(0)} END AS points_{ind.id}"
        )
        if values:
            cols.append(f"({ind.value}) AS value_{ind.id}")
            cols.append(f"{applies} AS applies_{ind.id}")
        points.append(f"points_{ind.id}")
    trig = " ".join(f"WHEN {t.when} THEN '{t.id}'" for t in m.triggers)
    trigger = f"CASE {trig} ELSE NULL END" if trig else "CAST(NULL AS VARCHAR)"
    bands = " ".join(f"WHEN score < {_num(b.to)} THEN '{b.level}'" for b in m.levels[:-1])
    deprived = " + ".join(f"CASE WHEN {p} > 0 THEN 1 ELSE 0 END" for p in points)
    extra = [c for c in (f"value_{i.id}" for _, i in m.indicators)] if values else []
    extra += [f"applies_{i.id}" for _, i in m.indicators] if values else []
    keys = ", ".join(KEY_COLUMNS)
    sep = ",\n    "
    return f"""
WITH base AS (
  SELECT *, {parameters_sql(country, on)} FROM cards
), indicators AS (
  SELECT {keys}, pm, mrp,
    {sep.join(cols)},
    {trigger} AS emergency_trigger
  FROM base
), scored AS (
  SELECT *, {" + ".join(points)} AS score, {deprived} AS deprivations FROM indicators
)
SELECT {keys}, score,
  CASE WHEN emergency_trigger IS NOT NULL THEN 'E' {bands} ELSE 'E' END AS level,
  emergency_trigger, deprivations,
  {", ".join(points + extra + (["pm", "mrp"] if values else []))}
FROM scored"""


@dataclass
class LevelsResult:
    families: int
    counts: dict[str, int]
    methodology: Methodology
    out: Path


def card_dates(data_dir: Path) -> list[date]:
    """The dates for which cards were built, oldest first."""
    hist = Path(data_dir) / "cards" / "history"
    return sorted(date.fromisoformat(p.name) for p in hist.glob("*-*-*") if p.is_dir())


def card_path(data_dir: Path, on: date) -> Path:
    """The family cards of date `on`; FileNotFoundError naming what to run if there are none."""
    path = Path(data_dir) / "cards" / "history" / on.isoformat() / "families.parquet"
    if not path.exists():
        raise FileNotFoundError(
            f"no family cards for {on.isoformat()} in {data_dir}: run `qamqor cards` first"
        )
    return path


def compute_levels(
    data_dir: Path,
    on: date,
    engine: str = "duckdb",
    methodology: Methodology | None = None,
    country: str = "kz",
) -> LevelsResult:
    """Write DIR/levels/history/DATE/{families.parquet, summary.json, methodology.yaml}, and
    the same files to DIR/levels/ (the latest run)."""
    data_dir = Path(data_dir)
    cards = card_path(data_dir, on)
    m = methodology or methodology_in_force(on, country)
    c = load_country(country)
    final = data_dir / "levels" / "history" / on.isoformat()
    with atomic_dir(final) as tmp:
        run_query(levels_sql(m, c, on), {"cards": cards}, tmp / "families.parquet", engine)
        shutil.copyfile(m.source, tmp / "methodology.yaml")
        summary = summarise(tmp / "families.parquet", m)
        summary.update(date=on.isoformat(), engine=engine)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    for f in final.iterdir():
        publish_file(f, data_dir / "levels" / f.name)
    counts = {k: v["families"] for k, v in summary["national"]["levels"].items()}
    return LevelsResult(summary["families"], counts, m, final)


def summarise(levels_file: Path, m: Methodology) -> dict:
    """Families and people per level (national, by region, urban/rural) and Alkire–Foster H,
    A, M0 (people-weighted; a family is poor at score >= poverty_cutoff)."""
    con = connect()
    con.execute(f"CREATE VIEW l AS SELECT * FROM read_parquet({sql_path(levels_file)})")
    k, total = float(m.poverty_cutoff), float(m.total_weight)

    def group(by: str | None) -> dict:
        key = by or "'all'"
        rows = con.execute(
            f"""SELECT {key} AS g, level, count(*), sum(members) FROM l GROUP BY 1, 2"""
        ).fetchall()
        af = con.execute(
            f"""SELECT {key} AS g, sum(members),
                       sum(members) FILTER (WHERE score >= {k}),
                       sum(members * score) FILTER (WHERE score >= {k})
                FROM l GROUP BY 1"""
        ).fetchall()
        out: dict = {}
        for g, level, fam, ppl in rows:
            g = _label(g)
            lv = out.setdefault(g, {"levels": {x: {"families": 0, "people": 0} for x in LEVELS}})
            lv["levels"][level] = {"families": int(fam), "people": int(ppl)}
        for g, ppl, poor, weighted in af:
            h = (poor or 0) / ppl
            a = (weighted / poor / total) if poor else 0.0
            out[_label(g)]["alkire_foster"] = {
                "H": round(h, 6),
                "A": round(a, 6),
                "M0": round(h * a, 6),
            }
        return out

    national = group(None)["all"]
    fam, ppl = con.execute("SELECT count(*), sum(members) FROM l").fetchone()
    summary = {
        "methodology": {
            "id": m.id,
            "version": m.version,
            "valid_from": m.valid_from.isoformat(),
            "poverty_cutoff": m.poverty_cutoff,
        },
        "families": int(fam),
        "people": int(ppl or 0),
        "national": national,
        "by_region": group("region"),
        "by_area": group("CASE WHEN urban THEN 'urban' ELSE 'rural' END"),
    }
    con.close()
    return summary


def _label(g) -> str:
    return str(g)
