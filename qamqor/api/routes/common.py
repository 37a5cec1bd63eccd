"""Pieces every router uses: the session, the current run, 404s, and the explanation."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Request
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from qamqor.api import queries
from qamqor.levels.explain import evaluate_family
from qamqor.store.cardjson import card_doc
from qamqor.store.published import FamilyCard

Id = Annotated[int, Path(ge=1, le=2_147_483_647, description="a record number")]
FamilyId = Annotated[str, Path(min_length=1, max_length=32, description="a family id")]


def sessions(request: Request):
    return request.app.state.sessions


def family_or_404(s: Session | Connection, family_id: str, audit_fields: bool = False) -> dict:
    f = queries.family(s, family_id, audit_fields=audit_fields)
    if f is None:
        raise HTTPException(404, f"no family {family_id} in the published run")
    return f


def explanation(s: Session, family_id: str, lang: str) -> dict:
    """The level explained indicator by indicator, from the published (corrected) card."""
    card = s.get(FamilyCard, (queries.run_date(s), family_id))
    if card is None:
        raise HTTPException(404, f"no family {family_id} in the published run")
    doc = card_doc(card)
    return evaluate_family(doc, card.run_date, lang=lang).as_dict()
