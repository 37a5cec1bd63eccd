"""Fixtures of the operational-store tests: every `store_url` test runs on SQLite AND on a
throwaway PostgreSQL cluster started here with initdb/pg_ctl (never skipped: `make test`
installs the server binaries when they are missing)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from datetime import date
from pathlib import Path

import pytest

from qamqor.store.db import dispose_all


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(p)
    raise RuntimeError(f"PostgreSQL's {name} not found: run scripts/system-deps.sh")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL cluster of our own on a free loopback port, stopped at the end."""
    root = Path(tempfile.mkdtemp(prefix="qamqor-pg-"))  # not under pytest's 0700 folder
    data, port = root / "data", _free_port()
    env = dict(os.environ)
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the postgres (or nobody) user
        user = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, user)
        run_as = ["runuser", "-u", user, "--"]
    subprocess.run(
        [*run_as, _pg_bin("initdb"), "-D", str(data), "-U", "qamqor", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        env=env,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *run_as,
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    yield f"postgresql+psycopg://qamqor@127.0.0.1:{port}"
    dispose_all()
    subprocess.run(
        [*run_as, _pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True
    )
    shutil.rmtree(root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture
def pg_url(pg_server):
    """A fresh, empty database on the session's cluster."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    base = pg_server.replace("+psycopg", "")
    with psycopg.connect(base + "/postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield f"{pg_server}/{name}"


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
