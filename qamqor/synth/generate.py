"""`qamqor generate`: a synthetic nation written as registry extracts, chunk by chunk.

Deterministic: chunk c draws from `numpy.random.default_rng([seed, c])` and chunks are written
in order, so the same seed, size and chunk size give byte-identical files. Memory stays bounded
by the chunk size, so 6.3 M families run on a 2-core, 24 GiB machine.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from qamqor.countries import Country, load_country
from qamqor.ids import make_iins
from qamqor.registries.schemas import BY_NAME
from qamqor.synth import names, payments, registries
from qamqor.synth.arrow import codes, fixed_strings, pick
from qamqor.synth.attributes import add_attributes
from qamqor.synth.people import DECEASED, make_people

CHUNK_FAMILIES = 100_000
DUPLICATE_IDENTITY_RATE = 0.004  # of recipients of non-pension benefits
DEFAULT_EXTRACT = date(2025, 10, 1)


@dataclass(frozen=True)
class GenerateResult:
    out: Path
    families: int
    people: int
    rows: dict[str, int]


def generate(
    out: Path,
    families: int,
    seed: int = 1,
    extract_date: date = DEFAULT_EXTRACT,
    country_code: str = "kz",
    chunk_families: int = CHUNK_FAMILIES,
    progress: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Write `out/registries/*.parquet` with a manifest.json, and `out/truth/*.parquet`."""
    if families < 1:
        raise ValueError("--families must be at least 1")
    country = load_country(country_code)
    out = Path(out)
    tmp = out / ".generate.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "registries").mkdir(parents=True)
    (tmp / "truth").mkdir()
    extract = np.datetime64(extract_date, "D")
    writers = _Writers(tmp)
    counters = _Counters()
    done = 0
    chunk = 0
    people = 0
    while done < families:
        n = min(chunk_families, families - done)
        people += _chunk(
            np.random.default_rng([seed, chunk]), n, country, extract, counters, writers
        )
        done += n
        chunk += 1
        if progress:
            progress(n)
    rows = writers.close()
    manifest = {
        "country": country_code,
        "extract_date": extract_date.isoformat(),
        "seed": seed,
        "families": families,
        "people": people,
        "chunk_families": chunk_families,
        "rows": rows,
    }
    (tmp / "registries" / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for sub in ("registries", "truth"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (tmp / sub).rename(out / sub)
    shutil.rmtree(tmp, ignore_errors=True)
    return GenerateResult(out, families, people, rows)


class _Writers:
    """One Parquet writer per output file, opened on first write."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.open: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}

    def write(self, name: str, table: pa.Table, truth: bool = False) -> None:
        if not truth:
            table = table.select(BY_NAME[name].column_names)
        key = f"truth/{name}" if truth else f"registries/{name}"
        if key not in self.open:
            self.open[key] = pq.ParquetWriter(
                self.root / f"{key}.parquet", table.schema, compression="zstd"
            )
            self.rows[key] = 0
        self.open[key].write_table(table, row_group_size=1_000_000)
        self.rows[key] += table.num_rows

    def close(self) -> dict[str, int]:
        for w in self.open.values():
            w.close()
        return dict(sorted(self.rows.items()))


class _Counters:
    """Running offsets that keep identifiers unique across chunks."""

    def __init__(self) -> None:
        days = (np.datetime64("2100-01-01") - np.datetime64("1800-01-01")).astype(int)
        self.serial = np.zeros((days, 2), dtype=np.int32)
        self.family = 0
        self.ctx = {
            "hh_offset": 0,
            "event_offset": 0,
            "property_offset": 0,
            "vehicle_offset": 0,
            "loan_offset": 0,
            "payment_offset": 0,
            "person_offset": 0,
        }

    def iins(self, birth: np.ndarray, female: np.ndarray) -> np.ndarray:
        """Unique valid IINs: serials count up per birth date and sex across chunks."""
        day = (birth - np.datetime64("1800-01-01")).astype(np.int64)
        key = day * 2 + female
        flat = self.serial.reshape(-1)
        out = np.empty(len(birth), dtype="S12")
        todo = np.arange(len(birth))
        while len(todo):
            k = key[todo]
            order = np.argsort(k, kind="stable")
            ks = k[order]
            starts = np.r_[0, np.nonzero(np.diff(ks))[0] + 1]
            rank = np.arange(len(ks)) - np.repeat(starts, np.diff(np.r_[starts, len(ks)]))
            serial = np.empty(len(ks), dtype=np.int64)
            serial[order] = flat[ks] + rank
            np.add.at(flat, ks[starts], np.diff(np.r_[starts, len(ks)]))
            iin, valid = make_iins(birth[todo], female[todo], serial)
            out[todo[valid]] = iin[valid]
            todo = todo[~valid]
        return out


def _chunk(
    rng: np.random.Generator,
    n_families: int,
    country: Country,
    extract: np.datetime64,
    counters: _Counters,
    w: _Writers,
) -> int:
    h, p = make_people(rng, n_families, country, extract)
    add_attributes(rng, p, country, extract)
    n_hh = len(h["kind"])
    when = extract.astype(object)
    mrp = float(country.parameter("mrp").at(when))
    pm_coef = np.array([country.regional_pm(r.code, when) for r in country.regions])
    paid, truth = payments.pay(rng, p, extract, mrp, pm_coef[p["region"]])
    _label_asp(p, paid, truth)
    dup_rows = _duplicate_identities(rng, p, paid, country)
    payments.plant_duplicates(rng, paid, len(country.regions), p["region"])
    p["iin"] = counters.iins(p["birth"], p["female"])

    ctx = counters.ctx
    # Households, with the fictitious addresses of second identities appended.
    hh_urban = np.concatenate([h["urban"], p["urban"][dup_rows]])
    hh_region = np.concatenate([h["region"], p["region"][dup_rows]])
    hh_district = np.concatenate([h["district"], p["district"][dup_rows]])
    n_all = len(hh_urban)
    ctx.update(
        rng=rng,
        n_hh=n_all,
        extract=extract,
        lang_ru=rng.random(n_all) < np.where(hh_urban, 0.4, 0.15),
        employer=rng.integers(10**11, 10**12 - 1, len(p["hh"])),
        account=rng.integers(0, 10**17, len(p["hh"])),
        hh_urban=hh_urban,
        hh_region=hh_region,
        hh_district=hh_district,
        dormitory=np.zeros(n_all, bool),
    )
    ctx["wealth"], ctx["owner"] = registries.family_wealth(p, ctx)
    region_codes = [r.code for r in country.regions]
    pop = registries.population(p, country, ctx)
    pop = _rename_duplicates(rng, pop, dup_rows, p)
    w.write("population", pop)
    w.write("civil_events", registries.civil_events(p, extract, ctx))
    w.write("income", registries.income(p, extract, ctx))
    w.write("tax", registries.tax(p, extract, ctx))
    asset_tables = registries.assets(p, country, extract, ctx)
    asset_tables["real_estate"] = _plant_commercial(
        rng, p, asset_tables["real_estate"], paid, ctx, region_codes
    )
    for name, table in asset_tables.items():
        w.write(name, table)
    w.write("health", registries.health(p, extract, ctx))
    w.write("education", registries.education(p, extract, ctx))
    w.write("employment", registries.employment(p, extract, ctx, truth["contract"]))
    ctx["awarded"] = truth["awarded"]
    w.write("awards", registries.awards(p, extract, ctx))
    table, errors = payments.payment_table(p, paid, extract, region_codes, ctx)
    w.write("payments", table)
    w.write("payment_errors", errors, truth=True)
    _write_truth(p, truth, dup_rows, counters, w)
    ctx["hh_offset"] += n_hh + len(dup_rows)
    return int(((p["role"] != DECEASED) & (p["dup_of"] < 0)).sum())


def _label_asp(p: dict, paid: payments.Paid, truth: dict) -> None:
    """ASP paid to a family hiding income, or sharing its address with an earner outside it
    whose declared wage would lift the family above the poverty line (a hidden household
    member); a payment can be both, and also not entitled."""
    cols = paid.columns()
    asp = cols["measure"] == payments.M["asp"]
    hidden = asp & np.isin(cols["row"], truth["asp_hidden_income"])
    fr, hh = p["family_row"], p["hh"]
    alive = p["role"] != DECEASED
    earner = alive & (p["wage"] > 0)
    wage = np.where(earner, p["wage"], 0)
    # earners at the address minus those of the family: the others' wages and count
    row = cols["row"]
    other_wage = np.bincount(hh, weights=wage)[hh[row]] - np.bincount(fr, weights=wage)[fr[row]]
    other_n = np.bincount(hh, weights=earner)[hh[row]] - np.bincount(fr, weights=earner)[fr[row]]
    size = np.bincount(fr, weights=alive)[fr[row]]
    with_them = (truth["declared_pc"][fr[row]] * size + other_wage) / np.maximum(size + other_n, 1)
    member = asp & (other_n > 0) & (with_them >= truth["line"][row])
    err = cols["error"].copy()
    err[hidden] |= payments.bit("hidden_income")
    err[member] |= payments.bit("hidden_household_member")
    paid.replace(cols, error=err)


def _duplicate_identities(
    rng: np.random.Generator, p: dict, paid: payments.Paid, country: Country
) -> np.ndarray:
    """Second identities of a few benefit recipients, paid again in another region."""
    n_regions = len(country.regions)
    first_district = np.array(
        [
            next(i for i, d in enumerate(country.districts) if d.region == r.code)
            for r in country.regions
        ]
    )
    cols = paid.columns()
    cand = np.unique(
        cols["row"][(cols["measure"] != payments.M["age_pension"]) & (cols["error"] == 0)]
    )
    chosen = cand[rng.random(len(cand)) < DUPLICATE_IDENTITY_RATE]
    n, k = len(p["hh"]), len(chosen)
    new_rows = n + np.arange(k)
    p["dup_of"] = np.concatenate([np.full(n, -1), chosen])
    for col, v in list(p.items()):
        if col == "dup_of":
            continue
        if col in ("father", "mother", "spouse") or col == "family":
            p[col] = np.concatenate([v, np.full(k, -1)])
        elif col == "hh":
            p[col] = np.concatenate([v, v.max() + 1 + np.arange(k)])
        elif col == "region":
            p[col] = np.concatenate([v, (v[chosen] + rng.integers(1, n_regions, k)) % n_regions])
        else:
            p[col] = np.concatenate([v, v[chosen]])
    # About a third have the day and month of birth swapped by a clerk (where that is a date).
    b = p["birth"][new_rows]
    y, m = b.astype("datetime64[Y]"), b.astype("datetime64[M]")
    day = (b - m.astype("datetime64[D]")).astype(int) + 1
    month = (m - y.astype("datetime64[M]")).astype(int) + 1
    swap = (day <= 12) & (day != month) & (rng.random(k) < 0.35)
    swapped = y.astype("datetime64[M]") + (day - 1) + np.zeros(k, "timedelta64[M]")
    swapped = swapped.astype("datetime64[D]") + (month - 1)
    p["birth"][new_rows] = np.where(swap, swapped, b)
    same = cols["row"][None, :] == chosen[:, None] if k and k * len(cols["row"]) < 5e7 else None
    for i, src in enumerate(chosen):
        sel = np.nonzero(same[i] if same is not None else cols["row"] == src)[0]
        sel = sel[cols["measure"][sel] != payments.M["age_pension"]]
        paid.add(
            np.full(len(sel), new_rows[i]),
            cols["measure"][sel],
            cols["amount"][sel],
            cols["period"][sel],
            np.full(len(sel), p["region"][new_rows[i]]),
            payments.bit("duplicate_identity"),
        )
    p["district"][new_rows] = first_district[p["region"][new_rows]]
    p["urban"][new_rows] = True
    return new_rows


def _rename_duplicates(
    rng: np.random.Generator, pop: pa.Table, dup_rows: np.ndarray, p: dict
) -> pa.Table:
    """Second identities carry the original's name: a typo, transliterated, or a new surname."""
    if not len(dup_rows):
        return pop
    src = p["dup_of"][dup_rows]
    cols = {c: pop.column(c).to_pylist() for c in ("surname", "first_name", "patronymic")}
    for i, s in zip(dup_rows.tolist(), src.tolist(), strict=True):
        sur, first = cols["surname"][s], cols["first_name"][s]
        kind = rng.integers(0, 4)
        if kind == 0:  # typo: a dropped letter
            j = int(rng.integers(1, len(sur)))
            sur = sur[:j] + sur[j + 1 :]
        elif kind == 1:  # Latin transliteration
            sur, first = names.to_latin(sur), names.to_latin(first)
        elif kind == 2 and p["female"][s]:  # surname changed after marriage
            sur = names.feminine(names.SURNAMES[int(rng.integers(0, len(names.SURNAMES)))])
        cols["surname"][i], cols["first_name"][i] = sur, first
        cols["patronymic"][i] = cols["patronymic"][s]
    for c, v in cols.items():
        pop = pop.set_column(pop.schema.get_field_index(c), c, pa.array(v, pa.string()))
    return pop


def _plant_commercial(
    rng: np.random.Generator,
    p: dict,
    table: pa.Table,
    paid: payments.Paid,
    ctx: dict,
    region_codes: list[str],
) -> pa.Table:
    """Give a few ASP recipients commercial property they did not declare; label every ASP
    payment to a family owning commercial property or 6+ dwellings (planted or not)."""
    cols = paid.columns()
    asp = (cols["measure"] == payments.M["asp"]) & (cols["error"] == 0)
    owners = np.unique(cols["row"][asp])
    owners = owners[rng.random(len(owners)) < payments.RATES["asp_commercial_property"]]
    iin = np.asarray(table.column("iin").to_numpy(zero_copy_only=False), dtype="S12")
    kind = np.asarray(table.column("kind").to_numpy(zero_copy_only=False))
    held, n_held = np.unique(iin[kind == "dwelling"], return_counts=True)
    natural = np.concatenate([iin[kind == "commercial"], held[n_held >= 6]])
    # a second identity is a family of its own (its family_row is the original's)
    fam = np.where(p["dup_of"] < 0, p["family_row"], -1 - np.arange(len(p["hh"])))
    fams = np.concatenate([fam[owners], fam[np.isin(p["iin"], natural) & (p["dup_of"] < 0)]])
    err = cols["error"].copy()
    owner = np.isin(fam[cols["row"]], fams) & (cols["measure"] == payments.M["asp"])
    err[owner] |= payments.bit("asp_commercial_property")
    paid.replace(cols, error=err)
    if not len(owners):
        return table
    count = rng.integers(1, 13, len(owners))
    rows = np.repeat(owners, count)
    ids = ctx["property_offset"] + np.arange(len(rows))
    ctx["property_offset"] += len(rows)
    extra = pa.table(
        {
            "property_id": codes("RE", ids, 11),
            "iin": fixed_strings(p["iin"][rows]),
            "kind": pa.array(["commercial"] * len(rows)),
            "region": pick(region_codes, p["region"][rows]),
            "area_m2": pa.array(np.round(rng.uniform(30, 400, len(rows)), 1)),
            "value": pa.array(np.round(rng.uniform(5e6, 6e7, len(rows)), -3)),
            "acquired_date": pa.array(
                ctx["extract"] - rng.integers(100, 4000, len(rows)).astype("timedelta64[D]"),
                pa.date32(),
            ),
        }
    )
    return pa.concat_tables([table, extra.cast(table.schema)])


def _write_truth(
    p: dict, truth: dict, dup_rows: np.ndarray, counters: _Counters, w: _Writers
) -> None:
    """What no pipeline step reads: true families, true incomes, duplicates, exclusions."""
    real = (p["role"] != DECEASED) & (p["dup_of"] < 0)
    fam = np.where(real, p["family"] + counters.family, -1)
    counters.family += int(p["family"][real].max()) + 1 if real.any() else 0
    excluded = truth["excluded"]
    pad = np.zeros((len(p["hh"]) - len(excluded), excluded.shape[1]), dtype=bool)
    rows, measures = np.nonzero(np.concatenate([excluded, pad]))  # by row, then measure
    starts = np.searchsorted(rows, np.arange(len(p["hh"]) + 1))
    w.write(
        "persons",
        pa.table(
            {
                "iin": fixed_strings(p["iin"]),
                "true_family": pa.array(fam),
                "alive": pa.array(p["role"] != DECEASED),
                "true_wage": pa.array(p["true_wage"]),
                "declared_wage": pa.array(p["wage"]),
                "pension": pa.array(p["pension"]),
                "hidden_income": pa.array(p["hidden_income"]),
                "duplicate_of": _dup_iin(p),
                # the measures a person is entitled to and not paid (exclusion errors)
                "excluded_from": pa.ListArray.from_arrays(
                    pa.array(starts, pa.int32()), pick(payments.MEASURES, measures)
                ),
            }
        ),
        truth=True,
    )


def _dup_iin(p: dict) -> pa.Array:
    src = p["dup_of"]
    return fixed_strings(p["iin"][np.maximum(src, 0)], valid=src >= 0)
