"""A throwaway PostgreSQL cluster (initdb + pg_ctl on a free loopback port) for the tests and the
benchmarks; never for production. Runs as the `postgres` user when started by root."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path


def pg_bin(name: str) -> str:
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


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
        return ["runuser", "-u", "postgres", "--"]
    except KeyError:
        return ["runuser", "-u", "nobody", "--"]


@contextmanager
def cluster(fsync: bool = False, settings: dict[str, str] | None = None):
    """Yield the server URL `postgresql+psycopg://qamqor@127.0.0.1:PORT` (no database part)."""
    root = Path(tempfile.mkdtemp(prefix="qamqor-pg-"))  # world-traversable, unlike pytest's
    data, port, run_as = root / "data", _free_port(), _run_as()
    if run_as:
        shutil.chown(root, run_as[2])
    try:
        subprocess.run(
            [*run_as, pg_bin("initdb"), "-D", str(data), "-U", "qamqor", "--auth=trust", "-E",
             "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        if not fsync:
            opts += " -c fsync=off -c synchronous_commit=off"
        for k, v in (settings or {}).items():
            opts += f" -c {k}={v}"
        subprocess.run(
            [*run_as, pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
             "-w", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield f"postgresql+psycopg://qamqor@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*run_as, pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(server_url.replace("+psycopg", "") + "/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"
