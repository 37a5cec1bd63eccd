"""Rows of the operational store built the same way by every test that needs them."""

from __future__ import annotations

from datetime import date, datetime

from qamqor.store.models import Offer


def offer(family_id: str, measure: str, on: date, **columns: object) -> Offer:
    """A pending entitlement offer of `measure` to `family_id`, created on `on` after a run of
    the same day; `columns` override any column (person, amount, status, dates...)."""
    person = columns.get("person_id")
    values: dict[str, object] = {
        "offer_key": f"{family_id}:{person or '-'}:{measure}:{on.isoformat()}",
        "family_id": family_id,
        "measure": measure,
        "kind": "entitlement",
        "amount": 1000.0,
        "period": "monthly",
        "language": "ru",
        "message": "test offer",
        "status": "pending",
        "key_date": on,
        "created_on": on,
        "previous_run": on,
        "status_on": on,
        "created_at": datetime(on.year, on.month, on.day),
    }
    return Offer(**(values | columns))
