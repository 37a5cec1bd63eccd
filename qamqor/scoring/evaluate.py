"""Hidden-income flags against the planted truth: the only scoring code that reads DIR/truth.

A family is truly hiding income when any of its members has `hidden_income` in
truth/persons.parquet; truth IINs reach card families through the card's keyed hash.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qamqor.engine import connect, sql_path
from qamqor.ids import pseudonym_sql

CURVE_RECALLS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _labels(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, flag, truly hidden) per family of the card."""
    truth = data_dir / "truth" / "persons.parquet"
    members = data_dir / "cards" / "members.parquet"
    hidden = data_dir / "scores" / "hidden_income.parquet"
    for path, hint in ((truth, "a generated nation"), (hidden, "`qamqor scores` first")):
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: needs {hint}")
    con = connect()
    rows = con.execute(
        f"""
        WITH t AS (SELECT {pseudonym_sql("iin")} AS person_id, hidden_income
                   FROM read_parquet({sql_path(truth)})),
        fam AS (SELECT m.family_id, bool_or(coalesce(t.hidden_income, false)) AS hidden
                FROM read_parquet({sql_path(members)}) m LEFT JOIN t USING (person_id)
                GROUP BY 1)
        SELECT h.hidden_income_score, h.hidden_income_flag, coalesce(fam.hidden, false)
        FROM read_parquet({sql_path(hidden)}) h LEFT JOIN fam USING (family_id)
        ORDER BY h.family_id
        """
    ).fetchnumpy()
    score, flag, truth_ = (rows[k] for k in rows)
    return np.asarray(score, float), np.asarray(flag, bool), np.asarray(truth_, bool)


def pr_curve(score: np.ndarray, truth: np.ndarray, step: float = 0.05) -> list[dict]:
    """The precision–recall curve: for each recall level (every `step`), the highest score
    threshold that reaches it, with its precision and the number of families flagged."""
    score = np.where(np.isnan(score), -np.inf, score)
    order = np.argsort(-score, kind="stable")
    tp = np.cumsum(truth[order])
    recall = tp / max(int(truth.sum()), 1)
    out = []
    for level in np.arange(step, 1 + 1e-9, step):
        i = int(np.searchsorted(recall, level - 1e-9))
        if i >= len(order) or not np.isfinite(score[order][i]):
            break
        out.append(_point(score[order][i], tp[i], i + 1, truth))
    return out


def at_thresholds(score: np.ndarray, truth: np.ndarray, thresholds) -> list[dict]:
    """Precision and recall when flagging every family whose score reaches each threshold."""
    out = []
    for t in thresholds:
        flag = np.nan_to_num(score, nan=-np.inf) >= t
        out.append(_point(t, int((flag & truth).sum()), int(flag.sum()), truth))
    return out


def _point(threshold: float, tp: int, flagged: int, truth: np.ndarray) -> dict:
    return {
        "threshold": round(float(threshold), 3),
        "precision": round(tp / max(flagged, 1), 4),
        "recall": round(tp / max(int(truth.sum()), 1), 4),
        "flagged": int(flagged),
    }


def best_precision_at(score: np.ndarray, truth: np.ndarray, recall: float) -> float:
    """The highest precision among thresholds whose recall is at least `recall`."""
    order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
    tp = np.cumsum(truth[order])
    precision = tp / np.arange(1, len(tp) + 1)
    ok = tp / max(int(truth.sum()), 1) >= recall
    return float(precision[ok].max()) if ok.any() else 0.0


def evaluate(data_dir: Path) -> dict:
    """Write DIR/scores/evaluation.json: precision, recall, F1 at the threshold, and the curve."""
    data_dir = Path(data_dir)
    score, flag, truth = _labels(data_dir)
    tp = int((flag & truth).sum())
    precision = tp / max(int(flag.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    result = {
        "families": len(score),
        "hidden_income_families": int(truth.sum()),
        "flagged": int(flag.sum()),
        "true_positives": tp,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4),
        "best_precision_at_recall": {
            str(r): round(best_precision_at(score, truth, r), 4) for r in CURVE_RECALLS
        },
        "curve": pr_curve(score, truth),
        "at_thresholds": at_thresholds(score, truth, np.arange(1.0, 6.01, 0.25)),
    }
    out = data_dir / "scores" / "evaluation.json"
    out.write_text(json.dumps(result, indent=2))
    return result
