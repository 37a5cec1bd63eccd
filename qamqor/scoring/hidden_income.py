"""Hidden income: declared income far below what a family's assets and spending imply.

A LightGBM regression learns a family's expected log monthly **earned** income — wages,
self-employment and pensions: the income that buys a lifestyle and can be under-declared; state
benefits are neither (they are paid on the declared income, so they would also leak it) — from
the signals of the card that money buys (property, vehicles, deposits, loans and their payments,
housing costs and area, utilities, livestock), its composition and place, and the declared
earned income and assets of the other families registered at the same address. It is trained
only on families whose income is fully observed (see `observed`). Every family is predicted by a
model that did not see it (two folds by family_id), a second model learns how far off the first
typically is for families like it, and the gap is standardised:

    z = (ln expected − ln declared earned) / (1.2533 · typical |gap|)   (≈ standard deviations)

Declared pay per earner below the minimum wage (an informal-employment sign, 0–1) adds up to
INFORMAL_WEIGHT. A family with declared work income is flagged when z + weight · sign ≥
THRESHOLD, the one-sided normal quantile of FALSE_FLAG_RATE; the explanation lists the three
signals that pushed its expected income up most (LightGBM `pred_contrib`, i.e. SHAP values).
See docs/scoring.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from statistics import NormalDist

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qamqor.engine import (
    PARQUET_COMPRESSION,
    atomic_dir,
    connect,
    fetch_arrow,
    run_query,
    sql_path,
)
from qamqor.ids import pseudonym_numbers

SEED = 20251001
# z is ≈ N(0, 1) for an honest family (the scale model makes it so): flag where an honest
# family's score would fall once in FALSE_FLAG_RATE, not a value tuned to a nation's truth
# (docs/scoring.md: threshold).
FALSE_FLAG_RATE = 0.001
THRESHOLD = round(NormalDist().inv_cdf(1 - FALSE_FLAG_RATE), 2)  # 3.09
INFORMAL_WEIGHT = 2.0  # a declared wage at a third of the minimum adds 2 σ
MINIMUM_WAGE = 85_000  # MZP, tenge a month, 2024–2025 (republican budget laws)
INCOME_FLOOR = 10_000  # declared earned income below this counts as this on the log scale
MAX_TRAIN_PER_FOLD = 120_000  # subsample the training population of larger nations
FOLDS = 2
# A saved model scores the daily runs until it is due: its data RETRAIN_DAYS (a quarter: the
# quarterly income and contribution figures) from the scoring date, or the nation's number of
# families moved by more than RETRAIN_SIZE_CHANGE (`retrain_reason`).
RETRAIN_DAYS = 91
RETRAIN_SIZE_CHANGE = 0.10
SD_PER_MEAN_ABS = 1.2533  # σ / E|x| for a normal distribution

MEAN_PARAMS = {
    "objective": "huber",  # robust to the few hidden-income families among the observed
    "alpha": 0.5,
    "learning_rate": 0.12,
    "num_leaves": 24,
    "max_depth": 5,  # shallow trees keep SHAP explanations cheap (cost grows with depth²)
    "min_data_in_leaf": 50,
    "num_iterations": 150,
}
SCALE_PARAMS = {
    "objective": "l1",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "max_depth": 5,
    "min_data_in_leaf": 200,
    "num_iterations": 100,
}
COMMON_PARAMS = {
    "seed": SEED,
    "deterministic": True,
    "force_col_wise": True,
    "num_threads": 1,  # fixed: identical models everywhere, and fastest on a busy 2-core box
    "verbose": -1,
}
# Prediction and SHAP contributions are computed row by row, so every thread count gives the
# same numbers: they use every core (QAMQOR_THREADS overrides), training keeps one thread.
PREDICT_THREADS = int(os.environ.get("QAMQOR_THREADS", os.cpu_count() or 2))
CHUNK = 500_000  # families turned into a feature matrix at a time (≈ 180 MB), to bound memory
# Model inputs: name → what a reader of an explanation sees.
FEATURES: dict[str, str] = {
    "property_value": "value of real estate",
    "dwellings": "dwellings owned",
    "commercial": "commercial properties",
    "land_plots": "land plots",
    "vehicles": "vehicles",
    "vehicle_value": "value of vehicles",
    "value_per_vehicle": "value per vehicle",
    "deposits": "bank deposits",
    "debt": "loan balance",
    "loan_payments": "monthly loan payments",
    "non_mortgage_debt": "non-mortgage debt",
    "microcredit_debt": "microcredit debt",
    "max_overdue_days": "longest overdue, days",
    "housing_costs": "monthly housing and utility costs",
    "housing_costs_per_m2": "housing costs per m²",
    "housing_area_m2": "housing area, m²",
    "area_per_person": "area per person, m²",
    "tenure": "tenure",
    "water": "piped water",
    "sewerage": "sewerage",
    "gas": "gas",
    "heating": "heating",
    "internet": "internet",
    "large_livestock": "cattle, horses, camels",
    "small_livestock": "sheep and goats",
    "region": "region",
    "urban": "urban",
    "members": "members",
    "adults": "adults",
    "children": "children",
    "pensioners": "pensioners",
    "disabled": "persons with disability",
    "able_bodied": "able-bodied adults",
    "working": "members with declared work income",
    "youngest_adult_age": "age of the youngest adult",
    "household_families": "families at the address",
    "others_members": "people of other families at the address",
    "others_income": "declared earned income of other families at the address",
    "others_working": "earners of other families at the address",
    "others_pensioners": "pensioners of other families at the address",
    "others_property_value": "real estate of other families at the address",
    "others_vehicle_value": "vehicles of other families at the address",
    "others_deposits": "deposits of other families at the address",
    "others_loan_payments": "loan payments of other families at the address",
}
CATEGORICAL = ("region", "tenure", "heating")
# Who the family is and where it lives: the model needs them for a fair expectation, but they
# are context, not evidence, so explanations name only the other features (the signals).
CONTEXT = (
    "region", "urban", "members", "adults", "children", "pensioners", "disabled", "able_bodied",
    "working", "youngest_adult_age", "household_families", "others_members", "others_income",
    "others_working", "others_pensioners", "others_property_value", "others_vehicle_value",
    "others_deposits", "others_loan_payments",
)  # fmt: skip
# The card's housing record, identical for every family at one address: the address key
# when the card has no `household_id` column.
HOUSING_KEY = (
    "region", "district", "urban", "tenure", "housing_area_m2", "housing_costs",
    "water", "sewerage", "gas", "heating", "internet",
)  # fmt: skip
OTHERS = {
    "others_members": "members",
    "others_income": "earned_income",
    "others_working": "working",
    "others_pensioners": "pensioners",
    "others_property_value": "property_value",
    "others_vehicle_value": "vehicle_value",
    "others_deposits": "deposits",
    "others_loan_payments": "loan_payments",
}
CARD_COLUMNS = (
    "wages_3m", "wages_12m", "self_employment_3m", "self_employment_12m", "pensions_3m",
    "benefits_3m", "contributions_12m",
)  # fmt: skip


def household_sql(card_columns: set[str], hashed: bool = False) -> str:
    """The card's household key: `household_id`, else the housing record (families without
    one are households of their own); with `hashed`, its DuckDB 64-bit hash (`features_sql`)."""
    if "household_id" in card_columns:
        return "household_id"
    part = ", ".join([*HOUSING_KEY, "CASE WHEN housing_area_m2 IS NULL THEN family_id END"])
    return f"hash({part})" if hashed else part


def features_sql(card_columns: set[str], hashed: bool = False, household: bool = False) -> str:
    """One SELECT over `card`: the model's inputs, declared income and the training signals.

    With `hashed` (DuckDB), the co-residents' window partitions by the 64-bit hash of the
    housing key rather than by its eleven columns: the same households (two distinct keys
    would have to collide, odds ≈ 10⁻⁶ per run at 6 M families), ≈ 1.7 s less at 6.3 M.
    Spark's `hash` has 32 bits, so it partitions by the columns themselves. With `household`
    (and `hashed`), a last column `household` holds that hash."""
    part = household_sql(card_columns, hashed)
    key = f",\n             {part} AS household" if hashed else ""  # one expression, one column
    window = f"(PARTITION BY {'household' if hashed else part})"
    last = ",\n      household" if household and hashed else ""

    def others(name: str, col: str) -> str:
        if col != "earned_income":  # sums of whole numbers: exact in any order
            return f"CAST(sum({col}) OVER {window} - {col} AS DOUBLE) AS {name}"
        # a sum of fractional amounts (twelfths of tenge) depends on the order of its terms in
        # the last bit, and a window adds them in no fixed order: summed as DECIMAL (exact,
        # 10 decimal places) the features, so the training data's fingerprint, are the same at
        # every run (an ORDER BY family_id in the window costs three times the query)
        exact = f"CAST({col} AS DECIMAL(38, 10))"  # subtracted as DECIMAL too: 0 when alone
        return f"CAST(sum({exact}) OVER {window} - {exact} AS DOUBLE) AS {name}"

    others_sql = ",\n      ".join(others(name, col) for name, col in OTHERS.items())
    direct = [f for f in FEATURES if f not in OTHERS and f not in {"adults", "household_families"}]
    direct = [f for f in direct if f not in {"housing_costs_per_m2", "value_per_vehicle"}]
    return f"""
    WITH c AS (
      SELECT *,
             wages_12m + self_employment_12m + pensions_3m + benefits_3m AS declared_income,
             wages_12m + self_employment_12m + pensions_3m AS earned_income{key}
      FROM card
    )
    SELECT family_id, declared_income, earned_income, {", ".join(CARD_COLUMNS)},
      {", ".join(direct)},
      members - children AS adults,
      housing_costs / greatest(housing_area_m2, 1) AS housing_costs_per_m2,
      vehicle_value / greatest(vehicles, 1) AS value_per_vehicle,
      count(*) OVER {window} AS household_families,
      {others_sql}{last}
    FROM c
    """  # unsorted: the training sample is drawn in family_id order (`family_order`)


TRAINING_POPULATION = (
    "families whose income is fully observed: all of it wages backed by pension contributions "
    "(≥ 9 % of the wage over 12 months), pensions and benefits paid by the state; no "
    "self-declared self-employment income; every able-bodied adult has declared work income; "
    "declared earned income (wages and pensions) > 0"
)
TARGET = "ln(max(wages_12m + self_employment_12m + pensions_3m, floor)): declared earned income"


def observed(f: pd.DataFrame) -> np.ndarray:
    """Families whose income is fully observed, decided from the card alone (no truth)."""
    contributions_ok = f["contributions_12m"] >= 0.09 * 12 * f["wages_12m"]
    return (
        (f["earned_income"] > 0)
        & (f["self_employment_12m"] == 0)
        & (f["working"] >= f["able_bodied"])
        & contributions_ok
    ).to_numpy()


def informal_sign(f: pd.DataFrame) -> np.ndarray:
    """How far declared pay per earner falls below the minimum wage: ln(MZP / pay) in [0, 1].

    0 at or above the minimum wage, 1 at a third of it or less (an "envelope wage").
    """
    pay = (f["wages_3m"] + f["self_employment_3m"]) / np.maximum(f["working"], 1)
    sign = np.clip(np.log(MINIMUM_WAGE / np.maximum(pay.to_numpy(float), 1.0)), 0.0, 1.0)
    return np.where((f["working"] > 0).to_numpy(), sign, 0.0)


def fold_of(family_ids: pd.Series) -> np.ndarray:
    """A family's fold (FOLDS = 2): the parity of its id's last hex digit, fixed for life."""
    last = pc.utf8_slice_codeunits(pa.array(family_ids, pa.string()), -1)
    odd = pc.is_in(last, value_set=pa.array(list("13579bdfBDF")))
    return odd.to_numpy(zero_copy_only=False).astype(np.int64)


def _target(f: pd.DataFrame) -> np.ndarray:
    """ln declared earned income (wages, self-employment, pensions; benefits left out)."""
    return np.log(np.maximum(f["earned_income"].to_numpy(float), INCOME_FLOOR))


@dataclass
class Model:
    """The fold models of expected income and of its typical error, with their inputs."""

    mean: list[lgb.Booster]
    scale: list[lgb.Booster]
    vocab: dict[str, list[str]]
    meta: dict

    def column(self, f: pd.DataFrame, name: str) -> np.ndarray:
        """One feature as the model reads it: float64, NaN where missing, a category as its
        position in the vocabulary."""
        if name in CATEGORICAL:
            col = f[name]
            if isinstance(col.dtype, pd.CategoricalDtype):  # a recode of the codes
                codes = col.cat.set_categories(self.vocab[name]).cat.codes.to_numpy()
            else:
                codes = pd.Categorical(col, categories=self.vocab[name]).codes
            return np.where(codes < 0, np.nan, codes)
        return pd.to_numeric(f[name], errors="coerce").to_numpy(float, na_value=np.nan)

    def matrix(self, f: pd.DataFrame) -> np.ndarray:
        """The feature matrix (float64, NaN where missing), filled column by column."""
        x = np.empty((len(f), len(FEATURES)))
        for j, name in enumerate(FEATURES):
            x[:, j] = self.column(f, name)
        return x

    def save(self, folder: Path) -> None:
        with atomic_dir(folder) as tmp:
            for k in range(FOLDS):
                self.mean[k].save_model(str(tmp / f"mean_{k}.txt"))
                self.scale[k].save_model(str(tmp / f"scale_{k}.txt"))
            spec = {
                "features": [{"name": n, "label": FEATURES[n]} for n in FEATURES],
                "categorical": {n: self.vocab[n] for n in CATEGORICAL},
                **self.meta,
            }
            (tmp / "features.json").write_text(json.dumps(spec, indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, folder: Path) -> Model:
        spec = json.loads((folder / "features.json").read_text())
        names = [f["name"] for f in spec["features"]]
        if names != list(FEATURES):
            raise ValueError(f"{folder} was trained on other features: retrain (--retrain)")
        mean = [lgb.Booster(model_file=str(folder / f"mean_{k}.txt")) for k in range(FOLDS)]
        scale = [lgb.Booster(model_file=str(folder / f"scale_{k}.txt")) for k in range(FOLDS)]
        meta = {k: v for k, v in spec.items() if k not in {"features", "categorical"}}
        return cls(mean, scale, spec["categorical"], meta)


def _dataset(x: np.ndarray, y: np.ndarray) -> lgb.Dataset:
    cat = [list(FEATURES).index(c) for c in CATEGORICAL]
    return lgb.Dataset(
        x, y, feature_name=list(FEATURES), categorical_feature=cat, free_raw_data=True
    )


def _train(params: dict, x: np.ndarray, y: np.ndarray) -> lgb.Booster:
    return lgb.train({**COMMON_PARAMS, **params}, _dataset(x, y))


def model_version() -> str:
    """What a saved model must have been trained with to be reused: features, parameters,
    threshold and the LightGBM version (a change of any of them retrains)."""
    spec = {
        "features": list(FEATURES),
        "categorical": CATEGORICAL,
        "context": CONTEXT,
        "mean": MEAN_PARAMS,
        "scale": SCALE_PARAMS,
        "common": COMMON_PARAMS,
        "threshold": THRESHOLD,
        "target": TARGET,
        "others": OTHERS,
        "informal": [INFORMAL_WEIGHT, MINIMUM_WAGE],
        "floor": INCOME_FLOOR,
        "sample": [MAX_TRAIN_PER_FOLD, FOLDS, SEED],
        "lightgbm": lgb.__version__,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def vocabularies(f: pd.DataFrame) -> dict[str, list[str]]:
    return {c: sorted(str(v) for v in pd.unique(f[c].dropna())) for c in CATEGORICAL}


# What `observed` and `fold_of` read: the training sample is drawn from these columns alone.
OBSERVED_INPUTS = (
    "family_id", "earned_income", "self_employment_12m", "working", "able_bodied",
    "contributions_12m", "wages_12m",
)  # fmt: skip


def training_rows(ids: pa.Array | pd.Series, obs: np.ndarray) -> list[np.ndarray]:
    """Each fold's training rows (positions in `ids`, listed in family_id order): observed
    families (`obs`, `observed`) of the other fold, at most MAX_TRAIN_PER_FOLD drawn with a
    fixed seed. The draw is over the families in family_id order (`family_order`), so it does
    not depend on the order of `ids`."""
    ids = ids if isinstance(ids, pa.Array) else pa.array(ids, pa.string())
    candidates = np.nonzero(obs)[0]  # only the observed families are put in order
    candidates = candidates[family_order(ids.take(candidates))]
    fold = fold_of(ids.take(candidates))
    rng = np.random.default_rng(SEED)
    picked = []
    for k in range(FOLDS):
        rows = candidates[fold != k]
        if len(rows) > MAX_TRAIN_PER_FOLD:
            rows = rows[np.sort(rng.choice(len(rows), MAX_TRAIN_PER_FOLD, replace=False))]
        picked.append(rows)
    return picked


def training_fingerprint(vocab: dict, samples: list[pd.DataFrame]) -> str:
    """A hash of exactly what training reads: the vocabularies, and the ids, features and
    targets of each fold's training rows (`samples`, in family_id order). Training is
    deterministic, so the same fingerprint (and model version) would give the saved model
    again, byte for byte: it is reused instead."""
    h = hashlib.sha256(json.dumps(vocab, sort_keys=True).encode())
    probe = Model([], [], vocab, {})
    for sub in samples:
        h.update("\n".join(sub["family_id"].astype(str)).encode())
        h.update(np.ascontiguousarray(probe.matrix(sub)).tobytes())
        h.update(np.ascontiguousarray(_target(sub)).tobytes())
    return h.hexdigest()


def train(
    samples: list[pd.DataFrame], vocab: dict[str, list[str]], population: int
) -> tuple[Model, dict]:
    """Cross-fitted models: fold k's on `samples[k]` (observed families of the other folds,
    in family_id order, `training_rows`); returns the model and held-out metrics.
    `population`: the observed families the samples were drawn from."""
    model = Model([], [], vocab, {})
    x = [model.matrix(s) for s in samples]
    y = [_target(s) for s in samples]
    for k in range(FOLDS):
        model.mean.append(_train(MEAN_PARAMS, x[k], y[k]))
    # Held-out gaps of the training rows (each by its own fold's model, which did not see
    # it) teach the scale model what is usual for families like them.
    gaps = []
    for k in range(FOLDS):
        fold = fold_of(samples[k]["family_id"])
        gap = np.full(len(samples[k]), np.nan)
        for j in np.unique(fold):
            mine = fold == j
            gap[mine] = model.mean[j].predict(x[k][mine], num_threads=1) - y[k][mine]
        gaps.append(gap)
    for k in range(FOLDS):
        model.scale.append(_train(SCALE_PARAMS, x[k], np.abs(gaps[k])))
    # each training family once (with two folds the samples are disjoint)
    ids = np.concatenate([s["family_id"].to_numpy(str) for s in samples])
    _, first = np.unique(ids, return_index=True)
    resid = -np.concatenate(gaps)[first]
    y_used = np.concatenate(y)[first]
    metrics = {
        "training_population": population,
        "training_rows_per_fold": [len(s) for s in samples],
        "held_out_families": len(first),
        "held_out_r2": float(1 - np.sum(resid**2) / np.sum((y_used - y_used.mean()) ** 2)),
        "held_out_mae_log": float(np.mean(np.abs(resid))),
        "held_out_median_abs_gap_log": float(np.median(np.abs(resid))),
        "held_out_sd_log": float(np.std(resid)),
    }
    model.meta = {
        "threshold": THRESHOLD,
        "informal_weight": INFORMAL_WEIGHT,
        "minimum_wage": MINIMUM_WAGE,
        "income_floor": INCOME_FLOOR,
        "folds": FOLDS,
        "mean_params": {**COMMON_PARAMS, **MEAN_PARAMS},
        "scale_params": {**COMMON_PARAMS, **SCALE_PARAMS},
        "target": TARGET,
        "false_flag_rate": FALSE_FLAG_RATE,
        "training_population": TRAINING_POPULATION,
        "model_version": model_version(),
    }
    return model, metrics


# The only columns of the outputs worth a Parquet dictionary (a few feature names); trying one
# for every column cost ≈ 1.7 s of 5.2 writing the 6.3 M-family output.
SIGNALS = ["signal_1", "signal_2", "signal_3"]
EXPLAINED = (
    "signal_1", "value_1", "effect_1", "signal_2", "value_2", "effect_2",
    "signal_3", "value_3", "effect_3", "context_effect",
)  # fmt: skip
# The output's layout: a previous output is reused row by row only if it has this one.
OUTPUT_VERSION = 2


def predict(model: Model, f: pd.DataFrame, explain: np.ndarray | None = None) -> pa.Table:
    """Expected income, standardised gap, flag and the top 3 signals of the families in
    `explain` (a boolean mask; default: the flagged ones, the only ones the batch explains),
    one row per family of `f`, in its order, with the family's `feature_hash` (`run_hidden_income`
    reuses an unchanged family's row the next time)."""
    y = _target(f)
    fold = fold_of(f["family_id"])
    # Only declared work income can be under-declared: families without any are not scored.
    earners = (f["working"] > 0).to_numpy()
    expected = np.full(len(f), np.nan)
    scale = np.full(len(f), np.nan)
    todo = np.nonzero(earners)[0]  # the families the models run for
    for start in range(0, len(todo), CHUNK):  # their feature matrix a chunk at a time
        rows = todo[start : start + CHUNK]
        x = model.matrix(f.iloc[rows])
        for k in range(FOLDS):
            mine = fold[rows] == k
            if mine.any():
                expected[rows[mine]] = model.mean[k].predict(x[mine], num_threads=PREDICT_THREADS)
                scale[rows[mine]] = model.scale[k].predict(x[mine], num_threads=PREDICT_THREADS)
        del x
    scale = SD_PER_MEAN_ABS * np.maximum(scale, 0.05)
    z = (expected - y) / scale
    informal = informal_sign(f)
    score = z + model.meta["informal_weight"] * informal
    flag = earners & (score >= model.meta["threshold"])
    columns: dict[str, pa.Array] = {
        "family_id": pa.array(f["family_id"], pa.string()),
        "declared_income": pa.array(f["declared_income"].to_numpy(float)),
        "declared_earned_income": pa.array(f["earned_income"].to_numpy(float)),
        "expected_income": pa.array(np.round(np.exp(expected), 0)),
        "gap_log": pa.array(expected - y),
        "typical_gap_log": pa.array(scale),
        "z": pa.array(z),
        "informal_sign": pa.array(informal),
        "hidden_income_score": pa.array(score),
        "observed": pa.array(observed(f)),
        "hidden_income_flag": pa.array(flag),
    }
    wanted = flag if explain is None else explain & earners
    columns |= _explain(model, f, fold, columns, wanted)
    columns["feature_hash"] = pa.array(f["feature_hash"], pa.uint64(), from_pandas=True)
    return pa.table(columns)


def _explain(
    model: Model,
    f: pd.DataFrame,
    fold: np.ndarray,
    out: dict[str, pa.Array],
    explain: np.ndarray,
) -> dict[str, pa.Array]:
    """The EXPLAINED columns and `explanation`, null except for the families in `explain`.

    SHAP contributions (`pred_contrib`) are computed for those families only: they cost about
    a millisecond a family, the rest of the prediction a few microseconds. The work and the
    Python objects are for the explained rows alone; they are scattered into whole columns
    at the end (an Arrow `take` with nulls elsewhere).
    """
    names = list(FEATURES)
    rows = np.nonzero(explain)[0]  # the explained families' positions, ascending
    m = len(rows)
    signal = [np.full(m, None, dtype=object) for _ in range(3)]
    value = [np.full(m, None, dtype=object) for _ in range(3)]
    effect = [np.full(m, np.nan) for _ in range(3)]
    context = np.isin(names, CONTEXT)
    context_effect = np.full(m, np.nan)
    for k in range(FOLDS):
        pick = np.nonzero(fold[rows] == k)[0]
        if not len(pick):
            continue
        sub = f.iloc[rows[pick]]
        contrib = model.mean[k].predict(
            model.matrix(sub), pred_contrib=True, num_threads=PREDICT_THREADS
        )[:, :-1]
        context_effect[pick] = contrib[:, context].sum(axis=1)
        ranked = np.where(context, -np.inf, contrib)
        top = np.argsort(-ranked, axis=1, kind="stable")[:, :3]
        shown = sub[names].to_numpy(object)
        i = np.arange(len(pick))
        for j in range(3):
            idx = top[:, j]
            signal[j][pick] = [names[c] for c in idx]
            value[j][pick] = [_show(v) for v in shown[i, idx]]
            effect[j][pick] = contrib[i, idx]
    declared = out["declared_earned_income"].to_numpy()[rows]
    expected = out["expected_income"].to_numpy()[rows]
    benefits = out["declared_income"].to_numpy()[rows] - declared
    z = out["z"].to_numpy()[rows]
    informal = out["informal_sign"].to_numpy()[rows]
    text = np.full(m, None, dtype=object)
    for r in range(m):
        parts = [
            f"{FEATURES[signal[j][r]]} {value[j][r]} (×{np.exp(effect[j][r]):.2f})"
            for j in range(3)
        ]
        head = f"declared earned income {declared[r]:,.0f} vs expected {expected[r]:,.0f} a month"
        aside = f"; benefits {benefits[r]:,.0f} not counted" if benefits[r] >= 0.5 else ""
        head += f" (z {z[r]:.1f}{aside})"
        if informal[r] > 0:
            head += f"; declared pay per earner below the minimum wage {MINIMUM_WAGE:,}"
        text[r] = (
            f"{head}; driven by: {', '.join(parts)}; family composition, place and "
            f"co-residents ×{np.exp(context_effect[r]):.2f}"
        )
    position = np.full(len(explain), -1, dtype=np.int64)
    position[rows] = np.arange(m)
    scatter = pa.array(position, mask=position < 0)

    def whole(values: np.ndarray, kind: pa.DataType) -> pa.Array:
        return pa.array(values, kind).take(scatter)

    columns: dict[str, pa.Array] = {}
    for j in range(3):
        columns[f"signal_{j + 1}"] = whole(signal[j], pa.string())
        columns[f"value_{j + 1}"] = whole(value[j], pa.string())
        columns[f"effect_{j + 1}"] = whole(effect[j], pa.float64())
    columns["context_effect"] = whole(context_effect, pa.float64())
    columns["explanation"] = whole(text, pa.string())
    return columns


def _show(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "none"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | float | np.integer | np.floating):
        return f"{float(v):,.0f}" if abs(float(v)) >= 10 else f"{float(v):g}"
    return str(v)


@dataclass(frozen=True)
class HiddenIncomeResult:
    families: int
    flagged: int
    trained: bool
    metrics: dict
    seconds: dict
    out: Path
    reason: str = ""  # why the model was trained, or why the saved one was reused


def _card_view(con: duckdb.DuckDBPyConnection, card: Path) -> set[str]:
    """The view `card_file` over `card` in `con` (created once); returns the card's columns."""
    con.execute(
        f"CREATE TEMP VIEW IF NOT EXISTS card_file AS SELECT * FROM read_parquet({sql_path(card)})"
    )
    return set(pq.read_schema(card).names)


def _hashes(engine: str) -> str | None:
    """What makes the feature hashes of a run on `engine` (None: that engine makes none)."""
    return f"duckdb {duckdb.__version__}" if engine == "duckdb" else None


def _feature_table(
    con: duckdb.DuckDBPyConnection, card: Path, engine: str, scratch: Path, where: str = ""
) -> None:
    """Create the temporary table `features` in `con`: `features_sql` over `card` (computed by
    `engine`) and each family's `feature_hash`, DuckDB's 64-bit hash of its whole row (NULL
    when Spark computed the rows: `_hashes`). `where` restricts the card (DuckDB only)
    before the co-resident features are computed."""
    columns = _card_view(con, card)
    if engine == "duckdb":
        sql = _restricted(features_sql(columns, hashed=True, household=True), where)
        con.execute(
            f"CREATE TEMP TABLE features AS SELECT * EXCLUDE (household), {FEATURE_HASH}"
            f" FROM ({sql})"
        )
        return
    tmp = scratch / f".hidden_features-{os.getpid()}.parquet"  # Spark writes Parquet
    try:
        run_query(features_sql(columns), {"card": card}, tmp, engine=engine)
        con.execute(
            "CREATE TEMP TABLE features AS SELECT *, CAST(NULL AS UBIGINT) AS feature_hash"
            f" FROM read_parquet({sql_path(tmp)})"
        )
    finally:
        tmp.unlink(missing_ok=True)


# a family's feature row as one number (`household` is how it was computed, not a feature)
FEATURE_HASH = "hash(*COLUMNS(* EXCLUDE (household))) AS feature_hash"


def _restricted(sql: str, where: str = "") -> str:
    """`features_sql` over the view `card_file`, restricted by `where` (if any)."""
    card = f"SELECT * FROM card_file WHERE {where}" if where else "SELECT * FROM card_file"
    return f"WITH card AS ({card})" + sql.replace("WITH c AS (", ", c AS (", 1)


def _frame(table: pa.Table) -> pd.DataFrame:
    """Feature rows as the model reads them: the categorical features as pandas categories
    (the matrix recodes them cheaply), the hash as a nullable integer."""
    for name in CATEGORICAL:
        if name in table.column_names:
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, pc.dictionary_encode(table.column(name)))
    # self_destruct: Arrow buffers are freed as columns are converted (one copy at a time)
    frame = table.to_pandas(
        self_destruct=True,
        split_blocks=True,
        types_mapper={pa.uint64(): pd.UInt64Dtype()}.get,
    )
    del table
    pa.default_memory_pool().release_unused()  # what the conversion freed, back to the system
    return frame


def _features(card: Path, engine: str, scratch: Path, where: str = "") -> pd.DataFrame:
    """The model's input frame (`_feature_table`) of every family of `card`, in no fixed order
    (what depends on an order, the training sample, follows `family_order`)."""
    con = connect()
    try:
        _feature_table(con, card, engine, scratch, where)
        return _frame(fetch_arrow(con, "SELECT * FROM features"))
    finally:
        con.close()


def family_order(ids: pd.Series) -> np.ndarray:
    """Positions that order `ids` as SQL's `ORDER BY family_id` does (byte order).

    Pseudonyms (16 lowercase hex digits) sort as the 64-bit numbers they spell, so the sort is
    of one integer key (≈ 1 s at 6.3 M families; a SQL ORDER BY of the whole feature table
    cost ≈ 13 CPU-s); other ids are sorted as strings.
    """
    key = pseudonym_numbers(ids)
    if key is not None:
        return np.argsort(key, kind="stable")
    return pc.sort_indices(pa.array(ids, pa.string())).to_numpy()


def _training_samples(con: duckdb.DuckDBPyConnection) -> tuple[list[pd.DataFrame], int]:
    """Each fold's training rows of `features` (`training_rows`, whole feature rows in family_id
    order) and the number of observed families: the draw reads OBSERVED_INPUTS of every
    family (the ids kept in Arrow), and only the drawn rows are read whole, in one scan."""
    narrow = fetch_arrow(con, f"SELECT {', '.join(OBSERVED_INPUTS)} FROM features")
    ids = narrow.column("family_id").combine_chunks()
    obs = observed(narrow.drop_columns(["family_id"]).to_pandas())
    del narrow
    picked = training_rows(ids, obs)
    con.register(
        "picked",
        pa.table(
            {
                "family_id": pa.concat_arrays([ids.take(rows) for rows in picked]),
                "fold": np.repeat(np.arange(FOLDS), [len(rows) for rows in picked]),
                "rank": np.concatenate([np.arange(len(rows)) for rows in picked]),
            }
        ),
    )
    try:
        rows = _frame(
            fetch_arrow(
                con,
                "SELECT f.*, p.fold AS training_fold FROM features f"
                " JOIN picked p USING (family_id) ORDER BY p.fold, p.rank",
            )
        )
    finally:
        con.unregister("picked")
    bounds = np.cumsum([0, *(len(r) for r in picked)])
    samples = [
        rows.iloc[bounds[k] : bounds[k + 1]].drop(columns="training_fold").reset_index(drop=True)
        for k in range(FOLDS)
    ]
    return samples, int(obs.sum())


def _vocabularies(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """`vocabularies` of the card (`card_file`): the categorical features are card columns."""
    return {
        c: sorted(
            str(v)
            for (v,) in con.execute(
                f"SELECT DISTINCT {c} FROM card_file WHERE {c} IS NOT NULL"
            ).fetchall()
        )
        for c in CATEGORICAL
    }


def _saved(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / "features.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _output_key(model_meta: dict, hashes: str | None) -> dict:
    """What an output's rows were computed with: reused only under the same key."""
    keys = ("model_version", "training_fingerprint")
    return {**{k: model_meta.get(k) for k in keys}, "hashes": hashes, "output": OUTPUT_VERSION}


def _written_key(path: Path) -> dict | None:
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[b"qamqor"])
    except (FileNotFoundError, OSError, ValueError, KeyError):
        return None


def retrain_reason(
    saved: dict | None, vocab: dict[str, list[str]], families: int, on: date | None, asked: bool
) -> str:
    """Why the model must be trained before scoring, or "" to score with the saved one: it is
    missing or of another model version, the data have a category it never saw, the number of
    families moved by more than RETRAIN_SIZE_CHANGE, or (with a scoring date `on`) its data
    are RETRAIN_DAYS or more from that date. Other changes of the data do not retrain it: a
    published model scores every daily run until it is due (docs/scoring.md)."""
    if asked:
        return "asked to retrain"
    if saved is None:
        return "no saved model"
    if saved.get("model_version") != model_version():
        return "the saved model is of another model version"
    known = saved.get("categorical", {})
    new = {c: sorted(set(v) - set(known.get(c, []))) for c, v in vocab.items()}
    if any(new.values()):
        return f"categories the saved model never saw: { ({c: v for c, v in new.items() if v}) }"
    before = saved.get("families") or 0
    if abs(families - before) > RETRAIN_SIZE_CHANGE * before:
        return f"{families:,} families against {before:,} when the saved model was trained"
    if on is not None:
        since = saved.get("data_date")
        if since is None:
            return "the saved model does not record the date of its data"
        age = (on - date.fromisoformat(since)).days
        if abs(age) >= RETRAIN_DAYS:
            return f"the saved model's data are {age} days from {on} (due every {RETRAIN_DAYS})"
    return ""


def run_hidden_income(
    data_dir: Path,
    engine: str = "duckdb",
    retrain: bool = False,
    progress: Callable[[str], None] | None = None,
    on: date | None = None,
) -> HiddenIncomeResult:
    """Train (or reuse) the model, predict every family, write DIR/scores/hidden_income.parquet.

    The saved model (DIR/scores/model/) scores the run unless `retrain_reason` gives a reason
    to train it first (`on`: the scoring date, for the model's age). With the saved model, the
    previous output's row of every family whose `feature_hash` is unchanged is kept as it is,
    and only the other families are predicted.
    """
    data_dir = Path(data_dir)
    card = data_dir / "cards" / "families.parquet"
    if not card.exists():
        raise FileNotFoundError(f"{card} not found: run `qamqor run` (or `qamqor cards`) first")
    scores = data_dir / "scores"
    scores.mkdir(parents=True, exist_ok=True)
    model_dir = scores / "model"
    target = scores / "hidden_income.parquet"
    say = progress or (lambda _s: None)
    seconds: dict[str, float] = {}
    metrics: dict = {}
    con = connect()
    try:
        t = time.perf_counter()
        _card_view(con, card)
        vocab = _vocabularies(con)
        [(families,)] = con.execute("SELECT count(*) FROM card_file").fetchall()
        saved = _saved(model_dir)
        reason = retrain_reason(saved, vocab, int(families), on, retrain)
        trained = bool(reason)
        seconds["checking"] = time.perf_counter() - t
        t = time.perf_counter()
        part = target.with_name(".hidden_income.parquet.tmp")
        part.unlink(missing_ok=True)  # a run killed half-way left it: never published
        hashes = _hashes(engine)
        key = _output_key(saved or {}, hashes)
        if hashes and not trained and _written_key(target) == key:
            say("hidden income: families whose features changed")
            reused = _update(con, card, target, part, key, lambda: Model.load(model_dir))
            seconds["update"] = time.perf_counter() - t
        else:
            say("hidden income: features")
            _feature_table(con, card, engine, scores)
            seconds["features"] = time.perf_counter() - t
            t = time.perf_counter()
            if trained:
                say("hidden income: training")
                samples, population = _training_samples(con)
                fingerprint = training_fingerprint(vocab, samples)
                model, metrics = train(samples, vocab, population)
                del samples
                model.meta |= {
                    "training_fingerprint": fingerprint,
                    "families": int(families),
                    "data_date": on.isoformat() if on else None,
                }
                model.save(model_dir)
                seconds["training"] = time.perf_counter() - t
                t = time.perf_counter()
            else:
                model = Model.load(model_dir)
            say("hidden income: predicting")
            _predict_all(con, model, part, _output_key(model.meta, hashes))
            reused = 0
            seconds["prediction"] = time.perf_counter() - t
        if part.exists():  # else every family was unchanged: the previous output stands
            part.replace(target)
        if not trained:
            reason = f"saved model reused (trained on the data of {saved.get('data_date')})"
    finally:
        con.close()
    written = pq.read_table(target, columns=["hidden_income_flag", "observed"])
    flags = written.column("hidden_income_flag").to_numpy().astype(bool)
    seen = written.column("observed").to_numpy().astype(bool)
    n, flagged = len(flags), int(flags.sum())
    (model_dir / "memo.parquet").unlink(missing_ok=True)  # an earlier version's reuse file
    if trained:
        metrics.update(
            families=n,
            flagged=flagged,
            flagged_share=flagged / max(n, 1),
            observed_flagged_share=float(flags[seen].mean()) if seen.any() else float("nan"),
            threshold=THRESHOLD,
            seconds={k: round(v, 2) for k, v in seconds.items()},
        )
        (model_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    seconds["reused_families"] = reused
    return HiddenIncomeResult(n, flagged, trained, metrics, seconds, target, reason)


def _predict_all(con: duckdb.DuckDBPyConnection, model: Model, part: Path, key: dict) -> None:
    """Predict every family of `features` and write the output to `part`, CHUNK families at a
    time (the whole nation's feature frame is never built: 6.8 → GiB peak at 6.3 M)."""
    reader = con.sql("SELECT * FROM features").to_arrow_reader(CHUNK)
    memory = pa.default_cpu_memory_manager()
    writer = None
    try:
        for batch in reader:
            rows = pa.Table.from_batches([batch.copy_to(memory)])
            table = predict(model, _frame(rows)).replace_schema_metadata(
                {"qamqor": json.dumps(key)}
            )
            if writer is None:
                writer = pq.ParquetWriter(
                    part, table.schema, compression=PARQUET_COMPRESSION, use_dictionary=SIGNALS
                )
            writer.write_table(table)
        if writer is None:  # no family: an empty output with the same columns
            empty = predict(model, _frame(reader.schema.empty_table()))
            pq.write_table(empty.replace_schema_metadata({"qamqor": json.dumps(key)}), part)
    finally:
        if writer is not None:
            writer.close()


def _update(
    con: duckdb.DuckDBPyConnection,
    card: Path,
    previous: Path,
    part: Path,
    key: dict,
    load: Callable[[], Model],
) -> int:
    """Write to `part` the rows of `previous` (an output of the same key) whose family and
    feature hash are unchanged, and the families that are new or changed predicted afresh
    (the model loaded only if there are any); returns the rows kept. Nothing is written when
    every family is unchanged: `previous` is the output.

    The feature rows of the nation are hashed as they stream past, never stored: one full join
    with the previous output's (family_id, feature_hash) finds the changed families and the
    previous rows no longer valid. Only the households of the changed families are read again,
    whole, so that their co-resident features equal the nation's.
    """
    columns = _card_view(con, card)
    sql = _restricted(features_sql(columns, hashed=True, household=True))
    prev = f"read_parquet({sql_path(previous)})"
    con.execute(
        f"""CREATE TEMP TABLE diff AS
        SELECT coalesce(f.family_id, p.family_id) AS family_id, f.household,
               f.family_id IS NULL AS stale
        FROM (SELECT family_id, household, {FEATURE_HASH} FROM ({sql})) f
        FULL JOIN (SELECT family_id, feature_hash FROM {prev}) p
          ON p.family_id = f.family_id AND p.feature_hash = f.feature_hash
        WHERE f.family_id IS NULL OR p.family_id IS NULL"""
    )
    [(changed, stale)] = con.execute(
        "SELECT count(*) FILTER (WHERE NOT stale), count(*) FILTER (WHERE stale) FROM diff"
    ).fetchall()
    [(families,)] = con.execute("SELECT count(*) FROM card_file").fetchall()
    if not changed and not stale:
        return int(families)
    kept = f"SELECT p.* FROM {prev} p ANTI JOIN (SELECT family_id FROM diff WHERE stale) s"
    kept += " ON s.family_id = p.family_id"
    if changed:
        homes = household_sql(columns, hashed=True)
        _feature_table(
            con, card, "duckdb", part.parent,
            where=f"{homes} IN (SELECT household FROM diff WHERE NOT stale)",
        )  # fmt: skip
        rows = fetch_arrow(
            con,
            "SELECT f.* FROM features f SEMI JOIN (SELECT family_id FROM diff WHERE NOT stale) d"
            " ON d.family_id = f.family_id",
        )
        con.register("fresh", predict(load(), _frame(rows)))
        kept += " UNION ALL BY NAME SELECT * FROM fresh"
    meta = json.dumps(key).replace("'", "''")
    con.execute(
        f"COPY ({kept}) TO {sql_path(part)} (FORMAT parquet, COMPRESSION "
        f"{PARQUET_COMPRESSION}, KV_METADATA {{qamqor: '{meta}'}})"
    )
    return int(families) - int(changed)


def explain_income(data_dir: Path, family_id: str) -> dict:
    """One family's hidden-income row computed on demand with the saved model, SHAP signals
    included whether or not it is flagged (the batch explains flagged families only).

    Only the families registered at the same housing record are read, so the co-resident
    features equal the batch's.
    """
    data_dir = Path(data_dir)
    card = data_dir / "cards" / "families.parquet"
    model_dir = data_dir / "scores" / "model"
    if not card.exists():
        raise FileNotFoundError(f"{card} not found: run `qamqor cards` first")
    if _saved(model_dir) is None:
        raise FileNotFoundError(f"no model in {model_dir}: run `qamqor scores` first")
    con = connect(threads=1)
    try:
        row = con.execute(
            f"SELECT * FROM read_parquet({sql_path(card)}) WHERE family_id = ?", [family_id]
        ).fetchone()
    finally:
        con.close()
    if row is None:
        raise KeyError(f"no family {family_id!r} in {card}")
    columns = set(pq.read_schema(card).names)
    if "household_id" in columns:
        where = "household_id = (SELECT household_id FROM card_file WHERE family_id = {fid})"
    else:
        keys = " AND ".join(
            f"{k} IS NOT DISTINCT FROM (SELECT {k} FROM card_file WHERE family_id = {{fid}})"
            for k in HOUSING_KEY
        )
        where = f"(housing_area_m2 IS NOT NULL AND {keys}) OR family_id = {{fid}}"
    fid = "'" + family_id.replace("'", "''") + "'"
    f = _features(card, "duckdb", data_dir / "scores", where.format(fid=fid))
    table = predict(Model.load(model_dir), f, explain=(f["family_id"] == family_id).to_numpy())
    out = table.to_pandas()
    [rec] = out[out["family_id"] == family_id].to_dict("records")
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()}
