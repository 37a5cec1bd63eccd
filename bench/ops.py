"""Operational benchmarks (issue 6): publish a run into PostgreSQL (COPY) and read family cards
through the API under concurrent load.

    .venv/bin/python bench/ops.py DATA_DIR [--concurrency 200] [--seconds 20] [--out F.json]

DATA_DIR must hold a run of the daily pipeline (cards, levels, scores, entitlements, audit). A
throwaway PostgreSQL cluster is started (fsync on, as in production), the run is published into
it, and `qamqor serve` (uvicorn, 2 workers) is loaded by wrk (a C load generator, so the client
takes little of the two cores): a closed loop of CONCURRENCY connections reading random family
cards (`GET /families/{id}` as the auditor: one indexed read and one access-log entry each), then
the same load on `/health` as the framework's floor. Reports p50/p90/p99, throughput and the
server's CPU per request. Writes a JSON report."""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx  # sign-in and readiness only; the load comes from wrk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qamqor.levels.compute import card_dates
from qamqor.ops.daily import publish_and_sync
from qamqor.ops.demo import DEFAULT_PASSWORD, seed_demo_users
from qamqor.store.db import session_factory
from qamqor.store.pgcluster import cluster, create_database

WRK_SCRIPT = Path(__file__).with_name("family_reads.lua")  # random family ids, JSON summary


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _server_pids(server: subprocess.Popen) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True)
    return [server.pid, *map(int, out.stdout.split())]


def _wrk(
    base: str,
    token: str,
    ids: Path,
    clients: int,
    seconds: float,
    pids: list[int],
    fixed_path: str | None = None,
) -> dict:
    """A closed loop of `clients` connections for `seconds` (whole: wrk takes no fractions; one
    wrk thread) reading random family cards, or `fixed_path`; with the CPU the server processes
    used per request."""
    cmd = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
           "-H", f"Authorization: Bearer {token}", "-s", str(WRK_SCRIPT), base]  # fmt: skip
    env = dict(os.environ, QAMQOR_IDS=str(ids))
    if fixed_path:
        env["QAMQOR_FIXED_PATH"] = fixed_path
    cpu0 = _cpu_seconds(pids)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    cpu = _cpu_seconds(pids) - cpu0
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r |= {"clients": clients, "throughput_per_s": round(r["requests"] / r["seconds"], 1),
          "server_cpu_ms_per_request": round(1000 * cpu / max(1, r["requests"]), 2),
          "load_avg": os.getloadavg()[0]}  # fmt: skip
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--out", type=Path, default=Path("bench/ops-results.json"))
    ap.add_argument("--no-api", action="store_true", help="measure the publishing only")
    a = ap.parse_args()
    on: date = card_dates(a.data_dir)[-1]
    report: dict = {"data_dir": str(a.data_dir), "run_date": on.isoformat()}
    with cluster(
        fsync=True,
        settings={"shared_buffers": "1GB", "max_wal_size": "8GB", "max_connections": "300"},
    ) as srv:
        url = create_database(srv, "qamqor")
        session_factory(url)  # migrate outside the timing
        t0, ru0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        r = publish_and_sync(a.data_dir, on, url)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        report["publish_postgres"] = {
            "families": r.published.families,
            "entitlements": r.published.entitlements,
            "findings": r.published.findings,
            "cases_opened": r.cases.opened,
            "phases_s": r.published.seconds,
            "wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s_client": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 1),
            "peak_rss_gib_client": round(ru1.ru_maxrss / 2**20, 2),
            "load_avg": os.getloadavg()[0],
        }
        print(json.dumps(report["publish_postgres"]), flush=True)
        report["targets"] = {
            "publish 6.3 M families (with the case sync) ≤ 180 s": {
                "families": r.published.families,
                "seconds": report["publish_postgres"]["wall_s"],
                "met": r.published.families >= 6_000_000
                and report["publish_postgres"]["wall_s"] <= 180,
            }
        }
        if a.no_api:
            a.out.write_text(json.dumps(report, indent=2))
            print(f"→ {a.out}")
            return
        seed_demo_users(session_factory(url))
        with session_factory(url)() as s:
            from sqlalchemy import select

            from qamqor.store.published import FamilyCard

            ids = list(s.scalars(select(FamilyCard.family_id).limit(100_000)))
        ids_file = a.out.with_suffix(".ids.txt")
        ids_file.write_text("\n".join(ids) + "\n")
        port = _port()
        env = dict(os.environ, QAMQOR_DATABASE_URL=url)
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "qamqor"), "serve", str(a.data_dir), "--port",
             str(port), "--workers", "2"],
            env=env,
            stderr=open(a.out.with_suffix(".server.log"), "w"),  # noqa: SIM115
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    if httpx.get(base + "/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            token = httpx.post(
                base + "/auth/token", data={"username": "auditor", "password": DEFAULT_PASSWORD}
            ).json()["access_token"]
            pids = _server_pids(server)
            _wrk(base, token, ids_file, 10, 3, pids)  # warm up
            report["api_family_card"] = _wrk(base, token, ids_file, a.concurrency, a.seconds, pids)
            report["api_family_card_20_clients"] = _wrk(base, token, ids_file, 20, 10, pids)
            print(json.dumps(report["api_family_card"]), flush=True)
            report["targets"]["API family-card read p99 ≤ 50 ms at 200 concurrent"] = {
                "p99_ms": report["api_family_card"]["p99_ms"],
                "met": report["api_family_card"]["p99_ms"] <= 50,
            }
            # the floor: the same load on /health, which does nothing (no auth, no database)
            report["api_health_floor"] = _wrk(
                base, token, ids_file, a.concurrency, a.seconds / 2, pids, fixed_path="/health"
            )
            print(json.dumps(report["api_health_floor"]), flush=True)
        finally:
            server.terminate()
            server.wait(30)
    a.out.write_text(json.dumps(report, indent=2))
    print(f"→ {a.out}")


if __name__ == "__main__":
    main()
