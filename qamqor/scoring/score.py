"""The vulnerability & resilience score: the criteria of criteria.yaml as one SQL SELECT.

The batch runs the SELECT over every card through `run_query` (DuckDB or Spark); `score_family`
runs the very same SELECT over a one-row in-memory table, so a family's points, totals and
category are the batch's exactly, and adds each criterion's value and reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qamqor.countries import load_country
from qamqor.engine import run_query

CRITERIA_FILE = Path(__file__).with_name("criteria.yaml")
GROUPS = ("material", "non_material", "dependency_load", "capacity", "hidden_income")
N_CRITERIA = 23
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_VALUE = re.compile(r"\bvalue\b")
_SEP = ",\n       "


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    when: str
    points: int
    reason: str


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    group: str
    dimension: str
    value: str
    bands: list[Band] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"criterion name {v!r} must be snake_case")
        return v

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        if v not in GROUPS:
            raise ValueError(f"group {v!r} is not one of {', '.join(GROUPS)}")
        return v


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str
    name: str
    description: str
    min_total: int | None


class Criteria(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str
    valid_from: date
    parameters: dict[str, float]
    categories: list[Category] = Field(min_length=6, max_length=6)
    criteria: list[Criterion]

    @model_validator(mode="after")
    def _check(self) -> Criteria:
        names = [c.name for c in self.criteria]
        if len(names) != N_CRITERIA or len(set(names)) != N_CRITERIA:
            raise ValueError(f"need {N_CRITERIA} criteria with distinct names, got {len(names)}")
        mins = [c.min_total for c in self.categories]
        if mins[-1] is not None or any(m is None for m in mins[:-1]):
            raise ValueError("every category but the last needs min_total; the last has none")
        if mins[:-1] != sorted(mins[:-1], reverse=True) or len(set(mins[:-1])) != len(mins) - 1:
            raise ValueError("category min_total must strictly decrease")
        return self


def load_criteria(path: Path = CRITERIA_FILE) -> Criteria:
    """The criteria file, validated."""
    return Criteria.model_validate(yaml.safe_load(Path(path).read_text()))


@cache
def _default_criteria() -> Criteria:
    return load_criteria()


@cache
def _country():
    return load_country("kz")


def _pm_expr(on: date) -> str:
    """The regional subsistence minimum on `on` as a CASE over the card's region code."""
    country = _country()
    national = float(country.parameter("pm").at(on))
    arms = " ".join(
        f"WHEN '{r.code}' THEN {country.regional_pm(r.code, on):.2f}" for r in country.regions
    )
    return f"(CASE region {arms} ELSE {national:.2f} END)"


def _templates(crit: Criteria, on: date) -> dict[str, str]:
    mrp = float(_country().parameter("mrp").at(on))
    return {
        "pm": _pm_expr(on),
        "mrp": f"{mrp:.2f}",
        "income": "(income_per_capita_3m * members)",
        **{k: f"{v:g}" for k, v in crit.parameters.items()},
    }


def _fill(text: str, t: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: t[m.group(1)], text)


@cache
def _default_ctes(on: date) -> str:
    return _ctes(_default_criteria(), on)


def _ctes(crit: Criteria, on: date) -> str:
    t = _templates(crit, on)
    values = _SEP.join(f"{_fill(c.value, t)} AS v_{c.name}" for c in crit.criteria)
    bands, points = [], []
    for c in crit.criteria:
        arms = " ".join(
            f"WHEN {_fill(_VALUE.sub(f'v_{c.name}', b.when), t)} THEN {i}"
            for i, b in enumerate(c.bands, 1)
        )
        bands.append(f"CASE {arms} ELSE 0 END AS b_{c.name}")
        parr = " ".join(f"WHEN {i} THEN {b.points}" for i, b in enumerate(c.bands, 1))
        points.append(f"CASE b_{c.name} {parr} ELSE 0 END AS p_{c.name}")
    groups = _SEP.join(
        f"{' + '.join(f'p_{c.name}' for c in crit.criteria if c.group == g) or '0'} AS {g}"
        for g in GROUPS
        if g != "hidden_income"
    )
    hidden_points = " + ".join(f"p_{c.name}" for c in crit.criteria if c.group == "hidden_income")
    return f"""
    WITH c AS (  -- the flagged families only are joined (a few per cent: a small hash table)
      SELECT card.*, h.family_id IS NOT NULL AS hidden_income_flag
      FROM card LEFT JOIN (SELECT family_id FROM hidden WHERE hidden_income_flag) h
        ON h.family_id = card.family_id
    ),
    v AS (
      SELECT c.*,
       {values}
      FROM c
    ),
    b AS (
      SELECT v.*,
       {_SEP.join(bands)}
      FROM v
    ),
    p AS (
      SELECT b.*,
       {_SEP.join(points)}
      FROM b
    ),
    g AS (
      SELECT p.*,
       {groups},
       {hidden_points or "0"} AS hidden_income_points
      FROM p
    ),
    s AS (
      SELECT g.*,
       {" + ".join(g for g in GROUPS if g != "hidden_income")} + hidden_income_points AS total
      FROM g
    )"""


def _category(crit: Criteria) -> str:
    arms = " ".join(f"WHEN total >= {c.min_total} THEN '{c.code}'" for c in crit.categories[:-1])
    return f"CASE {arms} ELSE '{crit.categories[-1].code}' END"


def score_sql(on: date, crit: Criteria | None = None) -> str:
    """The batch SELECT over tables `card` and `hidden` (family_id, hidden_income_flag)."""
    ctes = _default_ctes(on) if crit is None else _ctes(crit, on)
    crit = crit or _default_criteria()
    cols = ", ".join(f"p_{c.name}" for c in crit.criteria)
    return f"""{ctes}
    SELECT family_id, {cols},
           {", ".join(g for g in GROUPS if g != "hidden_income")},
           hidden_income_flag, total, {_category(crit)} AS category
    FROM s
    """  # unsorted, as every batch output (a sort of the whole table cost a third of the step)


def detail_sql(on: date, crit: Criteria | None = None) -> str:
    """The same CTEs, returning every value (v_*) and band (b_*) for explanations."""
    ctes = _default_ctes(on) if crit is None else _ctes(crit, on)
    return f"{ctes}\n    SELECT * FROM s ORDER BY family_id"


@dataclass(frozen=True)
class ScoresResult:
    families: int
    by_category: dict[str, int]
    out: Path


def run_scores(data_dir: Path, on: date, engine: str = "duckdb") -> ScoresResult:
    """Write DIR/scores/families.parquet from the cards and the hidden-income flags."""
    data_dir = Path(data_dir)
    card = data_dir / "cards" / "families.parquet"
    hidden = data_dir / "scores" / "hidden_income.parquet"
    for path, hint in ((card, "`qamqor run` first"), (hidden, "the hidden-income step first")):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: run {hint}")
    out = data_dir / "scores" / "families.parquet"
    n = run_query(score_sql(on), {"card": card, "hidden": hidden}, out, engine=engine)
    rows = duckdb.execute(
        "SELECT category, count(*) FROM read_parquet(?) GROUP BY 1", [str(out)]
    ).fetchall()
    return ScoresResult(n, dict(rows), out)


def score_family(
    card: dict[str, Any], hidden: dict[str, Any] | None = None, on: date | None = None
) -> dict[str, Any]:
    """Score one family (a dict of card columns) with the batch SQL; explain every criterion.

    `hidden` is the family's row of hidden_income.parquet (or None: not flagged); `on` the
    scoring date (the parameters' date; default: the criteria's valid_from).
    """
    crit = _default_criteria()
    on = on or crit.valid_from
    con = duckdb.connect(":memory:")
    con.register("card_in", pa.Table.from_pylist([card]))
    con.execute("CREATE TABLE card AS SELECT * FROM card_in")
    flag = bool(hidden and hidden.get("hidden_income_flag"))
    con.execute("CREATE TABLE hidden (family_id VARCHAR, hidden_income_flag BOOLEAN)")
    con.execute("INSERT INTO hidden VALUES (?, ?)", [card.get("family_id"), flag])
    batch = con.execute(score_sql(on))
    row = dict(zip([d[0] for d in batch.description], batch.fetchone(), strict=True))
    detail = con.execute(detail_sql(on))
    full = dict(zip([d[0] for d in detail.description], detail.fetchone(), strict=True))
    criteria = []
    for c in crit.criteria:
        band = full[f"b_{c.name}"]
        reason = c.bands[band - 1].reason if band else None
        if c.name == "hidden_income" and band and hidden and hidden.get("explanation"):
            reason = f"{reason}: {hidden['explanation']}"
        criteria.append(
            {
                "name": c.name,
                "group": c.group,
                "dimension": c.dimension,
                "value": full[f"v_{c.name}"],
                "points": row[f"p_{c.name}"],
                "reason": reason,
            }
        )
    category = next(k for k in crit.categories if k.code == row["category"])
    return {
        "family_id": row["family_id"],
        "criteria": criteria,
        **{g: row[g] for g in GROUPS if g != "hidden_income"},
        "hidden_income_flag": row["hidden_income_flag"],
        "total": row["total"],
        "category": row["category"],
        "category_name": category.name,
        "category_description": category.description,
    }
