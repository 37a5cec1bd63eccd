"""The integrator: DCI-style social-registry search and subscription (SPEC §12). Every call
must name its X-Road client (`X-Road-Client`, e.g. `KZ/GOV/MTSZN/ASP`), which is logged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from qamqor.api import queries
from qamqor.api.routes.common import sessions
from qamqor.api.security import CLIENT_HEADER, Principal, log_access, require
from qamqor.store.access import Subscription
from qamqor.store.published import FamilyCard

router = APIRouter(prefix="/registry", tags=["integrator"])
integrator = require("integrator")


def _client(p: Principal) -> str:
    if not p.client:
        raise HTTPException(400, f"the {CLIENT_HEADER} header (X-Road client id) is required")
    return p.client


class Query_(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family_id: str | None = Field(None, max_length=32)
    region: str | None = Field(None, max_length=16)
    level: Literal["A", "B", "C", "D", "E"] | None = None


class SearchIn(BaseModel):
    """A DCI `search` request over the social registry (families), paginated; an empty query
    pages through the whole registry."""

    model_config = ConfigDict(extra="forbid")
    reg_type: Literal["social_registry"] = "social_registry"
    query: Query_
    page: int = Field(1, ge=1, le=100_000)
    page_size: int = Field(50, ge=1, le=500)


class SubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: Literal["level_changed", "case_opened", "entitlement_changed"]
    callback: str = Field(min_length=8, max_length=500, pattern=r"^https?://")


@router.post("/search")
def search(request: Request, body: SearchIn, p: Principal = Depends(integrator)) -> dict:
    client = _client(p)
    q = body.query
    with sessions(request)() as s:
        d = queries.run_date(s)
        sel = select(
            FamilyCard.family_id,
            FamilyCard.region,
            FamilyCard.district,
            FamilyCard.level,
            FamilyCard.members,
        ).where(FamilyCard.run_date == d)
        for col, v in (
            (FamilyCard.family_id, q.family_id),
            (FamilyCard.region, q.region),
            (FamilyCard.level, q.level),
        ):
            if v:
                sel = sel.where(col == v)
        rows = s.execute(
            sel.order_by(FamilyCard.family_id)
            .limit(body.page_size)
            .offset((body.page - 1) * body.page_size)
        ).all()
    for r in rows:
        log_access(request, p, "registry search", r.family_id)
    return {
        "header": {"status": "succ", "client": client, "run_date": d.isoformat()},
        "message": {
            "reg_type": body.reg_type,
            "page": body.page,
            "page_size": body.page_size,
            "records": [r._asdict() for r in rows],
        },
    }


@router.post("/subscribe", status_code=201)
def subscribe(request: Request, body: SubscribeIn, p: Principal = Depends(integrator)) -> dict:
    client = _client(p)
    try:
        with sessions(request).begin() as s:
            sub = Subscription(
                client=client,
                event=body.event,
                callback=body.callback,
                created_at=datetime.now(UTC).replace(tzinfo=None),
            )
            s.add(sub)
    except IntegrityError:
        raise HTTPException(409, f"{client} is already subscribed to {body.event}") from None
    log_access(request, p, f"subscribe {body.event}")
    return {"id": sub.id, "client": client, "event": body.event}
