"""What a new methodology version changes: level transitions, by region, and the biggest movers."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

from qamqor.countries import load_country
from qamqor.engine import connect, run_query, sql_path
from qamqor.levels.compute import card_path, levels_sql
from qamqor.levels.methodology import LEVELS, Methodology


def compare_methodologies(
    old: Methodology, new: Methodology, data_dir: Path, on: date, top: int = 20
) -> dict:
    """Score the cards of `on` under both versions and compare family by family."""
    cards = card_path(data_dir, on)
    country = load_country()
    with tempfile.TemporaryDirectory(prefix="qamqor-compare-") as tmp:
        a, b = Path(tmp) / "old.parquet", Path(tmp) / "new.parquet"
        run_query(levels_sql(old, country, on), {"cards": cards}, a)
        run_query(levels_sql(new, country, on), {"cards": cards}, b)
        con = connect()
        con.execute(
            f"""CREATE TEMP TABLE t AS
            SELECT o.family_id, o.region, o.members, o.score AS old_score, o.level AS old_level,
                   n.score AS new_score, n.level AS new_level
            FROM read_parquet({sql_path(a)}) o
            JOIN read_parquet({sql_path(b)}) n USING (family_id)"""
        )
        matrix = _matrix(con.execute("SELECT old_level, new_level, count(*) FROM t GROUP BY 1, 2"))
        by_region: dict[str, dict] = {}
        for region, ol, nl, n in con.execute(
            "SELECT region, old_level, new_level, count(*) FROM t GROUP BY 1, 2, 3 ORDER BY 1"
        ).fetchall():
            by_region.setdefault(region, _empty())[ol][nl] = int(n)
        movers = con.execute(
            f"""SELECT family_id, region, members, old_score, old_level, new_score, new_level
            FROM t WHERE old_level <> new_level OR old_score <> new_score
            ORDER BY abs(ascii(new_level) - ascii(old_level)) DESC,
                     abs(new_score - old_score) DESC, family_id
            LIMIT {int(top)}"""
        )
        cols = [d[0] for d in movers.description]
        top_movers = [dict(zip(cols, r, strict=True)) for r in movers.fetchall()]
        families, moved = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE old_level <> new_level) FROM t"
        ).fetchone()
        con.close()
    return {
        "date": on.isoformat(),
        "old": {"id": old.id, "version": old.version, "source": old.source},
        "new": {"id": new.id, "version": new.version, "source": new.source},
        "families": int(families),
        "families_changing_level": int(moved),
        "matrix": matrix,
        "by_region": by_region,
        "top_movers": top_movers,
    }


def _empty() -> dict[str, dict[str, int]]:
    return {o: dict.fromkeys(LEVELS, 0) for o in LEVELS}


def _matrix(cursor) -> dict[str, dict[str, int]]:
    m = _empty()
    for ol, nl, n in cursor.fetchall():
        m[ol][nl] = int(n)
    return m
