"""Households, families and people of one chunk of the synthetic nation (vectorised numpy).

A household is one registered address holding one family (SPEC §5) or two: a family plus an
adult child living with the parents, or plus the elderly parents of the husband. The generator
knows the true family of every person; the card must find the same families from the civil links
and addresses alone.
"""

from __future__ import annotations

import numpy as np

from qamqor.countries import Country

# Primary family of a household.
COUPLE_KIDS, SINGLE_PARENT, COUPLE, SINGLE = 0, 1, 2, 3
# Roles of people in a household.
FIRST, HUSBAND, CHILD, ADULT_CHILD, GRANDMOTHER, GRANDFATHER, DECEASED = range(7)

PRIMARY_P = {True: (0.52, 0.10, 0.24, 0.14), False: (0.58, 0.08, 0.24, 0.10)}  # by urban
# Children (under 18 or full-time students under 23) in couple families, P(k = 1..8).
KIDS_COUPLE = {
    True: (0.41, 0.40, 0.05, 0.085, 0.035, 0.013, 0.005, 0.002),
    False: (0.31, 0.34, 0.06, 0.160, 0.080, 0.030, 0.012, 0.008),
}
KIDS_SINGLE = (0.52, 0.30, 0.12, 0.04, 0.015, 0.005, 0.0, 0.0)
ATTACH_ADULT_CHILD = 0.06  # couples with children over 40 that have an adult child at home
ATTACH_ELDERLY = {True: 0.16, False: 0.32}  # young families living with elderly parents
BREADWINNER_LOST = 0.43  # single mothers whose husband died
WIDOWED_IN_WINDOW = 0.12  # elderly single women whose husband died within the last year
MARRIED_IN_WINDOW = 0.25  # young childless couples married within the last year
YEAR = 365.25

Columns = dict[str, np.ndarray]


def _choice(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw: p has shape (n, k); returns the chosen column per row."""
    u = rng.random(len(p))[:, None]
    return (np.cumsum(p, axis=1) < u).sum(axis=1).clip(0, p.shape[1] - 1)


def _days(years: np.ndarray) -> np.ndarray:
    return (np.asarray(years) * YEAR).astype(np.int64).astype("timedelta64[D]")


def _district_samplers(country: Country) -> dict[tuple[int, bool], tuple[np.ndarray, np.ndarray]]:
    """For each (region index, urban): district indices and cumulative sampling weights."""
    out = {}
    for r, reg in enumerate(country.regions):
        for urban in (False, True):
            ds = [
                i
                for i, d in enumerate(country.districts)
                if d.region == reg.code and bool(d.urban) == urban
            ] or [i for i, d in enumerate(country.districts) if d.region == reg.code]
            w = np.array([max(country.districts[i].population_thousands, 1.0) for i in ds])
            out[(r, urban)] = (np.array(ds), np.cumsum(w / w.sum()))
    return out


def make_people(
    rng: np.random.Generator, n_families: int, country: Country, extract: np.datetime64
) -> tuple[Columns, Columns]:
    """Draw households holding exactly `n_families` living families; return (households, people).

    People include deceased relatives (family = -1) whose links still shape past families.
    """
    pop = np.array([r.population_thousands for r in country.regions], dtype=float)
    urban_share = np.array([r.urban_share for r in country.regions], dtype=float)
    # Rural families are larger: sample households by population / expected size.
    hh_p = pop / (urban_share * 2.9 + (1 - urban_share) * 3.6)
    hh_p /= hh_p.sum()
    m = int(n_families / 1.2) + 20
    while True:
        h = _draw_households(rng, m, hh_p, urban_share)
        cum = np.cumsum(1 + h["adult_child"] + h["elderly"])
        if cum[-1] >= n_families:
            break
        m = int(m * 1.3) + 20
    keep = int(np.searchsorted(cum, n_families)) + 1
    h = {k: v[:keep] for k, v in h.items()}
    over = int(cum[keep - 1] - n_families)  # the last household gives up secondaries to fit
    for sec in ("elderly", "adult_child"):
        if over and h[sec][-1]:
            h[sec][-1] = False
            over -= 1
    h["district"] = np.empty(keep, dtype=np.int64)
    u = rng.random(keep)
    for (r, urban), (ds, cw) in _district_samplers(country).items():
        sel = (h["region"] == r) & (h["urban"] == urban)
        h["district"][sel] = ds[np.searchsorted(cw, u[sel]).clip(0, len(ds) - 1)]
    people = _people(rng, h, extract)
    return h, people


def _draw_households(
    rng: np.random.Generator, m: int, hh_p: np.ndarray, urban_share: np.ndarray
) -> Columns:
    region = rng.choice(len(hh_p), size=m, p=hh_p)
    urban = rng.random(m) < (urban_share[region] * 1.08).clip(0, 1)
    kind = _choice(rng, np.array([PRIMARY_P[True], PRIMARY_P[False]])[(~urban).astype(int)])
    stage = rng.random(m)
    young, middle = np.where(kind == COUPLE, 0.33, 0.40), np.where(kind == COUPLE, 0.38, 0.46)
    age = np.where(
        kind <= SINGLE_PARENT,
        np.clip(rng.normal(np.where(urban, 38.0, 36.0), 8), 20, 58),
        np.where(
            stage < young,
            rng.uniform(19, 35, m),
            np.where(
                stage < middle,
                rng.uniform(35, 61, m),
                np.clip(61 + rng.exponential(9.5, m), 61, 98),
            ),
        ),
    )
    adult_child = (kind == COUPLE_KIDS) & (age >= 40) & (rng.random(m) < ATTACH_ADULT_CHILD)
    adult_child |= (kind == COUPLE) & (age >= 42) & (age < 61) & (rng.random(m) < 0.15)
    p_eld = np.where(urban, ATTACH_ELDERLY[True], ATTACH_ELDERLY[False])
    elderly = (age <= 44) & (kind != SINGLE) & ~adult_child & (rng.random(m) < p_eld)
    probs = np.where(
        (kind == COUPLE_KIDS)[:, None],
        np.where(urban[:, None], KIDS_COUPLE[True], KIDS_COUPLE[False]),
        np.array(KIDS_SINGLE)[None, :],
    )
    kids = np.where(kind <= SINGLE_PARENT, _choice(rng, probs) + 1, 0)
    return {
        "region": region,
        "urban": urban,
        "kind": kind,
        "age": age,
        "kids": kids,
        "adult_child": adult_child,
        "elderly": elderly,
    }


def _people(rng: np.random.Generator, h: Columns, extract: np.datetime64) -> Columns:
    n_hh = len(h["kind"])
    kind, age, kids = h["kind"], h["age"], h["kids"]
    couple = (kind == COUPLE_KIDS) | (kind == COUPLE)
    first_female = np.where(
        kind == SINGLE_PARENT,
        rng.random(n_hh) < 0.88,
        np.where(kind == SINGLE, rng.random(n_hh) < np.where(age >= 61, 0.68, 0.45), True),
    )
    husband_age = np.clip(age + rng.normal(3, 3, n_hh), 19, 100)
    # Family numbers within the chunk: primaries first, then adult children, then elders.
    fam = np.arange(n_hh)
    fam_ac = np.full(n_hh, -1)
    fam_ac[h["adult_child"]] = n_hh + np.arange(h["adult_child"].sum())
    fam_el = np.full(n_hh, -1)
    fam_el[h["elderly"]] = n_hh + h["adult_child"].sum() + np.arange(h["elderly"].sum())

    blocks: list[Columns] = []

    def add(hh: np.ndarray, family: np.ndarray, role: int, female, years) -> None:
        blocks.append(
            {
                "hh": hh,
                "family": family,
                "role": np.full(len(hh), role, dtype=np.int8),
                "female": np.broadcast_to(female, len(hh)).astype(bool),
                "age": np.asarray(years, dtype=float),
            }
        )

    all_hh = np.arange(n_hh)
    add(all_hh, fam, FIRST, first_female, age)
    add(all_hh[couple], fam[couple], HUSBAND, False, husband_age[couple])
    kid_hh = np.repeat(all_hh, kids)
    max_kid = np.minimum(age[kid_hh] - 19, 22.9)  # mother at least 19 at birth
    add(
        kid_hh,
        fam[kid_hh],
        CHILD,
        rng.random(len(kid_hh)) < 0.487,
        rng.random(len(kid_hh)) * max_kid,
    )
    ac = all_hh[h["adult_child"]]
    ac_age = np.minimum(rng.uniform(23, 33, len(ac)), age[ac] - 19)
    add(ac, fam_ac[ac], ADULT_CHILD, rng.random(len(ac)) < 0.45, ac_age)
    el = all_hh[h["elderly"]]
    base = np.where(couple, husband_age, age)[el]
    gm_age = np.clip(base + rng.uniform(20, 33, len(el)), 55, 99)
    add(el, fam_el[el], GRANDMOTHER, True, gm_age)
    both = rng.random(len(el)) < 0.55
    add(el[both], fam_el[el[both]], GRANDFATHER, False, gm_age[both] + rng.normal(3, 2, both.sum()))

    # Deceased: the husband of single mothers (loss of breadwinner) and of recent widows.
    lost = (kind == SINGLE_PARENT) & first_female & (rng.random(n_hh) < BREADWINNER_LOST)
    widow = (kind == SINGLE) & first_female & (age >= 61) & (rng.random(n_hh) < WIDOWED_IN_WINDOW)
    dead = all_hh[lost | widow]
    add(
        dead,
        np.full(len(dead), -1),
        DECEASED,
        False,
        age[dead] + rng.normal(3, 2, len(dead)).clip(0),
    )

    p = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    order = np.lexsort((p["role"], p["hh"]))
    p = {k: v[order] for k, v in p.items()}
    for col in ("region", "urban", "district", "kind"):
        p[col] = h[col][p["hh"]]
    _link(rng, p, n_hh, extract, lost)
    return p


def _row_of(p: Columns, role: int, n_hh: int) -> np.ndarray:
    """Row of the person with `role` in each household (-1 if none)."""
    out = np.full(n_hh, -1, dtype=np.int64)
    rows = np.nonzero(p["role"] == role)[0]
    out[p["hh"][rows]] = rows
    return out


def _link(
    rng: np.random.Generator, p: Columns, n_hh: int, extract: np.datetime64, lost: np.ndarray
) -> None:
    """Add parents, spouses, birth/death/marriage dates in place."""
    n = len(p["hh"])
    hh, role = p["hh"], p["role"]
    first, husband = _row_of(p, FIRST, n_hh), _row_of(p, HUSBAND, n_hh)
    gm, gp = _row_of(p, GRANDMOTHER, n_hh), _row_of(p, GRANDFATHER, n_hh)
    dead = _row_of(p, DECEASED, n_hh)
    father = np.full(n, -1, dtype=np.int64)
    mother = np.full(n, -1, dtype=np.int64)
    spouse = np.full(n, -1, dtype=np.int64)
    kid = (role == CHILD) | (role == ADULT_CHILD)
    kh = hh[kid]
    first_is_female = p["female"][first[kh]]
    mother[kid] = np.where(first_is_female, first[kh], -1)
    dad = np.where(husband[kh] >= 0, husband[kh], np.where(first_is_female, -1, first[kh]))
    father[kid] = np.where((dad < 0) & lost[kh], dead[kh], dad)
    # The elderly are the parents of the husband (or of the single parent).
    elder_child = np.where(husband >= 0, husband, first)
    mother[elder_child[gm >= 0]] = gm[gm >= 0]
    father[elder_child[gp >= 0]] = gp[gp >= 0]
    pairs = [(first, husband), (gm, gp), (first, dead)]
    for a, b in pairs:
        ok = (a >= 0) & (b >= 0)
        spouse[a[ok]], spouse[b[ok]] = b[ok], a[ok]

    # Clipped ages pile up on whole years: spread them over the year so birth dates differ.
    whole = p["age"] == np.floor(p["age"])
    p["age"] = np.where(whole, p["age"] + rng.uniform(0, 0.99, n), p["age"])
    birth = extract - _days(p["age"]) - np.timedelta64(1, "D")
    death = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    dr = dead[dead >= 0]
    years_ago = np.where(
        lost[hh[dr]], rng.uniform(0.3, 9, len(dr)), rng.uniform(0.0, 0.99, len(dr))
    )
    death[dr] = extract - _days(years_ago) - np.timedelta64(1, "D")

    # Marriages: parents before their first child; some young couples within the last year;
    # elders at about 22; the deceased some years before the death.
    oldest = np.zeros(n_hh)
    np.maximum.at(oldest, hh[kid], p["age"][kid])
    a0 = p["age"][first]
    years = np.where(
        oldest > 0,
        oldest + rng.uniform(0.8, 3, n_hh),
        np.where(
            a0 < 35,
            np.where(
                rng.random(n_hh) < MARRIED_IN_WINDOW,
                rng.uniform(0, 1, n_hh),
                rng.uniform(1, 8, n_hh),
            ),
            a0 - rng.uniform(20, 27, n_hh),
        ),
    )
    years = np.clip(years, 0.01, np.maximum(a0 - 18, 0.02))
    marriage = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    for a, b in pairs:
        ok = (a >= 0) & (b >= 0)
        d = extract - _days(years[ok])
        if b is gp:
            d = extract - _days(np.maximum(p["age"][a[ok]] - 22, 0.5))
        if b is dead:
            d = np.minimum(d, death[b[ok]] - np.timedelta64(200, "D"))
        marriage[a[ok]] = d
        marriage[b[ok]] = d
    p.update(
        father=father, mother=mother, spouse=spouse, birth=birth, death=death, marriage=marriage
    )
