"""The national measures' rules, qamqor's SQL beside the same rules in OpenFisca (issue 4).

    .venv/bin/python bench/openfisca.py DATA_DIR [--out bench/openfisca-results.json]

DATA_DIR must hold a run whose entitlements were computed (`DIR/entitlements/`: the facts
persons.parquet (+ persons_since.parquet on a later day of the month) and family_facts.parquet,
and summary.json, whose date is the run's). Two steps
over the same facts, each in its own process so that its peak resident memory is its own
(os.wait4 → ru_maxrss), as bench/run.py times the batch steps:

- qamqor: the entitlements SELECT of `qamqor.measures.compute` for the national measures only
  (cards + family facts + persons, the incompatible measures resolved), on DuckDB, written to
  Parquet (family_id, person_id, measure, amount);
- openfisca: `qamqor.measures.openfisca_twin` (the same rules written by hand as OpenFisca
  variables): the facts read into arrays, the simulation built, every measure calculated, the
  same Parquet written.

Both start from the poverty line of `qamqor.measures.compute.poverty_line` (the card's median
income). Reports wall and CPU seconds, peak memory, the load average around each step, the phases
inside each step, the ratio OpenFisca ÷ qamqor, and whether the two outputs agree (rows only one
has, amounts more than 0.01 apart).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import measure  # bench/run.py: one way to time a step

STEPS = ("qamqor", "openfisca")


def _run_date(data_dir: Path) -> dt.date:
    summary = json.loads((data_dir / "entitlements" / "summary.json").read_text())
    return dt.date.fromisoformat(summary["date"])


def _persons(data_dir: Path, folder: Path) -> None:
    """A later day's run keeps the month's persons file and the families computed since apart
    (`qamqor.measures.persons`): the qamqor step reads them as one file, written here, untimed
    (the twin reads the same rows through `stored_sql`, as its `read_facts` does)."""
    from qamqor.engine import connect, sql_path
    from qamqor.measures.persons import PERSONS, PERSONS_SINCE, stored_sql

    ent = data_dir / "entitlements"
    if (ent / PERSONS_SINCE).exists():
        con = connect()
        con.execute(f"COPY ({stored_sql(ent)}) TO {sql_path(folder / PERSONS)} (FORMAT parquet)")
        con.close()


def step_qamqor(data_dir: Path, on: dt.date, out: Path) -> dict:
    """The batch's entitlements SELECT over the written facts, national measures only."""
    from qamqor.countries import load_country
    from qamqor.engine import run_query
    from qamqor.levels.compute import card_path
    from qamqor.measures.catalogue import Catalogue, load_catalogue
    from qamqor.measures.compute import entitlements_sql, median_income, poverty_line
    from qamqor.measures.persons import PERSONS

    t0 = time.perf_counter()
    full = load_catalogue("kz")
    national = [m for m in full.measures if m.region is None]
    cat = Catalogue(measures=national, sources={m.id: full.sources[m.id] for m in national})
    country = load_country("kz")
    line = poverty_line(country, on, *median_income(data_dir, on))
    # the persons as they stand, in one file (`_persons`) if a later day kept them apart
    persons = out.with_name(PERSONS)
    if not persons.exists():
        persons = data_dir / "entitlements" / PERSONS
    t1 = time.perf_counter()
    sql = entitlements_sql(cat, country, on, line, cat.switches)
    tables = {
        "cards": card_path(data_dir, on),
        "persons": persons,
        "family_facts": data_dir / "entitlements" / "family_facts.parquet",
    }
    rows = run_query(f"SELECT family_id, person_id, measure, amount FROM ({sql})", tables, out)
    t2 = time.perf_counter()
    return {"rows": rows, "phases": {"poverty_line": t1 - t0, "select_and_write": t2 - t1}}


def step_openfisca(data_dir: Path, on: dt.date, out: Path) -> dict:
    """The OpenFisca twin over the same facts."""
    import pyarrow.parquet as pq

    from qamqor.measures import openfisca_twin as twin

    t0 = time.perf_counter()
    twin.check_against_catalogue(twin.national_catalogue(), on)
    system = twin.NationalMeasures()
    month = twin.run_period(system, on)
    line = twin.default_line(system.country, data_dir, on)
    t1 = time.perf_counter()
    families, persons = twin.read_facts(data_dir, on)
    t2 = time.perf_counter()
    sim = twin.simulation(system, families, persons, month, line)
    t3 = time.perf_counter()
    table = twin.entitlements(sim, families, persons, month)
    t4 = time.perf_counter()
    pq.write_table(table, out, compression="zstd")
    t5 = time.perf_counter()
    return {
        "rows": table.num_rows,
        "families": families.num_rows,
        "persons": persons.num_rows,
        "phases": {
            "system_and_poverty_line": t1 - t0,
            "read_facts": t2 - t1,
            "build_simulation": t3 - t2,
            "calculate": t4 - t3,
            "write": t5 - t4,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--out", type=Path, default=Path("bench/openfisca-results.json"))
    ap.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # one timed child
    ap.add_argument("--to", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    data_dir = a.data_dir.resolve()
    on = _run_date(data_dir)
    if a.step:
        info = (step_qamqor if a.step == "qamqor" else step_openfisca)(data_dir, on, a.to)
        phases = {k: round(v, 2) for k, v in info.pop("phases").items()}
        a.to.with_suffix(".json").write_text(json.dumps({**info, "phases": phases}))
        return

    import duckdb
    import pyarrow.parquet as pq

    from qamqor.measures.openfisca_twin import compare

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    result: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(memory / 2**30, 1),
            "duckdb": duckdb.__version__,
            "openfisca_core": _version("openfisca-core"),
            "date": dt.date.today().isoformat(),
        },
        "data_dir": str(a.data_dir),
        "run_date": on.isoformat(),
    }
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".openfisca-bench-") as tmp:
        outs = {s: Path(tmp) / f"{s}.parquet" for s in STEPS}
        _persons(data_dir, Path(tmp))
        for s in STEPS:
            args = [sys.executable, __file__, str(data_dir), "--step", s, "--to", str(outs[s])]
            result[s] = measure(args)
            result[s].update(json.loads(outs[s].with_suffix(".json").read_text()))
            print(s, json.dumps(result[s]), flush=True)
        agreement = compare(pq.read_table(outs["qamqor"]), pq.read_table(outs["openfisca"]))
    q, o = result["qamqor"], result["openfisca"]
    result["families"], result["persons"] = o.pop("families"), o.pop("persons")
    result["ratio_openfisca_over_qamqor"] = {
        "wall": round(o["seconds"] / q["seconds"], 1),
        "cpu": round(o["cpu_seconds"] / q["cpu_seconds"], 1),
        "peak_memory": round(o["peak_gib"] / q["peak_gib"], 1),
    }
    result["agreement"] = agreement
    a.out.write_text(json.dumps(result, indent=2))
    summary = {k: v for k, v in agreement.items() if k != "by_measure"}
    print(json.dumps({"ratio": result["ratio_openfisca_over_qamqor"], "agreement": summary}))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
