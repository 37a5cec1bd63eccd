"""The same person under two population records, both paid: Splink dedupe of the payees.

Used by the audit (`duplicate_identity`, docs/audit.md). IIN and address are left out: a second
identity has its own IIN and its own address, they are what differs. Names, patronymic, birth
date, sex and what each record is paid decide.

The m probabilities (how often the records of one person disagree) are set from clerical error
rates rather than trained: duplicates are a fraction of a percent of the payees, too few for EM,
which then learns families (shared surname and patronymic) instead of persons. The u
probabilities (how often two different persons agree) are estimated from the data by random
sampling, and the prior from pairs equal on names and birth date.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pandas as pd
import splink.comparison_level_library as cll
from splink import block_on
from splink.blocking_rule_library import CustomRule

from qamqor.linkage.mapping import LinkageError, Mapping, Side
from qamqor.linkage.model import _levels, dedupe_pairs, settings
from qamqor.linkage.normalise import normalise_name, normalise_sex

# Pairs scored, each rule an equality join (cheap on millions of records): the same birth date
# and first name (surname changed or mistyped); day and month swapped, with the same first name
# (one rule serves both ways round: a pair is unordered and swapping is its own inverse, so
# l.dob = r.dob_swap exactly when l.dob_swap = r.dob); the same birth date, surname and
# patronymic (first name in another spelling); the same names and birth year (a mistyped
# birth date; see `_one_digit_only`).
SAME_NAMES_YEAR = ("birth_year", "first_name", "surname", "patronymic")
BLOCKING = (
    ("dob", "first_name"),
    CustomRule("l.dob_swap = r.dob AND l.first_name = r.first_name"),
    ("dob", "surname", "patronymic"),
    SAME_NAMES_YEAR,
)
ONE_DIGIT = 'levenshtein(l."dob", r."dob") <= 1'  # the dob comparison's one-digit level
# The same names and birth dates one digit apart, as equality joins: with dates written
# YYYY-MM-DD the digit is in the day (year and month equal) or in the month (year and day equal).
SAME_NAMES = 'l."first_name" = r."first_name" AND l."surname" = r."surname" AND ' \
    'l."patronymic" = r."patronymic"'  # fmt: skip
ONE_DIGIT_RULES = (
    f'{SAME_NAMES} AND substr(l."dob", 1, 7) = substr(r."dob", 1, 7) AND {ONE_DIGIT}',
    f'{SAME_NAMES} AND l."birth_year" = r."birth_year" '
    f'AND substr(l."dob", 9, 2) = substr(r."dob", 9, 2) AND {ONE_DIGIT}',
)
# m of each level after the null one, best first (docs/linkage.md: levels of each comparison).
M = {
    "first_name": (0.88, 0.06, 0.03, 0.03),  # exact, Jaro-Winkler ≥ 0.92, ≥ 0.80, else
    # exact, Jaro-Winkler ≥ 0.92, ≥ 0.80, two women's different surnames (a married woman's
    # new surname: 1 record in 5), else (men keep their surname)
    "surname": (0.70, 0.08, 0.04, 0.17, 0.01),
    "patronymic": (0.90, 0.05, 0.03, 0.02),
    "dob": (0.85, 0.06, 0.05, 0.02, 0.02),  # exact, day/month swapped, one digit, year, else
    # a second identity exists to be paid: it draws the same benefits in the same amounts, or
    # some of them
    "benefits": (0.60, 0.35, 0.05),
}
THRESHOLD = 0.95
# the columns of `same_person`: the pair, its probability, and the normalised values compared
PAIRS = ["id_l", "id_r", "match_probability", "match_weight"] + [
    f"{c}_{side}" for c in ("surname", "first_name", "patronymic", "dob") for side in "lr"
]
COLUMNS = ("iin", "surname", "first_name", "patronymic", "birth_date", "sex", "benefits")


def mapping(threshold: float = THRESHOLD, seed: int = 42) -> Mapping:
    """The population register's columns; the record id is the IIN."""
    side = Side({"id": "iin", "surname": "surname", "first_name": "first_name",
                 "patronymic": "patronymic", "birth_date": "birth_date", "sex": "sex"})  # fmt: skip
    return Mapping(left=side, right=side, table=side, threshold=threshold, seed=seed)


def _benefits_comparison():
    """What each record is paid: the same `measure:amount` set, at least one in common, else."""
    return _levels("benefits", [
        cll.NullLevel("benefits"),
        cll.ExactMatchLevel("benefits"),
        cll.CustomLevel(
            "len(list_intersect(string_split(benefits_l, '|'), string_split(benefits_r, '|'))) > 0",
            "a benefit in common",
        ),
        cll.ElseLevel(),
    ], M)  # fmt: skip


def _surname_comparison():
    """The surname, with a woman's other surname (after marriage) apart from a man's."""
    return _levels("surname", [
        cll.NullLevel("surname"),
        cll.ExactMatchLevel("surname"),
        cll.JaroWinklerLevel("surname", 0.92),
        cll.JaroWinklerLevel("surname", 0.80),
        cll.CustomLevel("sex_l = 'F' AND sex_r = 'F'", "a woman's other surname"),
        cll.ElseLevel(),
    ], M)  # fmt: skip


def same_person(people, threshold: float = THRESHOLD,
                model: Path | str | None = None,
                save_model: Path | str | None = None) -> pd.DataFrame:  # fmt: skip
    """Pairs of population records that are one person: `id_l`, `id_r` (the IINs),
    `match_probability`, `match_weight` and the normalised values compared.

    `people` (a pandas frame or an Arrow table) has `COLUMNS`; `birth_date` is a date or ISO
    text; `benefits` is what the record is paid: its distinct `measure:amount` strings, sorted
    and joined with `|`."""
    m = mapping(threshold)
    if len(people) < 2:
        return pd.DataFrame(columns=PAIRS)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.register("people_in", people)
    prepared = _prepare(con, "people_in")
    extra = (_surname_comparison(), _benefits_comparison())
    cfg = settings("dedupe_only", BLOCKING, M, extra, ("surname", "iin", "address"),
                   prior=_prior(con, prepared))  # fmt: skip
    iso = con.execute(f"SELECT bool_and(regexp_full_match(dob, '\\d{{4}}-\\d{{2}}-\\d{{2}}')) "
                      f"FROM {prepared}").fetchall()[0][0] is not False  # fmt: skip
    con.unregister("people_in")
    pairs = dedupe_pairs(prepared, m, sets=cfg, training=(), prior=False, model=model,
                         save_model=save_model, con=con,
                         refine=lambda fit: _one_digit_only(fit, threshold, iso))  # fmt: skip
    con.close()
    return pairs.drop(columns=["iin_l", "iin_r"], errors="ignore")


def _prepare(con: duckdb.DuckDBPyConnection, people: str) -> str:
    """The payees as `qamqor.linkage.model.prepare` gives them (its columns, the same values),
    plus `benefits`, built in SQL: at national scale (millions of payees) pandas string work
    took most of the linkage's time. The names are normalised in Python once per distinct
    spelling. Returns the name of the table."""
    bad = con.execute(f"SELECT count(*) - count(iin), count(iin) - count(DISTINCT iin) "
                      f"FROM {people}").fetchall()[0]  # fmt: skip
    if bad[0] or bad[1]:
        raise LinkageError("population: id column 'iin' has empty or repeated values")
    spellings = con.execute(
        f"SELECT DISTINCT v FROM (SELECT unnest([surname, first_name, patronymic]) AS v "
        f"FROM {people}) WHERE v IS NOT NULL"
    ).fetchall()
    names = pd.DataFrame({"raw": [v for (v,) in spellings]}, dtype=object)
    names["norm"] = [normalise_name(v) for v in names["raw"]]
    sex = con.execute(f"SELECT DISTINCT sex FROM {people} WHERE sex IS NOT NULL").fetchall()
    sexes = pd.DataFrame({"raw": [v for (v,) in sex]}, dtype=object)
    sexes["norm"] = [normalise_sex(v) for v in sexes["raw"]]
    con.register("name_norm", names.astype({"norm": object}))
    con.register("sex_norm", sexes.astype({"norm": object}))
    con.execute(
        f"""
        CREATE TABLE prepared AS
        WITH p AS (SELECT *, TRY_CAST(birth_date AS DATE) AS d FROM {people})
        SELECT p.iin::VARCHAR AS unique_id, s.norm::VARCHAR AS surname,
               f.norm::VARCHAR AS first_name, pa.norm::VARCHAR AS patronymic,
               x.norm::VARCHAR AS sex, strftime(p.d, '%Y-%m-%d') AS dob,
               CASE WHEN day(p.d) <= 12 AND day(p.d) <> month(p.d)
                    THEN year(p.d)::VARCHAR || '-' || lpad(day(p.d)::VARCHAR, 2, '0') || '-'
                         || lpad(month(p.d)::VARCHAR, 2, '0') END AS dob_swap,
               year(p.d)::VARCHAR AS birth_year, left(f.norm, 1)::VARCHAR AS fn_initial,
               NULL::VARCHAR AS iin, NULL::VARCHAR AS address, p.benefits::VARCHAR AS benefits
        FROM p LEFT JOIN name_norm s ON s.raw = p.surname
        LEFT JOIN name_norm f ON f.raw = p.first_name
        LEFT JOIN name_norm pa ON pa.raw = p.patronymic
        LEFT JOIN sex_norm x ON x.raw = p.sex
        """
    )
    return "prepared"


def _prior(con: duckdb.DuckDBPyConnection, prepared: str) -> float:
    """λ as Splink estimates it (pairs equal on names and birth date, assumed to be 70 % of the
    matches), but never 0: a small register may hold no such pair."""
    same, n = con.execute(
        f"""
        SELECT (SELECT coalesce(sum(k * (k - 1) // 2), 0) FROM (
                  SELECT count(*) AS k FROM {prepared}
                  WHERE first_name IS NOT NULL AND surname IS NOT NULL AND dob IS NOT NULL
                  GROUP BY first_name, surname, dob)),
               (SELECT count(*) FROM {prepared})
        """
    ).fetchall()[0]
    return max(float(same), 1.0) / 0.7 / (n * (n - 1) / 2)


def _weight(level: dict) -> float | None:
    """A level's match weight as Splink computes it (m and u clamped at 1e-300)."""
    if level.get("is_null_level"):
        return 0.0
    m, u = level.get("m_probability"), level.get("u_probability")
    if m is None or u is None:
        return None
    return math.log2(max(m, 1e-300) / max(u, 1e-300))


def _one_digit_only(model: dict, threshold: float, iso: bool = False) -> dict | None:
    """The model with its last blocking rule (same names and birth year) narrowed to birth
    dates one digit apart, when the trained model shows that no other pair of that rule can
    reach the threshold; None (predict as trained) otherwise.

    That rule's pairs agree exactly on first name, surname and patronymic, and the earlier
    rules took every pair with the same or a day/month-swapped birth date, so their birth-date
    level is 'one digit' or 'birth year'. A pair at 'birth year' weighs at most the prior +
    the three exact names + 'birth year' + the best level of every other comparison; with the
    m and u of these registers that is about 3 bits under the threshold (0.95: 4.25 bits), so
    such pairs are never predicted and need not be compared (at 6.3 M families they were 12 of
    the 22 million pairs scored). The result is the same pairs with the same probabilities.
    With every birth date written YYYY-MM-DD (`iso`) the narrowed rule is two equality joins
    (`ONE_DIGIT_RULES`), else the rule with `ONE_DIGIT` added. Anything else than the model
    built here (levels, rules) leaves it untouched."""
    rules = [r["blocking_rule"] for r in model.get("blocking_rules_to_generate_predictions", [])]
    expected = [
        (block_on(*rule) if isinstance(rule, tuple) else rule)
        .get_blocking_rule("duckdb").blocking_rule_sql
        for rule in BLOCKING
    ]  # fmt: skip
    if rules != expected:
        return None
    levels = {c["output_column_name"]: c["comparison_levels"] for c in model["comparisons"]}
    if any(_weight(x) is None for lv in levels.values() for x in lv):
        return None  # a level without m or u: Splink falls back to defaults, kept as trained
    fixed = {name: f'"{name}_l" = "{name}_r"' for name in SAME_NAMES_YEAR[1:]}
    dob = ['"dob_l" = "dob_r"', "dob_swap_l = dob_r", 'levenshtein("dob_l", "dob_r") <= 1',
           '"birth_year_l" = "birth_year_r"', "ELSE"]  # fmt: skip
    parts = []
    for name, cond in fixed.items():  # the exact level, first after the null one
        lv = [x for x in levels.get(name, []) if not x.get("is_null_level")]
        if not lv or lv[0]["sql_condition"] != cond:
            return None
        parts.append(_weight(lv[0]))
    lv = [x for x in levels.get("dob", []) if not x.get("is_null_level")]
    if [x["sql_condition"] for x in lv] != dob:
        return None
    parts.append(_weight(lv[3]))  # 'birth year'
    for name, lv in levels.items():  # the best level of each other comparison
        if name not in fixed and name != "dob":
            parts.append(max(_weight(x) for x in lv))
    lam = model["probability_two_random_records_match"]
    best = math.log2(lam / (1 - lam)) + sum(parts)
    if best >= math.log2(threshold / (1 - threshold)) - 1e-6:
        return None
    narrowed = dict(model)
    narrowed["blocking_rules_to_generate_predictions"] = [
        *model["blocking_rules_to_generate_predictions"][:-1],
        *({"blocking_rule": rule, "sql_dialect": "duckdb"}
          for rule in (ONE_DIGIT_RULES if iso else (f"{rules[-1]} AND {ONE_DIGIT}",))),
    ]  # fmt: skip
    return narrowed
