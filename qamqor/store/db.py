"""Engine, sessions and migrations of the operational store.

`database_url(DIR)` is `QAMQOR_DATABASE_URL` if set (PostgreSQL in production), otherwise the
SQLite file DIR/qamqor.db. `migrate(url)` runs the package's Alembic migrations to head
programmatically; `session_factory(url)` migrates first, so every entry point sees the schema.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

ENV = "QAMQOR_DATABASE_URL"
MIGRATIONS = Path(__file__).parent / "migrations"
# the newest migration's revision: a database already there is not handed to Alembic, whose
# import and upgrade cost ≈ 0.7 s per command (a test checks it against Alembic's head)
HEAD = "0004"


def database_url(data_dir: Path | None = None) -> str:
    url = os.environ.get(ENV)
    if url:
        return url
    if data_dir is None:
        raise ValueError(f"no database: set {ENV} or give a data directory")
    return f"sqlite:///{Path(data_dir).resolve() / 'qamqor.db'}"


_ENGINES: dict[str, Engine] = {}
_MIGRATED: set[str] = set()
_LOCK = threading.Lock()


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql"):
        # one pooled connection per API worker thread (anyio's 40) plus the access log's writer
        # and sealer; no ping per checkout (a round trip each request): connections are
        # recycled hourly and a dropped one fails one request, then is replaced
        engine = create_engine(url, pool_size=42, max_overflow=8, pool_recycle=3600)
    else:
        engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute("PRAGMA busy_timeout = 10000")
            cur.close()

    return engine


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (Alembic upgrade), creating it if empty."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def at_head(engine: Engine) -> bool:
    """Whether the database's Alembic revision is `HEAD` (False if it has none yet)."""
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return list(versions) == [HEAD]
    except SQLAlchemyError:
        return False


def engine_for(url: str, upgrade: bool = True) -> Engine:
    """The process's one engine (and connection pool) for `url`, migrated once per process
    unless it is at `HEAD` already."""
    with _LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = make_engine(url)
        if upgrade and url not in _MIGRATED:
            if not at_head(_ENGINES[url]):
                migrate(url)
            _MIGRATED.add(url)
        return _ENGINES[url]


def session_factory(url: str, upgrade: bool = True) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url, upgrade), expire_on_commit=False)


def dispose(url: str) -> None:
    """Close the pooled connections of `url`'s engine, if the process has one (a test that is
    done with its database frees the server's connection slots)."""
    with _LOCK:
        engine = _ENGINES.pop(url, None)
        _MIGRATED.discard(url)
    if engine is not None:
        engine.dispose()


def dispose_all() -> None:
    """Close every pooled connection (tests that drop a database call this first)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
        _MIGRATED.clear()
