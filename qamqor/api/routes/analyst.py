"""The analyst: aggregates only, never a cell of fewer than 10 families."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request

from qamqor.api import queries
from qamqor.api.routes.common import sessions
from qamqor.api.security import Principal, require

router = APIRouter(prefix="/stats", tags=["analyst"])
analyst = require("analyst", "auditor")


@router.get("/levels")
def levels(
    request: Request,
    by: Literal["region", "district", "urban"] | None = None,
    p: Principal = Depends(analyst),
) -> dict:
    with sessions(request)() as s:
        return queries.level_stats(s, by)


@router.get("/measures")
def measures(request: Request, by_region: bool = False, p: Principal = Depends(analyst)) -> dict:
    with sessions(request)() as s:
        return queries.measure_stats(s, by_region)


@router.get("/runs")
def runs(request: Request, p: Principal = Depends(analyst)) -> list[dict]:
    with sessions(request)() as s:
        return queries.runs(s)
