"""`make bench`: wall time and peak memory of every batch step; writes bench/results.json.

Sizes come from BENCH_FAMILIES (comma-separated, default 1000000). Each step runs as its own
process so that its peak resident memory is measured alone (os.wait4 → ru_maxrss). The machine
is often shared, so each step also records the 1-minute load average before and after it: a
time measured under a load above the number of CPUs is not the step's own.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
QAMQOR = [sys.executable, "-m", "qamqor.cli"]


def _measure(args: list[str]) -> dict:
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(args)}")
    return {
        "seconds": round(time.perf_counter() - t, 1),
        "peak_gib": round(usage.ru_maxrss / 2**20, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def _machine() -> dict:
    import duckdb

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "duckdb": duckdb.__version__,
        "date": dt.date.today().isoformat(),
    }


def main() -> None:
    sizes = [int(x) for x in os.environ.get("BENCH_FAMILIES", "1000000").split(",")]
    results = {"machine": _machine(), "runs": []}
    for n in sizes:
        work = ROOT / "work" / str(n)
        shutil.rmtree(work, ignore_errors=True)
        run = {"families": n}
        run["generate"] = _measure([*QAMQOR, "generate", "--out", str(work), "--families", str(n)])
        run["ingest"] = _measure([*QAMQOR, "ingest", str(work)])
        run["cards"] = _measure([*QAMQOR, "cards", str(work)])
        for step in ("levels", "scores", "entitlements", "offers", "audit"):
            run[step] = _measure([*QAMQOR, step, str(work)])
        results["runs"].append(run)
        print(json.dumps(run))
        shutil.rmtree(work, ignore_errors=True)
    (ROOT / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
