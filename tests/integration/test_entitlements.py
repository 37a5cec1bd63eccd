"""Entitlements on a generated nation: recipients near the scaled SPEC §2 figures, one row per
recipient, explanations that agree with the batch, the pipeline stage, and Spark = DuckDB."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from qamqor.card.build import build_cards
from qamqor.cli import app
from qamqor.measures.compute import compute_entitlements
from qamqor.measures.explain import explain_measures
from qamqor.measures.persons import PERSONS, PERSONS_SINCE, SUPERSEDED, stored_sql
from qamqor.registries.ingest import ingest
from qamqor.synth.generate import generate
from tests.parquet import same_rows

ON = date(2025, 10, 1)
runner = CliRunner()


@pytest.fixture(scope="module")
def nation(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("entitlements")
    generate(out, 20_000, seed=3)
    ingest(out)
    build_cards(out, ON)
    compute_entitlements(out, ON)
    return out


def test_recipients_near_scaled_spec_figures(nation: Path) -> None:
    import json

    s = json.loads((nation / "entitlements" / "summary.json").read_text())
    # Loose band at 20 k families (about 60-1,900 recipients per measure); the ±15 % check is
    # measured at 100 k families and reported in docs/measures.md.
    for mid, m in s["measures"].items():
        if "spec" in m:
            assert 0.6 <= m["spec"]["ratio"] <= 1.4, (mid, m["spec"])
    bc = s["birth_or_childcare_families"]
    assert bc["families"] > 0.9 * bc["spec_lower_bound_scaled"]


def test_one_row_per_recipient_and_measure(nation: Path) -> None:
    ent = nation / "entitlements" / "entitlements.parquet"
    [(n, distinct, bad)] = duckdb.sql(
        f"SELECT count(*), count(DISTINCT (family_id, coalesce(person_id, ''), measure)), "
        f"count(*) FILTER (WHERE amount <= 0 OR amount IS NULL) FROM '{ent}'"
    ).fetchall()
    assert n == distinct and bad == 0


def test_explanation_agrees_with_the_batch(nation: Path) -> None:
    ent = nation / "entitlements" / "entitlements.parquet"
    rows = duckdb.sql(
        f"SELECT family_id, measure, sum(amount) FROM '{ent}' "
        f"WHERE measure IN ('asp', 'childcare', 'large_family', 'disability') "
        f"GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 20"
    ).fetchall()
    assert rows
    for fid, measure, amount in rows:
        [e] = explain_measures(nation, fid, ON, [measure])
        assert e.eligible and e.total == pytest.approx(amount)
    [(fid,)] = duckdb.sql(
        f"SELECT family_id FROM '{nation}/cards/families.parquet' "
        f"WHERE family_id NOT IN (SELECT family_id FROM '{ent}' WHERE measure = 'large_family') "
        f"LIMIT 1"
    ).fetchall()
    [e] = explain_measures(nation, fid, ON, ["large_family"])
    assert not e.eligible and not e.subjects[0].conditions[0].held


def test_cli_explain_measure(nation: Path) -> None:
    ent = nation / "entitlements" / "entitlements.parquet"
    [(fid,)] = duckdb.sql(f"SELECT family_id FROM '{ent}' WHERE measure = 'asp' LIMIT 1").fetchall()
    r = runner.invoke(
        app, ["explain", fid, str(nation), "--date", ON.isoformat(), "--measure", "asp"]
    )
    assert r.exit_code == 0, r.output
    assert "entitled" in r.output and "poverty_line" in r.output


def test_spark_and_duckdb_agree(tmp_path: Path) -> None:
    out = tmp_path / "n"
    generate(out, 1_500, seed=5)
    ingest(out)
    build_cards(out, ON)
    compute_entitlements(out, ON, engine="duckdb")
    duck = tmp_path / "duck.parquet"
    (out / "entitlements" / "entitlements.parquet").rename(duck)
    compute_entitlements(out, ON, engine="spark")
    spark = out / "entitlements" / "entitlements.parquet"
    cols = "family_id, person_id, region, measure, amount, period, reasons"
    [(n,)] = duckdb.sql(f"SELECT count(*) FROM '{duck}'").fetchall()
    [(diff,)] = duckdb.sql(
        f"SELECT count(*) FROM (SELECT {cols} FROM '{duck}' EXCEPT ALL "
        f"SELECT {cols} FROM '{spark}')"
    ).fetchall()
    [(m,)] = duckdb.sql(f"SELECT count(*) FROM '{spark}'").fetchall()
    assert n == m > 0 and diff == 0


def test_person_facts_follow_the_registers(nation: Path) -> None:
    """A deceased parent and the birth order among the mother's children, recomputed in
    pandas from the ingested population, equal the facts the entitlements step wrote."""
    import pandas as pd

    pop = pd.read_parquet(
        nation / "ingested" / "population.parquet",
        columns=["iin", "person_id", "birth_date", "father_iin", "mother_iin", "death_date"],
    )
    dead = set(pop.loc[pop["death_date"].notna() & (pop["death_date"] <= ON), "iin"])
    pop["parent_died"] = pop["father_iin"].isin(dead) | pop["mother_iin"].isin(dead)
    kids = pop[pop["mother_iin"].notna()].sort_values(["mother_iin", "birth_date", "iin"])
    pop["birth_order"] = kids.groupby("mother_iin").cumcount().add(1).reindex(pop.index)
    pop["birth_order"] = pop["birth_order"].fillna(1).astype(int)
    facts = pd.read_parquet(nation / "entitlements" / "persons.parquet")
    both = facts.merge(pop, on="person_id", how="left", validate="one_to_one")
    assert len(both) == len(facts) and both["iin"].notna().all()
    assert both["parent_died"].sum() > 10 and (both["birth_order"] >= 4).sum() > 10
    assert (both["person_parent_died"] == both["parent_died"]).all()
    assert (both["person_birth_order"] == both["birth_order"]).all()
    assert (both["person_birth_date"] == both["birth_date"]).all()


def same_persons(one: Path, other: Path, tmp: Path) -> int:
    """The current person facts of two folders' entitlements runs are the same; their count."""
    files = []
    for i, d in enumerate((one, other)):
        files.append(tmp / f"persons-{i}.parquet")
        duckdb.sql(f"COPY ({stored_sql(d / 'entitlements')}) TO '{files[-1]}' (FORMAT parquet)")
    return same_rows(*files)


def test_a_later_day_computes_only_what_changed(nation: Path, tmp_path: Path) -> None:
    """A later day of the month computes the persons, facts and entitlements of the families
    whose card or own facts changed, and copies the others from the run before: the outputs
    equal a run that computes every family."""
    import json
    import shutil

    from qamqor.measures.offers import find_candidates
    from qamqor.measures.update import OUTPUTS

    later = date(2025, 10, 3)
    kept, full = tmp_path / "kept", tmp_path / "full"
    for out in (kept, full):
        shutil.copytree(nation / "ingested", out / "ingested")  # sizes and times kept
        day = nation / "cards" / "history" / ON.isoformat()
        shutil.copytree(day, out / "cards" / "history" / day.name)
        hist = nation / "entitlements_history" / ON.isoformat()
        shutil.copytree(hist, out / "entitlements_history" / hist.name)
    shutil.copytree(nation / "entitlements", kept / "entitlements")
    persons_file = (kept / "entitlements" / PERSONS).stat().st_ino
    assert build_cards(kept, later).kept_from == ON.isoformat()
    build_cards(full, later, reuse=False)
    k = compute_entitlements(kept, later)
    f = compute_entitlements(full, later, keep=False)
    assert k.summary["kept_from"] == ON.isoformat() and "kept_from" not in f.summary
    computed = k.summary["computed_families"]
    assert 0 < computed["facts"] < computed["entitlements"] < 0.5 * k.summary["families"]
    for name in OUTPUTS:
        assert same_rows(kept / "entitlements" / name, full / "entitlements" / name) > 1000
    assert same_persons(kept, full, tmp_path) > 1000
    # the persons of the month's full run are linked, not written again
    assert (kept / "entitlements" / PERSONS).stat().st_ino == persons_file
    for m, s in k.summary["measures"].items():
        other = f.summary["measures"][m]
        assert s["annual_cost"] == pytest.approx(other["annual_cost"])
        assert {**s, "annual_cost": 0, "by_region": 0} == {
            **other,
            "annual_cost": 0,
            "by_region": 0,
        }
    # the offers compare the two runs' entitlements only where the later one computed them
    offers = [sorted(find_candidates(d, later, ON), key=str) for d in (kept, full)]
    assert offers[0] == offers[1] and offers[0]
    paid = "birth_or_childcare_families"
    assert k.summary[paid] == f.summary[paid] and k.summary[paid]["registry_paid"] > 0
    # a third day keeps the families computed on the second (persons_since) and adds its own
    third = date(2025, 10, 20)
    assert build_cards(kept, third).kept_from == later.isoformat()
    build_cards(full, third, reuse=False)
    assert compute_entitlements(kept, third).summary["kept_from"] == later.isoformat()
    compute_entitlements(full, third, keep=False)
    for name in OUTPUTS:
        assert same_rows(kept / "entitlements" / name, full / "entitlements" / name) > 1000
    assert same_persons(kept, full, tmp_path) > 1000
    since = kept / "entitlements" / PERSONS_SINCE
    [(families,)] = duckdb.sql(f"SELECT count(DISTINCT family_id) FROM '{since}'").fetchall()
    assert families > computed["facts"]
    # explanations read a family computed since the month's full run from persons_since
    ent = kept / "entitlements" / "entitlements.parquet"
    rows = duckdb.sql(
        f"SELECT family_id, measure, sum(amount) FROM '{ent}' SEMI JOIN '{since}' "
        "USING (family_id) WHERE measure IN ('birth', 'childcare', 'disability') "
        "GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 10"
    ).fetchall()
    assert rows
    for fid, measure, amount in rows:
        [e] = explain_measures(kept, fid, third, [measure])
        assert e.eligible and e.total == pytest.approx(amount)
    # a run folder with persons computed since the month's run but not their list: not kept
    (kept / "entitlements" / SUPERSEDED).unlink()
    assert build_cards(kept, date(2025, 10, 21)).kept_from == third.isoformat()
    assert "kept_from" not in compute_entitlements(kept, date(2025, 10, 21)).summary
    assert not (kept / "entitlements" / PERSONS_SINCE).exists()
    # a run of another day of the month whose card was computed whole computes every family
    build_cards(kept, date(2025, 10, 4), reuse=False)
    assert "kept_from" not in compute_entitlements(kept, date(2025, 10, 4)).summary
    assert json.loads((kept / "entitlements" / "basis.json").read_text())["date"] == "2025-10-04"
