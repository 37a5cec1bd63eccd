"""Levels on a small generated nation: one level per family, explanations equal the batch,
comparison of methodology versions, and a broken methodology that changes nothing."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from qamqor.card.build import build_cards
from qamqor.card.columns import FAMILY_COLUMNS
from qamqor.cli import app
from qamqor.countries import PACKS_DIR
from qamqor.levels.compute import compute_levels
from qamqor.levels.explain import evaluate_family, explain_family
from qamqor.registries.ingest import ingest
from qamqor.synth.generate import generate

ON = date(2025, 10, 1)
REFERENCE = PACKS_DIR / "kz" / "methodology" / "2023-07-01.yaml"
runner = CliRunner()


@pytest.fixture(scope="module")
def nation(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("levels")
    generate(out, 5_000, seed=11)
    ingest(out)
    build_cards(out, ON)
    compute_levels(out, ON)
    return out


def _sql(query: str) -> list[tuple]:
    return duckdb.sql(query).fetchall()


def test_card_columns_are_declared(nation: Path) -> None:
    schema = pq.read_schema(nation / "cards" / "families.parquet")
    assert schema.names == list(FAMILY_COLUMNS)


def test_every_family_has_exactly_one_level(nation: Path) -> None:
    cards = nation / "cards" / "families.parquet"
    levels = nation / "levels" / "families.parquet"
    [(n_cards,)] = _sql(f"SELECT count(*) FROM '{cards}'")
    [(n, distinct, bad)] = _sql(
        f"SELECT count(*), count(DISTINCT family_id), "
        f"count(*) FILTER (WHERE level NOT IN ('A','B','C','D','E') OR level IS NULL) "
        f"FROM '{levels}'"
    )
    assert n == distinct == n_cards and bad == 0
    [(missing,)] = _sql(
        f"SELECT count(*) FROM '{cards}' c ANTI JOIN '{levels}' l USING (family_id)"
    )
    assert missing == 0
    points = [c for c in pq.read_schema(levels).names if c.startswith("points_")]
    assert len(points) == 19
    [(mismatch,)] = _sql(f"SELECT count(*) FROM '{levels}' WHERE score <> {' + '.join(points)}")
    assert mismatch == 0


def test_summary_counts_people_and_alkire_foster(nation: Path) -> None:
    s = json.loads((nation / "levels" / "summary.json").read_text())
    [(fam, ppl)] = _sql(f"SELECT count(*), sum(members) FROM '{nation}/cards/families.parquet'")
    assert s["families"] == fam and s["people"] == ppl
    nat = s["national"]["levels"]
    assert sum(v["families"] for v in nat.values()) == fam
    assert sum(v["people"] for v in nat.values()) == ppl
    assert (
        sum(r["levels"]["E"]["families"] for r in s["by_region"].values()) == nat["E"]["families"]
    )
    assert set(s["by_area"]) == {"urban", "rural"}
    for group in [s["national"], *s["by_region"].values()]:
        af = group["alkire_foster"]
        assert 0 <= af["H"] <= 1 and 0 <= af["A"] <= 1
        assert af["M0"] == pytest.approx(af["H"] * af["A"], abs=1e-6)
    # H recomputed directly: people in families at or above the poverty cut-off.
    [(h,)] = _sql(
        f"SELECT sum(members) FILTER (WHERE score >= 33) / sum(members) "
        f"FROM '{nation}/levels/families.parquet'"
    )
    assert s["national"]["alkire_foster"]["H"] == pytest.approx(h, abs=1e-6)


def test_explain_and_evaluate_reproduce_the_batch_exactly(nation: Path) -> None:
    sample = _sql(
        f"SELECT family_id, score, level FROM '{nation}/levels/families.parquet' "
        f"ORDER BY level DESC, family_id LIMIT 40"
    )
    assert {lv for _, _, lv in sample} >= {"E", "D"}
    for family_id, score, level in sample:
        e = explain_family(nation, family_id, ON)
        assert (e.score, e.level) == (score, level)
        assert sum(i.points for i in e.indicators) == score
    family_id, score, level = sample[0]
    out = runner.invoke(app, ["card", family_id, str(nation), "--json"])
    doc = json.loads(out.stdout)
    e = evaluate_family(doc, ON)
    assert (e.score, e.level) == (score, level)


def test_cli_explain_text_and_json(nation: Path, tmp_path: Path) -> None:
    [(family_id, score)] = _sql(
        f"SELECT family_id, score FROM '{nation}/levels/families.parquet' "
        f"WHERE level = 'D' ORDER BY family_id LIMIT 1"
    )
    r = runner.invoke(app, ["explain", family_id, str(nation), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["score"] == score
    r = runner.invoke(app, ["explain", family_id, str(nation), "--lang", "ru"])
    assert r.exit_code == 0 and "Level D" in r.stdout
    r = runner.invoke(app, ["explain", "no-such-family", str(nation)])
    assert r.exit_code == 1 and "no family 'no-such-family'" in r.output
    doc = tmp_path / "family.json"
    doc.write_text("{not json")
    r = runner.invoke(app, ["evaluate", str(doc)])
    assert r.exit_code == 1 and "not valid JSON" in r.output


def test_compare_methodology_matrix_matches_direct_recomputation(
    nation: Path, tmp_path: Path
) -> None:
    new = tmp_path / "new.yaml"
    text = REFERENCE.read_text(encoding="utf-8")
    text = text.replace("weight: 18", "weight: 14", 1).replace(
        "total_weight: 100", "total_weight: 96"
    )
    new.write_text(text.replace("from: 40, to: 100", "from: 40, to: 96"), encoding="utf-8")
    out = tmp_path / "cmp.json"
    r = runner.invoke(
        app, ["compare-methodology", str(REFERENCE), str(new), str(nation), "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    # Direct recomputation: run the batch with each version into separate folders.
    from qamqor.levels.methodology import load_methodology

    other = tmp_path / "other"
    (other / "cards").mkdir(parents=True)
    (other / "cards" / "history").symlink_to(nation / "cards" / "history")
    compute_levels(other, ON, methodology=load_methodology(new))
    pairs = _sql(
        f"SELECT o.level, n.level, count(*) FROM '{nation}/levels/families.parquet' o "
        f"JOIN '{other}/levels/families.parquet' n USING (family_id) GROUP BY 1, 2"
    )
    direct = {(a, b): n for a, b, n in pairs}
    for a, row in report["matrix"].items():
        for b, n in row.items():
            assert n == direct.get((a, b), 0), (a, b)
    moved = sum(n for (a, b), n in direct.items() if a != b)
    assert report["families_changing_level"] == moved > 0
    assert all(m["old_level"] >= m["new_level"] for m in report["top_movers"])
    assert sum(sum(r.values()) for r in report["by_region"]["KZ-75"].values()) > 0


def test_a_broken_methodology_leaves_previous_results_untouched(
    nation: Path, tmp_path: Path
) -> None:
    def digest() -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((nation / "levels").rglob("*")) if p.is_file()
        }  # fmt: skip

    before = digest()
    bad = tmp_path / "bad.yaml"
    bad.write_text(REFERENCE.read_text(encoding="utf-8").replace("weight: 18", "weight: 17", 1))
    r = runner.invoke(app, ["levels", str(nation), "--methodology", str(bad)])
    assert r.exit_code == 1
    assert "weights sum to 99, but total_weight declares 100" in r.output
    assert digest() == before


def test_spark_and_duckdb_agree_on_every_family(nation: Path, tmp_path: Path) -> None:
    other = tmp_path / "spark"
    (other / "cards").mkdir(parents=True)
    (other / "cards" / "history").symlink_to(nation / "cards" / "history")
    r = runner.invoke(app, ["levels", str(other), "--engine", "spark"])
    assert r.exit_code == 0, r.output
    duck, spark = nation / "levels" / "families.parquet", other / "levels" / "families.parquet"
    assert pq.read_schema(duck).names == pq.read_schema(spark).names
    [(n,)] = _sql(f"SELECT count(*) FROM '{spark}'")
    assert n == _sql(f"SELECT count(*) FROM '{duck}'")[0][0]
    [(differ,)] = _sql(
        f"SELECT count(*) FROM (SELECT * FROM '{duck}' EXCEPT ALL SELECT * FROM '{spark}')"
    )
    assert n > 0 and differ == 0
    assert json.loads((other / "levels" / "summary.json").read_text())["engine"] == "spark"
