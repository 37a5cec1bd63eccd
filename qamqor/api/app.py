"""The FastAPI application: `create_app(DATA_DIR)` serves the published run of DATA_DIR's store
(or QAMQOR_DATABASE_URL) with OpenAPI at /docs. Errors are JSON: {"detail": ...}."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from qamqor.api.queries import NotPublished
from qamqor.api.routes import analyst, auditor, citizen, registry, worker
from qamqor.engine.lookup import watch
from qamqor.ops.access_log import InboxWriter, Sealer
from qamqor.ops.users import TOKEN_MINUTES, AuthError, authenticate, issue_token, secret
from qamqor.store.db import database_url, engine_for, session_factory
from qamqor.web import mount as mount_web


class ErrorOut(BaseModel):
    detail: str


ERRORS: dict[int | str, dict] = {
    400: {"model": ErrorOut, "description": "Bad request (e.g. a required header is missing)"},
    401: {"model": ErrorOut, "description": "Not signed in, or the token expired"},
    403: {"model": ErrorOut, "description": "The role may not use this"},
    404: {"model": ErrorOut, "description": "No such thing within the caller's reach"},
    409: {"model": ErrorOut, "description": "Conflicts with the current state"},
}


def create_app(data_dir: Path, url: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        sealer = Sealer(app.state.sessions)  # chains the access log's inbox every 0.5 s
        sealer.start()
        from qamqor.web.analyst import warm

        warm(app)  # the dashboard's national aggregates, computed in the background at start
        watch(app.state.data_dir)  # family-ordered copies for per-family Parquet reads
        yield
        sealer.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="qamqor",
        version="0.1.0",
        description="Digital Family Card, well-being levels, entitlements, cases and audit: "
        "the API of the social-protection platform. Sign in at /auth/token.",
    )
    app.state.data_dir = Path(data_dir)
    app.state.url = url or database_url(data_dir)
    app.state.sessions = session_factory(app.state.url)
    app.state.engine = engine_for(app.state.url)  # Core reads on the hot paths
    app.state.key = secret(data_dir)
    app.state.tokens = {}  # bearer token → its verified claims (until they expire)
    app.state.users = {}  # username → (valid until, Principal): see security.USER_CACHE_SECONDS
    app.state.log_writer = InboxWriter(app.state.sessions)  # access-log entries, group-committed

    @app.exception_handler(NotPublished)
    async def _not_published(_: Request, e: NotPublished) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=409)

    @app.post("/auth/token", tags=["auth"], responses={401: ERRORS[401]})
    def token(request: Request, form: OAuth2PasswordRequestForm = Depends()) -> dict:
        try:
            user = authenticate(request.app.state.sessions, form.username, form.password)
        except AuthError as e:
            raise HTTPException(401, str(e)) from None
        return {
            "access_token": issue_token(user, request.app.state.key),
            "token_type": "bearer",
            "expires_in": TOKEN_MINUTES * 60,
            "role": user.role,
        }

    @app.get("/health", tags=["auth"])
    def health() -> dict:
        return {"status": "ok"}

    for r in (citizen.router, worker.router, analyst.router, auditor.router, registry.router):
        app.include_router(r, responses=ERRORS)
    mount_web(app)  # the web pages under /web/ (qamqor.web, issue 7)
    return app
