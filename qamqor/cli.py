"""The `qamqor` command line: thin wrappers over the batch steps."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="qamqor: the Digital Family Card and social-protection platform.")
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"not a date (YYYY-MM-DD): {value!r}")
        raise


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console,
    )  # fmt: skip


def _extract_date(data_dir: Path) -> date:
    manifest = data_dir / "registries" / "manifest.json"
    if not manifest.exists():
        _fail(f"{manifest} not found: is {data_dir} a generated or delivered nation?")
    return date.fromisoformat(json.loads(manifest.read_text())["extract_date"])


@app.command()
def generate(
    out: Path = typer.Option(..., help="Folder for registries/, truth/ and calibration.json"),
    families: int = typer.Option(10_000, min=1, help="Number of families"),
    seed: int = typer.Option(1, help="Random seed: the same seed gives identical files"),
    extract_date: str = typer.Option("2025-10-01", help="Date of the registry extracts"),
) -> None:
    """Generate a synthetic nation and compare it with the SPEC §2 calibration targets."""
    from qamqor.synth.calibration import calibrate
    from qamqor.synth.generate import generate as gen

    with _progress() as bar:
        task = bar.add_task("generating families", total=families)
        r = gen(out, families, seed, _date(extract_date), progress=lambda n: bar.advance(task, n))
    cal = calibrate(out)
    table = Table("target", "expected", "generated", "within ±10 %")
    for name, row in cal["targets"].items():
        table.add_row(name, f"{row['target']:,.3f}", f"{row['generated']:,.3f}",
                      "yes" if row["within_10pct"] else "[red]no[/red]")  # fmt: skip
    console.print(table)
    console.print(f"{r.families:,} families, {r.people:,} people → {out}/registries")


@app.command("ingest")
def ingest_cmd(data_dir: Path) -> None:
    """Validate every registry extract; quarantine bad rows with a reason."""
    from qamqor.registries.ingest import IngestError, ingest

    try:
        r = ingest(data_dir, progress=lambda name: console.print(f"  ingested {name}"))
    except IngestError as e:
        _fail(str(e))
    console.print(
        f"{r.accepted:,} rows accepted, {r.quarantined:,} quarantined → {data_dir}/ingested"
    )


@app.command()
def cards(data_dir: Path, on: str = typer.Option(None, "--date", help="Card date")) -> None:
    """Form families as of a date and compute their indicators."""
    from qamqor.card.build import build_cards

    when = _date(on) if on else _extract_date(data_dir)
    try:
        r = build_cards(data_dir, when)
    except FileNotFoundError as e:
        _fail(str(e))
    console.print(f"{r.families:,} families, {r.people:,} people → {data_dir}/cards")


@app.command()
def card(family_id: str, data_dir: Path, as_json: bool = typer.Option(False, "--json")) -> None:
    """Print one family's card."""
    import duckdb

    path = data_dir / "cards" / "families.parquet"
    if not path.exists():
        _fail(f"{path} not found: run `qamqor cards` first")
    con = duckdb.connect()
    rows = con.execute("SELECT * FROM read_parquet(?) WHERE family_id = ?", [str(path), family_id])
    cols = [c[0] for c in rows.description]
    row = rows.fetchone()
    if row is None:
        _fail(f"no family {family_id!r} in {path}")
    card_ = dict(zip(cols, row, strict=True))
    members = con.execute(
        "SELECT person_id, role, sex, age FROM read_parquet(?) "
        "WHERE family_id = ? ORDER BY age DESC",
        [str(data_dir / "cards" / "members.parquet"), family_id],
    ).fetchall()
    card_["members_list"] = [
        dict(zip(("person_id", "role", "sex", "age"), m, strict=True)) for m in members
    ]
    if as_json:
        print(json.dumps(card_, default=str, ensure_ascii=False, indent=2))
        return
    table = Table("indicator", "value", title=f"Family {family_id}")
    for k, v in card_.items():
        if k != "members_list":
            table.add_row(k, str(v))
    console.print(table)
    for m in card_["members_list"]:
        console.print(f"  {m['role']:7s} {m['sex']} age {m['age']}  ({m['person_id']})")


@app.command("run")
def run_cmd(data_dir: Path, on: str = typer.Option(None, "--date", help="Run date")) -> None:
    """The daily run: every stage in order, with a closing summary."""
    from qamqor.pipeline import run
    from qamqor.registries.ingest import IngestError

    when = _date(on) if on else _extract_date(data_dir)
    try:
        with console.status("running") as status:
            r = run(data_dir, when, progress=lambda s: status.update(f"stage: {s}"))
    except (IngestError, FileNotFoundError) as e:
        _fail(str(e))
    table = Table("stage", "seconds", "result", title=f"Daily run {when}")
    for s in r.stages:
        table.add_row(s.name, f"{s.seconds:.1f}", s.summary)
    console.print(table)
    console.print(f"Cards: {data_dir}/cards/families.parquet · quarantine: {data_dir}/quarantine/")


if __name__ == "__main__":
    app()
