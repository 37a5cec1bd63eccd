"""Proactive offers on the operational store (issue 4 item 5): exactly once per day, a birth
gives exactly the birth-benefit and childcare offers, consent assigns, decline records, and the
Alembic migrations build the schema from an empty SQLite file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import create_engine, func, inspect, select
from typer.testing import CliRunner

from qamqor.card.build import build_cards
from qamqor.cli import app
from qamqor.ids import iin_text_sql, pseudonym_sql
from qamqor.measures.compute import compute_entitlements
from qamqor.measures.offers import OfferError, consent, create_offers, decline
from qamqor.registries.ingest import ingest
from qamqor.store.db import ENV, migrate, session_factory
from qamqor.store.models import Assignment, Base, Offer
from qamqor.synth.generate import generate

D1, D2 = date(2025, 9, 1), date(2025, 10, 1)
runner = CliRunner()


@pytest.fixture(scope="module")
def nation(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("offers")
    generate(out, 3_000, seed=1)
    ingest(out)
    for on in (D1, D2):
        build_cards(out, on)
        compute_entitlements(out, on)
    return out


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


@pytest.fixture(scope="module")
def first_run(nation: Path):
    return create_offers(nation, D2)


def _offers(nation: Path):
    with session_factory(f"sqlite:///{nation / 'qamqor.db'}")() as s:
        return list(s.scalars(select(Offer).order_by(Offer.id)))


def test_first_comparison_creates_offers_and_rerun_creates_none(nation: Path, first_run) -> None:
    assert first_run.previous == D1
    assert first_run.total > 0 and {"birth", "childcare"} <= set(first_run.created)
    n = len(_offers(nation))
    again = create_offers(nation, D2)
    assert again.total == 0 and again.already == n
    assert len(_offers(nation)) == n
    r = runner.invoke(app, ["offers", str(nation), "--date", D2.isoformat()])
    assert r.exit_code == 0, r.output
    assert len(_offers(nation)) == n
    # one offer per (family, person, measure)
    keys = [(o.family_id, o.person_id, o.measure) for o in _offers(nation)]
    assert len(keys) == len(set(keys))


def test_baseline_run_creates_no_offers(nation: Path, tmp_path: Path) -> None:
    r = create_offers(nation, D1, url=f"sqlite:///{tmp_path / 'x.db'}")
    assert r.previous is None and r.total == 0


def test_a_birth_gives_exactly_birth_and_childcare_offers(nation: Path, first_run) -> None:
    # A family with one birth between the two runs, an uninsured mother, fewer than 4
    # dependent children and nobody near pension age or newly disabled: its only change.
    ing, h1, h2 = nation / "ingested", nation / "entitlements", nation / "cards" / "history"
    con = duckdb.connect()
    rows = con.execute(
        f"""
        WITH b AS (SELECT {pseudonym_sql(iin_text_sql("iin"))} AS child
                   FROM '{ing}/civil_events.parquet'
                   WHERE event_type = 'birth' AND event_date > DATE '{D1}'
                     AND event_date <= DATE '{D2}'),
        m AS (SELECT * FROM '{h2}/{D2}/members.parquet'),
        fam AS (SELECT m.family_id, any_value(b.child) AS child, count(*) AS births
                FROM b JOIN m ON m.person_id = b.child GROUP BY 1 HAVING count(*) = 1)
        SELECT fam.family_id, fam.child FROM fam
        JOIN '{h1}/persons.parquet' p ON p.person_id = fam.child AND NOT p.person_mother_insured
        JOIN '{h2}/{D2}/families.parquet' f ON f.family_id = fam.family_id
        WHERE f.dependent_children < 4
          AND fam.family_id NOT IN (SELECT family_id FROM m WHERE age >= 55)
          AND fam.family_id NOT IN (
              SELECT m.family_id FROM m JOIN '{ing}/health.parquet' hh
                ON {pseudonym_sql(iin_text_sql("hh.iin"))} = m.person_id
              WHERE hh.disability_since > DATE '{D1}')
        ORDER BY 1"""
    ).fetchall()
    assert rows, "no family with a birth between the runs"
    for family_id, child in rows:
        got = {(o.measure, o.person_id) for o in _offers(nation) if o.family_id == family_id}
        assert got == {("birth", child), ("childcare", child)}, family_id
    o = next(o for o in _offers(nation) if o.family_id == rows[0][0] and o.measure == "birth")
    assert o.status == "pending" and o.kind == "entitlement" and o.amount > 0
    assert o.language in ("kk", "ru") and "1" in o.message


def test_advance_notices_of_pension_age(nation: Path, first_run) -> None:
    """Everyone in a family who came within 3 months of pension age between the two runs (and
    not already before) gets one advance notice, dated the day they reach it; nobody else."""
    from qamqor.countries import load_country

    horizon, already = date(2026, 1, 1), date(2025, 12, 1)  # D2 and D1 + 3 months
    c = load_country("kz")
    men, women = (round(c.parameter(f"pension_age_{s}").at(horizon) * 12) for s in ("men", "women"))
    expected = set(
        duckdb.connect()
        .execute(
            f"""SELECT person_id, due FROM (
                  SELECT m.person_id, CAST(p.birth_date + INTERVAL (
                      CASE WHEN p.sex = 'M' THEN {men} ELSE {women} END) MONTH AS DATE) AS due
                  FROM '{nation}/ingested/population.parquet' p
                  JOIN '{nation}/cards/history/{D2}/members.parquet' m USING (person_id))
                WHERE due > DATE '{D2}' AND due <= DATE '{horizon}' AND due > DATE '{already}'"""
        )
        .fetchall()
    )
    got = {(o.person_id, o.key_date) for o in _offers(nation) if o.kind == "advance_notice"}
    assert expected and got == expected
    assert {o.measure for o in _offers(nation) if o.kind == "advance_notice"} == {"age_pension"}


def test_consent_assigns_and_decline_records(nation: Path, first_run) -> None:
    pending = [o for o in _offers(nation) if o.status == "pending"]
    a, b = pending[0], pending[1]
    r = runner.invoke(app, ["offer", "consent", str(a.id), str(nation), "--date", "2025-10-02"])
    assert r.exit_code == 0, r.output
    with session_factory(f"sqlite:///{nation / 'qamqor.db'}")() as s:
        assert s.get(Offer, a.id).status == "consented"
        asg = s.scalars(select(Assignment).where(Assignment.offer_id == a.id)).one()
        assert (asg.family_id, asg.measure, asg.amount) == (a.family_id, a.measure, a.amount)
        assert asg.assigned_on == date(2025, 10, 2)
    decline(b.id, nation, on=date(2025, 10, 3))
    with session_factory(f"sqlite:///{nation / 'qamqor.db'}")() as s:
        assert s.get(Offer, b.id).status == "declined"
        assert s.scalar(select(func.count()).where(Assignment.offer_id == b.id)) == 0
    # wrong status, unknown offer: clear errors, non-zero exit
    with pytest.raises(OfferError, match="is consented"):
        consent(a.id, nation)
    r = runner.invoke(app, ["offer", "decline", str(a.id), str(nation)])
    assert r.exit_code == 1 and "is consented" in r.output
    r = runner.invoke(app, ["offer", "consent", "999999", str(nation)])
    assert r.exit_code == 1 and "no offer 999999" in r.output


def test_open_offers_expire_after_30_days(nation: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    r = create_offers(nation, D2, url=url)
    with session_factory(url).begin() as s:  # pretend they were made 31 days earlier
        for o in s.scalars(select(Offer)):
            o.created_on = date(2025, 8, 31)
    again = create_offers(nation, D2, url=url)
    assert again.expired == r.total and again.total == 0


def test_migrations_build_the_schema_from_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    migrate(url)
    insp = inspect(create_engine(url))
    assert {"offers", "assignments", "alembic_version"} <= set(insp.get_table_names())
    uniques = {u["name"]: u["column_names"] for u in insp.get_unique_constraints("offers")}
    assert uniques["uq_offers_offer_key"] == ["offer_key"]
    # the models and the migrations agree
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with create_engine(url).connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
    assert diff == []
    migrate(url)  # idempotent


def test_a_store_at_head_is_not_migrated_again(tmp_path: Path, monkeypatch) -> None:
    """`HEAD` is Alembic's head revision; a database at it is opened without Alembic, one
    that is behind (or empty) is migrated."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from qamqor.store import db

    assert ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_heads() == [db.HEAD]
    url = f"sqlite:///{tmp_path / 'store.db'}"
    calls: list[str] = []
    real = db.migrate
    monkeypatch.setattr(db, "migrate", lambda u, revision="head": calls.append(u) or real(u))
    db.engine_for(url)  # empty: migrated
    assert calls == [url] and db.at_head(db.engine_for(url))
    db.dispose(url)
    db.engine_for(url)  # at head: not migrated again
    assert calls == [url]
    db.dispose(url)
    command.downgrade(db.alembic_config(url), "0003")  # behind: migrated to head
    db.engine_for(url)
    assert calls == [url, url] and db.at_head(db.engine_for(url))
    db.dispose(url)
