"""Who is asking: bearer tokens (from /auth/token) → a `Principal`, role checks, and the access
log entry every read or change of a family's data writes (with the X-Road client, if any)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer

from qamqor.ops import access_log
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


def principal_from_token(request: Request, token: str | None) -> Principal:
    if not token:
        raise HTTPException(401, "sign in first (POST /auth/token)", {"WWW-Authenticate": "Bearer"})
    try:
        claims = read_token(token, request.app.state.key)
    except AuthError as e:
        raise HTTPException(401, str(e), {"WWW-Authenticate": "Bearer"}) from None
    with request.app.state.sessions() as s:
        user = s.get(User, claims["sub"])
    if user is None or user.role != claims.get("role"):
        raise HTTPException(
            401, "the token's user no longer exists", {"WWW-Authenticate": "Bearer"}
        )
    client = request.headers.get(CLIENT_HEADER)
    service = request.headers.get(SERVICE_HEADER)
    return Principal(
        user.username,
        user.role,
        user.district,
        user.centre_id,
        user.family_id,
        user.language,
        f"{client} -> {service}" if client and service else client,
    )


def current(request: Request, token: str | None = Depends(oauth2)) -> Principal:
    p = principal_from_token(request, token)
    request.state.principal = p
    return p


def require(*roles: str):
    """A dependency admitting only the given roles (403 for the others)."""

    def check(p: Principal = Depends(current)) -> Principal:
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


def log_access(
    request: Request,
    p: Principal,
    action: str,
    family_id: str | None = None,
    person_id: str | None = None,
) -> None:
    access_log.append(
        request.app.state.sessions,
        actor=p.username,
        role=p.role,
        action=action,
        purpose=request.headers.get(PURPOSE_HEADER) or DEFAULT_PURPOSE[p.role],
        family_id=family_id,
        person_id=person_id,
        client=p.client,
    )
