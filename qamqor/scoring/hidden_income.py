"""Hidden income: declared income far below what a family's assets and spending imply.

A LightGBM regression learns a family's expected log monthly income from the signals of the
card that money buys (property, vehicles, deposits, loans and their payments, housing costs and
area, utilities, livestock), its composition and place, and the declared income and assets of
the other families registered at the same address. It is trained only on families whose income
is fully observed (see `observed`). Every family is predicted by a model that did not see it
(two folds by family_id), a second model learns how far off the first typically is for families
like it, and the gap is standardised:

    z = (ln expected − ln declared) / (1.2533 · typical |gap|)      (≈ standard deviations)

Declared pay per earner below the minimum wage (an informal-employment sign, 0–1) adds up to
INFORMAL_WEIGHT. A family with declared work income is flagged when z + weight · sign ≥
THRESHOLD; the explanation lists the three signals that pushed its expected income up most
(LightGBM `pred_contrib`, i.e. SHAP values). See docs/scoring.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from qamqor.engine import atomic_dir, run_query

SEED = 20251001
THRESHOLD = 3.2  # flag when z + informal sign reaches this (docs/scoring.md: threshold)
INFORMAL_WEIGHT = 2.0  # a declared wage at a third of the minimum adds 2 σ
MINIMUM_WAGE = 85_000  # MZP, tenge a month, 2024–2025 (republican budget laws)
INCOME_FLOOR = 10_000  # declared income below this counts as this on the log scale
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
    "others_income": "declared income of other families at the address",
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
    "others_income": "declared_income",
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
    others = ",\n      ".join(
        f"sum({col}) OVER (PARTITION BY {part}) - {col} AS {name}" for name, col in OTHERS.items()
    )
    direct = [f for f in FEATURES if f not in OTHERS and f not in {"adults", "household_families"}]
    direct = [f for f in direct if f not in {"housing_costs_per_m2", "value_per_vehicle"}]
    return f"""
    WITH c AS (
      SELECT *,
             wages_12m + self_employment_12m + pensions_3m + benefits_3m AS declared_income
      FROM card
    )
    SELECT family_id, declared_income, {", ".join(CARD_COLUMNS)},
      {", ".join(direct)},
      members - children AS adults,
      housing_costs / greatest(housing_area_m2, 1) AS housing_costs_per_m2,
      vehicle_value / greatest(vehicles, 1) AS value_per_vehicle,
      count(*) OVER (PARTITION BY {part}) AS household_families,
      {others}
    FROM c
    ORDER BY family_id
    """


TRAINING_POPULATION = (
    "families whose income is fully observed: all of it wages backed by pension contributions "
    "(≥ 9 % of the wage over 12 months), pensions and benefits paid by the state; no "
    "self-declared self-employment income; every able-bodied adult has declared work income; "
    "declared income > 0"
)


def observed(f: pd.DataFrame) -> np.ndarray:
    """Families whose income is fully observed, decided from the card alone (no truth)."""
    contributions_ok = f["contributions_12m"] >= 0.09 * 12 * f["wages_12m"]
    return (
        (f["declared_income"] > 0)
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
    return family_ids.str[-1].isin(list("13579bdfBDF")).to_numpy().astype(np.int64)


def _target(f: pd.DataFrame) -> np.ndarray:
    return np.log(np.maximum(f["declared_income"].to_numpy(float), INCOME_FLOOR))


@dataclass
class Model:
    """The fold models of expected income and of its typical error, with their inputs."""

    mean: list[lgb.Booster]
    scale: list[lgb.Booster]
    vocab: dict[str, list[str]]
    meta: dict

    def matrix(self, f: pd.DataFrame) -> np.ndarray:
        cols = []
        for name in FEATURES:
            if name in CATEGORICAL:
                codes = pd.Categorical(f[name], categories=self.vocab[name]).codes
                cols.append(np.where(codes < 0, np.nan, codes).astype(float))
            else:
                cols.append(pd.to_numeric(f[name], errors="coerce").to_numpy(float))
        return np.column_stack(cols) if cols else np.empty((len(f), 0))

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


def train(f: pd.DataFrame) -> tuple[Model, dict]:
    """Cross-fitted models on the observed families; returns the model and held-out metrics."""
    vocab = {c: sorted(f[c].dropna().astype(str).unique().tolist()) for c in CATEGORICAL}
    model = Model([], [], vocab, {})
    x, y = model.matrix(f), _target(f)
    obs, fold = observed(f), fold_of(f["family_id"])
    rng = np.random.default_rng(SEED)
    picked = []
    for k in range(FOLDS):
        rows = np.nonzero(obs & (fold != k))[0]
        if len(rows) > MAX_TRAIN_PER_FOLD:
            rows = np.sort(rng.choice(rows, MAX_TRAIN_PER_FOLD, replace=False))
        picked.append(rows)
        model.mean.append(_train(MEAN_PARAMS, x[rows], y[rows]))
    # Held-out gaps of the training rows (each by the other fold's model) teach the scale
    # model what is usual for families like them.
    gap = np.full(len(f), np.nan)
    used = np.unique(np.concatenate(picked))
    for k in range(FOLDS):
        held = used[fold[used] == k]
        gap[held] = model.mean[k].predict(x[held], num_threads=1) - y[held]
    for k in range(FOLDS):
        rows = picked[k]
        model.scale.append(_train(SCALE_PARAMS, x[rows], np.abs(gap[rows])))
    resid, y_used = -gap[used], y[used]
    metrics = {
        "training_population": int(obs.sum()),
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
        "target": "ln(max(wages_12m + self_employment_12m + pensions_3m + benefits_3m, floor))",
        "training_population": TRAINING_POPULATION,
    }
    return model, metrics


def predict(model: Model, f: pd.DataFrame) -> pd.DataFrame:
    """Expected income, standardised gap, flag and (for flagged families) the top 3 signals."""
    x, y = model.matrix(f), _target(f)
    fold = fold_of(f["family_id"])
    # Only declared work income can be under-declared: families without any are not scored.
    earners = (f["working"] > 0).to_numpy()
    expected = np.full(len(f), np.nan)
    scale = np.full(len(f), np.nan)
    for k in range(FOLDS):
        rows = earners & (fold == k)
        expected[rows] = model.mean[k].predict(x[rows], num_threads=1)
        scale[rows] = model.scale[k].predict(x[rows], num_threads=1)
    scale = SD_PER_MEAN_ABS * np.maximum(scale, 0.05)
    z = (expected - y) / scale
    informal = informal_sign(f)
    score = z + model.meta["informal_weight"] * informal
    flag = earners & (score >= model.meta["threshold"])
    out = pd.DataFrame(
        {
            "family_id": f["family_id"].to_numpy(),
            "declared_income": f["declared_income"].to_numpy(float),
            "expected_income": np.round(np.exp(expected), 0),
            "gap_log": expected - y,
            "typical_gap_log": scale,
            "z": z,
            "informal_sign": informal,
            "hidden_income_score": score,
            "observed": observed(f),
            "hidden_income_flag": flag,
        }
    )
    _explain(model, f, x, fold, out)
    return out


def _explain(model: Model, f: pd.DataFrame, x: np.ndarray, fold: np.ndarray, out) -> None:
    names = list(FEATURES)
    n = len(f)
    signal = [np.full(n, None, dtype=object) for _ in range(3)]
    value = [np.full(n, None, dtype=object) for _ in range(3)]
    effect = [np.full(n, np.nan) for _ in range(3)]
    text = np.full(n, None, dtype=object)
    flagged = out["hidden_income_flag"].to_numpy()
    context = np.isin(names, CONTEXT)
    context_effect = np.full(n, np.nan)
    for k in range(FOLDS):
        rows = np.nonzero(flagged & (fold == k))[0]
        if not len(rows):
            continue
        contrib = model.mean[k].predict(x[rows], pred_contrib=True, num_threads=1)[:, :-1]
        context_effect[rows] = contrib[:, context].sum(axis=1)
        ranked = np.where(context, -np.inf, contrib)
        top = np.argsort(-ranked, axis=1, kind="stable")[:, :3]
        shown = f.iloc[rows][names].to_numpy(object)
        at = np.arange(len(rows))
        for j in range(3):
            idx = top[:, j]
            signal[j][rows] = [names[i] for i in idx]
            value[j][rows] = [_show(v) for v in shown[at, idx]]
            effect[j][rows] = contrib[at, idx]
    declared, expected = out["declared_income"].to_numpy(), out["expected_income"].to_numpy()
    z, informal = out["z"].to_numpy(), out["informal_sign"].to_numpy()
    for r in np.nonzero(flagged)[0]:
        parts = [
            f"{FEATURES[signal[j][r]]} {value[j][r]} (×{np.exp(effect[j][r]):.2f})"
            for j in range(3)
        ]
        head = f"declared {declared[r]:,.0f} vs expected {expected[r]:,.0f} a month (z {z[r]:.1f})"
        if informal[r] > 0:
            head += f"; declared pay per earner below the minimum wage {MINIMUM_WAGE:,}"
        text[r] = (
            f"{head}; driven by: {', '.join(parts)}; family composition, place and "
            f"co-residents ×{np.exp(context_effect[r]):.2f}"
        )
    for j in range(3):
        out[f"signal_{j + 1}"] = signal[j]
        out[f"value_{j + 1}"] = value[j]
        out[f"effect_{j + 1}"] = effect[j]
    out["context_effect"] = context_effect
    out["explanation"] = text


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


def run_hidden_income(
    data_dir: Path,
    engine: str = "duckdb",
    retrain: bool = False,
    progress: Callable[[str], None] | None = None,
) -> HiddenIncomeResult:
    """Train (or load) the model, predict every family, write DIR/scores/hidden_income.parquet."""
    data_dir = Path(data_dir)
    card = data_dir / "cards" / "families.parquet"
    if not card.exists():
        raise FileNotFoundError(f"{card} not found: run `qamqor run` (or `qamqor cards`) first")
    scores = data_dir / "scores"
    model_dir = scores / "model"
    say = progress or (lambda _s: None)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    say("hidden income: features")
    tmp = scores / ".hidden_features.parquet"
    columns = set(pq.read_schema(card).names)
    run_query(features_sql(columns), {"card": card}, tmp, engine=engine)
    f = pd.read_parquet(tmp)
    tmp.unlink()
    seconds["features"] = time.perf_counter() - t
    trained = retrain or not (model_dir / "features.json").exists()
    metrics: dict = {}
    t = time.perf_counter()
    if trained:
        say("hidden income: training")
        model, metrics = train(f)
    else:
        model = Model.load(model_dir)
    seconds["training" if trained else "loading"] = time.perf_counter() - t
    t = time.perf_counter()
    say("hidden income: predicting")
    out = predict(model, f)
    seconds["prediction"] = time.perf_counter() - t
    target = scores / "hidden_income.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(".hidden_income.parquet.tmp")
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), part, compression="zstd")
    part.replace(target)
    flagged = int(out["hidden_income_flag"].sum())
    if trained:
        metrics.update(
            families=len(f),
            flagged=flagged,
            flagged_share=flagged / max(len(f), 1),
            observed_flagged_share=float(out.loc[out["observed"], "hidden_income_flag"].mean()),
            threshold=THRESHOLD,
            seconds={k: round(v, 2) for k, v in seconds.items()},
        )
        model.save(model_dir)
        (model_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return HiddenIncomeResult(len(f), flagged, trained, metrics, seconds, target)
