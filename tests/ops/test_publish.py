"""Publishing a run into the store (issue 6 item 1), on SQLite and PostgreSQL: everything of the
run arrives, a crash half-way leaves the previous run fully visible, a re-run changes nothing."""

from __future__ import annotations

import shutil
from datetime import date

import duckdb
import pytest
from sqlalchemy import func, select

from qamqor.ops.publish import PublishError, publish
from qamqor.store.cardjson import card_doc
from qamqor.store.db import session_factory
from qamqor.store.published import FamilyCard, FamilyEntitlement, Publication, PublishedFinding, Run

RUN_DATE = date(2025, 10, 1)  # the date of the `nation` fixture's run


def _counts(url: str) -> dict:
    with session_factory(url)() as s:
        return {
            "current": s.scalar(select(Publication.run_date)),
            "cards": s.scalar(select(func.count()).select_from(FamilyCard)),
            "entitlements": s.scalar(select(func.count()).select_from(FamilyEntitlement)),
            "findings": s.scalar(select(func.count()).select_from(PublishedFinding)),
            "levels": dict(
                s.execute(select(FamilyCard.level, func.count()).group_by(FamilyCard.level)).all()
            ),
        }


def test_publish_everything_of_the_run(nation, store_url):
    r = publish(nation, RUN_DATE, store_url)
    con = duckdb.connect()

    def one(sql: str):
        return con.execute(sql).fetchone()[0]

    n_fam = one(f"SELECT count(*) FROM '{nation}/cards/families.parquet'")
    n_ent = one(f"SELECT count(*) FROM '{nation}/entitlements/entitlements.parquet'")
    n_find = one(f"SELECT count(*) FROM '{nation}/audit/findings.parquet'")
    q = f"SELECT level, count(*) FROM '{nation}/levels/families.parquet' GROUP BY 1"
    levels = dict(con.execute(q).fetchall())
    assert (r.families, r.entitlements, r.findings, r.skipped) == (n_fam, n_ent, n_find, False)
    c = _counts(store_url)
    assert c == {
        "current": RUN_DATE,
        "cards": n_fam,
        "entitlements": n_ent,
        "findings": n_find,
        "levels": levels,
    }
    with session_factory(store_url)() as s:
        money = s.scalar(select(func.sum(FamilyEntitlement.amount)))
    expected = con.execute(
        f"SELECT sum(round(amount, 2)) FROM '{nation}/entitlements/entitlements.parquet'"
    ).fetchone()[0]
    assert money == pytest.approx(float(expected), abs=0.05)

    again = publish(nation, RUN_DATE, store_url)  # the same day again: nothing changes
    assert again.skipped and _counts(store_url) == c


def _next_day(nation, tmp_path):
    """A copy of the nation whose run is dated the day after (same files, no store)."""
    nxt = tmp_path / "next"
    shutil.copytree(nation, nxt, ignore=shutil.ignore_patterns("qamqor.db"))
    day2 = date(2025, 10, 2)
    history = nxt / "cards" / "history"
    shutil.copytree(history / f"{RUN_DATE}", history / f"{day2}")
    return nxt, day2


def test_a_crash_half_way_leaves_the_previous_run_visible(nation, store_url, tmp_path):
    publish(nation, RUN_DATE, store_url)
    before = _counts(store_url)
    # the next day's run (same files, later date) crashes after loading the entitlements
    nxt, day2 = _next_day(nation, tmp_path)
    with pytest.raises(PublishError, match="simulated crash"):
        publish(nxt, day2, store_url, fail_after="family_entitlements")
    assert _counts(store_url) == before
    with session_factory(store_url)() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 1
    # then it runs to the end and replaces yesterday's results; yesterday's rows are pruned
    r = publish(nxt, day2, store_url)
    after = _counts(store_url)
    assert after["current"] == day2 and after["cards"] == r.families == before["cards"]
    with session_factory(store_url)() as s:
        assert s.scalar(select(func.count()).where(FamilyCard.run_date == RUN_DATE)) == 0
    with pytest.raises(PublishError, match="newer run"):
        publish(nation, RUN_DATE, store_url)


def test_missing_inputs_are_a_clear_error(tmp_path):
    with pytest.raises(PublishError, match="missing"):
        publish(tmp_path, RUN_DATE, f"sqlite:///{tmp_path / 'x.db'}")


def test_stored_card_gives_back_the_exact_card(nation, tmp_path):
    """The sparse JSON of every published family restores its card row exactly."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    publish(nation, RUN_DATE, url)
    con = duckdb.connect()
    cards = con.execute(
        f"SELECT * FROM '{nation}/cards/history/{RUN_DATE}/families.parquet'"
    ).fetch_df()
    want = {r["family_id"]: r for r in cards.to_dict("records")}
    with session_factory(url)() as s:
        rows = s.scalars(select(FamilyCard)).all()
    assert len(rows) == len(want)
    for row in rows:
        got, exp = card_doc(row), want[row.family_id]
        for k, v in got.items():
            e = exp[k]
            e = None if e is None or (isinstance(e, float) and e != e) else e
            assert v == e, (row.family_id, k, v, e)


def test_postgres_swap_keeps_the_schema_and_cleans_up(nation, pg_url, tmp_path):
    """On PostgreSQL the tables are replaced by staging copies: after a crashed load and two
    publishes, each table has exactly the indexes, primary key and sequence ownership the
    migrations gave it, and no staging or retired table is left."""
    from sqlalchemy import text

    def schema() -> dict:
        with session_factory(pg_url)() as s:
            return {
                "indexes": s.execute(
                    text(
                        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename "
                        "IN ('family_cards', 'family_entitlements', 'findings') ORDER BY 2"
                    )
                ).all(),
                "tables": s.scalars(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
                ).all(),
                "sequence": s.scalar(
                    text("SELECT pg_get_serial_sequence('family_entitlements', 'id')")
                ),
            }

    migrated = schema()
    assert any(name == "family_cards_pkey" for _, name, _ in migrated["indexes"])
    publish(nation, RUN_DATE, pg_url)
    nxt, day2 = _next_day(nation, tmp_path)
    with pytest.raises(PublishError, match="simulated crash"):
        publish(nxt, day2, pg_url, fail_after="family_cards")
    publish(nxt, day2, pg_url)
    assert schema() == migrated
    with session_factory(pg_url)() as s:
        ids = s.scalars(select(FamilyEntitlement.id)).all()
    assert len(ids) == len(set(ids)) > 0  # the ids still come from the one sequence


@pytest.mark.parametrize("streams", [1, 2])
def test_staging_copy_delivers_every_row_once_or_fails_loudly(pg_url, streams):
    """COPY over one or two connections loads each row exactly once; a producer that breaks
    half-way makes copy_in raise its error (no hang, nothing swapped in)."""
    import pyarrow as pa
    from sqlalchemy import text

    from qamqor.store import staging
    from qamqor.store.db import engine_for

    engine = engine_for(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t_copy (k integer PRIMARY KEY, v double precision)"))
        name = staging.create(conn, "t_copy")

    def batches(fail: bool = False):
        for start in range(0, 20_000, 1_000):
            if fail and start == 7_000:
                raise RuntimeError("source broke")
            keys = range(start, start + 1_000)
            yield pa.record_batch({"k": pa.array(keys), "v": pa.array([k / 3 for k in keys])})

    assert staging.copy_in(engine, name, ["k", "v"], batches(), streams) == 20_000
    staging.index(engine, "t_copy")
    with engine.begin() as conn:
        staging.swap(conn, "t_copy")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT k, v FROM t_copy ORDER BY k")).all()
    assert [k for k, _ in rows] == list(range(20_000))
    assert all(v == k / 3 for k, v in rows)  # floats exact through CSV
    with engine.begin() as conn:
        name = staging.create(conn, "t_copy")
    with pytest.raises(RuntimeError, match="source broke"):
        staging.copy_in(engine, name, ["k", "v"], batches(fail=True), streams)
