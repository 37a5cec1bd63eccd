"""The card's indicators as stored in `family_cards.card`: sparse JSON (zeros, false and nulls
left out; the identity fields live in their own columns), about a quarter of the full row, which
matters at 6.3 M families. `card_doc` gives back the full, typed card of FAMILY_COLUMNS."""

from __future__ import annotations

import json
from typing import Any

from qamqor.card.columns import FAMILY_COLUMNS

IN_COLUMNS = ("family_id", "region", "district", "urban", "language", "members", "children")
DEFAULTS = {"int": 0, "float": 0.0, "bool": False, "text": None}


def card_json_sql(alias: str) -> str:
    """DuckDB SQL building the sparse JSON text from a card row `alias` (values exact)."""
    parts = []
    for name, kind in FAMILY_COLUMNS.items():
        if name in IN_COLUMNS:
            continue
        col, key = f"{alias}.{name}", f"'\"{name}\":'"
        value = f"{key} || CAST(to_json({col}) AS VARCHAR)"
        if kind == "bool":
            parts.append(f"CASE WHEN {col} THEN {key} || 'true' END")
        elif kind == "text":
            parts.append(f"CASE WHEN {col} IS NOT NULL THEN {value} END")
        else:
            parts.append(f"CASE WHEN {col} <> 0 THEN {value} END")
    return "'{' || concat_ws(',', " + ", ".join(parts) + ") || '}'"


def sparse_json(doc: dict[str, Any]) -> str:
    """The stored form of a full card document (the inverse of `card_doc`)."""
    return json.dumps(
        {
            k: v
            for k, v in doc.items()
            if k in FAMILY_COLUMNS and k not in IN_COLUMNS and v not in (None, 0, 0.0, False)
        },
        separators=(",", ":"),
    )


def card_doc(row: Any) -> dict[str, Any]:
    """The full card (every FAMILY_COLUMNS key, typed) of a `family_cards` row."""
    stored = json.loads(row.card)
    doc: dict[str, Any] = {}
    for name, kind in FAMILY_COLUMNS.items():
        if name in IN_COLUMNS:
            doc[name] = getattr(row, name)
        else:
            v = stored.get(name, DEFAULTS[kind])
            doc[name] = float(v) if kind == "float" and v is not None else v
    return doc
