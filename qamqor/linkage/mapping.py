"""The mapping file: which column of each input holds which attribute, and the threshold.

See docs/linkage.md and examples/linkage-mapping.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

REQUIRED = ("id", "surname", "first_name", "birth_date", "sex")
OPTIONAL = ("patronymic", "iin", "address")
ATTRIBUTES = REQUIRED + OPTIONAL


class LinkageError(ValueError):
    """A problem with the inputs or the mapping, worded for the person running the command."""


@dataclass(frozen=True)
class Side:
    """Column names of one input table, keyed by attribute; optional attributes may be absent."""

    columns: dict[str, str]
    birth_date_format: str | None = None

    def column(self, attribute: str) -> str | None:
        return self.columns.get(attribute)


@dataclass(frozen=True)
class Mapping:
    left: Side
    right: Side
    table: Side
    threshold: float = 0.9
    one_to_one: bool = True
    seed: int = 42
    max_pairs: float = 2e6


def _side(raw: object, name: str, path: Path) -> Side:
    if not isinstance(raw, dict):
        raise LinkageError(f"{path}: '{name}' must be a mapping of attribute: column")
    raw = dict(raw)
    fmt = raw.pop("birth_date_format", None)
    unknown = sorted(set(raw) - set(ATTRIBUTES))
    if unknown:
        raise LinkageError(
            f"{path}: '{name}' has unknown attribute(s) {unknown}; known: {list(ATTRIBUTES)}"
        )
    missing = [a for a in REQUIRED if not raw.get(a)]
    if missing:
        raise LinkageError(f"{path}: '{name}' does not name a column for {missing}")
    return Side({k: str(v) for k, v in raw.items() if v}, fmt)


def load_mapping(path: Path | str) -> Mapping:
    """Read and check a mapping file.

    ``left`` and ``right`` name the columns of the two inputs of ``link``; ``table`` (or, if
    absent, ``left``) names the columns of the single input of ``dedupe``. A ``columns`` key
    sets all three at once when the inputs share column names.
    """
    path = Path(path)
    if not path.is_file():
        raise LinkageError(f"mapping file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as ex:
        raise LinkageError(f"{path}: not valid YAML: {ex}") from ex
    if not isinstance(raw, dict):
        raise LinkageError(f"{path}: expected a mapping at the top level")
    shared = raw.get("columns")
    left = raw.get("left", raw.get("table", shared))
    right = raw.get("right", raw.get("table", shared)) or left
    if left is None:
        raise LinkageError(f"{path}: give 'columns', or 'left' and 'right' (or 'table')")
    threshold = float(raw.get("threshold", 0.9))
    if not 0 < threshold < 1:
        raise LinkageError(f"{path}: threshold must be between 0 and 1, got {threshold}")
    training = raw.get("training") or {}
    return Mapping(
        left=_side(left, "left", path),
        right=_side(right, "right", path),
        table=_side(raw.get("table", left), "table", path),
        threshold=threshold,
        one_to_one=bool(raw.get("one_to_one", True)),
        seed=int(training.get("seed", 42)),
        max_pairs=float(training.get("max_pairs", 2e6)),
    )
