"""Proactive offers against a store that already holds offers, on SQLite and PostgreSQL: the
candidates of more than 500 families are checked at once against the store (same key, an open
or consented offer of the same family, person and measure), stale offers expire first, and a
re-run of the same day creates nothing."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from qamqor.measures import offers
from qamqor.measures.catalogue import load_catalogue
from qamqor.measures.offers import create_offers, message
from qamqor.store.db import session_factory
from qamqor.store.models import Offer
from tests.factories import offer

D1, D2 = date(2025, 9, 1), date(2025, 10, 1)
FAMILIES = 1_200
LANGUAGES = ("kk", "ru", None)  # a card without a language gets the English text
# what the store holds for family i's birth offer before the run of D2, by i % 7:
# (key date, status, created on); None: nothing
EARLIER = {
    0: (D2, "declined", D2),  # the very same offer key: already offered
    1: (D1, "pending", D2 - timedelta(days=1)),  # open: blocks a new one
    2: (D1, "sent", D2 - timedelta(days=40)),  # expires first, then a new one
    3: (D1, "consented", D1),  # consented: blocks a new one
    4: (D1, "declined", D1),
    5: (D1, "expired", D1),
    6: None,
}


def _entitlements(path: Path, rows: list[tuple]) -> None:
    path.mkdir(parents=True)
    cols = ("family_id", "person_id", "region", "measure", "amount", "period")
    data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    data["reasons"] = [""] * len(rows)
    pq.write_table(pa.table(data), path / "entitlements.parquet")


def _nation(root: Path) -> Path:
    """D1: large-family benefit for every 4th family; D2: a birth in every family (one per
    child), the large-family benefit for all, and ASP (not proactive: never offered)."""
    fam = [f"f{i:04d}" for i in range(FAMILIES)]
    _entitlements(
        root / "entitlements_history" / D1.isoformat(),
        [(f, None, "KZ-11", "large_family", 10_000.456, "monthly") for f in fam[::4]],
    )
    _entitlements(
        root / "entitlements_history" / D2.isoformat(),
        [(f, f"p{i:04d}", "KZ-11", "birth", 150_000.0, "once") for i, f in enumerate(fam)]
        + [(f, None, "KZ-11", "large_family", 10_000.456, "monthly") for f in fam]
        + [(f, None, "KZ-11", "asp", 5_000.0, "monthly") for f in fam],
    )
    cards = root / "cards" / "history" / D2.isoformat()
    cards.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "family_id": fam,
                "region": ["KZ-11"] * FAMILIES,
                "language": [LANGUAGES[i % 3] for i in range(FAMILIES)],
            }
        ),
        cards / "families.parquet",
    )
    return root


def _earlier_offers(url: str) -> None:
    with session_factory(url).begin() as s:
        for i in range(FAMILIES):
            if EARLIER[i % 7] is None:
                continue
            key_date, status, created_on = EARLIER[i % 7]
            s.add(
                offer(
                    f"f{i:04d}",
                    "birth",
                    created_on,
                    offer_key=f"f{i:04d}:p{i:04d}:birth:{key_date.isoformat()}",
                    person_id=f"p{i:04d}",
                    amount=150_000.0,
                    period="once",
                    message="earlier",
                    status=status,
                    key_date=key_date,
                    previous_run=D1,
                )
            )


def test_offers_checked_against_a_store_of_many_families(tmp_path: Path, store_url: str) -> None:
    nation = _nation(tmp_path / "nation")
    _earlier_offers(store_url)
    by_kind = [sum(1 for i in range(FAMILIES) if i % 7 == k) for k in range(7)]
    new_births = by_kind[2] + by_kind[4] + by_kind[5] + by_kind[6]
    new_large = FAMILIES - len(range(0, FAMILIES, 4))

    r = create_offers(nation, D2, url=store_url)
    assert r.previous == D1 and r.expired == by_kind[2]
    assert r.created == {"birth": new_births, "large_family": new_large}
    assert r.already == by_kind[0] + by_kind[1] + by_kind[3]

    with session_factory(store_url)() as s:
        made = s.scalars(select(Offer).where(Offer.message != "earlier")).all()
        stale = s.scalar(
            select(Offer.status).where(Offer.offer_key == "f0002:p0002:birth:2025-09-01")
        )
    assert len(made) == r.total
    assert len({(o.family_id, o.person_id, o.measure) for o in made}) == r.total
    assert all(o.created_on == D2 and o.status == "pending" for o in made)
    assert stale == "expired"
    names = {m.id: m.name for m in load_catalogue("kz").measures}
    birth = next(o for o in made if o.family_id == "f0002" and o.measure == "birth")
    assert (birth.offer_key, birth.person_id, birth.kind, birth.language) == (
        "f0002:p0002:birth:2025-10-01",
        "p0002",
        "entitlement",
        "en",
    )
    assert birth.message == message("en", "entitlement", names["birth"], 150_000.0, "once")
    lf = next(o for o in made if o.family_id == "f0001" and o.measure == "large_family")
    assert lf.person_id is None and lf.offer_key == "f0001:-:large_family:2025-10-01"
    assert (lf.amount, lf.language, lf.region) == (10_000.46, "ru", "KZ-11")
    assert lf.message == message("ru", "entitlement", names["large_family"], 10_000.456, "monthly")
    assert "10 000 тг в месяц" in lf.message

    again = create_offers(nation, D2, url=store_url)  # the same day again: nothing new
    assert again.total == 0 and again.expired == 0
    assert again.already == FAMILIES + new_large  # every candidate
    with session_factory(store_url)() as s:
        assert s.scalar(select(func.count()).select_from(Offer)) == r.total + sum(by_kind[:6])


def test_a_failed_run_leaves_nothing_behind(tmp_path: Path, store_url: str, monkeypatch) -> None:
    """A run that fails while its candidates are being looked up rolls back (its temporary
    table included, on the same pooled connection): the next run works and offers everything."""
    nation = _nation(tmp_path / "nation")
    real = offers._insert_rows

    def fail_after_candidates(conn, table, rows, unique=None) -> None:
        real(conn, table, rows, unique)
        if table is offers._CANDIDATES:
            raise RuntimeError("simulated crash")

    monkeypatch.setattr(offers, "_insert_rows", fail_after_candidates)
    with pytest.raises(RuntimeError, match="simulated crash"):
        create_offers(nation, D2, url=store_url)
    monkeypatch.setattr(offers, "_insert_rows", real)
    r = create_offers(nation, D2, url=store_url)
    assert r.created == {"birth": FAMILIES, "large_family": FAMILIES - len(range(0, FAMILIES, 4))}
    assert create_offers(nation, D2, url=store_url).total == 0
