"""The payments registry of one chunk: benefits paid today, with planted audit errors.

Who is paid follows the published rules (SPEC §9) as practice applies them: proactive measures
reach almost everyone entitled, ASP only the part of the poor who applied. Then the errors that
real audits find (SPEC §10) are planted at known low rates, each recorded in the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from qamqor.registries.schemas import MEASURES
from qamqor.synth.arrow import codes, dates, fixed_strings, pick
from qamqor.synth.people import CHILD, DECEASED, FIRST, Columns
from qamqor.synth.registries import months_before

PERIODS = 3  # months of payments in the extract
M = {name: i for i, name in enumerate(MEASURES)}
ERRORS = (
    "paid_after_death",
    "not_entitled",
    "asp_commercial_property",
    "hidden_household_member",
    "hidden_income",
    "two_regions",
    "duplicate_period",
    "incompatible",
    "wrong_amount",
    "duplicate_identity",
)
RATES = {
    "not_entitled": 0.08,  # of ASP recipients: families well above the poverty line
    "asp_commercial_property": 0.03,  # of ASP families
    "two_regions": 0.002,
    "duplicate_period": 0.002,
    "wrong_amount": 0.002,
    "after_death": 0.35,  # of pensioners who died in the window: paid on after death
    "incompatible": 0.25,  # of disabled single mothers who lost the breadwinner
}
# ASP: the share of the poor who apply. Proactive measures: the share assigned; the rest, and
# the planted `exclusion` share of those assigned, are exclusion errors in the truth.
TAKE_UP = {"asp": 0.33, "disability": 0.92, "carer_disabled_child": 0.94, "exclusion": 0.04}
SOCIAL_CONTRACT_SHARE = 8.3 / 48  # of ASP families: employed through a social contract (SPEC §2)
BREADWINNER_PM = (0.0, 0.92, 1.53, 2.14, 3.0)  # by number of dependents (approx.)
LARGE_FAMILY_MRP = {4: 16.03, 5: 20.04, 6: 24.05, 7: 28.06}


def bit(error: str) -> int:
    """The bit of an error type in `Paid.error`: a payment can carry several errors."""
    return 1 << ERRORS.index(error)


@dataclass
class Paid:
    """Payment rows being assembled: person row, measure, period index, amount, errors (a
    bit mask of `ERRORS`, 0 for a proper payment)."""

    row: list[np.ndarray] = field(default_factory=list)
    measure: list[np.ndarray] = field(default_factory=list)
    period: list[np.ndarray] = field(default_factory=list)
    amount: list[np.ndarray] = field(default_factory=list)
    region: list[np.ndarray] = field(default_factory=list)
    error: list[np.ndarray] = field(default_factory=list)

    def add(self, rows, measure, amount, periods=None, region=None, error=0) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if periods is None:  # monthly: every period of the extract
            rows, amount = np.repeat(rows, PERIODS), np.repeat(amount, PERIODS)
            periods = np.tile(np.arange(PERIODS), len(rows) // PERIODS)
        n = len(rows)
        self.row.append(rows)
        self.measure.append(np.broadcast_to(np.asarray(measure), n).astype(np.int64))
        self.period.append(np.asarray(periods, dtype=np.int64))
        self.amount.append(np.round(np.broadcast_to(np.asarray(amount, float), n), 0))
        self.region.append(np.full(n, -1) if region is None else np.asarray(region))
        self.error.append(np.full(n, error, dtype=np.int64))

    def columns(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(getattr(self, k)) for k in self.__dataclass_fields__}

    def replace(self, cols: dict[str, np.ndarray], **changed: np.ndarray) -> None:
        """Collapse to the given whole columns, with some of them changed."""
        for k in self.__dataclass_fields__:
            setattr(self, k, [changed.get(k, cols[k])])


def family_view(p: Columns) -> dict[str, np.ndarray]:
    """Per-person arrays of their family's counts (index by family_row)."""
    fr = p["family_row"]
    nf = fr.max() + 1
    alive = p["role"] != DECEASED
    kid = alive & (p["role"] == CHILD)
    return {
        "size": np.bincount(fr, weights=alive, minlength=nf),
        "kids": np.bincount(fr, weights=kid, minlength=nf),
        "kids_1_6": np.bincount(fr, weights=kid & (p["age"] >= 1) & (p["age"] < 7), minlength=nf),
        "able": np.bincount(fr, weights=p["able"], minlength=nf),
    }


def _birth_order(p: Columns) -> np.ndarray:
    """Each person's rank among their mother's children on the register, by birth date (the
    rules' birth order: 1 for the first child; 1 where the mother is unknown)."""
    rows = np.nonzero(p["mother"] >= 0)[0]
    rows = rows[np.lexsort((rows, p["birth"][rows], p["mother"][rows]))]
    mom = p["mother"][rows]
    start = np.r_[0, np.nonzero(np.diff(mom))[0] + 1]
    rank = np.arange(len(rows)) - np.repeat(start, np.diff(np.r_[start, len(rows)]))
    out = np.ones(len(p["mother"]), dtype=np.int64)
    out[rows] = rank + 1
    return out


def pay(
    rng: np.random.Generator, p: Columns, extract: np.datetime64, mrp: float, pm: np.ndarray
) -> tuple[Paid, dict[str, np.ndarray]]:
    """Benefits of the chunk; `pm` is the subsistence minimum per person row (regional).

    Returns the payments and per-person truth: exclusions, awarded mothers, social contracts.
    """
    paid = Paid()
    n = len(p["hh"])
    alive = p["role"] != DECEASED
    fam = family_view(p)
    fr = p["family_row"]
    first = alive & (p["role"] == FIRST)
    periods = months_before(extract, PERIODS)
    excluded = np.zeros((n, len(MEASURES)), dtype=bool)  # measures a person is wrongly not paid

    def proactive(rows: np.ndarray, measure: str, person: np.ndarray | None = None) -> np.ndarray:
        """Entitled rows minus a few planted exclusion errors, recorded for `person[rows]`
        (the person rows who should have been paid; `rows` themselves by default)."""
        out = rng.random(len(rows)) >= TAKE_UP["exclusion"]
        excluded[(rows if person is None else person[rows])[~out], M[measure]] = True
        return rows[out]

    # Age pensions, including pensioners who died in the window (paid up to the death).
    pens = np.nonzero(p["pension"] > 0)[0]
    live_pens = pens[alive[pens]]
    paid.add(live_pens, M["age_pension"], p["pension"][live_pens])
    died = np.nonzero(~alive & ~np.isnat(p["death"]) & (p["age"] >= 63))[0]
    died = died[p["death"][died] >= periods[0]]
    amount = 62_771 + 60_000 * rng.random(len(died))
    for k in range(PERIODS):
        before = p["death"][died] >= periods[k] + np.timedelta64(27, "D")
        after_err = ~before & (rng.random(len(died)) < RATES["after_death"])
        paid.add(died[before], M["age_pension"], amount[before], np.full(before.sum(), k))
        paid.add(
            died[after_err],
            M["age_pension"],
            amount[after_err],
            np.full(after_err.sum(), k),
            error=bit("paid_after_death"),
        )
    # Disability (adults, groups I–III) and carers.
    # Proactive measures: the entitled who never took one up are not paid either, and count
    # as exclusion errors (entitled, not paid) like the planted ones.
    dis = np.nonzero(alive & (p["disability_group"] > 0) & ~p["pensioner"])[0]
    taken = rng.random(len(dis)) < TAKE_UP["disability"]
    excluded[dis[~taken], M["disability"]] = True
    dis = proactive(dis[taken], "disability")
    coef = np.array([0, 2.20, 1.76, 1.20])[p["disability_group"][dis]]
    paid.add(dis, M["disability"], coef * pm[dis])
    sick_kid = np.nonzero(alive & p["disabled"] & (p["age"] < 18))[0]
    carer = np.where(p["mother"][sick_kid] >= 0, p["mother"][sick_kid], p["father"][sick_kid])
    carer = np.unique(carer[carer >= 0])
    taken = rng.random(len(carer)) < TAKE_UP["carer_disabled_child"]
    excluded[carer[alive[carer] & ~taken], M["carer_disabled_child"]] = True
    carer = proactive(carer[alive[carer] & taken], "carer_disabled_child")
    paid.add(carer, M["carer_disabled_child"], 1.61 * pm[carer])
    g1 = np.nonzero(alive & (p["disability_group"] == 1))[0]
    g1_carer = p["spouse"][g1]
    g1_carer = g1_carer[(g1_carer >= 0) & (rng.random(len(g1)) < 0.5)]
    g1_carer = g1_carer[alive[g1_carer] & ~p["pensioner"][g1_carer]]
    paid.add(g1_carer, M["carer_disabled_adult"], 1.40 * pm[g1_carer])
    # Loss of breadwinner: the surviving parent of children whose father died.
    orphan = alive & (p["role"] == CHILD) & (p["father"] >= 0)
    orphan &= ~np.isnat(p["death"][np.maximum(p["father"], 0)])
    mothers, deps = np.unique(p["mother"][orphan & (p["mother"] >= 0)], return_counts=True)
    bl_amount = np.array(BREADWINNER_PM)[np.minimum(deps, 4)] * pm[mothers]
    paid.add(mothers, M["breadwinner_loss"], bl_amount)
    both = mothers[p["disabled"][mothers] & (rng.random(len(mothers)) < RATES["incompatible"])]
    both = both[np.isin(both, dis)]  # the second award: an extra line beside her own
    paid.add(both, M["disability"], 1.76 * pm[both], error=bit("incompatible"))
    # Large families: the mother (or the parent) of 4+ children.
    kids = fam["kids"][fr]
    lf = np.nonzero(first & (kids >= 4))[0]
    lf = proactive(lf, "large_family")
    k = fam["kids"][fr[lf]].astype(int)
    lf_mrp = np.where(
        k >= 8,
        28.06 + 4.01 * (k - 7),
        np.array([0, 0, 0, 0, 16.03, 20.04, 24.05, 28.06, 0])[np.minimum(k, 8)],
    )
    paid.add(lf, M["large_family"], lf_mrp * mrp)
    # Awarded mothers: mothers of 5+ children now, and older mothers of many grown children.
    older = (
        alive & p["female"] & (p["age"] >= 45) & (rng.random(n) < np.where(p["urban"], 0.043, 0.11))
    )
    awarded = (first & p["female"] & (kids >= 6)) | older
    aw = np.nonzero(awarded)[0]
    aw_mrp = np.where(rng.random(len(aw)) < 0.45, 6.40, 7.40)
    paid.add(aw, M["awarded_mother"], aw_mrp * mrp)
    # Birth (once, in the birth month) and childcare to 1.5 years for mothers not insured.
    # under 1.5 years as the register counts it: fewer than 18 whole months since birth
    months = (extract.astype("datetime64[M]") - p["birth"].astype("datetime64[M]")).astype(int)
    day = (p["birth"] - p["birth"].astype("datetime64[M]")).astype(int)
    months -= day > (extract - extract.astype("datetime64[M]")).astype(int)
    baby = np.nonzero(alive & (p["role"] == CHILD) & (months < 18) & (p["mother"] >= 0))[0]
    mom = p["mother"][baby]
    order = np.minimum(_birth_order(p)[baby], 4)
    bmonth = p["birth"][baby].astype("datetime64[M]").astype("datetime64[D]")
    in_window = np.nonzero(np.isin(bmonth, periods))[0]
    paid.add(
        mom[in_window],
        M["birth"],
        np.where(order[in_window] >= 4, 63, 38) * mrp,
        np.searchsorted(periods, bmonth[in_window]),
    )
    # Mothers outside compulsory social insurance: not employed, or self-employed.
    cc = ~p["employed"][mom] | p["self_employed"][mom]
    # indices into the babies: the exclusion is recorded for the mother, who is paid
    cc_rows = proactive(np.nonzero(cc)[0], "childcare", person=mom)
    cc_mrp = np.array([0, 5.76, 6.81, 7.85, 8.90])[order[cc_rows]]
    paid.add(mom[cc_rows], M["childcare"], cc_mrp * mrp)

    # ASP: per-capita declared income (wages + pensions + benefits so far) below the line.
    cols = paid.columns()
    month_income = np.bincount(cols["row"], weights=cols["amount"], minlength=n) / PERIODS
    declared = p["wage"] + month_income
    pc = np.bincount(fr, weights=declared * alive, minlength=len(fam["size"])) / np.maximum(
        fam["size"], 1
    )
    line = np.maximum(0.35 * 117_000, 0.7 * pm)  # the 2025 rule with the card's median (approx.)
    poor_fam = pc[fr] < line
    applicants = np.nonzero(first & poor_fam & (rng.random(n) < TAKE_UP["asp"]))[0]
    # Not entitled: better-off families with children that got ASP anyway.
    well_off = np.nonzero(first & (pc[fr] > 2.5 * line) & (fam["kids"][fr] > 0))[0]
    n_bad = int(len(applicants) * RATES["not_entitled"])
    bad = (
        rng.choice(well_off, size=min(n_bad, len(well_off)), replace=False)
        if n_bad
        else well_off[:0]
    )
    for rows, err in ((applicants, 0), (np.sort(bad), bit("not_entitled"))):
        gap = np.maximum(line[rows] - pc[fr[rows]], 0.05 * line[rows])
        asp = gap * fam["size"][fr[rows]] + 1.5 * mrp * fam["kids_1_6"][fr[rows]]
        paid.add(rows, M["asp"], asp, error=err)
    asp_fams = np.concatenate([applicants, bad])
    # ASP to a hidden-income family is an error too.
    hid = applicants[np.isin(fr[applicants], np.unique(fr[p["hidden_income"]]))]
    # Social contracts: a fixed share of ASP families, one able-bodied member each.
    able = np.nonzero(p["able"] & np.isin(fr, fr[applicants]))[0]
    able = able[np.unique(fr[able], return_index=True)[1]]
    k = min(round(SOCIAL_CONTRACT_SHARE * len(asp_fams)), len(able))
    contract = np.zeros(n, dtype=bool)
    contract[rng.choice(able, size=k, replace=False)] = True
    return paid, {
        "excluded": excluded,
        "awarded": awarded,
        "contract": contract,
        "asp_families": fr[asp_fams],
        "asp_hidden_income": hid,
        "declared_pc": pc,
        "line": line,
    }


def plant_duplicates(
    rng: np.random.Generator, paid: Paid, n_regions: int, region_of_row: np.ndarray
) -> None:
    """The same measure twice in one period, or paid again in another region."""
    cols = paid.columns()
    n = len(cols["row"])
    for err, other_region in (("duplicate_period", False), ("two_regions", True)):
        pick_ = np.nonzero((rng.random(n) < RATES[err]) & (cols["measure"] != M["age_pension"]))[0]
        reg = region_of_row[cols["row"][pick_]]
        if other_region:
            reg = (reg + rng.integers(1, n_regions, len(pick_))) % n_regions
        paid.add(
            cols["row"][pick_],
            cols["measure"][pick_],
            cols["amount"][pick_],
            cols["period"][pick_],
            reg,
            bit(err),
        )
    cols = paid.columns()
    wrong = (rng.random(len(cols["row"])) < RATES["wrong_amount"]) & (cols["error"] == 0)
    paid.replace(
        cols,
        amount=np.where(wrong, np.round(cols["amount"] * 1.6), cols["amount"]),
        error=np.where(wrong, bit("wrong_amount"), cols["error"]),
    )


def payment_table(
    p: Columns, paid: Paid, extract: np.datetime64, region_codes: list[str], ctx: dict
) -> tuple[pa.Table, pa.Table]:
    """The payments registry and the truth: a row per planted error of a payment (one payment
    may carry several, e.g. ASP to a family hiding income and owning commercial property)."""
    rng: np.random.Generator = ctx["rng"]
    cols = paid.columns()
    order = np.lexsort((cols["measure"], cols["row"], cols["period"]))
    cols = {k: v[order] for k, v in cols.items()}
    n = len(order)
    region = np.where(cols["region"] >= 0, cols["region"], p["region"][cols["row"]])
    periods = months_before(extract, PERIODS)[cols["period"]]
    ids = ctx["payment_offset"] + np.arange(n)
    ctx["payment_offset"] += n
    paid_date = periods + rng.integers(24, 31, n).astype("timedelta64[D]")
    account = ctx["account"][cols["row"]]
    table = pa.table(
        {
            "payment_id": codes("PM", ids, 12),
            "iin": fixed_strings(p["iin"][cols["row"]]),
            "measure": pick(MEASURES, cols["measure"]),
            "period": dates(periods),
            "amount": pa.array(cols["amount"].astype(float)),
            "region": pick(region_codes, region),
            "bank_account": codes("KZ", account, 18),
            "paid_date": dates(np.minimum(paid_date, extract - np.timedelta64(1, "D"))),
        }
    )
    # one truth row per planted error of a payment
    err = [np.nonzero(cols["error"] & (1 << k))[0] for k in range(len(ERRORS))]
    kind = np.concatenate([np.full(len(e), k) for k, e in enumerate(err)])
    err = np.concatenate(err)
    by_id = np.argsort(err, kind="stable")
    err, kind = err[by_id], kind[by_id]
    truth = pa.table(
        {
            "payment_id": codes("PM", ids[err], 12),
            "iin": fixed_strings(p["iin"][cols["row"][err]]),
            "measure": pick(MEASURES, cols["measure"][err]),
            "type": pick(ERRORS, kind),
            "amount": pa.array(cols["amount"][err].astype(float)),
        }
    )
    return table, truth
