"""Catalogue audit: what the unified social standard should merge (issue 4, item 6).

Two views over the entitlements of one date:

- overlap: pairs of measures in force that serve the same `need` (as the catalogue declares it)
  and pay the same families, with the number of families, the annual money of each measure to
  those families and the duplicated part (per family, the smaller of the two annual amounts);
  per need, the families paid by more than one measure and the money beyond the largest one;
- regional disparity: per region, the number of local measures in force, local spend per
  capita (annual, per member of the region's families) and the share of local spend reaching
  families at well-being levels D–E (beside the share of the region's families at D–E).

Everything is read from DIR/entitlements/ (recomputed into a scratch folder when it was built
for another date or with other switches), the card and the levels of the same date.
"""

from __future__ import annotations

import json
import tempfile
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from qamqor.engine import connect, sql_path
from qamqor.levels.compute import card_path
from qamqor.measures.catalogue import Catalogue, load_catalogue
from qamqor.measures.compute import ANNUAL, compute_entitlements

LOW_LEVELS = ("D", "E")


def annual_sql(ent: Path) -> str:
    """Annual amount per family and measure (person-level measures summed over members)."""
    factor = " ".join(f"WHEN '{k}' THEN {v}" for k, v in ANNUAL.items())
    return (
        f"SELECT family_id, measure, sum(amount * CASE period {factor} END) AS annual "
        f"FROM read_parquet({sql_path(ent)}) GROUP BY family_id, measure"
    )


def levels_path(data_dir: Path, on: date) -> Path:
    path = Path(data_dir) / "levels" / "history" / on.isoformat() / "families.parquet"
    if not path.exists():
        raise FileNotFoundError(
            f"no well-being levels for {on.isoformat()} in {data_dir}: "
            f"run `qamqor levels {data_dir} --date {on.isoformat()}` first"
        )
    return path


def entitlements_dir(
    data_dir: Path, on: date, scratch: Path, cat: Catalogue, engine: str = "duckdb"
) -> Path:
    """DIR/entitlements (or DIR/entitlements_history/DATE) if it was computed for `on` with the
    catalogue's default switches; otherwise the entitlements are computed into `scratch`
    (DIR/entitlements stays as it is)."""
    data_dir = Path(data_dir)
    for kept in (data_dir / "entitlements", data_dir / "entitlements_history" / on.isoformat()):
        summary = kept / "summary.json"
        if summary.exists() and (kept / "entitlements.parquet").exists():
            s = json.loads(summary.read_text())
            if s.get("date") == on.isoformat() and s.get("switches") == cat.switches:
                return kept
    compute_entitlements(data_dir, on, engine, catalogue=cat, out=scratch)
    return scratch


def catalogue_audit(
    data_dir: Path,
    on: date,
    catalogue: Catalogue | None = None,
    country: str = "kz",
    engine: str = "duckdb",
) -> dict:
    """Overlaps and regional disparity; written to DIR/entitlements/catalogue_audit.json when
    DIR/entitlements holds the entitlements of `on` (returned in any case)."""
    data_dir = Path(data_dir)
    cat = catalogue or load_catalogue(country)
    cards = card_path(data_dir, on)
    levels = levels_path(data_dir, on)
    (data_dir / "entitlements").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".audit-") as tmp:
        scratch = Path(tmp) / "entitlements"
        ent_dir = entitlements_dir(data_dir, on, scratch, cat, engine)
        result = _audit(ent_dir / "entitlements.parquet", cards, levels, cat, on)
    result["entitlements"] = "recomputed for this date" if ent_dir == scratch else str(ent_dir)
    (data_dir / "entitlements" / "catalogue_audit.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False)
    )
    return result


def _audit(ent: Path, cards: Path, levels: Path, cat: Catalogue, on: date) -> dict:
    measures = cat.in_force(on)
    con = connect()
    con.execute(f"CREATE VIEW fm AS {annual_sql(ent)}")
    con.execute(f"CREATE VIEW cards AS SELECT * FROM read_parquet({sql_path(cards)})")
    con.execute(f"CREATE VIEW lv AS SELECT family_id, level FROM read_parquet({sql_path(levels)})")
    con.execute("CREATE TABLE needs (measure VARCHAR, need VARCHAR, local BOOLEAN)")
    con.executemany(
        "INSERT INTO needs VALUES (?, ?, ?)",
        [(m.id, m.need, m.region is not None) for m in measures],
    )
    # (a) overlap: every pair of same-need measures, with the families paid by both.
    rows = con.execute(
        """SELECT a.measure, b.measure, count(*), sum(a.annual), sum(b.annual),
                  sum(least(a.annual, b.annual))
           FROM fm a JOIN fm b ON a.family_id = b.family_id AND a.measure < b.measure
           JOIN needs na ON na.measure = a.measure
           JOIN needs nb ON nb.measure = b.measure AND nb.need = na.need
           GROUP BY 1, 2"""
    ).fetchall()
    paid = {(a, b): (n, ca, cb, dup) for a, b, n, ca, cb, dup in rows}
    by_id = {m.id: m for m in measures}
    pairs = []
    for i, a in enumerate(sorted(by_id)):
        for b in sorted(by_id)[i + 1 :]:
            if by_id[a].need != by_id[b].need:
                continue
            n, ca, cb, dup = paid.get((a, b), (0, 0.0, 0.0, 0.0))
            pairs.append(
                {
                    "need": by_id[a].need,
                    "measures": [a, b],
                    "regions": [by_id[a].region or "national", by_id[b].region or "national"],
                    "families": int(n),
                    "annual_a": round(float(ca), 2),
                    "annual_b": round(float(cb), 2),
                    "annual_both": round(float(ca + cb), 2),
                    "annual_duplicated": round(float(dup), 2),
                }
            )
    pairs.sort(key=lambda p: (-p["families"], p["measures"]))
    needs = con.execute(
        """WITH f AS (
             SELECT n.need, fm.family_id, count(*) AS k, sum(annual) AS total, max(annual) AS top
             FROM fm JOIN needs n USING (measure) GROUP BY 1, 2)
           SELECT need, count(*) FILTER (WHERE k > 1), sum(total - top) FILTER (WHERE k > 1),
                  sum(total)
           FROM f GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    by_need = {
        need: {
            "measures": sorted(m.id for m in measures if m.need == need),
            "families_multiple": int(n or 0),
            "annual_beyond_largest": round(float(extra or 0), 2),
            "annual_total": round(float(total or 0), 2),
        }
        for need, n, extra, total in needs
    }
    # (b) regional disparity.
    low = ", ".join(f"'{x}'" for x in LOW_LEVELS)
    regions = con.execute(
        f"""WITH pop AS (
              SELECT c.region, count(*) AS families, sum(c.members) AS people,
                     count(*) FILTER (WHERE lv.level IN ({low})) AS families_low
              FROM cards c LEFT JOIN lv USING (family_id) GROUP BY 1),
            spend AS (
              SELECT c.region,
                     coalesce(sum(annual) FILTER (WHERE n.local), 0) AS local_annual,
                     coalesce(sum(annual) FILTER (WHERE n.local AND lv.level IN ({low})), 0)
                       AS local_low,
                     coalesce(sum(annual) FILTER (WHERE NOT n.local), 0) AS national_annual,
                     count(DISTINCT fm.family_id) FILTER (WHERE n.local) AS local_families
              FROM fm JOIN needs n USING (measure) JOIN cards c USING (family_id)
              LEFT JOIN lv USING (family_id) GROUP BY 1)
            SELECT pop.*, coalesce(local_annual, 0), coalesce(local_low, 0),
                   coalesce(national_annual, 0), coalesce(local_families, 0)
            FROM pop LEFT JOIN spend USING (region) ORDER BY region"""
    ).fetchall()
    con.close()
    disparity = {}
    for region, fams, people, fams_low, local, local_low, national, local_fams in regions:
        local_measures = sorted(m.id for m in measures if m.region == region)
        disparity[region] = {
            "local_measures": len(local_measures),
            "measures": local_measures,
            "families": int(fams),
            "people": int(people),
            "local_families": int(local_fams),
            "local_annual": round(float(local), 2),
            "local_per_capita": round(float(local) / people, 2) if people else 0.0,
            "national_per_capita": round(float(national) / people, 2) if people else 0.0,
            "local_share_to_levels_d_e": round(float(local_low) / local, 4) if local else None,
            "families_share_at_levels_d_e": round(fams_low / fams, 4) if fams else None,
        }
    return {
        "date": on.isoformat(),
        "overlaps": pairs,
        "by_need": by_need,
        "regions": disparity,
    }


def print_audit(a: dict, console: Console) -> None:
    t = Table(
        "need",
        "measures",
        "families",
        "annual both, M",
        "duplicated, M",
        title=f"Overlaps {a['date']}",
    )
    for p in a["overlaps"]:
        if p["families"]:
            t.add_row(
                p["need"], " + ".join(p["measures"]), f"{p['families']:,}",
                f"{p['annual_both'] / 1e6:,.1f}", f"{p['annual_duplicated'] / 1e6:,.1f}",
            )  # fmt: skip
    console.print(t)
    t = Table(
        "region", "local measures", "local families", "local per capita", "national per capita",
        "local to D–E", "families at D–E", title="Regional disparity (annual, per member)",
    )  # fmt: skip
    for region, r in a["regions"].items():
        if not r["local_measures"]:
            continue
        share = r["local_share_to_levels_d_e"]
        t.add_row(
            region, str(r["local_measures"]), f"{r['local_families']:,}",
            f"{r['local_per_capita']:,.0f}", f"{r['national_per_capita']:,.0f}",
            "—" if share is None else f"{share:.1%}", f"{r['families_share_at_levels_d_e']:.1%}",
        )  # fmt: skip
    others = [r for r in a["regions"].values() if not r["local_measures"]]
    if others:
        per = sum(r["national_per_capita"] * r["people"] for r in others)
        people = sum(r["people"] for r in others)
        t.add_row(
            f"{len(others)} other regions", "0", "0", "0",
            f"{per / people:,.0f}" if people else "—", "—", "",
        )  # fmt: skip
    console.print(t)
