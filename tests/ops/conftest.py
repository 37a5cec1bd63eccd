"""Fixtures of the operational-store tests: every `store_url` test runs on SQLite AND on a
throwaway PostgreSQL cluster started here with initdb/pg_ctl (never skipped: `make test`
installs the server binaries when they are missing)."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import pytest

from qamqor.store.db import dispose, dispose_all
from qamqor.store.pgcluster import cluster, create_database


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL cluster of our own on a free loopback port, stopped at the end (room for
    a few engines' pools at once: each may hold up to 50 connections)."""
    with cluster(settings={"max_connections": "300"}) as url:
        yield url
        dispose_all()


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the session's cluster; its pooled connections are closed
    afterwards (idle pools of earlier tests once filled the server's 100 connection slots)."""
    url = create_database(pg_server, "t_" + uuid.uuid4().hex[:12])
    yield url
    dispose(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The URL of an empty store, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'qamqor.db'}"
    return request.getfixturevalue("pg_url")


RUN_DATE = date(2025, 10, 1)


@pytest.fixture(scope="session")
def nation(tmp_path_factory) -> Path:
    """A 2,000-family nation through the whole daily pipeline (without publishing)."""
    from qamqor.pipeline import run
    from qamqor.synth.generate import generate

    out = tmp_path_factory.mktemp("ops-nation")
    generate(out, 2_000, seed=7)
    run(out, RUN_DATE)
    return out


@pytest.fixture(autouse=True)
def _no_env_url(monkeypatch) -> None:
    monkeypatch.delenv("QAMQOR_DATABASE_URL", raising=False)
