"""Country packs: the reference data and dated parameters of one country.

A pack is a directory ``qamqor/countries/<code>/`` holding only data:

``country.yaml``
    ``code``, ``names`` (language -> name), ``currency``, ``id_kind``, ``default_language``,
    ``languages`` and optionally ``region_kinds`` (the allowed values of a region's ``kind``).
``regions.yaml``
    ``regions:`` the first-level units (optionally ``sources:`` describing the figures).
``districts.yaml``
    ``districts:`` the second-level units; each names its region and its code starts with the
    region's code and ``-``.
``parameters/<name>.yaml``
    one parameter per file, as in openfisca: ``description``, ``metadata: {unit, reference}`` and
    ``values:`` keyed by ISO date -> ``{value, reference}``. A value applies from its date until
    the next one; ``value: null`` ends the parameter.

Nothing here is specific to one country: a new pack is a new directory.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "PACKS_DIR",
    "Country",
    "District",
    "NotInForceError",
    "Parameter",
    "ParameterValue",
    "Region",
    "available_countries",
    "load_country",
]

PACKS_DIR = Path(__file__).resolve().parent
_CODE = re.compile(r"^[a-z]{2,3}$")


class NotInForceError(KeyError, ValueError):
    """No value of a parameter is in force on the requested date (a KeyError and a ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Region(_Frozen):
    """A first-level unit (oblast, city of republican significance, ...)."""

    code: str = Field(min_length=1)
    name: dict[str, str]
    kind: str = Field(min_length=1)
    capital: dict[str, str]
    population_thousands: float = Field(gt=0)
    urban_share: float = Field(ge=0, le=1)
    mean_income_per_capita: float = Field(ge=0)  # currency units per person per month
    pm_coefficient: float = Field(gt=0)  # regional subsistence minimum / national one
    housing_share_of_income: float = Field(ge=0, le=1)
    source: dict[str, Literal["published", "approx"]]  # figure group -> how it was obtained


class District(_Frozen):
    """A second-level unit: a city of regional significance, a rural district or a city district."""

    code: str = Field(min_length=1)
    region: str = Field(min_length=1)
    name: dict[str, str]
    urban: bool
    population_thousands: float = Field(ge=0)


class ParameterValue(_Frozen):
    """One dated entry of a parameter: ``value`` applies from ``start`` until the next entry."""

    start: date
    value: float | str | None
    reference: str = ""


class Parameter(_Frozen):
    """A dated parameter (openfisca style); ``values`` are sorted by ``start``."""

    name: str
    description: str
    metadata: dict[str, Any]
    values: tuple[ParameterValue, ...]

    @property
    def unit(self) -> str:
        return str(self.metadata.get("unit", ""))

    @property
    def reference(self) -> str:
        return str(self.metadata.get("reference", ""))

    def at(self, when: date | datetime | str) -> float | str:
        """The value in force on ``when``: the latest entry whose date is on or before it.

        Raises :class:`NotInForceError` (a ``KeyError`` and a ``ValueError``) naming the parameter
        and the date when there is none, or when the parameter was ended (``value: null``).
        """
        day = _as_date(when)
        starts = [v.start for v in self.values]
        i = bisect.bisect_right(starts, day) - 1
        if i < 0:
            raise NotInForceError(
                f"parameter {self.name!r} has no value in force on {day.isoformat()}: "
                f"its first value applies from {starts[0].isoformat()}"
            )
        entry = self.values[i]
        if entry.value is None:
            raise NotInForceError(
                f"parameter {self.name!r} has no value in force on {day.isoformat()}: "
                f"it was ended on {entry.start.isoformat()}"
            )
        return entry.value


@dataclass(frozen=True, eq=False)
class Country:
    """A loaded, validated country pack."""

    code: str
    names: dict[str, str]
    currency: str
    id_kind: str
    default_language: str
    languages: list[str]
    region_kinds: list[str]
    regions: list[Region]
    districts: list[District]
    parameters: dict[str, Parameter]
    sources: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    _regions_by_code: dict[str, Region] = field(init=False, repr=False, compare=False)
    _districts_by_region: dict[str, list[District]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_region: dict[str, list[District]] = {r.code: [] for r in self.regions}
        for d in self.districts:
            by_region.setdefault(d.region, []).append(d)
        object.__setattr__(self, "_regions_by_code", {r.code: r for r in self.regions})
        object.__setattr__(self, "_districts_by_region", by_region)

    @property
    def region_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.regions)

    @property
    def district_codes(self) -> tuple[str, ...]:
        return tuple(d.code for d in self.districts)

    def region(self, code: str) -> Region:
        """The region with this code; ``KeyError`` if there is none."""
        try:
            return self._regions_by_code[code]
        except KeyError:
            raise KeyError(f"country {self.code!r} has no region {code!r}") from None

    def districts_of(self, region_code: str) -> list[District]:
        """The districts of a region, in file order; ``KeyError`` for an unknown region."""
        self.region(region_code)
        return list(self._districts_by_region[region_code])

    def parameter(self, name: str) -> Parameter:
        """The parameter of this name; ``KeyError`` listing the known ones if there is none."""
        try:
            return self.parameters[name]
        except KeyError:
            known = ", ".join(sorted(self.parameters))
            raise KeyError(
                f"country {self.code!r} has no parameter {name!r} (known: {known})"
            ) from None

    def regional_pm(self, region_code: str, when: date | datetime | str) -> float:
        """Regional subsistence minimum: national ``pm`` on ``when`` x the region's coefficient."""
        pm = self.parameter("pm").at(when)
        if isinstance(pm, str):
            raise ValueError(f"parameter 'pm' of country {self.code!r} is not a number: {pm!r}")
        return pm * self.region(region_code).pm_coefficient


def available_countries(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Codes of the packs found under ``root`` (default: this package's directory)."""
    base = Path(root) if root is not None else PACKS_DIR
    return sorted(p.name for p in base.iterdir() if (p / "country.yaml").is_file())


def load_country(code: str = "kz", path: str | os.PathLike[str] | None = None) -> Country:
    """Load and validate a country pack (cached per pack directory).

    ``path`` is either the pack directory itself (holding ``country.yaml``) or a directory holding
    packs as ``<code>/``; by default the packs shipped in this package are used. Any problem in
    the files raises ``ValueError`` naming the file and the problem.
    """
    if not _CODE.match(code):
        raise ValueError(f"invalid country code {code!r}: expected 2-3 lowercase letters")
    if path is None:
        pack = PACKS_DIR / code
    else:
        base = Path(path)
        pack = base if (base / "country.yaml").is_file() else base / code
    return _load(code, pack.resolve())


@functools.cache
def _load(code: str, pack: Path) -> Country:
    if not (pack / "country.yaml").is_file():
        raise ValueError(f"no country pack {code!r}: {pack / 'country.yaml'} does not exist")
    head = _country_file(pack / "country.yaml", code)
    languages: list[str] = head["languages"]
    kinds: list[str] = head["region_kinds"]
    regions, sources = _regions_file(pack / "regions.yaml", languages, kinds)
    districts = _districts_file(pack / "districts.yaml", languages, {r.code for r in regions})
    parameters = _parameters_dir(pack / "parameters")
    return Country(
        code=code,
        names=head["names"],
        currency=head["currency"],
        id_kind=head["id_kind"],
        default_language=head["default_language"],
        languages=languages,
        region_kinds=kinds,
        regions=regions,
        districts=districts,
        parameters=parameters,
        sources=sources,
        path=pack,
    )


# --- reading and validation -------------------------------------------------------------------


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    """A safe YAML loader that rejects duplicate mapping keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def _read(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise ValueError(f"{file}: file is missing")
    try:
        with file.open(encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ValueError(f"{file}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a mapping at the top level")
    return data


def _fail(file: Path, problem: str) -> ValueError:
    return ValueError(f"{file}: {problem}")


def _check_keys(file: Path, data: dict[str, Any], required: set[str], optional: set[str]) -> None:
    missing = sorted(required - data.keys())
    if missing:
        raise _fail(file, f"missing key(s): {', '.join(missing)}")
    unknown = sorted(str(k) for k in data.keys() - required - optional)
    if unknown:
        raise _fail(file, f"unknown key(s): {', '.join(unknown)}")


def _check_names(file: Path, where: str, names: dict[str, str], languages: list[str]) -> None:
    missing = [lang for lang in languages if not str(names.get(lang) or "").strip()]
    if missing:
        raise _fail(file, f"{where}: missing language(s) {', '.join(missing)}")
    extra = sorted(set(names) - set(languages))
    if extra:
        raise _fail(file, f"{where}: language(s) {', '.join(extra)} not declared in country.yaml")


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors()
    )


def _country_file(file: Path, code: str) -> dict[str, Any]:
    data = _read(file)
    required = {"code", "names", "currency", "id_kind", "default_language", "languages"}
    _check_keys(file, data, required, {"region_kinds"})
    if data["code"] != code:
        raise _fail(file, f"code is {data['code']!r} but the pack was loaded as {code!r}")
    languages = data["languages"]
    if (
        not isinstance(languages, list)
        or not languages
        or not all(isinstance(x, str) and x for x in languages)
    ):
        raise _fail(file, "languages must be a non-empty list of language codes")
    if len(set(languages)) != len(languages):
        raise _fail(file, f"duplicate language in languages: {languages}")
    if data["default_language"] not in languages:
        raise _fail(file, f"default_language {data['default_language']!r} is not in languages")
    if not isinstance(data["names"], dict):
        raise _fail(file, "names must map language -> name")
    _check_names(file, "names", data["names"], languages)
    for key in ("currency", "id_kind"):
        if not isinstance(data[key], str) or not data[key]:
            raise _fail(file, f"{key} must be a non-empty string")
    kinds = data.get("region_kinds") or []
    if not isinstance(kinds, list) or not all(isinstance(k, str) and k for k in kinds):
        raise _fail(file, "region_kinds must be a list of names")
    data["region_kinds"] = list(kinds)
    data["languages"] = list(languages)
    return data


def _entries(file: Path, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = data[key]
    if not isinstance(items, list) or not items:
        raise _fail(file, f"{key} must be a non-empty list")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _fail(file, f"{key}[{i}] must be a mapping")
    return items


def _regions_file(
    file: Path, languages: list[str], kinds: list[str]
) -> tuple[list[Region], dict[str, str]]:
    data = _read(file)
    _check_keys(file, data, {"regions"}, {"sources"})
    sources = data.get("sources") or {}
    if not isinstance(sources, dict):
        raise _fail(file, "sources must map a figure group to its description")
    regions: list[Region] = []
    seen: set[str] = set()
    for i, item in enumerate(_entries(file, data, "regions")):
        where = f"regions[{i}] ({item.get('code', '?')})"
        try:
            region = Region.model_validate(item)
        except ValidationError as exc:
            raise _fail(file, f"{where}: {_errors(exc)}") from None
        if region.code in seen:
            raise _fail(file, f"{where}: duplicate region code {region.code!r}")
        seen.add(region.code)
        _check_names(file, f"{where} name", region.name, languages)
        _check_names(file, f"{where} capital", region.capital, languages)
        if kinds and region.kind not in kinds:
            raise _fail(file, f"{where}: kind {region.kind!r} is not one of {kinds}")
        figures = set(Region.model_fields) - {"code", "name", "kind", "capital", "source"}
        unknown = sorted(set(region.source) - figures)
        if unknown:
            raise _fail(file, f"{where}: source names unknown figure(s) {', '.join(unknown)}")
        regions.append(region)
    return regions, {str(k): str(v) for k, v in sources.items()}


def _districts_file(file: Path, languages: list[str], region_codes: set[str]) -> list[District]:
    data = _read(file)
    _check_keys(file, data, {"districts"}, set())
    districts: list[District] = []
    seen: set[str] = set()
    for i, item in enumerate(_entries(file, data, "districts")):
        where = f"districts[{i}] ({item.get('code', '?')})"
        try:
            district = District.model_validate(item)
        except ValidationError as exc:
            raise _fail(file, f"{where}: {_errors(exc)}") from None
        if district.region not in region_codes:
            raise _fail(file, f"{where}: unknown region {district.region!r}")
        if not district.code.startswith(district.region + "-"):
            raise _fail(
                file, f"{where}: code does not start with its region code {district.region!r}-"
            )
        if district.code in seen:
            raise _fail(file, f"{where}: duplicate district code {district.code!r}")
        seen.add(district.code)
        _check_names(file, f"{where} name", district.name, languages)
        districts.append(district)
    return districts


def _parameters_dir(folder: Path) -> dict[str, Parameter]:
    if not folder.is_dir():
        raise ValueError(f"{folder}: parameters directory is missing")
    parameters: dict[str, Parameter] = {}
    for file in sorted(folder.glob("*.yaml")):
        parameters[file.stem] = _parameter_file(file)
    return parameters


def _parameter_file(file: Path) -> Parameter:
    data = _read(file)
    _check_keys(file, data, {"description", "metadata", "values"}, set())
    if not isinstance(data["description"], str) or not data["description"].strip():
        raise _fail(file, "description must be a non-empty string")
    metadata = data["metadata"]
    if not isinstance(metadata, dict):
        raise _fail(file, "metadata must be a mapping")
    missing = sorted({"unit", "reference"} - metadata.keys())
    if missing:
        raise _fail(file, f"metadata is missing {', '.join(missing)}")
    values = data["values"]
    if not isinstance(values, dict) or not values:
        raise _fail(file, "values must be a non-empty mapping of ISO date -> {value, reference}")
    entries: list[ParameterValue] = []
    for key, entry in values.items():
        start = _parse_date(file, key)
        if not isinstance(entry, dict) or "value" not in entry:
            raise _fail(file, f"values[{start.isoformat()}] must be a mapping with a value")
        unknown = sorted(str(k) for k in entry.keys() - {"value", "reference"})
        if unknown:
            raise _fail(file, f"values[{start.isoformat()}]: unknown key(s) {', '.join(unknown)}")
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, int | float | str | None):
            raise _fail(
                file, f"values[{start.isoformat()}]: value must be a number, a string or null"
            )
        reference = entry.get("reference", "")
        if not isinstance(reference, str):
            raise _fail(file, f"values[{start.isoformat()}]: reference must be a string")
        entries.append(
            ParameterValue(
                start=start,
                value=float(value) if isinstance(value, int | float) else value,
                reference=reference,
            )
        )
    kinds = {type(e.value) for e in entries if e.value is not None}
    if len(kinds) > 1:
        raise _fail(file, "values mix numbers and strings")
    entries.sort(key=lambda e: e.start)
    return Parameter(
        name=file.stem,
        description=data["description"].strip(),
        metadata=dict(metadata),
        values=tuple(entries),
    )


def _parse_date(file: Path, key: Any) -> date:
    if isinstance(key, datetime):
        return key.date()
    if isinstance(key, date):
        return key
    try:
        return date.fromisoformat(str(key))
    except ValueError:
        raise _fail(file, f"values key {key!r} is not an ISO date (YYYY-MM-DD)") from None


def _as_date(when: date | datetime | str) -> date:
    if isinstance(when, datetime):
        return when.date()
    if isinstance(when, date):
        return when
    if isinstance(when, str):
        return date.fromisoformat(when)
    raise TypeError(f"expected a date, got {type(when).__name__}")
