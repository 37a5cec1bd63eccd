"""The citizen: my family's card, level and explanation, entitlements, offers with consent,
appeals, and who looked at my data. A citizen only ever reaches their own family."""

from __future__ import annotations

from datetime import date
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from qamqor.api import queries
from qamqor.api.routes.common import Id, explanation, family_or_404, sessions
from qamqor.api.security import Principal, log_access, require
from qamqor.card.columns import FAMILY_COLUMNS
from qamqor.measures.offers import OfferError, consent, decline
from qamqor.ops import access_log
from qamqor.ops.appeals import KEYS, AppealError, file_appeal
from qamqor.store.models import Offer

router = APIRouter(prefix="/me", tags=["citizen"])
citizen = require("citizen")


Item = Literal[tuple(sorted(set(FAMILY_COLUMNS) - KEYS))]  # the appealable card items


class AppealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: Item = Field(description="a card indicator, e.g. wages_3m")  # type: ignore[valid-type]
    claimed_value: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Literal["consent", "decline"]


@router.get("/family")
def my_family(request: Request, p: Principal = Depends(citizen)) -> dict:
    with sessions(request)() as s:
        f = family_or_404(s, p.family_id)
    log_access(request, p, "read own family card", p.family_id)
    return f


@router.get("/explanation")
def my_explanation(
    request: Request, lang: Literal["kk", "ru", "en"] = "ru", p: Principal = Depends(citizen)
) -> dict:
    with sessions(request)() as s:
        e = explanation(s, p.family_id, lang)
    log_access(request, p, "read own level explanation", p.family_id)
    return e


@router.get("/entitlements")
def my_entitlements(request: Request, p: Principal = Depends(citizen)) -> list[dict]:
    with sessions(request)() as s:
        out = queries.entitlements(s, p.family_id)
    log_access(request, p, "read own entitlements", p.family_id)
    return out


@router.get("/offers")
def my_offers(request: Request, p: Principal = Depends(citizen)) -> list[dict]:
    with sessions(request)() as s:
        return queries.offers(s, p.family_id)


@router.post("/offers/{offer_id}")
def answer_offer(
    request: Request, offer_id: Id, body: AnswerIn, p: Principal = Depends(citizen)
) -> dict:
    with sessions(request)() as s:
        offer = s.get(Offer, offer_id)
    if offer is None or offer.family_id != p.family_id:
        raise HTTPException(404, f"no offer {offer_id} for your family")
    fn = consent if body.answer == "consent" else decline
    try:
        o = fn(offer_id, url=request.app.state.url, on=date.today())
    except OfferError as e:
        raise HTTPException(409, str(e)) from None
    log_access(request, p, f"{body.answer} offer {offer_id} ({o.measure})", p.family_id)
    return {"id": o.id, "status": o.status}


@router.post("/appeals", status_code=201)
def appeal(request: Request, body: AppealIn, p: Principal = Depends(citizen)) -> dict:
    try:
        a = file_appeal(
            sessions(request), p.family_id, body.item, body.claimed_value, body.reason, p.username
        )
    except AppealError as e:  # schema-valid but not a valid value for this item
        raise HTTPException(409, str(e)) from None
    log_access(request, p, f"appeal {a.id} on {body.item}", p.family_id)
    return {"id": a.id, "status": a.status, "item": a.item, "current_value": a.current_value}


@router.get("/appeals")
def my_appeals(request: Request, p: Principal = Depends(citizen)) -> list[dict]:
    with sessions(request)() as s:
        return queries.appeals(s, family_id=p.family_id)


@router.get("/access-log")
def who_looked(request: Request, p: Principal = Depends(citizen)) -> list[dict]:
    return access_log.who_looked(sessions(request), p.family_id)
