"""Identity linkage across person registries with Splink on DuckDB (see docs/linkage.md)."""

from qamqor.linkage.mapping import LinkageError, Mapping, Side, load_mapping
from qamqor.linkage.model import dedupe, link, prepare, read_table
from qamqor.linkage.normalise import normalise_name

__all__ = ["LinkageError", "Mapping", "Side", "dedupe", "link", "load_mapping", "normalise_name",
           "prepare", "read_table"]  # fmt: skip
