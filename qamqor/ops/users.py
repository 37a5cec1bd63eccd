"""Users, passwords (argon2) and short-lived access tokens (JWT, HS256)."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy.orm import Session, sessionmaker

from qamqor.store.access import ROLES, User

TOKEN_MINUTES = 15
SECRET_ENV = "QAMQOR_SECRET"
_hasher = PasswordHasher()


class AuthError(ValueError):
    pass


def secret(data_dir: Path | None) -> str:
    """The token-signing key: QAMQOR_SECRET, else DATA_DIR/secret.key (created once, 0600)."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    if data_dir is None:
        raise AuthError(f"no signing key: set {SECRET_ENV} or give a data directory")
    path = Path(data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def add_user(
    sessions: sessionmaker[Session],
    username: str,
    role: str,
    password: str,
    full_name: str,
    *,
    district: str | None = None,
    centre_id: str | None = None,
    family_id: str | None = None,
    language: str = "ru",
) -> User:
    """Create or replace a user (the password is stored only as an argon2 hash)."""
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    if role == "worker" and not district:
        raise AuthError("a worker needs a district")
    if role == "citizen" and not family_id:
        raise AuthError("a citizen needs a family")
    user = User(
        username=username,
        role=role,
        password_hash=_hasher.hash(password),
        full_name=full_name,
        district=district,
        centre_id=centre_id,
        family_id=family_id,
        language=language,
    )
    with sessions.begin() as s:
        s.merge(user)
    return user


def authenticate(sessions: sessionmaker[Session], username: str, password: str) -> User:
    with sessions() as s:
        user = s.get(User, username)
    try:
        if user is None:
            raise VerifyMismatchError
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        raise AuthError("wrong user name or password") from None
    return user


def issue_token(user: User, key: str, minutes: int = TOKEN_MINUTES) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": user.username,
        "role": user.role,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, key, algorithm="HS256")


def read_token(token: str, key: str) -> dict:
    try:
        return jwt.decode(token, key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired: sign in again") from None
    except jwt.PyJWTError:
        raise AuthError("the token is not valid") from None
