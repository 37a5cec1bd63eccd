"""The auditor: findings with filters, and the payment trail of a family."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from qamqor.api import queries
from qamqor.api.routes.common import FamilyId, sessions
from qamqor.api.security import Principal, log_access, require

router = APIRouter(prefix="/audit", tags=["auditor"])
auditor = require("auditor")


@router.get("/findings")
def findings(
    request: Request,
    type: str | None = Query(None, max_length=32),
    region: str | None = Query(None, max_length=16),
    family_id: str | None = Query(None, max_length=32),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
    p: Principal = Depends(auditor),
) -> dict:
    with sessions(request)() as s:
        return queries.findings(s, type, region, family_id, limit, offset)


@router.get("/payments/{family_id}")
def payment_trail(request: Request, family_id: FamilyId, p: Principal = Depends(auditor)) -> dict:
    with sessions(request)() as s:
        if queries.family(s, family_id) is None:
            raise HTTPException(404, f"no family {family_id} in the published run")
    log_access(request, p, "read payment trail", family_id)
    return {
        "family_id": family_id,
        "payments": queries.payment_trail(request.app.state.data_dir, family_id),
    }
