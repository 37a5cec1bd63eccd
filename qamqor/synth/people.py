"""Households, families and people of one chunk of the synthetic nation (vectorised numpy).

A household is one registered address holding one family (SPEC §5) or two: a family plus an
unmarried adult child living with the parents (unless disabled: then the child is in the parents'
family), or plus the elderly parents of the husband. The generator knows the true family of every
person; the card must find the same families from the civil links and addresses alone, so the
truth follows SPEC §5 exactly, and birth dates give the register the ages the generator meant.
"""

from __future__ import annotations

import numpy as np

from qamqor.countries import Country

# Primary family of a household.
COUPLE_KIDS, SINGLE_PARENT, COUPLE, SINGLE = 0, 1, 2, 3
# Roles of people in a household.
FIRST, HUSBAND, CHILD, ADULT_CHILD, GRANDMOTHER, GRANDFATHER, DECEASED = range(7)

# The household model is tuned to SPEC §2 (docs/generator.md): 3 people per household in towns
# and 4 in villages, only 26 % of people in households of 5+, yet 613 k families with 4+ children.
URBAN_BOOST = 1.12  # households are urban with the region's urban share × this (rural are larger)
PRIMARY_P = {True: (0.47, 0.09, 0.385, 0.055), False: (0.70, 0.07, 0.165, 0.065)}  # by urban
# Childless couples and single people: shares young (19-35) and middle-aged (35-61); the rest
# are 61+.
STAGE_P = {COUPLE: (0.34, 0.08), SINGLE: (0.35, 0.06)}
# Children (under 18 or full-time students under 23) in couple families, P(k = 1..8). Few have
# three: with 4+ children in 9.7 % of families, three more would crowd households of 5+.
KIDS_COUPLE = {
    True: (0.450, 0.385, 0.030, 0.082, 0.034, 0.012, 0.005, 0.002),
    False: (0.220, 0.465, 0.050, 0.146, 0.073, 0.028, 0.011, 0.007),
}
KIDS_SINGLE = (0.52, 0.30, 0.12, 0.04, 0.015, 0.005, 0.0, 0.0)
PARENT_AGE = {True: 38.0, False: 36.0}  # mean age of the mother (or single parent) of children
LAST_BIRTH, BIRTH_AGE = 45.0, 25.0  # mothers give birth from 19 to 45, most often at 25
# Secondary families at the address. Young families (the first adult at most 44) live with the
# husband's elderly parents, by the young family's size 2, 3, 4+ (a village custom, rarer in
# towns, and rarely in a flat that is already full):
ELDERLY_P = {True: (0.12, 0.05, 0.0), False: (0.62, 0.43, 0.10)}  # by urban
ELDERLY_PAIR = (0.8, 0.4, 0.0)  # both elderly parents alive (else a widow), by the same sizes
# An unmarried adult child (23+) at home: with couples whose mother is 40+ and who have at most
# ADULT_CHILD_MAX_KIDS children, with childless couples 42-75, with single people 45-80.
ADULT_CHILD_P = {COUPLE_KIDS: 0.05, COUPLE: 0.10, SINGLE: 0.10}
ADULT_CHILD_MAX_KIDS = 1
DISABLED_ADULT_CHILD = 0.06  # of them disabled: in the parents' family (SPEC §5)
BREADWINNER_LOST = 0.45  # single mothers whose husband died
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
    # Rural households are larger: sample households by population / expected size (SPEC §2).
    u = (urban_share * URBAN_BOOST).clip(0, 1)
    hh_p = pop / (u * 3.0 + (1 - u) * 4.0)
    hh_p /= hh_p.sum()
    m = int(n_families / 1.05) + 20  # households hold about 1.09 families: one draw suffices
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
    h["elderly_pair"] &= h["elderly"]
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
    urban = rng.random(m) < (urban_share[region] * URBAN_BOOST).clip(0, 1)
    kind = _choice(rng, np.array([PRIMARY_P[True], PRIMARY_P[False]])[(~urban).astype(int)])
    stage = rng.random(m)
    young = np.where(kind == COUPLE, STAGE_P[COUPLE][0], STAGE_P[SINGLE][0])
    middle = young + np.where(kind == COUPLE, STAGE_P[COUPLE][1], STAGE_P[SINGLE][1])
    age = np.where(
        kind <= SINGLE_PARENT,
        np.clip(rng.normal(np.where(urban, PARENT_AGE[True], PARENT_AGE[False]), 8), 20, 58),
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
    probs = np.where(
        (kind == COUPLE_KIDS)[:, None],
        np.where(urban[:, None], KIDS_COUPLE[True], KIDS_COUPLE[False]),
        np.array(KIDS_SINGLE)[None, :],
    )
    kids = np.where(kind <= SINGLE_PARENT, _choice(rng, probs) + 1, 0)
    couple = (kind == COUPLE_KIDS) | (kind == COUPLE)
    size = np.where(couple, 2, 1) + kids  # of the primary family
    can_have = np.select(
        [
            (kind == COUPLE_KIDS) & (age >= 40) & (kids <= ADULT_CHILD_MAX_KIDS),
            (kind == COUPLE) & (age >= 42) & (age < 75),
            (kind == SINGLE) & (age >= 45) & (age < 80),
        ],
        [ADULT_CHILD_P[COUPLE_KIDS], ADULT_CHILD_P[COUPLE], ADULT_CHILD_P[SINGLE]],
        0.0,
    )
    adult_child = rng.random(m) < can_have
    # A disabled adult child belongs to the parents' family; the others are families of their own.
    dependant = adult_child & (rng.random(m) < DISABLED_ADULT_CHILD)
    adult_child &= ~dependant
    by_size = np.clip(size - 2, 0, 2)
    p_eld = np.array([ELDERLY_P[False], ELDERLY_P[True]])[urban.astype(int), by_size]
    elderly = (age <= 44) & (kind != SINGLE) & ~adult_child & ~dependant & (rng.random(m) < p_eld)
    pair = elderly & (rng.random(m) < np.array(ELDERLY_PAIR)[by_size])
    return {
        "region": region,
        "urban": urban,
        "kind": kind,
        "age": age,
        "kids": kids,
        "adult_child": adult_child,
        "dependant": dependant,
        "elderly": elderly,
        "elderly_pair": pair,
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
    at_home = h["adult_child"] | h["dependant"]
    fam_ac = np.where(h["dependant"], fam, -1)
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
    # The mother's age at each birth: triangular from 19 (or as late as keeps the child under
    # 23) to LAST_BIRTH (or today), most often BIRTH_AGE; older mothers have older children.
    mother = age[kid_hh]
    lo, hi = np.maximum(19.0, mother - 22.9), np.minimum(mother, LAST_BIRTH)
    at_birth = rng.triangular(lo, np.clip(BIRTH_AGE, lo, hi), hi)
    add(kid_hh, fam[kid_hh], CHILD, rng.random(len(kid_hh)) < 0.487, mother - at_birth)
    ac = all_hh[at_home]
    ac_age = np.clip(age[ac] - rng.uniform(20, 32, len(ac)), 23, age[ac] - 19)
    add(ac, fam_ac[ac], ADULT_CHILD, rng.random(len(ac)) < 0.45, ac_age)
    el = all_hh[h["elderly"]]
    base = np.where(couple, husband_age, age)[el]
    gm_age = np.clip(base + rng.uniform(20, 33, len(el)), 55, 99)
    add(el, fam_el[el], GRANDMOTHER, True, gm_age)
    both = h["elderly_pair"][el]
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
    p["dependant"] = (p["role"] == ADULT_CHILD) & h["dependant"][p["hh"]]
    _link(rng, p, n_hh, extract, lost)
    return p


def _calendar_age(birth: np.ndarray, on: np.datetime64) -> np.ndarray:
    """Whole years of age on a date, as the register counts them (birthdays, not 365.25 days)."""
    by, bm = birth.astype("datetime64[Y]"), birth.astype("datetime64[M]")
    oy, om = on.astype("datetime64[Y]"), on.astype("datetime64[M]")
    b_md = (bm - by.astype("datetime64[M]")).astype(int) * 32 + (birth - bm).astype(int)
    o_md = (om - oy.astype("datetime64[M]")).astype(int) * 32 + (on - om).astype(int)
    return (oy - by).astype(int) - (b_md > o_md)


def _birth_dates(extract: np.datetime64, age: np.ndarray) -> np.ndarray:
    """Birth dates whose calendar age on the extract date is the whole part of `age`.

    Counting days (365.25 a year) puts a birthday a day early or late near whole years, so a
    17.999-year-old would be 18 in the register and drop out of the family the generator meant.
    """
    birth = extract - _days(age) - np.timedelta64(1, "D")
    frac = age - np.floor(age)
    near = np.nonzero((frac < 0.01) | (frac > 0.99))[0]  # within 4 days of a birthday
    want = np.floor(age[near]).astype(int)
    for _ in range(3):
        off = _calendar_age(birth[near], extract) - want
        if not off.any():
            break
        birth[near] += np.sign(off).astype("timedelta64[D]")
    return birth


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
    father[kid] = np.where((dad < 0) & (dead[kh] >= 0), dead[kh], dad)
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
    birth = _birth_dates(extract, p["age"])
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
