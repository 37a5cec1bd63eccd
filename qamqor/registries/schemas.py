"""Declared schemas of the source registry extracts (SPEC §4).

One `Registry` per extract file `DIR/registries/<name>.parquet` (or `.csv`). The generator writes
exactly these columns and the ingestion validates against them; nothing else defines a registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Logical column types, named as DuckDB spells them.
TEXT, DATE, INT, MONEY, BOOL = "VARCHAR", "DATE", "BIGINT", "DOUBLE", "BOOLEAN"


@dataclass(frozen=True)
class Column:
    """One column: its type and the checks a value must pass."""

    name: str
    type: str
    required: bool = True
    iin: bool = False  # a Kazakh IIN: checksum valid (and consistent with birth date/sex if known)
    codes: tuple[str, ...] = ()  # allowed values
    code_list: str = ""  # allowed values come from the country pack: "region" or "district"
    references: str = ""  # "population.iin": the value must exist there
    minimum: float | None = None
    maximum: float | None = None
    past: bool = False  # a date not after the extract date
    description: str = ""

    @property
    def stored_type(self) -> str:
        """The type of the column in DIR/ingested: an IIN (checked 12 digits) is stored as the
        BIGINT they spell, every other column as declared."""
        return "BIGINT" if self.iin else self.type


@dataclass(frozen=True)
class Registry:
    """A source registry extract: its name, meaning, key and columns."""

    name: str
    description: str
    key: tuple[str, ...]
    columns: tuple[Column, ...] = field(default_factory=tuple)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _iin(name: str = "iin", required: bool = True, ref: bool = True) -> Column:
    return Column(
        name, TEXT, required=required, iin=True, references="population.iin" if ref else ""
    )


def _money(name: str, required: bool = True) -> Column:
    return Column(name, MONEY, required=required, minimum=0)


MEASURES = (
    "age_pension",
    "asp",
    "birth",
    "childcare",
    "large_family",
    "awarded_mother",
    "disability",
    "breadwinner_loss",
    "carer_disabled_child",
    "carer_disabled_adult",
    "housing_assistance",
)

REGISTRIES: tuple[Registry, ...] = (
    Registry(
        "population",
        "Population register: one row per person with parents and registered address.",
        ("iin",),
        (
            _iin(ref=False),
            Column("surname", TEXT),
            Column("first_name", TEXT),
            Column("patronymic", TEXT, required=False),
            Column("sex", TEXT, codes=("M", "F")),
            Column("birth_date", DATE, past=True),
            Column("death_date", DATE, required=False, past=True),
            Column("citizenship", TEXT, codes=("KZ", "FOREIGN", "STATELESS")),
            Column("language", TEXT, codes=("kk", "ru")),
            Column("region", TEXT, code_list="region"),
            Column("district", TEXT, code_list="district"),
            Column("urban", BOOL),
            Column("address_id", TEXT),
            _iin("father_iin", required=False, ref=False),
            _iin("mother_iin", required=False, ref=False),
        ),
    ),
    Registry(
        "civil_events",
        "Civil registry acts: births, deaths, marriages and divorces, dated.",
        ("event_id",),
        (
            Column("event_id", TEXT),
            Column("event_type", TEXT, codes=("birth", "death", "marriage", "divorce")),
            Column("event_date", DATE, past=True),
            _iin(),
            _iin("other_iin", required=False),
        ),
    ),
    Registry(
        "income",
        "Income and pension/social contributions by month and employer (wages).",
        ("iin", "period", "employer_bin"),
        (
            _iin(),
            Column("period", DATE, past=True),
            Column("employer_bin", TEXT),
            _money("income"),
            _money("pension_contribution"),
            _money("social_contribution"),
        ),
    ),
    Registry(
        "tax",
        "Tax declarations of the self-employed and entrepreneurs, monthly income declared.",
        ("iin", "period"),
        (
            _iin(),
            Column("period", DATE, past=True),
            Column("kind", TEXT, codes=("self_employed", "entrepreneur")),
            _money("declared_income"),
        ),
    ),
    Registry(
        "real_estate",
        "Real estate: dwellings, commercial property and land plots, by owner.",
        ("property_id",),
        (
            Column("property_id", TEXT),
            _iin(),
            Column("kind", TEXT, codes=("dwelling", "commercial", "land")),
            Column("region", TEXT, code_list="region"),
            Column("area_m2", MONEY, minimum=0),
            _money("value"),
            Column("acquired_date", DATE, past=True),
        ),
    ),
    Registry(
        "vehicles",
        "Registered vehicles with year of manufacture and estimated value.",
        ("vehicle_id",),
        (
            Column("vehicle_id", TEXT),
            _iin(),
            Column("kind", TEXT, codes=("car", "truck", "motorcycle", "tractor")),
            Column("year", INT, minimum=1950, maximum=2030),
            _money("value"),
        ),
    ),
    Registry(
        "credit",
        "Credit bureau: loans and microcredits with balance and overdue days.",
        ("loan_id",),
        (
            Column("loan_id", TEXT),
            _iin(),
            Column("kind", TEXT, codes=("mortgage", "consumer", "auto", "microcredit")),
            _money("principal"),
            _money("balance"),
            _money("monthly_payment"),
            Column("overdue_days", INT, minimum=0),
            Column("opened_date", DATE, past=True),
        ),
    ),
    Registry(
        "deposits",
        "Bank deposits by holder.",
        ("iin", "bank"),
        (_iin(), Column("bank", TEXT), _money("balance")),
    ),
    Registry(
        "health",
        "Health: disability group and cause, dispensary registration, pregnancy, polyclinic.",
        ("iin",),
        (
            _iin(),
            Column("disability_group", INT, required=False, minimum=1, maximum=3),
            Column(
                "disability_cause",
                TEXT,
                required=False,
                codes=("general", "childhood", "work_injury"),
            ),
            Column("disability_since", DATE, required=False, past=True),
            Column("dispensary", BOOL),
            Column("long_illness", BOOL),
            Column("pregnant", BOOL),
            Column("polyclinic_id", TEXT),
        ),
    ),
    Registry(
        "education",
        "Enrolment in kindergarten, school, college and university.",
        ("iin",),
        (
            _iin(),
            Column("level", TEXT, codes=("kindergarten", "school", "college", "university")),
            Column("full_time", BOOL),
            Column("institution_id", TEXT),
            Column("enrolled_from", DATE, past=True),
        ),
    ),
    Registry(
        "agriculture",
        "Personal subsidiary farming: livestock heads by kind.",
        ("iin", "kind"),
        (
            _iin(),
            Column("kind", TEXT, codes=("cattle", "horse", "sheep", "goat", "camel", "poultry")),
            Column("heads", INT, minimum=0),
        ),
    ),
    Registry(
        "housing",
        "Housing and utilities by registered address: tenure, area, utilities, costs.",
        ("address_id",),
        (
            Column("address_id", TEXT),
            Column("region", TEXT, code_list="region"),
            Column("district", TEXT, code_list="district"),
            Column("urban", BOOL),
            Column("tenure", TEXT, codes=("owned", "rented", "social", "dormitory")),
            Column("area_m2", MONEY, minimum=1),
            Column("rooms", INT, minimum=1),
            Column("water", BOOL),
            Column("sewerage", BOOL),
            Column("gas", BOOL),
            Column("heating", TEXT, codes=("central", "gas", "stove", "none")),
            Column("internet", BOOL),
            _money("housing_cost"),
            _money("utilities_cost"),
        ),
    ),
    Registry(
        "employment",
        "Employment services: registered unemployed, job seekers, social-contract participants.",
        ("iin", "status"),
        (
            _iin(),
            Column(
                "status", TEXT, codes=("registered_unemployed", "job_seeker", "social_contract")
            ),
            Column("since", DATE, past=True),
        ),
    ),
    Registry(
        "awards",
        "State awards to mothers of many children.",
        ("iin", "award"),
        (
            _iin(),
            Column("award", TEXT, codes=("kumis_alka", "altyn_alka", "mother_heroine")),
            Column("award_date", DATE, past=True),
        ),
    ),
    Registry(
        "payments",
        "Every benefit paid: recipient, measure, period, amount, region and bank account.",
        ("payment_id",),
        (
            Column("payment_id", TEXT),
            _iin(),
            Column("measure", TEXT, codes=MEASURES),
            Column("period", DATE, past=True),
            _money("amount"),
            Column("region", TEXT, code_list="region"),
            Column("bank_account", TEXT),
            Column("paid_date", DATE, past=True),
        ),
    ),
)

BY_NAME: dict[str, Registry] = {r.name: r for r in REGISTRIES}
