"""Who is asking: bearer tokens (from /auth/token) → a `Principal`, role checks, and the access
log entry every read or change of a family's data writes (with the X-Road client, if any)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer

from qamqor.ops.users import AuthError, read_token
from qamqor.store.access import User

oauth2 = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)

# X-Road style identifiers of the calling and the called system (logged with each access)
CLIENT_HEADER = "X-Road-Client"
SERVICE_HEADER = "X-Road-Service"
PURPOSE_HEADER = "X-Purpose"


@dataclass(frozen=True)
class Principal:
    username: str
    role: str
    district: str | None
    centre_id: str | None
    family_id: str | None
    language: str
    client: str | None = None


# A signed-in user's record is read once and then trusted for this many seconds, so a request
# with a token needs no database read; a deleted user or a changed role takes effect within it
USER_CACHE_SECONDS = 10.0


def _claims(request: Request, token: str | None) -> dict:
    if not token:
        raise HTTPException(401, "sign in first (POST /auth/token)", {"WWW-Authenticate": "Bearer"})
    seen = request.app.state.tokens  # token → claims, so a signature is checked once
    claims = seen.get(token)
    if claims is not None and claims["exp"] > time.time():
        return claims
    try:
        claims = read_token(token, request.app.state.key)
    except AuthError as e:
        raise HTTPException(401, str(e), {"WWW-Authenticate": "Bearer"}) from None
    if len(seen) >= 10_000:
        seen.clear()
    seen[token] = claims
    return claims


def _load_user(request: Request, username: str) -> Principal | None:
    with request.app.state.sessions() as s:
        u = s.get(User, username)
    if u is None:
        return None
    p = Principal(u.username, u.role, u.district, u.centre_id, u.family_id, u.language)
    request.app.state.users[username] = (time.monotonic() + USER_CACHE_SECONDS, p)
    return p


def _cached_user(request: Request, username: str) -> Principal | None:
    hit = request.app.state.users.get(username)
    return hit[1] if hit and hit[0] > time.monotonic() else None


def _with_client(request: Request, claims: dict, user: Principal | None) -> Principal:
    if user is None or user.role != claims.get("role"):
        raise HTTPException(
            401, "the token's user no longer exists", {"WWW-Authenticate": "Bearer"}
        )
    client = request.headers.get(CLIENT_HEADER)
    service = request.headers.get(SERVICE_HEADER)
    return replace(user, client=f"{client} -> {service}" if client and service else client)


def principal_from_token(request: Request, token: str | None) -> Principal:
    claims = _claims(request, token)
    user = _cached_user(request, claims["sub"]) or _load_user(request, claims["sub"])
    return _with_client(request, claims, user)


async def current(request: Request, token: str | None = Depends(oauth2)) -> Principal:
    """The caller, from the bearer token (the user's record from a 10-second cache)."""
    claims = _claims(request, token)
    user = _cached_user(request, claims["sub"])
    if user is None:
        user = await run_in_threadpool(_load_user, request, claims["sub"])
    p = _with_client(request, claims, user)
    request.state.principal = p
    return p


def require(*roles: str):
    """A dependency admitting only the given roles (403 for the others)."""

    async def check(p: Principal = Depends(current)) -> Principal:
        if p.role not in roles:
            raise HTTPException(403, f"the {p.role} role may not use this")
        return p

    return check


DEFAULT_PURPOSE = {
    "citizen": "own data",
    "worker": "case work",
    "analyst": "statistics",
    "auditor": "audit",
    "integrator": "registry exchange",
}


def _submit(
    request: Request, p: Principal, action: str, family_id: str | None, person_id: str | None
) -> Future[None]:
    return request.app.state.log_writer.submit(
        actor=p.username,
        role=p.role,
        action=action,
        purpose=request.headers.get(PURPOSE_HEADER) or DEFAULT_PURPOSE[p.role],
        family_id=family_id,
        person_id=person_id,
        client=p.client,
    )


def log_access(
    request: Request,
    p: Principal,
    action: str,
    family_id: str | None = None,
    person_id: str | None = None,
) -> None:
    """Record the access durably before answering (batched with concurrent requests' entries)."""
    _submit(request, p, action, family_id, person_id).result(timeout=60)


async def log_access_async(
    request: Request,
    p: Principal,
    action: str,
    family_id: str | None = None,
    person_id: str | None = None,
) -> None:
    """`log_access` for async endpoints: waits without holding a thread."""
    await asyncio.wrap_future(_submit(request, p, action, family_id, person_id))
