"""The auditor's pages: findings with filters and their evidence, and a family's payment trail
(each trail read is logged as the API logs it)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from qamqor.api import queries
from qamqor.api.security import Principal, log_access
from qamqor.web import reads
from qamqor.web.analyst import aggregate
from qamqor.web.core import NotFound, region_names, render, role

router = APIRouter(include_in_schema=False)
auditor = role("auditor")
PAGE = 50


@router.get("/web/audit", response_class=HTMLResponse)
def findings(
    request: Request,
    type: str | None = Query(None, max_length=32),
    region: str | None = Query(None, max_length=16),
    family_id: str | None = Query(None, max_length=32),
    offset: int = Query(0, ge=0, le=10_000_000),
    p: Principal = Depends(auditor),
):
    type_, region, family_id = type or None, region or None, (family_id or "").strip() or None
    with request.app.state.sessions() as s:
        out = queries.findings(s, type_, region, family_id, PAGE, offset)
        key = (request.app.state.url, queries.run_date(s))
    types = aggregate(request.app, key, reads.finding_types)
    regions = sorted(c for c in region_names() if c.count("-") == 1)
    keep = {"type": type_ or "", "region": region or "", "family_id": family_id or ""}
    query = "&".join(f"{k}={v}" for k, v in keep.items() if v)
    return render(
        request,
        "audit/findings.html",
        p,
        out=out,
        types=types,
        regions=regions,
        f=keep,
        query=query,
        offset=offset,
        page=PAGE,
    )


@router.get("/web/audit/payments/{family_id}", response_class=HTMLResponse)
def payment_trail(request: Request, family_id: str, p: Principal = Depends(auditor)):
    with request.app.state.sessions() as s:
        if queries.family(s, family_id) is None:
            raise NotFound()
        found = queries.findings(s, family_id=family_id, limit=100)
    log_access(request, p, "read payment trail", family_id)
    rows = queries.payment_trail(request.app.state.data_dir, family_id)
    return render(
        request, "audit/payments.html", p, family_id=family_id, rows=rows, found=found["findings"]
    )
