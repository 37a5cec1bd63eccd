"""The targeting report and the audit report on a 6 k-family nation: figures recomputed by hand,
the JSON and the page agree, and the page works in headless Chromium."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from qamqor.audit.report_html import pct
from qamqor.cli import app
from qamqor.ids import PSEUDONYM_KEY
from qamqor.pipeline import run
from qamqor.synth.generate import generate

ON = date(2025, 10, 1)


@pytest.fixture(scope="module")
def nation(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report") / "nation"
    generate(families=6000, seed=4, out=d)
    names = [s.name for s in run(d, ON).stages]
    assert names.index("report") == names.index("audit") + 1  # the daily run writes it
    return d


def _pid(iin: str) -> str:
    return hashlib.sha256((PSEUDONYM_KEY + iin).encode()).hexdigest()[:16]


def _by_hand(d: Path) -> dict:
    """ASP and system figures recomputed with pandas from the same files."""
    truth = pd.read_parquet(d / "truth" / "persons.parquet")
    truth["person_id"] = truth["iin"].map(_pid)
    truth["real"] = (truth["true_family"] >= 0) & truth["alive"]
    truth["income"] = truth["true_wage"] + truth["pension"]
    m = pd.read_parquet(d / "cards" / "members.parquet").merge(truth, on="person_id", how="left")
    m["real"] = m["real"].fillna(False).astype(bool)
    m["inc"] = m["income"].where(m["real"], 0.0)
    fam = m.groupby("family_id").agg(people=("real", "sum"), income=("inc", "sum")).reset_index()
    card = pd.read_parquet(d / "cards" / "families.parquet", columns=["family_id", "region"])
    fam = fam.merge(card, on="family_id")
    lines = json.loads((d / "entitlements" / "summary.json").read_text())["poverty_line"]
    real = fam[fam["people"] > 0].copy()
    real["pc"] = real["income"] / real["people"]
    real["poor"] = real["pc"] < real["region"].map(lines["by_region"])
    real = real.sort_values(["pc", "family_id"])
    real["q"] = real["people"].cumsum() / real["people"].sum()
    poor = set(real.loc[real["poor"], "family_id"])
    q20 = set(real.loc[real["q"] <= 0.2, "family_id"])
    pay = pd.read_parquet(d / "ingested" / "payments.parquet")
    pay["person_id"] = pay["iin"].map(lambda iin: _pid(f"{iin:012d}"))  # stored as a number
    pay = pay.merge(m[["person_id", "family_id"]], on="person_id", how="left")
    asp = set(pay.loc[pay["measure"] == "asp", "family_id"].dropna())
    system = pay[pay["measure"] != "age_pension"]
    return {
        "poor_families": len(poor),
        "asp_inclusion": 1 - len(asp & poor) / len(asp),
        "asp_exclusion": 1 - len(asp & poor) / len(poor),
        "system_q20": system.loc[system["family_id"].isin(q20), "amount"].sum()
        / system["amount"].sum(),
    }


def test_targeting_matches_a_hand_computation(nation: Path) -> None:
    t = json.loads((nation / "audit" / "targeting.json").read_text())
    hand = _by_hand(nation)
    n = t["national"]
    assert n["poor_families"] == hand["poor_families"] > 0
    asp = n["measures"]["asp"]
    assert asp["inclusion_error"] == pytest.approx(hand["asp_inclusion"], abs=1e-6)
    assert asp["exclusion_error"] == pytest.approx(hand["asp_exclusion"], abs=1e-6)
    assert n["measures"]["system"]["share_to_poorest_20"] == pytest.approx(
        hand["system_q20"], abs=1e-6
    )
    # ASP is means-tested: it targets far better than the categorical system as a whole
    assert asp["inclusion_error"] < n["measures"]["system"]["inclusion_error"]
    assert asp["share_to_poorest_20"] > 0.5 and asp["concentration_index"] < 0
    assert "age_pension" not in n["measures"]


def test_targeting_figures_consistent(nation: Path) -> None:
    t = json.loads((nation / "audit" / "targeting.json").read_text())
    n = t["national"]
    groups = [
        n,
        *(g for k in ("by_region", "by_area", "by_head_sex", "by_level") for g in t[k].values()),
    ]
    for g in groups:
        assert 0 <= g["poverty_rate"] <= 1
        for f in g["measures"].values():
            for k, v in f.items():
                if k.startswith(("share_", "inclusion", "exclusion", "coverage")) and v is not None:
                    assert 0 <= v <= 1, (k, v)
            if f["coverage_of_poor"] is not None:
                assert f["coverage_of_poor"] + f["exclusion_error"] == pytest.approx(1)
    for key in ("by_region", "by_area", "by_head_sex", "by_level"):
        parts = t[key].values()
        assert sum(g["poor_families"] for g in parts) == n["poor_families"], key
        assert sum(g["families"] for g in parts) == n["families"], key
        rec = sum(g["measures"].get("asp", {}).get("recipients", 0) for g in parts)
        assert rec == n["measures"]["asp"]["recipients"], key
    assert set(t["by_head_sex"]) == {"women", "men"}
    gap = t["head_sex_gap"]
    women, men = t["by_head_sex"]["women"], t["by_head_sex"]["men"]
    assert gap["poverty_rate"] == pytest.approx(women["poverty_rate"] - men["poverty_rate"])
    for c in t["curves"]["measures"].values():
        y = c["y"]
        assert y[0] == 0 and y[-1] == pytest.approx(1)
        assert all(a <= b + 1e-12 for a, b in itertools.pairwise(y))
        assert -1 <= c["concentration_index"] <= 1
        assert sum(c["quintile_shares"]) == pytest.approx(1, abs=1e-5)
    levels = json.loads((nation / "levels" / "summary.json").read_text())
    assert t["alkire_foster"]["national"] == levels["national"]["alkire_foster"]
    # the levels track true need: poverty is far higher at E than at A
    assert t["by_level"]["E"]["poverty_rate"] > 3 * t["by_level"]["A"]["poverty_rate"]


def test_report_json_matches_html(nation: Path) -> None:
    data = json.loads((nation / "audit" / "report.json").read_text())
    html = (nation / "audit" / "report.html").read_text()
    embedded = re.search(
        r'<script id="report-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert embedded and json.loads(embedded.group(1).replace("<\\/", "</")) == data
    assert not re.search(r"<(script|link|img)\b[^>]*\b(src|href)=", html)  # self-contained
    f = data["findings"]
    assert f["total"] == sum(r["findings"] for r in f["by_type"]) == data["listed"]["shown"]
    assert f["total"] == len(pd.read_parquet(nation / "audit" / "findings.parquet"))
    assert f'id="total-findings">{f["total"]:,}<' in html
    asp = data["targeting"]["national"]["measures"]["asp"]
    row = re.search(r'<tr id="t-asp">(.*?)</tr>', html, re.S).group(1)
    assert f'data-figure="inclusion_error">{pct(asp["inclusion_error"])}<' in row
    assert f'data-figure="exclusion_error">{pct(asp["exclusion_error"])}<' in row
    for r in data["listed"]["rows"]:  # every finding traces to its rule, its rows and the date
        assert r["type"] in data["rules"] and r["evidence"]
        assert r["payments"] or r["entitlements"], r
    assert data["run_date"] == ON.isoformat()


def test_report_without_truth_and_top_n(nation: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(nation, copy, ignore=shutil.ignore_patterns("truth", "registries"))
    (copy / "audit" / "targeting.json").unlink()
    r = CliRunner().invoke(app, ["audit-report", str(copy), "--top", "40"])
    assert r.exit_code == 0, r.output
    data = json.loads((copy / "audit" / "report.json").read_text())
    assert data["targeting"] is None and "truth" in data["targeting_note"]
    assert not (copy / "audit" / "targeting.json").exists()
    rows = data["listed"]["rows"]
    assert data["listed"]["shown"] == len(rows) == 40 < data["listed"]["total"]
    amounts = [x["amount"] for x in rows]
    assert amounts == sorted(amounts, reverse=True)
    full = json.loads((nation / "audit" / "report.json").read_text())
    assert data["findings"] == full["findings"]  # the findings part never depends on the truth
    html = (copy / "audit" / "report.html").read_text()
    assert 'id="no-targeting"' in html and "of {:,}".format(data["listed"]["total"]) in html


def test_report_renders_in_chromium(nation: Path, browser, artifacts: Path) -> None:
    data = json.loads((nation / "audit" / "report.json").read_text())
    rows = data["listed"]["rows"]
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors, remote = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    def route(r):
        if r.request.url.startswith("file:"):
            return r.continue_()
        remote.append(r.request.url)
        return r.abort()

    page.route("**/*", route)
    page.goto((nation / "audit" / "report.html").as_uri())
    page.wait_for_selector("#chart-curves svg.main-svg")
    charts = page.locator(".plotly-graph-div")
    assert charts.count() == 7
    for i in range(charts.count()):
        assert charts.nth(i).locator("svg.main-svg").count() >= 1
    assert page.locator("#chart-findings_by_type .trace.bars path").count() > 0
    curves = page.locator("#chart-curves .scatterlayer .trace")
    assert curves.count() == len(data["targeting"]["curves"]["measures"]) + 1
    body = page.locator("#findings tbody tr.finding")
    assert body.count() == min(50, len(rows))
    # filter by the rarest type: fewer rows, all of that type
    counts = pd.Series([r["type"] for r in rows]).value_counts()
    rare = counts.index[-1]
    page.select_option("#f-type", rare)
    assert body.count() == min(50, counts[rare]) < min(50, len(rows))
    assert set(page.locator("#findings tbody tr.finding td:first-child").all_inner_texts()) == {
        rare
    }
    page.select_option("#f-type", "")
    family = next(r["family"] for r in rows if r["family"])
    page.fill("#f-text", family)
    assert body.count() == sum(
        1 for r in rows if family in (r["family"], r["person"]) or family in r["evidence"]
    )
    page.locator("#findings button.trace").first.click()
    detail = page.locator("#findings tr.detail")
    assert "Run date: " + data["run_date"] in detail.inner_text()
    assert "Rule (" in detail.inner_text() and "Evidence:" in detail.inner_text()
    page.fill("#f-text", "")
    if len(rows) > 50:
        page.click("#f-next")
        assert page.inner_text("#f-page").strip().startswith("page 2")
    page.screenshot(path=str(artifacts / "audit-report-findings.png"))
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts / "audit-report.png"))
    assert not errors and not remote, (errors, remote)
    page.close()
