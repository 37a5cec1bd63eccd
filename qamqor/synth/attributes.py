"""Personal circumstances of the synthetic people: study, health, work, pensions and income.

Incomes are drawn per family (per-capita, by region, urban/rural and size, with a heavier upper
tail so that the median sits about 40 % below the mean, SPEC §2) and then split into wages,
self-employment and pensions. A few families hide most of their income; what they really earn
is kept for the truth folder only.
"""

from __future__ import annotations

import numpy as np

from qamqor.countries import Country
from qamqor.synth.people import ADULT_CHILD, CHILD, DECEASED, Columns

SIGMA_LOW, SIGMA_HIGH = 0.25, 1.0  # log-income spread below / above the median
HIDDEN_INCOME_SHARE = 0.02  # families with earners that hide most of their income
DISABLED_CHILD, DISABLED_ADULT = 0.0179, 0.089


def add_attributes(
    rng: np.random.Generator, p: Columns, country: Country, extract: np.datetime64
) -> None:
    """Add study, health, work, pension and income columns to the people, in place."""
    n = len(p["hh"])
    age, female = p["age"], p["female"]
    alive = p["role"] != DECEASED
    adult = age >= 18
    # Education: kindergarten 1–5, school 6–17, college/university for students in families.
    p["study"] = np.select(
        [
            (age >= 1) & (age < 6) & (rng.random(n) < np.where(p["urban"], 0.72, 0.55)),
            (age >= 6) & (age < 18) & (rng.random(n) < 0.985),
            (p["role"] == CHILD) & (age >= 18),
        ],
        [1, 2, 3],
        0,
    ).astype(np.int8)
    # Disability: children ~1.8 %, adults rising with age; groups I/II/III.
    pension_age = np.where(female, age >= 61, age >= 63)
    p_dis = np.where(adult, DISABLED_ADULT * np.clip((age - 10) / 40, 0.5, 1.3), DISABLED_CHILD)
    p_dis = np.where(pension_age, 0.015, p_dis)
    disabled = alive & (rng.random(n) < p_dis)
    # SPEC §5: an adult child at the parents' address is in their family exactly when disabled.
    disabled = np.where(p["role"] == ADULT_CHILD, p["dependant"], disabled)
    group = np.where(disabled & adult, _groups(rng, n), 0)
    p["disabled"] = disabled
    p["disability_group"] = group.astype(np.int8)
    p["long_illness"] = alive & adult & ~disabled & (rng.random(n) < 0.012)
    p["pregnant"] = alive & female & (age >= 19) & (age < 42) & (rng.random(n) < 0.04)
    p["dispensary"] = alive & (rng.random(n) < np.clip(age / 300, 0.02, 0.35))
    p["pensioner"] = alive & pension_age
    able = alive & adult & ~pension_age & ((group == 0) | (group == 3))
    able &= (p["study"] == 0) & ~p["long_illness"]
    p["able"] = able
    young_kids = np.zeros(len(p["hh"]), bool)
    infant_hh = np.unique(p["hh"][(p["role"] == CHILD) & (age < 3)])
    young_kids[np.isin(p["hh"], infant_hh)] = True
    p_work = np.where(female, np.where(young_kids, 0.45, 0.74), 0.84)
    p_work = p_work * np.where(p["urban"], 1.0, 0.93)
    employed = able & (rng.random(n) < p_work)
    # Most families with able-bodied adults have at least one earner (often informal).
    fam = np.where(alive, p["family"], -1) + 1
    has_able = np.bincount(fam, weights=able) > 0
    no_earner = has_able & (np.bincount(fam, weights=employed) == 0)
    first_able = np.zeros(len(has_able), dtype=np.int64) - 1
    rows = np.nonzero(able)[0][::-1]
    first_able[fam[rows]] = rows
    fix = np.nonzero(no_earner & (rng.random(len(has_able)) < 0.97))[0]
    employed[first_able[fix[first_able[fix] >= 0]]] = True
    p["employed"] = employed
    p["self_employed"] = p["employed"] & (rng.random(n) < np.where(p["urban"], 0.10, 0.22))
    idle = able & ~p["employed"]
    u = rng.random(n)
    p["unemployed_registered"] = idle & (u < 0.10)
    p["job_seeker"] = idle & (u >= 0.10) & (u < 0.16)
    _incomes(rng, p, country)


def _groups(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.random(n)
    return np.where(u < 0.12, 1, np.where(u < 0.55, 2, 3))


def _incomes(rng: np.random.Generator, p: Columns, country: Country) -> None:
    """Per-family true per-capita income, split into wages/self-employment and pensions."""
    hh_family = p["family"]
    alive = p["role"] != DECEASED
    fam_ids, fam_idx = np.unique(np.where(alive, hh_family, -1), return_inverse=True)
    nf = len(fam_ids)
    size = np.bincount(fam_idx, weights=alive, minlength=nf)
    earners = np.bincount(fam_idx, weights=p["employed"], minlength=nf)
    region = np.zeros(nf, dtype=np.int64)
    region[fam_idx] = p["region"]
    urban = np.zeros(nf, dtype=bool)
    urban[fam_idx] = p["urban"]
    mean_income = np.array([r.mean_income_per_capita for r in country.regions])[region]
    z = rng.standard_normal(nf)
    shock = np.exp(np.where(z < 0, SIGMA_LOW, SIGMA_HIGH) * z)
    size_factor = (np.maximum(size, 1) / 3.1) ** -0.5 * np.exp(-0.15 * np.maximum(size - 4, 0))
    pc = mean_income * shock * size_factor * np.where(urban, 1.12, 0.8)
    # Pensions: base + solidarity part, never below the minimum pension.
    pension = np.where(
        p["pensioner"],
        np.maximum(62_771, 32_360 + 95_000 * np.exp(rng.normal(0, 0.35, len(alive)))),
        0,
    )
    fam_pension = np.bincount(fam_idx, weights=pension, minlength=nf)
    work_total = np.maximum(pc * size - fam_pension, 0)
    work_total = np.where(earners > 0, np.maximum(work_total, 70_000 * earners), 0)
    share = np.where(p["female"], 0.85, 1.15) * np.exp(rng.normal(0, 0.25, len(alive)))
    share = np.where(p["employed"], share, 0)
    share_sum = np.bincount(fam_idx, weights=share, minlength=nf)
    wage = np.where(
        p["employed"], work_total[fam_idx] * share / np.maximum(share_sum[fam_idx], 1e-9), 0
    )
    # Scale wages per region so that the people-weighted mean per-capita income hits the target.
    scale = np.ones(len(country.regions))
    for r in np.unique(region):
        in_r = p["region"] == r
        target = country.regions[r].mean_income_per_capita * (in_r & alive).sum()
        if wage[in_r].sum() > 0:
            scale[r] = max((target - pension[in_r].sum()) / wage[in_r].sum(), 0.2)
    wage = wage * scale[p["region"]]
    hidden_family = (earners > 0) & (rng.random(nf) < HIDDEN_INCOME_SHARE)
    declared_share = np.where(hidden_family, rng.uniform(0.15, 0.4, nf), 1.0)
    p["true_wage"] = wage.round()
    p["wage"] = (wage * declared_share[fam_idx]).round()
    p["pension"] = pension.round()
    p["hidden_income"] = hidden_family[fam_idx] & p["employed"]
    p["family_row"] = fam_idx
