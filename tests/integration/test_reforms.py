"""Catalogue audit and reform simulation on a small generated nation (issue 4, items 6-7): the
planted regional overlaps are found with the right family counts, the example reforms run from
the command line, a cost change agrees with a direct recomputation, a broken reform is rejected
with its file and line."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from qamqor.cli import app
from qamqor.countries import PACKS_DIR, load_country
from qamqor.measures.compute import compute_entitlements
from qamqor.measures.simulate import load_reform, simulate
from qamqor.pipeline import run
from qamqor.synth.generate import generate

ON = date(2025, 10, 1)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()
ANNUAL = "sum(amount * CASE period WHEN 'monthly' THEN 12 WHEN 'quarterly' THEN 4 ELSE 1 END)"


@pytest.fixture(scope="module")
def nation(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reforms")
    generate(out, 5_000, seed=2)
    run(out, ON)
    return out


def _both(ent: Path, a: str, b: str) -> int:
    [(n,)] = duckdb.sql(
        f"SELECT count(*) FROM (SELECT family_id FROM '{ent}' WHERE measure = '{a}' "
        f"INTERSECT SELECT family_id FROM '{ent}' WHERE measure = '{b}')"
    ).fetchall()
    return n


def test_catalogue_audit_finds_the_planted_overlaps(nation: Path) -> None:
    r = runner.invoke(app, ["catalogue-audit", str(nation), "--date", ON.isoformat()])
    assert r.exit_code == 0, r.output
    assert "Overlaps" in r.output and "Regional disparity" in r.output
    a = json.loads((nation / "entitlements" / "catalogue_audit.json").read_text())
    ent = nation / "entitlements" / "entitlements.parquet"
    pairs = {tuple(p["measures"]): p for p in a["overlaps"]}
    planted = [
        ("almaty_large_family_supplement", "large_family"),
        ("almaty_large_family_supplement", "almaty_large_family_transport"),
        ("astana_large_family_utilities", "large_family"),
        ("large_family", "turkestan_large_family_food"),
    ]
    for x, y in planted:
        p = pairs[tuple(sorted((x, y)))]
        assert p["need"] == "raising many children"
        assert p["families"] == _both(ent, x, y) > 0, (x, y)
    # The money: both measures' annual amounts to the families paid by both.
    x, y = "almaty_large_family_supplement", "large_family"
    [(money,)] = duckdb.sql(
        f"SELECT {ANNUAL} FROM '{ent}' WHERE measure IN ('{x}', '{y}') AND family_id IN "
        f"(SELECT family_id FROM '{ent}' WHERE measure = '{x}' INTERSECT "
        f"SELECT family_id FROM '{ent}' WHERE measure = '{y}')"
    ).fetchall()
    assert pairs[(x, y)]["annual_both"] == pytest.approx(money, rel=1e-9)
    # Measures serving different needs are never paired.
    assert ("age_pension", "large_family") not in pairs
    regions = a["regions"]
    assert {k for k, v in regions.items() if v["local_measures"]} == {"KZ-61", "KZ-71", "KZ-75"}
    for code in ("KZ-61", "KZ-71", "KZ-75"):
        assert regions[code]["local_per_capita"] > 0
        assert 0 <= regions[code]["local_share_to_levels_d_e"] <= 1


def test_simulate_example_prints_the_impact_table(nation: Path) -> None:
    reform = EXAMPLES / "asp-poverty-line-40pct.yaml"
    r = runner.invoke(app, ["simulate", str(reform), str(nation), "--date", ON.isoformat()])
    assert r.exit_code == 0, r.output
    assert "Impact on 2025-10-01" in r.output and "decile 1" in r.output and "level E" in r.output
    s = json.loads((nation / "simulations" / "asp-poverty-line-40pct.json").read_text())
    t = s["total"]
    assert t["annual_change"] > 0 and t["gained"] > 0 and t["lost"] == 0
    assert "asp" in s["affected_measures"]
    for dim in ("by_region", "by_level", "by_decile"):
        assert sum(g["annual_change"] for g in s[dim].values()) == pytest.approx(
            t["annual_change"], abs=1.0
        )
        assert sum(g["gained"] for g in s[dim].values()) == t["gained"]
    assert set(s["by_level"]) <= {"A", "B", "C", "D", "E"}
    assert len(s["by_decile"]) == 10
    # The baseline entitlements are left as they were.
    base = json.loads((nation / "entitlements" / "summary.json").read_text())
    assert s["poverty_line"]["before"] == base["poverty_line"]["by_region"]
    assert max(s["poverty_line"]["after"].values()) > max(s["poverty_line"]["before"].values())


def test_cost_change_agrees_with_a_direct_recomputation(nation: Path, tmp_path: Path) -> None:
    # The same parameter change made in a copy of the country pack's files, not by the reform.
    pack = tmp_path / "kz"
    shutil.copytree(PACKS_DIR / "kz", pack)
    f = pack / "parameters" / "poverty_line_median_share.yaml"
    doc = yaml.safe_load(f.read_text())
    doc["values"][date(2025, 1, 1)]["value"] = 0.40
    f.write_text(yaml.safe_dump(doc, allow_unicode=True))
    direct = compute_entitlements(nation, ON, pack=load_country("kz", pack), out=tmp_path / "d")
    ent = nation / "entitlements" / "entitlements.parquet"
    [(before,)] = duckdb.sql(f"SELECT {ANNUAL} FROM '{ent}'").fetchall()
    [(after,)] = duckdb.sql(f"SELECT {ANNUAL} FROM '{direct.out}/entitlements.parquet'").fetchall()
    reform = EXAMPLES / "asp-poverty-line-40pct.yaml"
    s = simulate(reform, nation, ON, out=tmp_path / "impact.json")
    assert s["total"]["annual_change"] == pytest.approx(after - before, abs=1.0)
    assert s["total"]["annual_change"] > 0
    asp = s["by_measure"]["asp"]
    assert asp["annual_after"] == pytest.approx(direct.summary["measures"]["asp"]["annual_cost"])


def test_merge_example_replaces_the_regional_payments(nation: Path, tmp_path: Path) -> None:
    s = simulate(EXAMPLES / "merge-large-family-payments.yaml", nation, ON, out=tmp_path / "m")
    m = s["by_measure"]
    for old in ("almaty_large_family_supplement", "astana_large_family_utilities"):
        assert m[old]["families_before"] > 0 and m[old]["families_after"] == 0
    assert m["large_family_need_supplement"]["families_before"] == 0
    assert s["by_region"]["KZ-75"]["annual_change"] < 0  # Almaty families lose 2 payments
    assert s["total"]["lost"] > 0


def test_reform_changes_a_threshold_adds_and_drops(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(
        "description: test\n"
        "change:\n"
        "  - id: asp\n"
        "    conditions: {income_below_line: income_for_asp < 1.1 * poverty_line}\n"
        "drop: [astana_pensioner_holiday]\n"
        "parameters:\n"
        "  - {name: mrp, from: 2025-07-01, value: 4000}\n"
    )
    reform, cat, country = load_reform(f)
    assert reform.name == "r"
    assert "1.1 * poverty_line" in cat.measure("asp").eligibility[0].when
    with pytest.raises(KeyError):
        cat.measure("astana_pensioner_holiday")
    assert country.parameter("mrp").at(ON) == 4000
    assert country.parameter("mrp").at(date(2026, 1, 1)) == 4325  # the next entry still holds
    assert load_country().parameter("mrp").at(ON) == 3932  # the pack itself is untouched


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("description: x\ndrop:\n  - asp\n  - no_such_measure\n", 4, "unknown measure"),
        (
            "description: x\nchange:\n  - id: asp\n    amount: 2 * nonsense\n",
            4,
            "nonsense",
        ),
        (
            "description: x\nparameters:\n  - name: mrpp\n    from: 2025-01-01\n    value: 1\n",
            3,
            "unknown parameter",
        ),
        ("description: x\nbogus: 1\n", 2, "bogus"),
    ],
)
def test_broken_reform_is_rejected_with_file_and_line(
    nation: Path, tmp_path: Path, text: str, line: int, problem: str
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    r = runner.invoke(app, ["simulate", str(f), str(nation), "--date", ON.isoformat()])
    assert r.exit_code == 1
    assert f"bad.yaml:{line}:" in r.output and problem in r.output, r.output
