"""Registry extracts of one chunk, derived from the people and households drawn before.

Assets follow the family's *true* income (so a family that hides its income still shows the
car, the deposit or the second flat), while the income registry shows only what is declared.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from qamqor.countries import Country
from qamqor.synth import names
from qamqor.synth.arrow import codes, dates, fixed_strings, pick
from qamqor.synth.people import CHILD, DECEASED, FIRST, HUSBAND, Columns

MONTHS = 12


def months_before(extract: np.datetime64, k: int) -> np.ndarray:
    """The first days of the k months before the extract month, oldest first."""
    m = extract.astype("datetime64[M]")
    return (m - np.arange(k, 0, -1)).astype("datetime64[D]")


def population(p: Columns, country: Country, ctx: dict) -> pa.Table:
    """The population register: persons with names, parents and registered address."""
    iin, n = p["iin"], len(p["iin"])
    female = p["female"]
    rng: np.random.Generator = ctx["rng"]
    male_first = rng.integers(0, len(names.MALE_FIRST), n)
    female_first = rng.integers(0, len(names.FEMALE_FIRST), n)
    first = np.where(female, female_first + len(names.MALE_FIRST), male_first)
    first_names = names.MALE_FIRST + names.FEMALE_FIRST
    # Surname of the family line: the husband's (or the first adult's), feminine for women.
    line = rng.integers(0, len(names.SURNAMES), ctx["n_hh"])[p["hh"]]
    own = rng.integers(0, len(names.SURNAMES), n)
    keeps_own = (p["role"] == FIRST) & (p["kind"] <= 2) & female & (rng.random(n) < 0.2)
    sur = np.where(keeps_own | (p["role"] >= 4), own, line)
    surnames = [*names.SURNAMES, *(names.feminine(s) for s in names.SURNAMES)]
    sur = sur + np.where(female, len(names.SURNAMES), 0)
    # Patronymic from the father's first name where he is known.
    father_first = np.where(p["father"] >= 0, first[np.maximum(p["father"], 0)], male_first)
    father_first = np.where(father_first >= len(names.MALE_FIRST), male_first, father_first)
    patr = [names.patronymic(m, f) for f in (False, True) for m in names.MALE_FIRST]
    patr_idx = father_first + np.where(female, len(names.MALE_FIRST), 0)
    region_codes = [r.code for r in country.regions]
    district_codes = [d.code for d in country.districts]
    u = rng.random(n)
    return pa.table(
        {
            "iin": fixed_strings(iin),
            "surname": pick(surnames, sur),
            "first_name": pick(first_names, first),
            "patronymic": pick(patr, patr_idx),
            "sex": pick(("M", "F"), female.astype(int)),
            "birth_date": dates(p["birth"]),
            "death_date": dates(p["death"]),
            "citizenship": pick(("KZ", "FOREIGN", "STATELESS"), (u > 0.993) + (u > 0.998)),
            "language": pick(("kk", "ru"), (ctx["lang_ru"][p["hh"]]).astype(int)),
            "region": pick(region_codes, p["region"]),
            "district": pick(district_codes, p["district"]),
            "urban": pa.array(p["urban"]),
            "address_id": codes("ADR", p["hh"] + ctx["hh_offset"], 10),
            "father_iin": _link_iin(iin, p["father"]),
            "mother_iin": _link_iin(iin, p["mother"]),
        }
    )


def _link_iin(iin: np.ndarray, rows: np.ndarray) -> pa.Array:
    return fixed_strings(iin[np.maximum(rows, 0)], valid=rows >= 0)


def civil_events(p: Columns, extract: np.datetime64, ctx: dict) -> pa.Table:
    """Births within the last year, every death, every marriage of a living couple."""
    iin = p["iin"]
    window = extract - np.timedelta64(365, "D")
    born = np.nonzero((p["birth"] >= window) & (p["role"] == CHILD))[0]
    died = np.nonzero(~np.isnat(p["death"]))[0]
    husband = np.nonzero((p["spouse"] >= 0) & ~p["female"] & ~np.isnat(p["marriage"]))[0]
    kinds = np.concatenate(
        [np.zeros(len(born), int), np.ones(len(died), int), np.full(len(husband), 2)]
    )
    who = np.concatenate([born, died, husband])
    other = np.concatenate([p["mother"][born], np.full(len(died), -1), p["spouse"][husband]])
    when = np.concatenate([p["birth"][born], p["death"][died], p["marriage"][husband]])
    ids = ctx["event_offset"] + np.arange(len(who))
    ctx["event_offset"] += len(who)
    return pa.table(
        {
            "event_id": codes("EV", ids, 11),
            "event_type": pick(("birth", "death", "marriage", "divorce"), kinds),
            "event_date": dates(when),
            "iin": fixed_strings(iin[who]),
            "other_iin": _link_iin(iin, other),
        }
    )


def income(p: Columns, extract: np.datetime64, ctx: dict) -> pa.Table:
    """Monthly wages and contributions of employees over the last 12 months."""
    rng: np.random.Generator = ctx["rng"]
    emp = np.nonzero(p["employed"] & ~p["self_employed"] & (p["wage"] > 0))[0]
    periods = months_before(extract, MONTHS)
    seasonal = ~p["urban"][emp] & (rng.random(len(emp)) < 0.15)
    rows = np.repeat(emp, MONTHS)
    month = np.tile(np.arange(MONTHS), len(emp))
    worked = ~np.repeat(seasonal, MONTHS) | ((month % 12) >= 3)
    rows, month = rows[worked], month[worked]
    amount = np.round(p["wage"][rows] * (1 + rng.normal(0, 0.04, len(rows))).clip(0.7, 1.3))
    employer = ctx["employer"][rows]
    return pa.table(
        {
            "iin": fixed_strings(p["iin"][rows]),
            "period": dates(periods[month]),
            "employer_bin": codes("", employer, 12),
            "income": pa.array(amount),
            "pension_contribution": pa.array(np.round(amount * 0.10)),
            "social_contribution": pa.array(np.round(np.minimum(amount, 7 * 85_000) * 0.05)),
        }
    )


def tax(p: Columns, extract: np.datetime64, ctx: dict) -> pa.Table:
    """Monthly declared income of the self-employed and entrepreneurs."""
    rng: np.random.Generator = ctx["rng"]
    se = np.nonzero(p["self_employed"] & (p["wage"] > 0))[0]
    rows = np.repeat(se, MONTHS)
    month = np.tile(np.arange(MONTHS), len(se))
    amount = np.round(p["wage"][rows] * (1 + rng.normal(0, 0.15, len(rows))).clip(0.3, 2))
    kind = (p["wage"][rows] > 400_000).astype(int)
    return pa.table(
        {
            "iin": fixed_strings(p["iin"][rows]),
            "period": dates(months_before(extract, MONTHS)[month]),
            "kind": pick(("self_employed", "entrepreneur"), kind),
            "declared_income": pa.array(amount),
        }
    )


def family_wealth(p: Columns, ctx: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per household: log of true monthly income relative to 300 k, and the owner's row."""
    alive = p["role"] != DECEASED
    true_income = np.bincount(
        p["hh"], weights=(p["true_wage"] + p["pension"]) * alive, minlength=ctx["n_hh"]
    )
    owner = np.full(ctx["n_hh"], -1, dtype=np.int64)
    for role in (FIRST, HUSBAND):  # the husband when there is one
        rows = np.nonzero(p["role"] == role)[0]
        owner[p["hh"][rows]] = rows
    return np.log(np.maximum(true_income, 20_000) / 300_000), owner


def assets(p: Columns, country: Country, extract: np.datetime64, ctx: dict) -> dict[str, pa.Table]:
    """Real estate, vehicles, credit, deposits, agriculture and housing of each household."""
    rng: np.random.Generator = ctx["rng"]
    lw, owner = ctx["wealth"], ctx["owner"]
    n_hh = len(lw)
    hh = np.arange(n_hh)
    urban = ctx["hh_urban"]
    region = ctx["hh_region"]
    size = np.bincount(p["hh"], weights=p["role"] != DECEASED, minlength=n_hh)
    rc = [r.code for r in country.regions]
    dc = [d.code for d in country.districts]
    out: dict[str, pa.Table] = {}

    # Real estate: the home (if owned), second dwellings, commercial property, land plots.
    tenure = np.where(
        rng.random(n_hh) < np.where(urban, 0.80, 0.92), 0, np.where(rng.random(n_hh) < 0.8, 1, 2)
    )
    tenure = np.where(ctx["dormitory"], 3, tenure)
    area = np.round(np.clip(16 * size * np.exp(0.2 * lw + rng.normal(0, 0.3, n_hh)), 12, 600), 1)
    n_extra = rng.poisson(np.clip(0.07 * np.exp(0.9 * lw), 0, 3))
    commercial = rng.poisson(np.clip(0.012 * np.exp(1.1 * lw), 0, 4))
    land = (~urban & (rng.random(n_hh) < 0.45)).astype(int)
    kinds = [(tenure == 0).astype(int), n_extra, commercial, land]
    rows = np.concatenate([np.repeat(hh, k) for k in kinds])
    kind = np.concatenate([np.full(k.sum(), i) for i, k in enumerate(kinds)])
    kind_code = np.array([0, 0, 1, 2])[kind]
    price_m2 = np.where(urban[rows], 450_000, 150_000) * np.exp(rng.normal(0, 0.3, len(rows)))
    r_area = np.where(
        kind == 0,
        area[rows],
        np.where(kind == 3, rng.uniform(600, 5000, len(rows)), rng.uniform(30, 250, len(rows))),
    ).round(1)
    value = np.round(np.where(kind == 3, r_area * 800, r_area * price_m2), -3)
    ids = ctx["property_offset"] + np.arange(len(rows))
    ctx["property_offset"] += len(rows)
    acquired = extract - (rng.uniform(0.2, 25, len(rows)) * 365.25).astype(int).astype(
        "timedelta64[D]"
    )
    out["real_estate"] = pa.table(
        {
            "property_id": codes("RE", ids, 11),
            "iin": fixed_strings(p["iin"][owner[rows]]),
            "kind": pick(("dwelling", "commercial", "land"), kind_code),
            "region": pick(rc, region[rows]),
            "area_m2": pa.array(r_area),
            "value": pa.array(value),
            "acquired_date": dates(acquired),
        }
    )
    # Vehicles.
    cars = rng.poisson(np.clip(0.55 * np.exp(0.6 * lw), 0, 4))
    vrows = np.repeat(hh, cars)
    year = np.clip(2025 - rng.gamma(2, 5, len(vrows)) + 3 * lw[vrows], 1975, 2025).astype(int)
    vvalue = np.round(
        4_000_000
        * np.exp(0.5 * lw[vrows] + rng.normal(0, 0.45, len(vrows)))
        * np.exp(-(2025 - year) / 12),
        -3,
    )
    vids = ctx["vehicle_offset"] + np.arange(len(vrows))
    ctx["vehicle_offset"] += len(vrows)
    vkind = np.where(
        ~urban[vrows] & (rng.random(len(vrows)) < 0.1),
        3,
        np.where(rng.random(len(vrows)) < 0.05, 1, 0),
    )
    out["vehicles"] = pa.table(
        {
            "vehicle_id": codes("VH", vids, 11),
            "iin": fixed_strings(p["iin"][owner[vrows]]),
            "kind": pick(("car", "truck", "motorcycle", "tractor"), vkind),
            "year": pa.array(year.astype(np.int64)),
            "value": pa.array(vvalue),
        }
    )
    # Credit: consumer loans, microcredits (more among the poor), mortgages, car loans.
    p_kind = np.stack(
        [
            np.clip(0.08 * np.exp(0.5 * lw), 0, 0.5),
            np.full(n_hh, 0.42),
            np.clip(0.06 * np.exp(0.4 * lw), 0, 0.4),
            np.clip(0.16 * np.exp(-0.5 * lw), 0, 0.6),
        ]
    )
    has = rng.random(p_kind.shape) < p_kind
    crow = np.concatenate([hh[has[k]] for k in range(4)])
    ckind = np.concatenate([np.full(has[k].sum(), k) for k in range(4)])
    base = np.array([15_000_000, 1_200_000, 5_000_000, 300_000])[ckind]
    principal = np.round(base * np.exp(0.4 * lw[crow] + rng.normal(0, 0.5, len(crow))), -3)
    balance = np.round(principal * rng.uniform(0.05, 1.0, len(crow)), -2)
    term = np.array([180, 36, 60, 6])[ckind]
    overdue = np.where(
        rng.random(len(crow)) < np.clip(0.07 * np.exp(-0.6 * lw[crow]), 0, 0.5),
        rng.integers(1, 400, len(crow)),
        0,
    )
    cids = ctx["loan_offset"] + np.arange(len(crow))
    ctx["loan_offset"] += len(crow)
    opened = extract - rng.integers(30, 3000, len(crow)).astype("timedelta64[D]")
    out["credit"] = pa.table(
        {
            "loan_id": codes("LN", cids, 11),
            "iin": fixed_strings(p["iin"][owner[crow]]),
            "kind": pick(("mortgage", "consumer", "auto", "microcredit"), ckind),
            "principal": pa.array(principal),
            "balance": pa.array(balance),
            "monthly_payment": pa.array(np.round(principal * 1.15 / term, -1)),
            "overdue_days": pa.array(overdue.astype(np.int64)),
            "opened_date": dates(opened),
        }
    )
    # Deposits.
    dep = rng.random(n_hh) < np.clip(0.3 * np.exp(0.35 * lw), 0, 0.9)
    drow = hh[dep]
    out["deposits"] = pa.table(
        {
            "iin": fixed_strings(p["iin"][owner[drow]]),
            "bank": pick(
                ("Halyk", "Kaspi", "Otbasy", "Freedom", "Jusan"), rng.integers(0, 5, len(drow))
            ),
            "balance": pa.array(
                np.round(250_000 * np.exp(1.2 * lw[drow] + rng.normal(0, 1, len(drow))), -2)
            ),
        }
    )
    # Agriculture: livestock of rural households.
    farm = ~urban & (rng.random(n_hh) < 0.5)
    species = ("cattle", "horse", "sheep", "goat", "camel", "poultry")
    sp_p = np.array([0.55, 0.2, 0.45, 0.2, 0.03, 0.5])
    has_sp = farm[:, None] & (rng.random((n_hh, 6)) < sp_p)
    arow, akind = np.nonzero(has_sp)
    mean_heads = np.array([4, 3, 15, 6, 2, 20])[akind] * np.exp(0.4 * lw[arow])
    out["agriculture"] = pa.table(
        {
            "iin": fixed_strings(p["iin"][owner[arow]]),
            "kind": pick(species, akind),
            "heads": pa.array(np.maximum(rng.poisson(mean_heads), 1).astype(np.int64)),
        }
    )
    # Housing and utilities per registered address.
    u = rng.random((n_hh, 5))
    water = u[:, 0] < np.where(urban, 0.985, 0.82)
    sewer = u[:, 1] < np.where(urban, 0.93, 0.32)
    gas = u[:, 2] < np.where(urban, 0.62, 0.48)
    heating = np.where(
        urban, np.where(u[:, 3] < 0.82, 0, 1), np.where(gas, 1, np.where(u[:, 3] < 0.97, 2, 3))
    )
    rent = np.where(
        tenure == 1, np.round(np.clip(2500 * area * np.exp(0.2 * lw), 20_000, 900_000), -2), 0
    )
    util = np.round(
        np.clip(
            area * np.where(urban, 420, 300) * np.exp(0.15 * lw + rng.normal(0, 0.2, n_hh)),
            5_000,
            400_000,
        ),
        -1,
    )
    out["housing"] = pa.table(
        {
            "address_id": codes("ADR", hh + ctx["hh_offset"], 10),
            "region": pick(rc, region),
            "district": pick(dc, ctx["hh_district"]),
            "urban": pa.array(urban),
            "tenure": pick(("owned", "rented", "social", "dormitory"), tenure),
            "area_m2": pa.array(area),
            "rooms": pa.array(np.clip(np.round(area / 18), 1, 12).astype(np.int64)),
            "water": pa.array(water),
            "sewerage": pa.array(sewer),
            "gas": pa.array(gas),
            "heating": pick(("central", "gas", "stove", "none"), heating),
            "internet": pa.array(u[:, 4] < np.where(urban, 0.9, 0.7)),
            "housing_cost": pa.array(rent.astype(float)),
            "utilities_cost": pa.array(util),
        }
    )
    return out


def health(p: Columns, extract: np.datetime64, ctx: dict) -> pa.Table:
    """Every living person's polyclinic attachment, disability, dispensary and pregnancy."""
    rng: np.random.Generator = ctx["rng"]
    alive = np.nonzero(p["role"] != DECEASED)[0]
    dis = p["disabled"][alive]
    group = p["disability_group"][alive].astype(np.int64)
    child = p["age"][alive] < 18
    cause = np.where(child, 1, np.where(rng.random(len(alive)) < 0.9, 0, 2))
    since_years = np.minimum(rng.uniform(0.1, 20, len(alive)), p["age"][alive])
    since = extract - (since_years * 365.25).astype(int).astype("timedelta64[D]")
    return pa.table(
        {
            "iin": fixed_strings(p["iin"][alive]),
            "disability_group": pa.array(group, mask=~(dis & (group > 0))),
            "disability_cause": pick(("general", "childhood", "work_injury"), cause, valid=dis),
            "disability_since": dates(np.where(dis, since, np.datetime64("NaT"))),
            "dispensary": pa.array(p["dispensary"][alive]),
            "long_illness": pa.array(p["long_illness"][alive]),
            "pregnant": pa.array(p["pregnant"][alive]),
            "polyclinic_id": codes(
                "PC", ctx["hh_district"][p["hh"][alive]] * 10 + p["hh"][alive] % 7, 6
            ),
        }
    )


def education(p: Columns, extract: np.datetime64, ctx: dict) -> pa.Table:
    """Enrolment: kindergarten, school, and college/university for students."""
    rng: np.random.Generator = ctx["rng"]
    rows = np.nonzero(p["study"] > 0)[0]
    level = p["study"][rows].astype(int) - 1  # 0 kindergarten, 1 school, 2 higher
    level = np.where(level == 2, np.where(rng.random(len(rows)) < 0.35, 2, 3), level)
    age = p["age"][rows]
    start_age = np.array([1.5, 6.5, 16.5, 18])[level]
    since = extract - (np.maximum(age - start_age, 0.05) * 365.25).astype(int).astype(
        "timedelta64[D]"
    )
    return pa.table(
        {
            "iin": fixed_strings(p["iin"][rows]),
            "level": pick(("kindergarten", "school", "college", "university"), level),
            "full_time": pa.array(np.ones(len(rows), bool)),
            "institution_id": codes("ED", ctx["hh_district"][p["hh"][rows]] * 10 + level, 6),
            "enrolled_from": dates(since),
        }
    )


def employment(p: Columns, extract: np.datetime64, ctx: dict, contract: np.ndarray) -> pa.Table:
    """Registered unemployed, job seekers and social-contract participants."""
    rng: np.random.Generator = ctx["rng"]
    groups = [p["unemployed_registered"], p["job_seeker"], contract]
    rows = np.concatenate([np.nonzero(g)[0] for g in groups])
    status = np.concatenate([np.full(g.sum(), i) for i, g in enumerate(groups)])
    since = extract - rng.integers(10, 700, len(rows)).astype("timedelta64[D]")
    return pa.table(
        {
            "iin": fixed_strings(p["iin"][rows]),
            "status": pick(("registered_unemployed", "job_seeker", "social_contract"), status),
            "since": dates(since),
        }
    )


def awards(p: Columns, extract: np.datetime64, ctx: dict) -> pa.Table:
    """Kumis alka / Altyn alka / Mother-heroine awards of mothers of many children."""
    rng: np.random.Generator = ctx["rng"]
    rows = np.nonzero(ctx["awarded"])[0]
    award = np.where(rng.random(len(rows)) < 0.45, 0, np.where(rng.random(len(rows)) < 0.97, 1, 2))
    when = extract - (rng.uniform(0.5, 25, len(rows)) * 365.25).astype(int).astype("timedelta64[D]")
    return pa.table(
        {
            "iin": fixed_strings(p["iin"][rows]),
            "award": pick(("kumis_alka", "altyn_alka", "mother_heroine"), award),
            "award_date": dates(when),
        }
    )
