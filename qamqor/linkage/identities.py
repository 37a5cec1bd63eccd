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

from pathlib import Path

import pandas as pd
import splink.comparison_level_library as cll
from splink.blocking_rule_library import CustomRule

from qamqor.linkage.mapping import Mapping, Side
from qamqor.linkage.model import _levels, dedupe_pairs, prepare, settings

# Pairs scored, each rule an equality join (cheap on millions of records): the same birth date
# and first name (surname changed or mistyped); day and month swapped, with the same first name
# (either way round); the same birth date, surname and patronymic (first name in another
# spelling); the same names and birth year (a mistyped birth date).
BLOCKING = (
    ("dob", "first_name"),
    CustomRule("l.dob_swap = r.dob AND l.first_name = r.first_name"),
    CustomRule("l.dob = r.dob_swap AND l.first_name = r.first_name"),
    ("dob", "surname", "patronymic"),
    ("birth_year", "first_name", "surname", "patronymic"),
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


def same_person(people: pd.DataFrame, threshold: float = THRESHOLD,
                model: Path | str | None = None,
                save_model: Path | str | None = None) -> pd.DataFrame:  # fmt: skip
    """Pairs of population records that are one person: `id_l`, `id_r` (the IINs),
    `match_probability`, `match_weight` and the normalised values compared.

    `people` has `COLUMNS`; `benefits` is what the record is paid: its distinct
    `measure:amount` strings, sorted and joined with `|`."""
    m = mapping(threshold)
    if len(people) < 2:
        return pd.DataFrame(columns=PAIRS)
    prepared = prepare(people.astype({"birth_date": "string"}), m.table, "population")
    prepared["benefits"] = people["benefits"].to_numpy()
    extra = (_surname_comparison(), _benefits_comparison())
    cfg = settings("dedupe_only", BLOCKING, M, extra, ("surname", "iin", "address"),
                   prior=_prior(prepared))  # fmt: skip
    pairs = dedupe_pairs(prepared, m, sets=cfg, training=(), prior=False, model=model,
                         save_model=save_model)  # fmt: skip
    return pairs.drop(columns=["iin_l", "iin_r"], errors="ignore")


def _prior(prepared: pd.DataFrame) -> float:
    """λ as Splink estimates it (pairs equal on names and birth date, assumed to be 70 % of the
    matches), but never 0: a small register may hold no such pair."""
    keys = prepared[["first_name", "surname", "dob"]].dropna()
    k = keys.value_counts().to_numpy()
    n = len(prepared)
    return max(float((k * (k - 1) / 2).sum()), 1.0) / 0.7 / (n * (n - 1) / 2)
