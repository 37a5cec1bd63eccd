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
err = Console(stderr=True, soft_wrap=True)  # error messages keep paths on one line


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
def ingest_cmd(
    data_dir: Path,
    force: bool = typer.Option(
        False, "--force", help="Ingest again even if the extracts are those ingested last"
    ),
) -> None:
    """Validate every registry extract; quarantine bad rows with a reason."""
    from qamqor.registries.ingest import IngestError, ingest

    try:
        r = ingest(data_dir, progress=lambda name: console.print(f"  ingested {name}"), force=force)
    except IngestError as e:
        _fail(str(e))
    console.print(f"{r.counts()} → {data_dir}/ingested")


FULL = typer.Option(
    False,
    "--full",
    help="Compute every family (default: a later day of the month computes"
    " only the families that changed since the last run)",
)


@app.command()
def cards(
    data_dir: Path, on: str = typer.Option(None, "--date", help="Card date"), full: bool = FULL
) -> None:
    """Form families as of a date and compute their indicators."""
    from qamqor.card.build import build_cards

    when = _date(on) if on else _extract_date(data_dir)
    try:
        r = build_cards(data_dir, when, reuse=not full)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    kept = (
        ""
        if r.kept_from is None
        else f" ({r.recomputed:,} computed, the others kept from {r.kept_from})"
    )
    console.print(f"{r.families:,} families{kept}, {r.people:,} people → {data_dir}/cards")


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
def run_cmd(
    data_dir: Path, on: str = typer.Option(None, "--date", help="Run date"), full: bool = FULL
) -> None:
    """The daily run: every stage in order, with a closing summary."""
    from qamqor.levels.methodology import MethodologyError
    from qamqor.pipeline import run
    from qamqor.registries.ingest import IngestError

    when = _date(on) if on else _extract_date(data_dir)
    try:
        with console.status("running") as status:
            r = run(data_dir, when, progress=lambda s: status.update(f"stage: {s}"), full=full)
    except (IngestError, FileNotFoundError, MethodologyError) as e:
        _fail(str(e))
    table = Table("stage", "seconds", "result", title=f"Daily run {when}")
    for s in r.stages:
        table.add_row(s.name, f"{s.seconds:.1f}", s.summary)
    console.print(table)
    console.print(f"Cards: {data_dir}/cards/families.parquet · quarantine: {data_dir}/quarantine/")
    console.print(f"Levels: {data_dir}/levels/families.parquet, summary.json")


# --- well-being levels (SPEC §6) ---------------------------------------------------------------


def _card_date(data_dir: Path, on: str | None) -> date:
    from qamqor.levels.compute import card_dates

    if on:
        return _date(on)
    dates = card_dates(data_dir)
    if not dates:
        _fail(f"no family cards in {data_dir}: run `qamqor cards` first")
    return dates[-1]


def _methodology(path: Path | None, on: date):
    from qamqor.levels.methodology import MethodologyError, load_methodology, methodology_in_force

    try:
        return load_methodology(path) if path else methodology_in_force(on)
    except MethodologyError as e:
        _fail(str(e))


ENGINE = typer.Option("duckdb", "--engine", help="Batch engine: duckdb or spark")
METHODOLOGY = typer.Option(None, "--methodology", help="Methodology file (default: in force)")


@app.command()
def levels(
    data_dir: Path,
    on: str = typer.Option(None, "--date", help="Card date (default: the latest)"),
    engine: str = ENGINE,
    methodology: Path = METHODOLOGY,
) -> None:
    """Rank every family A–E by the methodology in force; write DIR/levels/."""
    from qamqor.engine import EngineError
    from qamqor.levels.compute import compute_levels

    when = _card_date(data_dir, on)
    m = _methodology(methodology, when)
    try:
        with console.status(f"levels for {when} ({m.id} {m.version}, {engine})"):
            r = compute_levels(data_dir, when, engine=engine, methodology=m)
    except (FileNotFoundError, EngineError) as e:
        _fail(str(e))
    table = Table("level", "families", title=f"Levels {when} · {m.id} {m.version}")
    for level, n in r.counts.items():
        table.add_row(level, f"{n:,}")
    console.print(table)
    console.print(f"→ {data_dir}/levels/families.parquet, summary.json")


def _print_explanation(e) -> None:
    table = Table(
        "dimension", "indicator", "value", "cut-off", "deprived", "weight", "points",
        title=f"Family {e.family_id} · {e.date} · {e.methodology}",
    )  # fmt: skip
    for i in e.indicators:
        value = f"{i.value:.4g}" if isinstance(i.value, float) else str(i.value)
        if not i.applies:
            value += " (n/a)"
        table.add_row(
            i.dimension, i.name, value, i.cutoff, "yes" if i.deprived else "no",
            f"{i.weight:g}", f"{i.points:g}",
        )  # fmt: skip
    console.print(table)
    bands = ", ".join(f"{b['level']} [{b['from']:g}, {b['to']:g})" for b in e.bands)
    console.print(f"Score {e.score:g} = sum of points ({e.deprivations} deprivations); {bands}")
    if e.emergency_trigger:
        console.print(f"Emergency trigger: {e.trigger_name} ({e.emergency_trigger}) → level E")
    console.print(f"[bold]Level {e.level}[/bold]")


@app.command()
def explain(
    family_id: str,
    data_dir: Path,
    on: str = typer.Option(None, "--date", help="Card date (default: the latest)"),
    as_json: bool = typer.Option(False, "--json"),
    lang: str = typer.Option("en", "--lang", help="kk, ru or en"),
    methodology: Path = METHODOLOGY,
    measure: str = typer.Option(None, "--measure", help="Explain a support measure instead"),
    income: bool = typer.Option(False, "--income", help="Explain the hidden-income score"),
) -> None:
    """Explain a family's level: every indicator's value, cut-off, weight and points."""
    from qamqor.levels.explain import explain_family

    if income:  # computed on demand (SHAP of the saved model), flagged or not
        from qamqor.scoring.hidden_income import explain_income

        try:
            h = explain_income(data_dir, family_id)
        except (FileNotFoundError, KeyError) as ex:
            _fail(str(ex.args[0]) if isinstance(ex, KeyError) else str(ex))
        text = json.dumps(h, default=str, ensure_ascii=False, indent=2)
        print(text if as_json else h["explanation"])
        return
    when = _card_date(data_dir, on)
    if measure:
        from qamqor.measures.explain import explain_measures
        from qamqor.measures.show import print_measure

        try:
            [me] = explain_measures(data_dir, family_id, when, [measure], lang=lang)
        except (FileNotFoundError, KeyError) as ex:
            _fail(str(ex.args[0]) if isinstance(ex, KeyError) else str(ex))
        if as_json:
            print(json.dumps(me.as_dict(), ensure_ascii=False, indent=2, default=str))
        else:
            print_measure(me, console)
        return
    m = _methodology(methodology, when)
    try:
        e = explain_family(data_dir, family_id, when, m, lang)
    except (FileNotFoundError, KeyError) as ex:
        _fail(str(ex.args[0]) if isinstance(ex, KeyError) else str(ex))
    if as_json:
        print(json.dumps(e.as_dict(), ensure_ascii=False, indent=2))
    else:
        _print_explanation(e)


@app.command()
def evaluate(
    family_json: Path,
    on: str = typer.Option(None, "--date", help="Evaluation date (default: today)"),
    as_json: bool = typer.Option(False, "--json"),
    lang: str = typer.Option("en", "--lang", help="kk, ru or en"),
    methodology: Path = METHODOLOGY,
    median: float = typer.Option(0.0, "--median-income", help="For the poverty line (SPEC §8)"),
) -> None:
    """Evaluate a hypothetical family given as a card JSON document (see docs/methodology.md)."""
    from qamqor.levels.explain import FamilyDocError, evaluate_family, family_table
    from qamqor.measures.explain import evaluate_measures
    from qamqor.measures.show import print_measure

    when = _date(on) if on else date.today()
    m = _methodology(methodology, when)
    try:
        doc = json.loads(family_json.read_text(encoding="utf-8"))
        e = evaluate_family(doc, when, m, lang)
        measures = evaluate_measures(family_table(doc, m), when, median, lang=lang)
    except OSError as ex:
        _fail(f"cannot read {family_json}: {ex.strerror}")
    except json.JSONDecodeError as ex:
        _fail(f"{family_json}: not valid JSON: {ex}")
    except FamilyDocError as ex:
        _fail(f"{family_json}: {ex}")
    if as_json:
        out = {**e.as_dict(), "measures": [x.as_dict() for x in measures]}
        print(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    else:
        _print_explanation(e)
        for x in measures:
            if x.in_force and (x.region is None or x.region == doc.get("region")):
                print_measure(x, console)


@app.command()
def entitlements(
    data_dir: Path,
    on: str = typer.Option(None, "--date", help="Card date (default: the latest)"),
    engine: str = ENGINE,
    switch: list[str] = typer.Option([], "--switch", help="Turn a switchable rule on: NAME"),
    full: bool = FULL,
) -> None:
    """Every support measure for every family and person; write DIR/entitlements/."""
    from qamqor.engine import EngineError
    from qamqor.measures.catalogue import MeasureError
    from qamqor.measures.compute import compute_entitlements
    from qamqor.measures.show import print_summary

    when = _card_date(data_dir, on)
    try:
        with console.status(f"entitlements for {when} ({engine})"):
            r = compute_entitlements(
                data_dir, when, engine, {s: True for s in switch}, keep=not full
            )
    except (FileNotFoundError, EngineError, MeasureError) as e:
        _fail(str(e))
    print_summary(r.summary, console)
    console.print(f"→ {data_dir}/entitlements/entitlements.parquet, summary.json")


@app.command("compare-methodology")
def compare_methodology(
    old: Path,
    new: Path,
    data_dir: Path,
    on: str = typer.Option(None, "--date", help="Card date (default: the latest)"),
    top: int = typer.Option(20, help="How many of the biggest movers to list"),
    out: Path = typer.Option(None, help="JSON report (default DIR/levels/comparison.json)"),
) -> None:
    """Level transition matrix between two methodology files, by region, and top movers."""
    from qamqor.levels.compare import compare_methodologies

    when = _card_date(data_dir, on)
    a, b = _methodology(old, when), _methodology(new, when)
    try:
        r = compare_methodologies(a, b, data_dir, when, top=top)
    except FileNotFoundError as e:
        _fail(str(e))
    out = out or data_dir / "levels" / "comparison.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=2, ensure_ascii=False, default=str))
    table = Table("old \\ new", *r["matrix"]["A"].keys(), title=f"{a.version} → {b.version}")
    for lv, row in r["matrix"].items():
        table.add_row(lv, *(f"{n:,}" for n in row.values()))
    console.print(table)
    console.print(f"{r['families_changing_level']:,} of {r['families']:,} families change level")
    for mv in r["top_movers"][:10]:
        console.print(
            f"  {mv['family_id']} {mv['region']}: {mv['old_level']} {mv['old_score']:g} → "
            f"{mv['new_level']} {mv['new_score']:g}"
        )
    console.print(f"→ {out}")


# --- scoring model (SPEC §7): hidden income and the vulnerability & resilience score ---------


@app.command()
def scores(
    data_dir: Path,
    on: str = typer.Option(None, "--date", help="Scoring date (default: the extract date)"),
    engine: str = typer.Option("duckdb", "--engine", help="Batch engine: duckdb or spark"),
    retrain: bool = typer.Option(False, "--retrain", help="Train the model even if saved"),
) -> None:
    """Hidden-income model and the 23-criteria score; write DIR/scores/."""
    from qamqor.engine import EngineError
    from qamqor.scoring.hidden_income import run_hidden_income
    from qamqor.scoring.score import load_criteria, run_scores

    if not (data_dir / "cards" / "families.parquet").exists():
        _fail(f"{data_dir / 'cards' / 'families.parquet'} not found: run `qamqor run` first")
    when = _date(on) if on else _extract_date(data_dir)
    steps = ("features", "training", "predicting", "scores")
    try:
        with _progress() as bar:
            task = bar.add_task("scoring", total=len(steps))

            def step(message: str) -> None:
                bar.update(task, description=message)
                bar.advance(task)

            h = run_hidden_income(data_dir, engine=engine, retrain=retrain, progress=step, on=when)
            step("scores: 23 criteria")
            r = run_scores(data_dir, when, engine=engine)
            bar.update(task, completed=len(steps))  # a saved model skips training
    except (FileNotFoundError, EngineError, ValueError) as e:
        _fail(str(e))
    m = h.metrics
    how = "trained" if h.trained else "loaded"
    console.print(f"Hidden-income model {how}: {h.flagged:,} of {h.families:,} families flagged")
    if not h.trained:
        kept = int(h.seconds.get("reused_families", 0))
        console.print(
            f"  {h.families - kept:,} families predicted (new or changed features), "
            f"{kept:,} kept from the previous run"
        )
    if m:
        console.print(
            f"  held-out R² {m['held_out_r2']:.3f}, MAE {m['held_out_mae_log']:.3f} (log), "
            f"trained on {sum(m['training_rows_per_fold']):,} observed families"
        )
    table = Table("category", "families", title=f"Scores {when}")
    for c in load_criteria().categories:
        table.add_row(c.name, f"{r.by_category.get(c.code, 0):,}")
    console.print(table)
    console.print(f"→ {data_dir}/scores/families.parquet, hidden_income.parquet, model/")


@app.command("scores-eval")
def scores_eval(data_dir: Path) -> None:
    """Hidden-income flags against the planted truth; write DIR/scores/evaluation.json."""
    from qamqor.scoring.evaluate import evaluate as evaluate_scores

    try:
        e = evaluate_scores(data_dir)
    except FileNotFoundError as ex:
        _fail(str(ex))
    console.print(
        f"precision {e['precision']:.3f}, recall {e['recall']:.3f}, F1 {e['f1']:.3f} "
        f"({e['flagged']:,} flagged, {e['hidden_income_families']:,} hiding income)"
    )
    best = ", ".join(f"{r}: {p:.3f}" for r, p in e["best_precision_at_recall"].items())
    console.print(f"best precision at recall ≥ {best}")
    console.print(f"→ {data_dir}/scores/evaluation.json")


# --- catalogue audit and reform simulation (issue 4, items 6-7) ---------------------------------


@app.command("catalogue-audit")
def catalogue_audit_cmd(
    data_dir: Path,
    on: str = typer.Option(None, "--date", help="Card date (default: the latest)"),
    engine: str = ENGINE,
) -> None:
    """Overlapping measures and regional disparity; write DIR/entitlements/catalogue_audit.json."""
    from qamqor.engine import EngineError
    from qamqor.measures.audit import catalogue_audit, print_audit
    from qamqor.measures.catalogue import MeasureError

    when = _card_date(data_dir, on)
    try:
        with console.status(f"catalogue audit for {when}"):
            a = catalogue_audit(data_dir, when, engine=engine)
    except (FileNotFoundError, EngineError, MeasureError) as e:
        _fail(str(e))
    print_audit(a, console)
    console.print(f"→ {data_dir}/entitlements/catalogue_audit.json")


@app.command()
def simulate(
    reform: Path,
    data_dir: Path,
    on: str = typer.Option(None, "--date", help="Card date (default: the latest)"),
    out: Path = typer.Option(None, "--out", help="JSON (default DIR/simulations/NAME.json)"),
    engine: str = ENGINE,
) -> None:
    """Apply a reform file, recompute the entitlements and print the impact on the baseline."""
    from qamqor.engine import EngineError
    from qamqor.measures.catalogue import MeasureError
    from qamqor.measures.simulate import print_impact
    from qamqor.measures.simulate import simulate as run_simulation

    when = _card_date(data_dir, on)
    try:
        with console.status(f"simulating {reform} on {when}"):
            r = run_simulation(reform, data_dir, when, out=out, engine=engine)
    except (FileNotFoundError, EngineError, MeasureError) as e:
        _fail(str(e))
    print_impact(r, console)
    console.print(f"→ {r['out']}")


# --- proactive offers (issue 4 item 5) -------------------------------------------------------
offer_app = typer.Typer(help="Answer a proactive offer: consent assigns the measure.")
app.add_typer(offer_app, name="offer")


@app.command("offers")
def offers_cmd(
    data_dir: Path,
    on: str = typer.Option(None, "--date", help="Entitlements run date (default: the latest)"),
    expire_days: int = typer.Option(30, "--expire-days", help="Open offers expire after"),
) -> None:
    """Create the day's proactive offers from the latest two entitlement runs."""
    from qamqor.measures.offers import OfferError, create_offers

    try:
        r = create_offers(data_dir, _date(on) if on else None, expire_days=expire_days)
    except OfferError as e:
        _fail(str(e))
        return
    if r.previous is None:
        console.print(f"{r.on}: first entitlements run, the baseline: no offers")
    t = Table(title=f"Offers {r.on} (compared with {r.previous})")
    t.add_column("measure")
    t.add_column("new offers", justify="right")
    for m, n in r.created.items():
        t.add_row(m, f"{n:,}")
    t.add_row("total", f"{r.total:,}")
    console.print(t)
    console.print(f"already offered {r.already:,} · expired {r.expired:,} · store {r.url}")


def _answer_offer(fn_name: str, offer_id: int, data_dir: Path, on: str | None) -> None:
    from qamqor.measures import offers

    try:
        o = getattr(offers, fn_name)(offer_id, data_dir, on=_date(on) if on else None)
    except offers.OfferError as e:
        _fail(str(e))
        return
    console.print(f"offer {o.id} ({o.measure}, family {o.family_id}): {o.status}")


@offer_app.command("consent")
def offer_consent(
    offer_id: int, data_dir: Path, on: str = typer.Option(None, "--date", help="Default: today")
) -> None:
    """The citizen consents: the measure is assigned."""
    _answer_offer("consent", offer_id, data_dir, on)


@offer_app.command("decline")
def offer_decline(
    offer_id: int, data_dir: Path, on: str = typer.Option(None, "--date", help="Default: today")
) -> None:
    """The citizen declines: recorded, nothing assigned."""
    _answer_offer("decline", offer_id, data_dir, on)


@app.command("audit")
def audit_cmd(
    data_dir: Path, on: str = typer.Option(None, "--date", help="Default: today")
) -> None:
    """Improper-payment findings: DIR/audit/findings.parquet (docs/audit.md)."""
    from qamqor.audit.findings import AuditError, run_audit

    try:
        r = run_audit(data_dir, _date(on) if on else date.today())
    except AuditError as e:
        _fail(str(e))
        return
    for t, n in r.by_type.items():
        console.print(f"{t:26} {n:>8,}")
    console.print(
        f"{r.findings:,} findings, {r.amount_at_risk / 1e6:,.1f} M KZT a year at risk → {r.path}"
    )


@app.command("audit-eval")
def audit_eval_cmd(data_dir: Path) -> None:
    """Score the findings against the planted truth: DIR/audit/evaluation.json."""
    from qamqor.audit.evaluate import evaluate

    try:
        r = evaluate(data_dir)
    except FileNotFoundError as e:
        _fail(str(e))
        return
    table = Table(
        "type", "findings", "planted", "precision", "any error", "recall", "F1", "money planted",
        "money found",
    )  # fmt: skip
    for t, v in r["types"].items():
        cells = [
            f"{v[k]:.2f}" if v[k] is not None else "—"
            for k in ("precision", "precision_any", "recall", "f1")
        ]
        table.add_row(
            t,
            f"{v['findings']:,}",
            f"{v['planted']:,}" if v["planted"] is not None else "not planted",
            *cells,
            f"{v['money_planted']:,.0f}",
            f"{v['money_found']:,.0f}",
        )
    console.print(table)
    for kind, link in (r.get("linkage") or {}).items():
        console.print(
            f"identity linkage, {kind} pairs: {link['pairs_found']:,} of {link['planted']:,} "
            f"planted, precision {link['precision'] or 0:.3f}, recall {link['recall'] or 0:.3f},"
            f" F1 {link['f1'] or 0:.3f}"
        )
    console.print(f"→ {data_dir / 'audit' / 'evaluation.json'}")


@app.command("audit-report")
def audit_report_cmd(
    data_dir: Path,
    on: str = typer.Option(None, "--date", help="Default: the date of the audit"),
    top: int = typer.Option(2000, min=1, help="Findings listed in the page (largest first)"),
    truth: bool = typer.Option(True, help="Targeting against truth/ (an evaluation) if present"),
) -> None:
    """The audit report: DIR/audit/report.html, report.json, targeting.json (docs/audit.md)."""
    from qamqor.audit.report import ReportError, build_report
    from qamqor.audit.targeting import TargetingError

    try:
        r = build_report(data_dir, _date(on) if on else None, top, truth)
    except (ReportError, TargetingError) as e:
        _fail(str(e))
        return
    t = "with targeting against truth/" if r.targeting else "without targeting (no truth/)"
    console.print(f"{r.listed:,} of {r.findings:,} findings listed, {t} → {r.html}, {r.json}")


# --- identity linkage (issue 5, item 2) -------------------------------------------------------
def _linkage_mapping(config: Path):
    from qamqor.linkage import LinkageError, load_mapping

    try:
        return load_mapping(config)
    except LinkageError as ex:
        _fail(str(ex))
        raise


@app.command("link")
def link_cmd(
    left: Path = typer.Argument(..., help="Left person table (.csv or .parquet)"),
    right: Path = typer.Argument(..., help="Right person table (.csv or .parquet)"),
    config: Path = typer.Option(..., "--config", help="Mapping YAML (docs/linkage.md)"),
    out: Path = typer.Option(..., "--out", help="Matched pairs (.parquet)"),
    model: Path = typer.Option(None, "--model", help="Reuse a trained model JSON; no training"),
    save_model: Path = typer.Option(None, "--save-model", help="Write the trained model JSON"),
) -> None:
    """Link two person tables: the same person under different records, with probabilities."""
    from qamqor.linkage import LinkageError, link

    mapping = _linkage_mapping(config)
    try:
        pairs = link(left, right, mapping, out, model=model, save_model=save_model)
    except LinkageError as ex:
        _fail(str(ex))
    console.print(f"{len(pairs):,} matched pairs (p ≥ {mapping.threshold}) → {out}")


@app.command("dedupe")
def dedupe_cmd(
    table: Path = typer.Argument(..., help="Person table (.csv or .parquet)"),
    config: Path = typer.Option(..., "--config", help="Mapping YAML (docs/linkage.md)"),
    out: Path = typer.Option(..., "--out", help="Clusters (.parquet)"),
    model: Path = typer.Option(None, "--model", help="Reuse a trained model JSON; no training"),
    save_model: Path = typer.Option(None, "--save-model", help="Write the trained model JSON"),
) -> None:
    """Find records of the same person within one table and write clusters."""
    from qamqor.linkage import LinkageError, dedupe

    mapping = _linkage_mapping(config)
    try:
        clusters = dedupe(table, mapping, out, model=model, save_model=save_model)
    except LinkageError as ex:
        _fail(str(ex))
    multi = clusters.loc[clusters["cluster_size"] > 1, "cluster_id"].nunique()
    console.print(f"{len(clusters):,} records, {multi:,} clusters with duplicates → {out}")


from qamqor import cli_ops  # noqa: E402,F401  (registers the operational commands)

if __name__ == "__main__":
    app()
