"""Reform simulation (issue 4, item 7): a named overlay over the catalogue and the parameters,
recomputed with the same rules engine and compared with the baseline.

A reform file (YAML, validated like a catalogue file, errors as `FILE:LINE: problem`):

    reform: asp-poverty-line-40pct          # the name (default: the file name)
    description: …
    parameters:                             # a dated value, from `from` to the next entry
      - {name: poverty_line_median_share, from: 2025-01-01, value: 0.40}
    change:                                 # a measure's amount or condition thresholds
      - id: asp
        amount: …                           # optional
        conditions: {income_below_line: income_for_asp < 1.1 * poverty_line}
        add_conditions: [{id: …, text: …, when: …}]
        drop_conditions: [social_contract]
    add: [<a measure as in a catalogue file, with an optional `region`>]
    drop: [astana_pensioner_holiday]
    merge:                                  # several measures replaced by one
      - measures: [almaty_large_family_supplement, astana_large_family_utilities]
        into: <a measure>

`simulate` applies the reform in memory (a modified `Catalogue` and `Country`), runs
`compute_entitlements` into a scratch folder and compares family by family with the baseline:
annual cost, recipients gained and lost (families entitled to any of the measures whose payments
changed), families better and worse off with their average gain and loss — in total, by region,
by well-being level (A–E) and by decile of per-capita income (families ranked by the card's
`income_per_capita_3m`, decile 1 the poorest).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from datetime import date
from pathlib import Path

from pydantic import Field
from rich import box
from rich.console import Console
from rich.table import Table

from qamqor.countries import Country, ParameterValue, load_country
from qamqor.datafile import load_model
from qamqor.engine import connect, sql_path
from qamqor.expressions import ExpressionError, check_expression
from qamqor.levels.compute import card_path
from qamqor.measures.audit import annual_sql, entitlements_dir, levels_path
from qamqor.measures.catalogue import (
    LANGUAGES,
    Catalogue,
    Condition,
    Measure,
    MeasureError,
    _Model,
    load_catalogue,
)
from qamqor.measures.compute import compute_entitlements

EPS = 0.5  # KZT a year: smaller differences are rounding, not a change


class ReformError(MeasureError):
    """A reform file that cannot be applied; the message names the file, line and problem."""


class ParameterChange(_Model):
    name: str
    start: date = Field(alias="from")
    value: float | str | None
    reference: str = ""


class MeasureChange(_Model):
    id: str
    amount: str | None = None
    amount_text: str | None = None
    conditions: dict[str, str] = Field(default_factory=dict)  # condition id -> its new `when`
    add_conditions: list[Condition] = Field(default_factory=list)
    drop_conditions: list[str] = Field(default_factory=list)


class Merge(_Model):
    measures: list[str] = Field(min_length=2)
    into: Measure


class Reform(_Model):
    reform: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str
    parameters: list[ParameterChange] = Field(default_factory=list)
    change: list[MeasureChange] = Field(default_factory=list)
    add: list[Measure] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)
    merge: list[Merge] = Field(default_factory=list)

    @property
    def name(self) -> str:
        return self.reform or "reform"


def load_reform(
    path: Path, catalogue: Catalogue | None = None, country: Country | None = None
) -> tuple[Reform, Catalogue, Country]:
    """Read, validate and apply a reform file: (the reform, the reformed catalogue, the country
    with the reformed parameters). Raises `ReformError("FILE:LINE: problem")`."""
    path = Path(path)
    cat = catalogue or load_catalogue()
    country = country or load_country()
    r, _, fail = load_model(path, Reform, ReformError)
    if r.reform is None:
        r = r.model_copy(update={"reform": path.stem})

    def check(expr: str, m: Measure, loc: tuple) -> None:
        try:
            check_expression(expr, m.names)
        except ExpressionError as e:
            raise fail(loc, f"measure {m.id!r}: {e}") from None

    def known(mid: str, loc: tuple) -> None:
        if mid not in measures:
            raise fail(loc, f"unknown measure {mid!r} (known: {', '.join(sorted(measures))})")

    def new_measure(m: Measure, loc: tuple) -> Measure:
        if m.id in measures:
            raise fail((*loc, "id"), f"measure {m.id!r} already exists")
        if m.region is not None and m.region not in country.region_codes:
            raise fail((*loc, "region"), f"unknown region {m.region!r}")
        missing = [lang for lang in LANGUAGES if not m.name.get(lang, "").strip()]
        if missing:
            raise fail((*loc, "name"), f"measure {m.id!r}: name lacks {', '.join(missing)}")
        for ci, c in enumerate(m.eligibility):
            check(c.when, m, (*loc, "eligibility", ci, "when"))
        check(m.amount, m, (*loc, "amount"))
        return m

    # parameters
    params = dict(country.parameters)
    for i, pc in enumerate(r.parameters):
        loc = ("parameters", i)
        if pc.name not in params:
            raise fail((*loc, "name"), f"unknown parameter {pc.name!r}")
        p = params[pc.name]
        numeric = all(isinstance(v.value, (int, float)) for v in p.values if v.value is not None)
        if numeric and isinstance(pc.value, str):
            raise fail((*loc, "value"), f"parameter {pc.name!r} takes a number")
        values = [v for v in p.values if v.start != pc.start]
        ref = pc.reference or f"reform {r.name}"
        values.append(ParameterValue(start=pc.start, value=pc.value, reference=ref))
        params[pc.name] = p.model_copy(
            update={"values": tuple(sorted(values, key=lambda v: v.start))}
        )
    reformed = dataclasses.replace(country, parameters=params)

    # measures
    measures: dict[str, Measure] = {m.id: m for m in cat.measures}
    sources = dict(cat.sources)
    for i, ch in enumerate(r.change):
        loc = ("change", i)
        known(ch.id, (*loc, "id"))
        m = measures[ch.id]
        conds = {c.id: c for c in m.eligibility}
        for cid, when in ch.conditions.items():
            if cid not in conds:
                raise fail((*loc, "conditions", cid), f"measure {m.id!r} has no condition {cid!r}")
            check(when, m, (*loc, "conditions", cid))
            conds[cid] = conds[cid].model_copy(
                update={"when": when, "text": f"{conds[cid].text} (reform: {when})"}
            )
        for ci, cid in enumerate(ch.drop_conditions):
            if cid not in conds:
                raise fail(
                    (*loc, "drop_conditions", ci), f"measure {m.id!r} has no condition {cid!r}"
                )
            del conds[cid]
        for ci, c in enumerate(ch.add_conditions):
            if c.id in conds:
                raise fail((*loc, "add_conditions", ci, "id"), f"condition {c.id!r} exists")
            check(c.when, m, (*loc, "add_conditions", ci, "when"))
            conds[c.id] = c
        if not conds:
            raise fail(loc, f"measure {m.id!r} would have no condition left")
        update: dict = {"eligibility": list(conds.values())}
        if ch.amount is not None:
            check(ch.amount, m, (*loc, "amount"))
            update["amount"] = ch.amount
            update["amount_text"] = ch.amount_text or f"{ch.amount} (reform)"
        measures[m.id] = m.model_copy(update=update)
        sources[m.id] = f"{path} (changed)"
    for i, mid in enumerate(r.drop):
        known(mid, ("drop", i))
        del measures[mid]
    for i, mg in enumerate(r.merge):
        for j, mid in enumerate(mg.measures):
            known(mid, ("merge", i, "measures", j))
        for mid in mg.measures:
            del measures[mid]
        measures[mg.into.id] = new_measure(mg.into, ("merge", i, "into"))
        sources[mg.into.id] = f"{path} (merges {', '.join(mg.measures)})"
    for i, m in enumerate(r.add):
        measures[m.id] = new_measure(m, ("add", i))
        sources[m.id] = f"{path} (added)"
    for i, m in enumerate(r.add):  # an added measure may only refer to measures that remain
        for j, other in enumerate(m.incompatible_with):
            known(other, ("add", i, "incompatible_with", j))
    final = [
        m.model_copy(
            update={"incompatible_with": [o for o in m.incompatible_with if o in measures]}
        )
        for m in measures.values()
    ]
    return r, Catalogue(measures=final, sources={m.id: sources[m.id] for m in final}), reformed


# --- the impact ---------------------------------------------------------------------------------

DIMENSIONS = {"region": "region", "level": "level", "decile": "decile"}


def simulate(
    reform_file: Path,
    data_dir: Path,
    on: date,
    out: Path | None = None,
    engine: str = "duckdb",
    country: str = "kz",
) -> dict:
    """Apply the reform, recompute the entitlements of `on` and compare them with the baseline;
    write the impact as JSON (`out`, default DIR/simulations/<reform>.json) and return it."""
    data_dir = Path(data_dir)
    cat = load_catalogue(country)
    c = load_country(country)
    reform, new_cat, new_country = load_reform(reform_file, cat, c)
    cards = card_path(data_dir, on)
    levels = levels_path(data_dir, on)
    (data_dir / "simulations").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir / "simulations", prefix=".sim-") as tmp:
        base = entitlements_dir(data_dir, on, Path(tmp) / "baseline", cat, engine)
        after = compute_entitlements(
            data_dir, on, engine, catalogue=new_cat, pack=new_country, out=Path(tmp) / "reform"
        )
        before = json.loads((base / "summary.json").read_text())
        result = impact(
            base / "entitlements.parquet", after.out / "entitlements.parquet", cards, levels
        )
    result = {
        "reform": reform.name,
        "description": reform.description,
        "file": str(reform_file),
        "date": on.isoformat(),
        "changes": describe(reform),
        "poverty_line": {
            "before": before["poverty_line"]["by_region"],
            "after": after.summary["poverty_line"]["by_region"],
        },
        **result,
    }
    out = Path(out) if out else data_dir / "simulations" / f"{reform.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    result["out"] = str(out)
    return result


def describe(r: Reform) -> list[str]:
    out = [f"parameter {p.name} = {p.value} from {p.start.isoformat()}" for p in r.parameters]
    for ch in r.change:
        what = [f"condition {k}: {v}" for k, v in ch.conditions.items()]
        what += [f"amount: {ch.amount}"] if ch.amount else []
        what += [f"+ condition {c.id}: {c.when}" for c in ch.add_conditions]
        what += [f"- condition {c}" for c in ch.drop_conditions]
        out.append(f"measure {ch.id}: {'; '.join(what)}")
    out += [f"add {m.id} ({m.region or 'national'})" for m in r.add]
    out += [f"drop {m}" for m in r.drop]
    out += [f"merge {', '.join(m.measures)} into {m.into.id}" for m in r.merge]
    return out


def impact(before: Path, after: Path, cards: Path, levels: Path) -> dict:
    """Family-by-family comparison of two entitlements files."""
    con = connect()
    con.execute(f"CREATE VIEW b AS {annual_sql(before)}")
    con.execute(f"CREATE VIEW a AS {annual_sql(after)}")
    con.execute(
        """CREATE TABLE fm AS
           SELECT coalesce(b.family_id, a.family_id) AS family_id,
                  coalesce(b.measure, a.measure) AS measure,
                  coalesce(b.annual, 0) AS before, coalesce(a.annual, 0) AS after
           FROM b FULL JOIN a ON a.family_id = b.family_id AND a.measure = b.measure"""
    )
    by_measure = {
        m: {
            "families_before": int(fb),
            "families_after": int(fa),
            "annual_before": round(cb, 2),
            "annual_after": round(ca, 2),
            "annual_change": round(ca - cb, 2),
        }
        for m, fb, fa, cb, ca, changed in con.execute(
            f"""SELECT measure, count(*) FILTER (WHERE before > 0),
                       count(*) FILTER (WHERE after > 0), sum(before), sum(after),
                       bool_or(abs(after - before) > {EPS})
                FROM fm GROUP BY 1 ORDER BY 1"""
        ).fetchall()
        if changed
    }
    affected = sorted(by_measure)
    con.execute("CREATE TABLE aff (measure VARCHAR)")
    if affected:
        con.executemany("INSERT INTO aff VALUES (?)", [(m,) for m in affected])
    con.execute(
        f"""CREATE TABLE fam AS
            WITH t AS (
              SELECT family_id, sum(before) AS before, sum(after) AS after,
                     sum(before) FILTER (WHERE measure IN (SELECT measure FROM aff)) AS b_aff,
                     sum(after) FILTER (WHERE measure IN (SELECT measure FROM aff)) AS a_aff
              FROM fm GROUP BY 1)
            SELECT c.family_id, c.region, coalesce(l.level, '?') AS level,
                   ntile(10) OVER (ORDER BY c.income_per_capita_3m, c.family_id) AS decile,
                   coalesce(t.before, 0) AS before, coalesce(t.after, 0) AS after,
                   coalesce(t.b_aff, 0) AS b_aff, coalesce(t.a_aff, 0) AS a_aff
            FROM read_parquet({sql_path(cards)}) c
            LEFT JOIN read_parquet({sql_path(levels)}) l USING (family_id)
            LEFT JOIN t USING (family_id)"""
    )
    metrics = f"""count(*), count(*) FILTER (WHERE b_aff > 0), count(*) FILTER (WHERE a_aff > 0),
        count(*) FILTER (WHERE b_aff = 0 AND a_aff > 0),
        count(*) FILTER (WHERE b_aff > 0 AND a_aff = 0),
        sum(before), sum(after),
        count(*) FILTER (WHERE after - before > {EPS}),
        count(*) FILTER (WHERE after - before < -{EPS}),
        avg(after - before) FILTER (WHERE after - before > {EPS}),
        avg(after - before) FILTER (WHERE after - before < -{EPS})"""
    keys = (
        "families", "recipients_before", "recipients_after", "gained", "lost",
        "annual_before", "annual_after", "better_off", "worse_off", "avg_gain", "avg_loss",
    )  # fmt: skip

    def row(values) -> dict:
        d = dict(zip(keys, values, strict=True))
        d = {k: (round(float(v), 2) if isinstance(v, float) else v) for k, v in d.items()}
        d["annual_change"] = round(d["annual_after"] - d["annual_before"], 2)
        return d

    out: dict = {"affected_measures": affected}
    out["total"] = row(con.execute(f"SELECT {metrics} FROM fam").fetchone())
    for name, col in DIMENSIONS.items():
        rows = con.execute(f"SELECT {col}, {metrics} FROM fam GROUP BY 1 ORDER BY 1").fetchall()
        out[f"by_{name}"] = {str(k): row(rest) for k, *rest in rows}
    out["by_measure"] = by_measure
    con.close()
    return out


def print_impact(r: dict, console: Console) -> None:
    """The impact table (fits 80 columns): recipients of the affected measures, annual cost
    change in millions, families better and worse off with their average change in thousands."""
    console.print(f"[bold]{r['reform']}[/bold]: {r['description']}")
    for c in r["changes"]:
        console.print(f"  · {c}")
    console.print(f"  measures whose payments change: {', '.join(r['affected_measures']) or '—'}")
    t = Table(
        "group", "recipients\nbefore→after", "gained/\nlost", "cost\nchange, M",
        "better\noff", "avg\ngain, k", "worse\noff", "avg\nloss, k",
        title=f"Impact on {r['date']} (annual, KZT)", box=box.SIMPLE_HEAD, pad_edge=False,
    )  # fmt: skip
    for col in t.columns[1:]:
        col.justify = "right"
    for col in t.columns[:3]:
        col.no_wrap = True

    def add(label: str, d: dict, end: bool = False) -> None:
        t.add_row(
            label, f"{d['recipients_before']:,}→{d['recipients_after']:,}",
            f"+{d['gained']:,}/-{d['lost']:,}", f"{d['annual_change'] / 1e6:+,.1f}",
            f"{d['better_off']:,}", f"{(d['avg_gain'] or 0) / 1e3:+,.0f}",
            f"{d['worse_off']:,}", f"{(d['avg_loss'] or 0) / 1e3:+,.0f}", end_section=end,
        )  # fmt: skip

    add("all families", r["total"], end=True)
    for dim, label in (("by_region", ""), ("by_level", "level "), ("by_decile", "decile ")):
        groups = list(r[dim].items())
        if dim == "by_region":  # only the regions where something changes
            groups = [(k, d) for k, d in groups if d["better_off"] or d["worse_off"]]
        for i, (k, d) in enumerate(groups):
            add(f"{label}{k}", d, end=i == len(groups) - 1)
    console.print(t)
    t = Table(
        "measure", "families\nbefore→after", "annual\nbefore, M", "annual\nchange, M",
        box=box.SIMPLE_HEAD, pad_edge=False,
    )  # fmt: skip
    for col in t.columns[1:]:
        col.justify = "right"
    for m, d in r["by_measure"].items():
        t.add_row(
            m, f"{d['families_before']:,}→{d['families_after']:,}",
            f"{d['annual_before'] / 1e6:,.1f}", f"{d['annual_change'] / 1e6:+,.1f}",
        )  # fmt: skip
    console.print(t)
