"""Score the audit's findings against the generator's planted truth (the only reader of truth/).

A finding and a planted error match when they name the same type, family (or person, for the
dead, who have no family on the card) and measure. Precision is over findings, recall over the
planted (family, measure) pairs; `precision_any` counts a finding true when it names any planted
error of that family and measure (under another label); money is the planted payments' amount in
the extract, found or not. A payment may carry several planted errors (e.g. ASP to a family
hiding income and owning commercial property): each is a planted error of its own type.
Exclusion errors come from `truth/persons.parquet` (`excluded_from`: the measures a person is
entitled to and not paid). The identity linkage is scored too, against the planted second
identities (`duplicate_of`): every pair Splink linked (`linked`) and the pairs the audit reports
as a second identity (`reported`), with the share where it named the right record.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from qamqor.audit.findings import NOT_PLANTED, TYPES
from qamqor.ids import pseudonym_sql

PLANTED = {  # generator error type -> finding type
    "paid_after_death": "paid_after_death",
    "not_entitled": "not_entitled",
    "duplicate_period": "duplicate_payment",
    "two_regions": "paid_in_two_regions",
    "asp_commercial_property": "asp_commercial_property",
    "hidden_household_member": "hidden_household_member",
    "hidden_income": "hidden_income",
    "incompatible": "incompatible_measures",
    "wrong_amount": "amount_mismatch",
    "duplicate_identity": "duplicate_identity",
}


def _exclusions(con: duckdb.DuckDBPyConnection, d: Path, members: str, pid: str) -> None:
    """Planted exclusions into `truth`: a list of measures per person (or one, older truth);
    the money is the entitlement's monthly amount over the extract's three months."""
    src = f"read_parquet('{(d / 'truth' / 'persons.parquet').as_posix()}')"
    kind = con.execute(f"SELECT typeof(excluded_from) FROM {src} LIMIT 1").fetchone()
    measure = "unnest(excluded_from)" if kind and kind[0].endswith("[]") else "excluded_from"
    ent = (d / "entitlements" / "entitlements.parquet").as_posix()
    con.execute(
        f"""
        INSERT INTO truth
        SELECT 'exclusion_error', coalesce(m.family_id, {pid}), t.measure,
               coalesce(e.amount * 3, 0)
        FROM (SELECT iin, {measure} AS measure FROM {src}) t
        LEFT JOIN read_parquet('{members}') m ON m.person_id = {pid}
        LEFT JOIN (SELECT family_id, measure, max(amount) AS amount
                   FROM read_parquet('{ent}') GROUP BY ALL) e
          ON e.family_id = m.family_id AND e.measure = t.measure
        WHERE t.measure IS NOT NULL
        """
    )


def _linkage(con: duckdb.DuckDBPyConnection, d: Path, pid: str) -> dict | None:
    """Linked pairs against the planted second identities (unordered pairs of person ids)."""
    pairs = d / "audit" / "identities.parquet"
    persons = d / "truth" / "persons.parquet"
    if not pairs.exists() or not persons.exists():
        return None
    con.execute(
        f"""
        CREATE TABLE dup_truth AS
        SELECT least(a, b) AS a, greatest(a, b) AS b, second FROM (
            SELECT {pid} AS second, {pid.replace("t.iin", "t.duplicate_of")} AS a,
                   {pid} AS b
            FROM read_parquet('{persons.as_posix()}') t WHERE t.duplicate_of IS NOT NULL);
        CREATE TABLE dup_found AS
        SELECT least(person_id, other_person_id) AS a,
               greatest(person_id, other_person_id) AS b, person_id AS second, reported
        FROM read_parquet('{pairs.as_posix()}')
        """
    )
    out = {}
    for name, where in (("reported", "WHERE reported"), ("linked", "")):
        n_f, n_t, tp, named = con.execute(
            f"SELECT (SELECT count(*) FROM dup_found {where}), (SELECT count(*) FROM dup_truth), "
            f"(SELECT count(*) FROM (SELECT * FROM dup_found {where}) SEMI JOIN dup_truth "
            "USING (a, b)), (SELECT count(*) FROM dup_found JOIN dup_truth USING (a, b, second) "
            "WHERE reported)"
        ).fetchone()
        p = tp / n_f if n_f else None
        r = tp / n_t if n_t else None
        out[name] = {
            "pairs_found": n_f,
            "planted": n_t,
            "true_pairs": tp,
            "precision": p,
            "recall": r,
            "f1": 2 * p * r / (p + r) if p and r else (0.0 if n_f and n_t else None),
        }
        if name == "reported":
            out[name]["second_identity_named"] = named / tp if tp else None
    return out


def evaluate(data_dir: Path) -> dict:
    """Write `DIR/audit/evaluation.json` and return it."""
    d = Path(data_dir)
    findings = d / "audit" / "findings.parquet"
    if not findings.exists():
        raise FileNotFoundError(f"{findings} is missing: run `qamqor audit DIR` first")
    truth = d / "truth"
    if not (truth / "payment_errors.parquet").exists():
        raise FileNotFoundError(f"{truth}/payment_errors.parquet is missing: no planted truth")
    con = duckdb.connect()
    pid = pseudonym_sql("t.iin")
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in PLANTED.items())
    members = (d / "cards" / "members.parquet").as_posix()
    con.execute(
        f"""
        CREATE TABLE truth AS
        SELECT CASE t.type {cases} END AS type, coalesce(m.family_id, {pid}) AS who,
               t.measure, t.amount
        FROM read_parquet('{(truth / "payment_errors.parquet").as_posix()}') t
        LEFT JOIN read_parquet('{members}') m ON m.person_id = {pid}
        """
    )
    if (truth / "persons.parquet").exists():
        _exclusions(con, d, members, pid)
    con.execute("CREATE TABLE anyk AS SELECT DISTINCT who, measure FROM truth")
    con.execute("DELETE FROM truth WHERE type IS NULL")
    con.execute(
        f"""
        CREATE TABLE f AS
        SELECT type, coalesce(family_id, person_id) AS who, measure, amount_at_risk
        FROM read_parquet('{findings.as_posix()}')
        """
    )
    con.execute(
        "CREATE TABLE tk AS SELECT type, who, measure, sum(amount) AS amount "
        "FROM truth GROUP BY ALL"
    )
    con.execute("CREATE TABLE fk AS SELECT DISTINCT type, who, measure FROM f")
    rows = {}
    for t in TYPES:
        n_f, tp_f, risk, any_f = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM tk WHERE "
            "tk.type = f.type AND tk.who = f.who AND tk.measure = f.measure)), "
            "coalesce(sum(amount_at_risk), 0), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM "
            "anyk WHERE anyk.who = f.who AND anyk.measure = f.measure)) FROM f WHERE type = ?",
            [t],
        ).fetchone()
        n_t, tp_t, planted, found = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE hit), coalesce(sum(amount), 0), "
            "coalesce(sum(amount) FILTER (WHERE hit), 0) FROM (SELECT tk.*, EXISTS (SELECT 1 "
            "FROM fk WHERE fk.type = tk.type AND fk.who = tk.who AND fk.measure = tk.measure) "
            "AS hit FROM tk WHERE type = ?)",
            [t],
        ).fetchone()
        scored = t not in NOT_PLANTED  # a targeting signal: nothing planted to score it by
        p = tp_f / n_f if n_f and scored else None
        r = tp_t / n_t if n_t else None
        f1 = 2 * p * r / (p + r) if p and r else (0.0 if n_f and n_t else None)
        rows[t] = {
            "findings": n_f,
            "planted": n_t if scored else None,
            "true_findings": tp_f,
            "planted_found": tp_t,
            "precision": p,
            "precision_any": any_f / n_f if n_f else None,
            "recall": r,
            "f1": f1,
            "money_planted": planted,
            "money_found": found,
            "amount_at_risk": risk,
        }
    out = {
        "types": rows,
        "linkage": _linkage(con, d, pid),
        "matching": "type, family (or person) and measure",
    }
    (d / "audit" / "evaluation.json").write_text(json.dumps(out, indent=2))
    return out
