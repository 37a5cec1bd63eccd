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
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

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
    query_arrow,
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


def features_sql(card_columns: set[str]) -> str:
    """One SELECT over `card`: the model's inputs, declared income and the training signals."""
    if "household_id" in card_columns:
        part = "household_id"
    else:  # families without a housing record are households of their own
        part = ", ".join([*HOUSING_KEY, "CASE WHEN housing_area_m2 IS NULL THEN family_id END"])
    window = f"(PARTITION BY {part})"

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
             wages_12m + self_employment_12m + pensions_3m AS earned_income
      FROM card
    )
    SELECT family_id, declared_income, earned_income, {", ".join(CARD_COLUMNS)},
      {", ".join(direct)},
      members - children AS adults,
      housing_costs / greatest(housing_area_m2, 1) AS housing_costs_per_m2,
      vehicle_value / greatest(vehicles, 1) AS value_per_vehicle,
      count(*) OVER {window} AS household_families,
      {others_sql}
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

    def row_hashes(self, f: pd.DataFrame) -> np.ndarray:
        """`row_hash` of each family's matrix row, summed column by column without building
        the matrix (1.3 s at 6.3 M families, the matrix and its hash 3.9 s)."""
        return _hash_columns((self.column(f, name) for name in FEATURES), len(f))

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


def training_rows(f: pd.DataFrame, order: np.ndarray | None = None) -> list[np.ndarray]:
    """Each fold's training rows (positions in `f`, listed in family_id order): observed
    families of the other fold, at most MAX_TRAIN_PER_FOLD drawn with a fixed seed. The draw
    is over the families in family_id order (`order`, else `family_order`), so it does not
    depend on the order of `f`."""
    order = family_order(f["family_id"]) if order is None else order
    obs, fold = observed(f)[order], fold_of(f["family_id"])[order]
    rng = np.random.default_rng(SEED)
    picked = []
    for k in range(FOLDS):
        rows = np.nonzero(obs & (fold != k))[0]  # ranks in family_id order
        if len(rows) > MAX_TRAIN_PER_FOLD:
            rows = rows[np.sort(rng.choice(len(rows), MAX_TRAIN_PER_FOLD, replace=False))]
        picked.append(order[rows])
    return picked


def training_fingerprint(f: pd.DataFrame, vocab: dict, picked: list[np.ndarray]) -> str:
    """A hash of exactly what training reads: the vocabularies, and the ids, features and
    targets of the training rows. Training is deterministic, so the same fingerprint (and
    model version) would give the saved model again, byte for byte: it is reused instead."""
    h = hashlib.sha256(json.dumps(vocab, sort_keys=True).encode())
    probe = Model([], [], vocab, {})
    for rows in picked:
        sub = f.iloc[rows]
        h.update("\n".join(sub["family_id"].astype(str)).encode())
        h.update(np.ascontiguousarray(probe.matrix(sub)).tobytes())
        h.update(np.ascontiguousarray(_target(sub)).tobytes())
    return h.hexdigest()


def train(f: pd.DataFrame, picked: list[np.ndarray] | None = None) -> tuple[Model, dict]:
    """Cross-fitted models on the observed families; returns the model and held-out metrics."""
    model = Model([], [], vocabularies(f), {})
    picked = picked if picked is not None else training_rows(f)
    used = np.unique(np.concatenate(picked))
    # only the training rows are turned into a matrix (a whole nation's would not fit twice)
    x, y = model.matrix(f.iloc[used]), _target(f.iloc[used])
    fold = fold_of(f["family_id"].iloc[used])
    local = [np.searchsorted(used, rows) for rows in picked]
    for k in range(FOLDS):
        model.mean.append(_train(MEAN_PARAMS, x[local[k]], y[local[k]]))
    # Held-out gaps of the training rows (each by the other fold's model) teach the scale
    # model what is usual for families like them.
    gap = np.full(len(used), np.nan)
    for k in range(FOLDS):
        held = np.nonzero(fold == k)[0]
        gap[held] = model.mean[k].predict(x[held], num_threads=1) - y[held]
    for k in range(FOLDS):
        model.scale.append(_train(SCALE_PARAMS, x[local[k]], np.abs(gap[local[k]])))
    resid, y_used = -gap, y
    metrics = {
        "training_population": int(observed(f).sum()),
        "training_rows_per_fold": [len(r) for r in picked],
        "held_out_families": len(used),
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


# Row hash of a family's feature vector (exact float64 bits): odd multipliers, fixed.
_HASH = np.random.default_rng(SEED).integers(1, 2**63, len(FEATURES), dtype=np.uint64) | 1
# The only columns of the outputs worth a Parquet dictionary (a few feature names); trying one
# for every column cost ≈ 1.7 s of 5.2 writing the 6.3 M-family output.
SIGNALS = ["signal_1", "signal_2", "signal_3"]
EXPLAINED = (
    "signal_1", "value_1", "effect_1", "signal_2", "value_2", "effect_2",
    "signal_3", "value_3", "effect_3", "context_effect",
)  # fmt: skip


def row_hash(x: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's exact bits: equal rows always, different rows all but never
    (a change of any single value always changes it; two values at once with odds 2**-64)."""
    return _hash_columns(x.T, len(x))


def _hash_columns(columns: Iterable[np.ndarray], rows: int) -> np.ndarray:
    """`row_hash` summed column by column: each column's exact float64 bits times its odd
    multiplier, added modulo 2**64 (so in any order)."""
    acc = np.zeros(rows, dtype=np.uint64)
    for j, values in enumerate(columns):
        acc += np.ascontiguousarray(values, dtype=np.float64).view(np.uint64) * _HASH[j]
    return acc


@dataclass
class Memo:
    """The previous run's model outputs per family, valid for one saved model: a family whose
    feature row hashes the same gets the same predictions and SHAP signals without the model
    being run (`scores/model/memo.parquet`; training replaces the folder, and so the memo).
    Pseudonymous families are found by their numbers (`family_key`, saved beside the ids),
    sorted once on loading, in which `positions_in` merges (`positions`)."""

    ids: pa.Array
    hashes: np.ndarray
    raw: dict[str, np.ndarray]  # expected, scale: the models' raw outputs
    explained: pa.Table  # EXPLAINED columns, one row per family (null if not explained)
    keys: np.ndarray | None = None  # the ids as pseudonym numbers, ascending
    rows: np.ndarray | None = None  # the row of each of `keys`

    FILE = "memo.parquet"

    @classmethod
    def load(cls, model_dir: Path, model: Model) -> Memo | None:
        path = model_dir / cls.FILE
        try:
            meta = pq.read_schema(path).metadata or {}
            if json.loads(meta.get(b"qamqor", b"{}")) != _memo_key(model):
                return None
            t = pq.read_table(path)
        except (FileNotFoundError, OSError, ValueError):
            return None
        keys = rows = None
        if "family_key" in t.column_names:  # the numbers in ascending order, each one's row
            saved = t.column("family_key").to_numpy()
            rows = np.argsort(saved, kind="stable")
            keys = saved[rows]
        return cls(
            t.column("family_id").combine_chunks(),
            t.column("row_hash").to_numpy(),
            {k: t.column(k).to_numpy() for k in ("expected", "scale")},
            t.select(list(EXPLAINED)).combine_chunks(),
            keys,
            rows,
        )

    def positions(self, ids: pd.Series, order: np.ndarray | None = None) -> np.ndarray:
        """Each id's row in the memo, -1 where absent (`order`: the ids' `family_order`)."""
        return positions_in(ids, self.ids, self.keys, order, self.rows)

    @staticmethod
    def save(model_dir: Path, model: Model, out: pa.Table, hashes, raw) -> None:
        """The rows of `out` as they are (sorting them by key cost ≈ 3.5 s at 6.3 M families;
        `load` sorts the numbers alone), with each id's pseudonym number."""
        table = out.select(["family_id", *EXPLAINED])
        for i, (name, values) in enumerate({"row_hash": hashes, **raw}.items()):
            table = table.add_column(1 + i, name, pa.array(values))
        keys = pseudonym_numbers(table.column("family_id"))
        if keys is not None:
            table = table.append_column("family_key", pa.array(keys))
        table = table.replace_schema_metadata({"qamqor": json.dumps(_memo_key(model))})
        tmp = model_dir / f".{Memo.FILE}.tmp-{os.getpid()}"
        pq.write_table(table, tmp, compression=PARQUET_COMPRESSION, use_dictionary=SIGNALS)
        tmp.replace(model_dir / Memo.FILE)


def _memo_key(model: Model) -> dict:
    return {k: model.meta.get(k) for k in ("model_version", "training_fingerprint")}


def predict(
    model: Model,
    f: pd.DataFrame,
    explain: np.ndarray | None = None,
    memo: Memo | None = None,
    order: np.ndarray | None = None,
) -> Prediction:
    """Expected income, standardised gap, flag and the top 3 signals of the families in
    `explain` (a boolean mask; default: the flagged ones, the only ones the batch explains).

    With a `memo` of the same model, families whose feature rows are unchanged take their
    predictions and signals from it (found through `order`, the families' `family_order`, when
    given). Returns the output table with what `Memo.save` keeps.
    """
    y = _target(f)
    fold = fold_of(f["family_id"])
    # Only declared work income can be under-declared: families without any are not scored.
    earners = (f["working"] > 0).to_numpy()
    expected = np.full(len(f), np.nan)
    scale = np.full(len(f), np.nan)
    hashes = model.row_hashes(f)
    same = np.zeros(len(f), dtype=bool)  # an unchanged feature row found in the memo
    if memo is not None:
        at = memo.positions(f["family_id"], order)
        same = (at >= 0) & (memo.hashes[np.maximum(at, 0)] == hashes)
        for name, arr in (("expected", expected), ("scale", scale)):
            arr[same] = memo.raw[name][at[same]]
    todo = np.nonzero(earners & ~same)[0]  # the families the models run for
    for start in range(0, len(todo), CHUNK):  # their feature matrix a chunk at a time
        rows = todo[start : start + CHUNK]
        x = model.matrix(f.iloc[rows])
        for k in range(FOLDS):
            mine = fold[rows] == k
            if mine.any():
                expected[rows[mine]] = model.mean[k].predict(x[mine], num_threads=PREDICT_THREADS)
                scale[rows[mine]] = model.scale[k].predict(x[mine], num_threads=PREDICT_THREADS)
        del x
    raw = {"expected": expected.copy(), "scale": scale.copy()}
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
    columns |= _explain(
        model, f, fold, columns, wanted, memo, same if memo else None, at if memo else None
    )
    return Prediction(pa.table(columns), hashes, raw, int(same.sum()))


@dataclass
class Prediction:
    """`predict`'s output table (one row per family, in the order of the features) and what
    `Memo.save` keeps: each family's feature-row hash and the models' raw outputs."""

    table: pa.Table
    row_hash: np.ndarray
    raw: dict[str, np.ndarray]
    reused: int  # families taken from the memo


def _explain(
    model: Model,
    f: pd.DataFrame,
    fold: np.ndarray,
    out: dict[str, pa.Array],
    explain: np.ndarray,
    memo: Memo | None = None,
    same: np.ndarray | None = None,
    at: np.ndarray | None = None,
) -> dict[str, pa.Array]:
    """The EXPLAINED columns and `explanation`, null except for the families in `explain`.

    SHAP contributions (`pred_contrib`) are computed for those families only: they cost about
    a millisecond a family, the rest of the prediction a few microseconds. Families already
    explained in the memo with the same feature row keep their signals. The work and the
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
    todo = np.ones(m, dtype=bool)
    if memo is not None and same is not None and at is not None:
        prev_at = at[rows]
        known = memo.explained.column("signal_1").is_valid().to_numpy(zero_copy_only=False)
        old = np.nonzero(same[rows] & known[np.maximum(prev_at, 0)])[0]
        prev = memo.explained.take(pa.array(prev_at[old]))
        for j in range(3):
            signal[j][old] = prev.column(f"signal_{j + 1}").to_numpy(zero_copy_only=False)
            value[j][old] = prev.column(f"value_{j + 1}").to_numpy(zero_copy_only=False)
            effect[j][old] = prev.column(f"effect_{j + 1}").to_numpy(zero_copy_only=False)
        context_effect[old] = prev.column("context_effect").to_numpy(zero_copy_only=False)
        todo[old] = False
    for k in range(FOLDS):
        pick = np.nonzero(todo & (fold[rows] == k))[0]
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


def _features(card: Path, engine: str, scratch: Path, where: str = "") -> pd.DataFrame:
    """The model's input frame (features_sql) of every family of `card`, in no fixed order
    (what depends on an order, the training sample, follows `family_order`); `where`
    restricts the card (DuckDB only) before the co-resident features are computed."""
    columns = set(pq.read_schema(card).names)
    sql = features_sql(columns)
    if where:
        sql = f"WITH card AS (SELECT * FROM card_file WHERE {where})" + sql.replace(
            "WITH c AS (", ", c AS (", 1
        )
    tables = {"card_file" if where else "card": card}
    if engine == "duckdb":
        table = query_arrow(sql, tables)
    else:  # Spark writes Parquet
        tmp = scratch / f".hidden_features-{os.getpid()}.parquet"
        try:
            run_query(sql, tables, tmp, engine=engine)
            table = pq.read_table(tmp)
        finally:
            tmp.unlink(missing_ok=True)
    # The categorical features as dictionaries: pandas categories the matrix recodes cheaply.
    for name in CATEGORICAL:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.dictionary_encode(table.column(name)))
    # self_destruct: Arrow buffers are freed as columns are converted (one copy at a time)
    frame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    pa.default_memory_pool().release_unused()  # what the conversion freed, back to the system
    return frame


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


def positions_in(
    ids: pd.Series,
    among: pa.Array,
    keys: np.ndarray | None = None,
    order: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Each id's position in `among` (unique ids), -1 where absent. When the ids are
    pseudonyms and `keys` are `among`'s numbers in ascending order, a merge of the sorted
    numbers (≈ 1.8 s at 6.3 M families, a hash of the text ≈ 4.5 s); `rows` then gives the
    position in `among` of each of `keys` (None: `among` is in key order). `order` is the
    ids' `family_order` when it is known."""
    key = pseudonym_numbers(ids)
    if key is not None and keys is not None and len(keys):
        order = np.argsort(key, kind="stable") if order is None else order
        at = np.minimum(np.searchsorted(keys, key[order]), len(keys) - 1)
        found = np.full(len(key), -1, dtype=np.int64)
        hit = keys[at] == key[order]
        found[order] = np.where(hit, at if rows is None else rows[at], -1)
        return found
    return pc.index_in(pa.array(ids, pa.string()), value_set=among).fill_null(-1).to_numpy()


def _saved(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / "features.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def run_hidden_income(
    data_dir: Path,
    engine: str = "duckdb",
    retrain: bool = False,
    progress: Callable[[str], None] | None = None,
) -> HiddenIncomeResult:
    """Train (or reuse) the model, predict every family, write DIR/scores/hidden_income.parquet.

    The saved model (DIR/scores/model/) is reused when it was trained by this model version on
    the same training rows (`training_fingerprint`): training again would give it byte for
    byte. `retrain` trains anyway; a missing model, another version or other data retrain.
    """
    data_dir = Path(data_dir)
    card = data_dir / "cards" / "families.parquet"
    if not card.exists():
        raise FileNotFoundError(f"{card} not found: run `qamqor run` (or `qamqor cards`) first")
    scores = data_dir / "scores"
    scores.mkdir(parents=True, exist_ok=True)
    model_dir = scores / "model"
    say = progress or (lambda _s: None)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    say("hidden income: features")
    f = _features(card, engine, scores)
    seconds["features"] = time.perf_counter() - t
    t = time.perf_counter()
    order = family_order(f["family_id"])  # the training sample's and the memo lookup's
    picked = training_rows(f, order)
    fingerprint = training_fingerprint(f, vocabularies(f), picked)
    saved = _saved(model_dir)
    if retrain:
        reason = "asked to retrain"
    elif saved is None:
        reason = "no saved model"
    elif saved.get("model_version") != model_version():
        reason = "the saved model is of another model version"
    elif saved.get("training_fingerprint") != fingerprint:
        reason = "the training data changed"
    else:
        reason = ""
    trained = bool(reason)
    metrics: dict = {}
    if trained:
        say("hidden income: training")
        model, metrics = train(f, picked)
        model.meta["training_fingerprint"] = fingerprint
    else:
        model = Model.load(model_dir)
        reason = "same model version and training data: saved model reused"
    seconds["training" if trained else "loading"] = time.perf_counter() - t
    t = time.perf_counter()
    say("hidden income: predicting")
    memo = None if trained else Memo.load(model_dir, model)
    pred = predict(model, f, memo=memo, order=order)
    seconds["prediction"] = time.perf_counter() - t
    n = len(f)
    del f
    table = pred.table
    target = scores / "hidden_income.parquet"
    part = target.with_name(".hidden_income.parquet.tmp")
    flag = table.column("hidden_income_flag").to_numpy(zero_copy_only=False)
    seen = table.column("observed").to_numpy(zero_copy_only=False)
    flagged = int(flag.sum())
    observed_flagged = float(flag[seen].mean()) if seen.any() else float("nan")
    if trained:
        metrics.update(
            families=n,
            flagged=flagged,
            flagged_share=flagged / max(n, 1),
            observed_flagged_share=observed_flagged,
            threshold=THRESHOLD,
            seconds={k: round(v, 2) for k, v in seconds.items()},
        )

    def write_output() -> None:
        pq.write_table(table, part, compression=PARQUET_COMPRESSION, use_dictionary=SIGNALS)
        part.replace(target)

    def save_model() -> None:
        if trained:
            model.save(model_dir)
            (model_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        Memo.save(model_dir, model, table, pred.row_hash, pred.raw)

    # Parquet writing is single-threaded: the output and the memo are written side by side.
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(write_output), pool.submit(save_model)]:
            done.result()
    seconds["reused_families"] = pred.reused
    return HiddenIncomeResult(n, flagged, trained, metrics, seconds, target, reason)


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
    pred = predict(Model.load(model_dir), f, explain=(f["family_id"] == family_id).to_numpy())
    out = pred.table.to_pandas()
    [rec] = out[out["family_id"] == family_id].to_dict("records")
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()}
