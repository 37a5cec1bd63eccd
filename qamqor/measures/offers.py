"""Proactive offers (SPEC §9, issue 4 item 5): the platform finds the family, sends an offer,
the citizen consents by reply and the measure is assigned.

`create_offers(DIR, on)` compares the entitlements of run `on` with those of the previous run
(DIR/entitlements_history/DATE/, kept by `compute_entitlements`) and writes one offer per
family (or member) newly entitled to a proactive measure, plus an advance notice of the age
pension to everyone who came within 3 months of pension age since the previous run. Offers live
in the operational store (`qamqor.store`), one transaction per call; the UNIQUE `offer_key`
makes a re-run of the same day insert nothing. Pending/sent offers older than `expire_days`
become expired. `consent` assigns the measure; `decline` records the refusal.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from qamqor.countries import NotInForceError, load_country
from qamqor.engine import connect, sql_path
from qamqor.ids import pseudonym_sql
from qamqor.levels.compute import card_path
from qamqor.measures.catalogue import load_catalogue
from qamqor.store.db import database_url, session_factory
from qamqor.store.models import OPEN_STATUSES, Assignment, Offer

ADVANCE_MONTHS = 3  # advance notice of the age pension
EXPIRE_DAYS = 30

PERIOD_WORDS = {
    "kk": {"once": "біржолғы", "monthly": "ай сайын", "quarterly": "тоқсан сайын"},
    "ru": {"once": "единовременно", "monthly": "в месяц", "quarterly": "в квартал"},
    "en": {"once": "once", "monthly": "a month", "quarterly": "a quarter"},
}
TEMPLATES = {
    "entitlement": {
        "kk": "{name}: сізге {amount} теңге {period} тағайындалуы мүмкін. "
        "Келісесіз бе? Иә болса 1, жоқ болса 0 деп жауап беріңіз.",
        "ru": "{name}: вам может быть назначено {amount} тг {period}. "
        "Согласны? Ответьте 1 (да) или 0 (нет).",
        "en": "{name}: you can be assigned {amount} tenge {period}. "
        "Do you agree? Reply 1 (yes) or 0 (no).",
    },
    "advance_notice": {
        "kk": "{name}: {due} бастап сізге {amount} теңге {period} тағайындалуы мүмкін. "
        "Келісесіз бе? Иә болса 1, жоқ болса 0 деп жауап беріңіз.",
        "ru": "{name}: с {due} вам может быть назначено {amount} тг {period}. "
        "Согласны? Ответьте 1 (да) или 0 (нет).",
        "en": "{name}: from {due} you can be assigned {amount} tenge {period}. "
        "Do you agree? Reply 1 (yes) or 0 (no).",
    },
}


class OfferError(ValueError):
    """An unknown offer, an offer in the wrong status, or no runs to compare."""


@dataclass
class OffersResult:
    on: date
    previous: date | None
    created: dict[str, int] = field(default_factory=dict)  # measure -> new offers
    already: int = 0  # candidates already offered (same key, or an open/consented offer)
    expired: int = 0
    url: str = ""

    @property
    def total(self) -> int:
        return sum(self.created.values())


def history_dates(data_dir: Path) -> list[date]:
    h = Path(data_dir) / "entitlements_history"
    return sorted(
        date.fromisoformat(p.name)
        for p in h.glob("*")
        if p.is_dir() and (p / "entitlements.parquet").exists() and not p.name.startswith(".")
    )


def message(
    lang: str, kind: str, names: dict[str, str], amount: float, period: str, due: date | None = None
) -> str:
    lang = lang if lang in TEMPLATES[kind] and lang in names else "en"
    return TEMPLATES[kind][lang].format(
        name=names.get(lang) or names["en"],
        amount=f"{amount:,.0f}".replace(",", " "),
        period=PERIOD_WORDS[lang][period],
        due=due.strftime("%d.%m.%Y") if due else "",
    )


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    y, m = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(y, m, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _param(country, name: str, on: date) -> float:
    try:
        return float(country.parameter(name).at(on))
    except NotInForceError:
        return float(country.parameter(name).at(date.today()))


def find_candidates(data_dir: Path, on: date, previous: date, country: str = "kz") -> list[dict]:
    """Rows (family_id, person_id, region, measure, kind, amount, period, language, key_date)
    newly due an offer on `on` compared with `previous`."""
    data_dir = Path(data_dir)
    cat = load_catalogue(country)
    c = load_country(country)
    proactive = sorted(m.id for m in cat.measures if m.proactive and m.in_force(on))
    hist = data_dir / "entitlements_history"
    today = sql_path(hist / on.isoformat() / "entitlements.parquet")
    before = sql_path(hist / previous.isoformat() / "entitlements.parquet")
    families = sql_path(card_path(data_dir, on))
    members = sql_path(card_path(data_dir, on).with_name("members.parquet"))
    con = connect()
    ids = ", ".join(f"'{m}'" for m in proactive) or "NULL"
    new = con.execute(
        f"""SELECT t.family_id, t.person_id, t.region, t.measure, 'entitlement' AS kind,
                   t.amount, t.period, f.language, DATE '{on.isoformat()}' AS key_date
            FROM read_parquet({today}) t
            LEFT JOIN read_parquet({families}) f USING (family_id)
            WHERE t.measure IN ({ids}) AND NOT EXISTS (
              SELECT 1 FROM read_parquet({before}) p
              WHERE p.family_id = t.family_id AND p.measure = t.measure
                AND coalesce(p.person_id, '') = coalesce(t.person_id, ''))"""
    ).fetchall()
    rows = [dict(zip(_COLUMNS, r, strict=True)) for r in new]
    pop = data_dir / "ingested" / "population.parquet"
    if "age_pension" in proactive and pop.exists():
        horizon = _add_months(on, ADVANCE_MONTHS)
        men = round(_param(c, "pension_age_men", horizon) * 12)
        women = round(_param(c, "pension_age_women", horizon) * 12)
        amount = _param(c, "base_pension", horizon) + _param(c, "min_pension", horizon)
        d, h, p3 = (
            f"DATE '{x.isoformat()}'" for x in (on, horizon, _add_months(previous, ADVANCE_MONTHS))
        )
        # Came within 3 months of pension age since the previous run, not there yet.
        # the window of due dates is tested before the keyed hash: a few thousand people are
        # hashed instead of the whole register
        adv = con.execute(
            f"""WITH due AS (
                  SELECT iin, birth_date + to_months(
                           CASE WHEN sex = 'M' THEN {men} ELSE {women} END) AS due
                  FROM read_parquet({sql_path(pop)})
                  WHERE death_date IS NULL OR death_date > {d}),
                p AS (
                  SELECT {pseudonym_sql("iin")} AS person_id, due FROM due
                  WHERE due > {d} AND due <= {h} AND due > {p3})
                SELECT m.family_id, m.person_id, f.region, 'age_pension', 'advance_notice',
                       {amount!r}, 'monthly', f.language, CAST(p.due AS DATE)
                FROM read_parquet({members}) m JOIN p USING (person_id)
                LEFT JOIN read_parquet({families}) f USING (family_id)"""
        ).fetchall()
        rows += [dict(zip(_COLUMNS, r, strict=True)) for r in adv]
    names = {m.id: m.name for m in cat.measures}
    for r in rows:
        r["key_date"] = r["key_date"] if isinstance(r["key_date"], date) else on
        r["language"] = r["language"] or "en"
        r["message"] = message(
            r["language"],
            r["kind"],
            names[r["measure"]],
            r["amount"],
            r["period"],
            r["key_date"] if r["kind"] != "entitlement" else None,
        )
    return rows


_COLUMNS = (
    "family_id",
    "person_id",
    "region",
    "measure",
    "kind",
    "amount",
    "period",
    "language",
    "key_date",
)


def offer_key(r: dict) -> str:
    return f"{r['family_id']}:{r['person_id'] or '-'}:{r['measure']}:{r['key_date'].isoformat()}"


def _insert_ignoring_duplicates(s: Session, rows: list[dict]) -> None:
    dialect = s.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:  # checked in the same transaction just before; the UNIQUE key guards the rest
        s.execute(insert(Offer), rows)
        return
    s.execute(dialect_insert(Offer).on_conflict_do_nothing(index_elements=["offer_key"]), rows)


def create_offers(
    data_dir: Path,
    on: date | None = None,
    url: str | None = None,
    expire_days: int = EXPIRE_DAYS,
    country: str = "kz",
) -> OffersResult:
    """Expire stale offers and create today's, in one transaction. `on` defaults to the latest
    entitlements run; the previous run is the latest one before it (none: nothing to compare,
    no offers — the first run is the baseline)."""
    data_dir = Path(data_dir)
    dates = history_dates(data_dir)
    if on is None:
        if not dates:
            raise OfferError(f"no entitlements in {data_dir}: run `qamqor entitlements` first")
        on = dates[-1]
    elif on not in dates:
        raise OfferError(
            f"no entitlements of {on.isoformat()} in {data_dir}: run `qamqor entitlements "
            f"{data_dir} --date {on.isoformat()}` first"
        )
    earlier = [d for d in dates if d < on]
    url = url or database_url(data_dir)
    result = OffersResult(on, earlier[-1] if earlier else None, url=url)
    rows = find_candidates(data_dir, on, result.previous, country) if result.previous else []
    Session_ = session_factory(url)
    now = datetime.now(UTC).replace(tzinfo=None)
    with Session_.begin() as s:
        result.expired = s.execute(
            update(Offer)
            .where(
                Offer.status.in_(OPEN_STATUSES), Offer.created_on < on - timedelta(days=expire_days)
            )
            .values(status="expired", status_on=on)
        ).rowcount
        for r in rows:
            r["offer_key"] = offer_key(r)
        keys = {r["offer_key"] for r in rows}
        taken: set[str] = set()
        key_list = sorted(keys)
        for i in range(0, len(key_list), 500):
            taken |= set(
                s.scalars(select(Offer.offer_key).where(Offer.offer_key.in_(key_list[i : i + 500])))
            )
        # One live offer per (family, person, measure): an open or consented one blocks a new one
        # (e.g. the age pension once its advance notice is out).
        live: set[tuple[str, str, str]] = set()
        fams = sorted({r["family_id"] for r in rows})
        for i in range(0, len(fams), 500):
            live |= {
                (f, p or "", m)
                for f, p, m in s.execute(
                    select(Offer.family_id, Offer.person_id, Offer.measure).where(
                        Offer.status.in_((*OPEN_STATUSES, "consented")),
                        Offer.family_id.in_(fams[i : i + 500]),
                    )
                )
            }
        fresh, seen = [], set()
        for r in rows:
            k = (r["family_id"], r["person_id"] or "", r["measure"])
            if r["offer_key"] in taken or k in live or k in seen:
                result.already += 1
                continue
            seen.add(k)
            fresh.append(
                {
                    **r,
                    "status": "pending",
                    "created_on": on,
                    "status_on": on,
                    "previous_run": result.previous,
                    "created_at": now,
                    "amount": round(float(r["amount"]), 2),
                }
            )
        if fresh:
            _insert_ignoring_duplicates(s, fresh)
        result.created = dict(sorted(Counter(r["measure"] for r in fresh).items()))
    return result


def _answer(
    offer_id: int, data_dir: Path | None, url: str | None, on: date | None, status: str
) -> Offer:
    url = url or database_url(data_dir)
    on = on or date.today()
    with session_factory(url).begin() as s:
        offer = s.get(Offer, offer_id, with_for_update=True)
        if offer is None:
            raise OfferError(f"no offer {offer_id}")
        if offer.status not in OPEN_STATUSES:
            raise OfferError(
                f"offer {offer_id} is {offer.status}: only a pending or sent offer can be {status}"
            )
        offer.status, offer.status_on = status, on
        if status == "consented":
            s.add(
                Assignment(
                    offer_id=offer.id,
                    family_id=offer.family_id,
                    person_id=offer.person_id,
                    measure=offer.measure,
                    amount=offer.amount,
                    period=offer.period,
                    assigned_on=on,
                )
            )
    return offer


def consent(
    offer_id: int, data_dir: Path | None = None, url: str | None = None, on: date | None = None
) -> Offer:
    """The citizen agrees: the offer becomes consented and the measure is assigned."""
    return _answer(offer_id, data_dir, url, on, "consented")


def decline(
    offer_id: int, data_dir: Path | None = None, url: str | None = None, on: date | None = None
) -> Offer:
    """The citizen refuses: the offer becomes declined (nothing is assigned)."""
    return _answer(offer_id, data_dir, url, on, "declined")


def count_by_status(url: str) -> dict[str, int]:
    with session_factory(url)() as s:
        return dict(s.execute(select(Offer.status, func.count()).group_by(Offer.status)).all())
