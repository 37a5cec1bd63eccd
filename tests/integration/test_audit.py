"""The audit on a 20 k-family nation: planted errors are found, the truth is never read.

Issue 5 asks for precision and recall ≥ 0.9 per planted type at 100 k families (docs/audit.md has
the figures); at 20 k (seed 3) a type with at least 20 planted cases is held to the same 0.9, the
rarer ones (4–10 planted) to 0.8 so that one borderline case does not fail the suite.
"""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from qamqor.audit.evaluate import evaluate
from qamqor.audit.findings import NOT_PLANTED, TYPES, run_audit
from qamqor.cli import app
from qamqor.pipeline import run
from qamqor.synth.generate import generate

ON = date(2025, 10, 1)
FAMILIES = 20_000
LARGE = 20  # planted cases from which a type is held to 0.9


@pytest.fixture(scope="module")
def nation(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("audit") / "nation"
    generate(families=FAMILIES, seed=3, out=d)
    run(d, ON)
    return d


def test_planted_errors_found(nation: Path) -> None:
    ev = evaluate(nation)
    for t in TYPES:
        v = ev["types"][t]
        if t in NOT_PLANTED:
            assert v["planted"] is None and v["precision"] is None, t
            continue
        assert v["planted"] > 0, t
        bound = 0.9 if v["planted"] >= LARGE else 0.8
        assert v["precision"] >= bound, (t, v)
        assert v["recall"] >= bound, (t, v)
    assert (nation / "audit" / "evaluation.json").exists()


def test_linkage_finds_second_identities(nation: Path) -> None:
    link = evaluate(nation)["linkage"]
    assert link["reported"]["f1"] >= 0.95, link
    assert link["reported"]["second_identity_named"] >= 0.95, link
    assert link["linked"]["recall"] >= 0.95, link
    # the linked records feed the findings: the second identity's payments, with evidence
    f = duckdb.sql(f"SELECT * FROM '{nation}/audit/findings.parquet'").df()
    dup = f[f["type"] == "duplicate_identity"]
    assert len(dup) and dup["evidence"].str.contains("the same person as record").all()
    pairs = duckdb.sql(f"SELECT * FROM '{nation}/audit/identities.parquet'").df()
    assert set(dup["person_id"]) <= set(pairs.loc[pairs["reported"], "person_id"])
    assert (nation / "audit" / "identity_model.json").exists()


def test_findings_unique_and_readable(nation: Path) -> None:
    f = duckdb.sql(f"SELECT * FROM '{nation}/audit/findings.parquet'").df()
    assert len(f) and f["finding_id"].is_unique
    assert f["evidence"].str.len().min() > 20
    assert set(f["severity"]) <= {"high", "medium", "low"}
    assert (f["amount_at_risk"] >= 0).all()
    died = f[f["type"] == "paid_after_death"]["evidence"]
    assert died.str.contains("died 20").all()
    # IINs never appear in the audit's outputs (person ids are keyed hashes)
    iin = re.compile(r"(?<!\w)\d{12}(?!\w)")  # payment ids (PM + 12 digits) are fine
    assert not f["evidence"].str.contains(iin).any()
    pairs = duckdb.sql(f"SELECT * FROM '{nation}/audit/identities.parquet'").df()
    assert not pairs.astype(str).apply(lambda c: c.str.contains(iin)).any().any()


def test_audit_never_reads_truth(nation: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(nation, copy, ignore=shutil.ignore_patterns("truth", "registries"))
    run_audit(copy, ON)
    q = "SELECT * FROM '{}/audit/findings.parquet' ORDER BY finding_id"
    a = duckdb.sql(q.format(nation)).fetchall()
    b = duckdb.sql(q.format(copy)).fetchall()
    assert a == b


def test_cli_without_entitlements(nation: Path, tmp_path: Path) -> None:
    d = tmp_path / "partial"
    shutil.copytree(nation / "ingested", d / "ingested")
    r = CliRunner().invoke(app, ["audit", str(d), "--date", "2025-10-01"])
    assert r.exit_code != 0
    assert "entitlements" in r.output
