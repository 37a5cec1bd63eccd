"""Read models the pages need beyond qamqor.api.queries: a family's card across runs, its open
case, money at risk by finding type, level trends across runs and cached catalogue overlaps."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qamqor.api.queries import MIN_CELL, run_date
from qamqor.engine import background
from qamqor.engine.lookup import family_rows
from qamqor.levels.explain import evaluate_family
from qamqor.store.cardjson import card_doc
from qamqor.store.casework import Case
from qamqor.store.published import FamilyCard, PublishedFinding

SKIP = {"family_id", "region", "district", "language"}
AGGREGATE_SECONDS = 300  # national aggregates are recomputed at most this often
_cache: dict[tuple, tuple[float, object]] = {}
_lock = threading.Lock()
_refreshing: set[tuple] = set()
_key_locks: dict[tuple, threading.Lock] = {}


def cached(key: tuple, compute: Callable[[], object], seconds: float = AGGREGATE_SECONDS):
    """A national aggregate kept for `seconds`; keys name the store and the run date, so a new
    publication is seen at once. Once expired, the kept value is still served while a background
    thread recomputes it (`compute` must open its own session), so only the first request after
    a start waits."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
        stale = hit is not None and now - hit[0] >= seconds
        refresh = stale and key not in _refreshing
        if refresh:
            _refreshing.add(key)
    if hit is None:  # one computation per key: a second request waits for the first's
        with _lock:
            key_lock = _key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with _lock:
                hit = _cache.get(key)
            if hit is not None:
                return hit[1]
            value = compute()
            with _lock:
                _cache[key] = (time.monotonic(), value)
            return value
    if refresh:

        def again() -> None:
            try:
                value = compute()
                with _lock:
                    _cache[key] = (time.monotonic(), value)
            finally:
                with _lock:
                    _refreshing.discard(key)

        background(again, "aggregate-refresh")
    return hit[1]


_starting: set[tuple] = set()


def ready(key: tuple, compute: Callable[[], object], seconds: float = AGGREGATE_SECONDS):
    """`cached(key, compute)` without waiting: None while no value has been computed yet (its
    computation is then started in the background, once), so a page can say so at once."""
    with _lock:
        if key in _cache:
            hit = True
        else:
            hit = False
            start = key not in _starting
            _starting.add(key)
    if hit:
        return cached(key, compute, seconds)
    if start:

        def run() -> None:
            try:
                cached(key, compute, seconds)
            finally:
                with _lock:
                    _starting.discard(key)

        background(run, "aggregate")
    return None


def card_history(data_dir: Path, family_id: str) -> list[dict]:
    """The family's card at each kept run date (DIR/cards/history/*), newest first, with the
    items that changed since the previous date and the level of that date."""
    root = Path(data_dir) / "cards" / "history"
    dates = sorted(p.name for p in root.glob("*") if (p / "families.parquet").exists())
    rows: list[tuple[str, dict, str | None, float | None]] = []
    for d in dates:
        found = family_rows(data_dir, f"cards/history/{d}/families.parquet", family_id)
        if found.num_rows == 0:
            continue
        card = found.to_pylist()[0]
        level = score = None
        if (Path(data_dir) / "levels" / "history" / d / "families.parquet").exists():
            hit = family_rows(data_dir, f"levels/history/{d}/families.parquet", family_id)
            if hit.num_rows:
                level, score = hit["level"][0].as_py(), hit["score"][0].as_py()
        rows.append((d, card, level, score))
    out, prev = [], None
    for d, card, level, score in rows:
        changes = []
        if prev is not None:
            changes = [
                {"item": k, "before": prev.get(k), "after": v}
                for k, v in card.items()
                if k not in SKIP and prev.get(k) != v
            ]
        out.append({"date": d, "level": level, "score": score, "changes": changes})
        prev = card
    return out[::-1]


def open_case(s: Session, family_id: str) -> int | None:
    return s.scalar(
        select(Case.id).where(Case.family_id == family_id, Case.status != "closed").limit(1)
    )


def money_at_risk(s: Session) -> dict:
    """Findings and money at risk per type; types with fewer than MIN_CELL families suppressed."""
    d = run_date(s)
    q = (
        select(
            PublishedFinding.type,
            func.count(),
            func.count(func.distinct(PublishedFinding.family_id)),
            func.sum(PublishedFinding.amount_at_risk),
        )
        .where(PublishedFinding.run_date == d)
        .group_by(PublishedFinding.type)
        .order_by(func.sum(PublishedFinding.amount_at_risk).desc())
    )
    cells, total = [], 0.0
    for type_, n, families, money in s.execute(q).all():
        total += float(money or 0)
        small = families < MIN_CELL
        cells.append(
            {
                "type": type_,
                "findings": None if small else n,
                "amount_at_risk": None if small else round(float(money or 0), 2),
                "suppressed": small,
            }
        )
    return {"cells": cells, "amount_at_risk": round(total, 2)}


def finding_types(s: Session) -> list[str]:
    d = run_date(s)
    return list(
        s.scalars(
            select(PublishedFinding.type)
            .where(PublishedFinding.run_date == d)
            .distinct()
            .order_by(PublishedFinding.type)
        )
    )


def level_trend(data_dir: Path) -> list[dict]:
    """Families per level at each run kept in DIR/levels/history/*/summary.json."""
    out = []
    for f in sorted((Path(data_dir) / "levels" / "history").glob("*/summary.json")):
        s = json.loads(f.read_text())
        levels = s.get("national", {}).get("levels", {})
        out.append(
            {
                "date": f.parent.name,
                "levels": {k: v.get("families") for k, v in levels.items()},
                "alkire_foster": s.get("national", {}).get("alkire_foster", {}),
            }
        )
    return out


def levels_summary(data_dir: Path) -> dict:
    f = Path(data_dir) / "levels" / "summary.json"
    return json.loads(f.read_text()) if f.exists() else {}


def catalogue_overlaps(data_dir: Path, on: date) -> list[dict]:
    """Overlapping measures (qamqor.measures.audit), read from the audit file of the run when
    present, computed (and so written) once otherwise; pairs under MIN_CELL families hidden."""
    f = Path(data_dir) / "entitlements" / "catalogue_audit.json"
    audit = None
    if f.exists():
        audit = json.loads(f.read_text())
        if audit.get("date") != on.isoformat():
            audit = None
    if audit is None:
        from qamqor.measures.audit import catalogue_audit

        audit = catalogue_audit(Path(data_dir), on)
    return [o for o in audit.get("overlaps", []) if o.get("families", 0) >= MIN_CELL]


_warmed: set[tuple] = set()


def warm_explanation(s: Session) -> None:
    """Explain one family's level once per store and run, so that the methodology is loaded
    (≈ 0.7 s) before the first family card or citizen page needs it."""
    on = run_date(s)
    key = (str(s.get_bind().url), on)
    with _lock:
        if key in _warmed:
            return
        _warmed.add(key)
    card = s.scalar(select(FamilyCard).where(FamilyCard.run_date == on).limit(1))
    if card is not None:
        evaluate_family(card_doc(card), on)


def explanation(s: Session, family_id: str, lang: str) -> dict | None:
    """The level explained indicator by indicator, as `qamqor.api.routes.common.explanation`
    (the published, corrected card through `evaluate_family`); None if there is no such family."""
    card = s.get(FamilyCard, (run_date(s), family_id))
    if card is None:
        return None
    return evaluate_family(card_doc(card), card.run_date, lang=lang).as_dict()
