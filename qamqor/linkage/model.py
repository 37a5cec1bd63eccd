"""The Splink model: prepared inputs, comparisons, blocking, training, prediction.

Steps, each a function: ``read_table`` → ``prepare`` (normalised columns under fixed names) →
``settings`` (comparisons and blocking rules as data) → ``train`` (u by random sampling with a
fixed seed, m by EM over two blocking rules) → ``link`` / ``dedupe`` (predict, then keep the
best pairs or cluster). The trained model is Splink's JSON and can be given back with ``model``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on

from qamqor.linkage.mapping import LinkageError, Mapping, Side
from qamqor.linkage.normalise import normalise_iin, normalise_name, normalise_sex

# Columns of a prepared table; the model's SQL only ever sees these.
PREPARED = ["unique_id", "surname", "first_name", "patronymic", "sex", "dob", "dob_swap",
            "birth_year", "fn_initial", "iin", "address"]  # fmt: skip


def read_table(path: Path | str) -> pd.DataFrame:
    """A CSV or Parquet person table, every column as text (IINs keep their leading zeros)."""
    path = Path(path)
    if not path.exists():
        raise LinkageError(f"input not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq") or path.is_dir():
        return pd.read_parquet(path).astype("string")
    if suffix in (".csv", ".txt", ".gz"):
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    raise LinkageError(f"{path}: expected a .csv or .parquet file")


def _check_columns(df: pd.DataFrame, side: Side, label: str) -> None:
    absent = {a: c for a, c in side.columns.items() if c not in df.columns}
    if absent:
        shown = ", ".join(f"{a} → '{c}'" for a, c in absent.items())
        raise LinkageError(
            f"{label}: the mapping names column(s) not in the table: {shown}; "
            f"the table has {list(df.columns)}"
        )
    ids = df[side.columns["id"]]
    if ids.isna().any():
        raise LinkageError(f"{label}: id column '{side.columns['id']}' has empty values")
    if ids.duplicated().any():
        raise LinkageError(f"{label}: id column '{side.columns['id']}' is not unique")


def _once(values: pd.Series, fn) -> pd.Series:
    """`fn` applied to each distinct value once (registries repeat names millions of times)."""
    distinct = values.dropna().unique()
    return values.map(dict(zip(distinct, map(fn, distinct), strict=True)))


def prepare(df: pd.DataFrame, side: Side, label: str = "input") -> pd.DataFrame:
    """Normalised columns under fixed names (see PREPARED); missing attributes become null."""
    _check_columns(df, side, label)

    def col(attribute: str) -> pd.Series:
        name = side.column(attribute)
        return df[name] if name else pd.Series([None] * len(df), index=df.index, dtype="object")

    dob = pd.to_datetime(col("birth_date"), format=side.birth_date_format, errors="coerce")
    day, month = dob.dt.day, dob.dt.month
    swap_ok = dob.notna() & (day <= 12) & (day != month)
    swapped = dob.dt.year.astype("Int64").astype("string") + "-" \
        + day.astype("Int64").astype("string").str.zfill(2) + "-" \
        + month.astype("Int64").astype("string").str.zfill(2)  # fmt: skip
    first = _once(col("first_name"), normalise_name)
    out = pd.DataFrame({
        "unique_id": df[side.columns["id"]].astype(str),
        "surname": _once(col("surname"), normalise_name),
        "first_name": first,
        "patronymic": _once(col("patronymic"), normalise_name),
        "sex": _once(col("sex"), normalise_sex),
        "dob": dob.dt.strftime("%Y-%m-%d").where(dob.notna(), None),
        "dob_swap": swapped.where(swap_ok, None),
        "birth_year": dob.dt.year.astype("Int64").astype("string"),
        "fn_initial": first.str[:1],
        "iin": col("iin").map(normalise_iin),
        "address": col("address").map(
            lambda v: None if v is None or pd.isna(v) else str(v).strip().lower() or None
        ),
    })  # fmt: skip
    return out.astype(object).where(out.notna(), None)


def _levels(column: str, levels: list, m: dict[str, tuple[float, ...]] | None):
    """A comparison of `levels` (the null level first); with `m[column]`, the non-null levels'
    m probabilities are set rather than trained."""
    if m and column in m:
        levels = [levels[0]] + [lv.configure(m_probability=p)
                                for lv, p in zip(levels[1:], m[column], strict=True)]  # fmt: skip
    return cl.CustomComparison(output_column_name=column, comparison_levels=levels)


def _name(column: str, close: float, far: float, m: dict | None = None) -> cl.CustomComparison:
    return _levels(column, [
        cll.NullLevel(column),
        cll.ExactMatchLevel(column),
        cll.JaroWinklerLevel(column, close),
        cll.JaroWinklerLevel(column, far),
        cll.ElseLevel(),
    ], m)  # fmt: skip


# Pairs scored at all (docs/linkage.md), and the blocks EM trains on: the first trains the
# names, IIN and address; the second the birth-date levels.
BLOCKING = (("dob",), ("birth_year", "fn_initial"), ("iin",), ("first_name", "surname"))
TRAINING = (("dob",), ("first_name", "sex"))


def settings(link_type: str, blocking: tuple = BLOCKING,
             m: dict[str, tuple[float, ...]] | None = None, extra: tuple = (),
             drop: tuple[str, ...] = (), prior: float = 0.0001) -> SettingsCreator:  # fmt: skip
    """Comparisons and blocking rules (column tuples, or Splink rules); why each is there is in
    docs/linkage.md. `m` sets the m
    probabilities of some comparisons (by output column), `extra` adds comparisons, `drop`
    leaves some out (attributes an input does not have, or that `extra` replaces); `prior` is
    λ before training (Splink's default)."""
    m = {k: v for k, v in (m or {}).items() if k not in drop}
    comparisons = [
        _name("first_name", 0.92, 0.80, m),
        # A married woman's new surname falls to the 'else' level; first name, patronymic and
        # birth date still carry the match.
        _name("surname", 0.92, 0.80, m),
        _name("patronymic", 0.92, 0.80, m),
        _levels(
            "dob",
            [
                cll.NullLevel("dob"),
                cll.ExactMatchLevel("dob"),
                cll.CustomLevel("dob_swap_l = dob_r", "day and month swapped"),
                cll.LevenshteinLevel("dob", 1),  # one mistyped digit
                cll.ExactMatchLevel("birth_year"),
                cll.ElseLevel(),
            ],
            m,
        ),
        # Sex is fixed, not trained: true matches almost never disagree, and EM drives the 'else'
        # m to an underflowing 5e-324 that Splink 5 rejects. 0.5 % is a clerk's error rate.
        cl.CustomComparison(
            output_column_name="sex",
            comparison_levels=[
                cll.NullLevel("sex"),
                cll.ExactMatchLevel("sex").configure(m_probability=0.995, fix_m_probability=True),
                cll.ElseLevel().configure(m_probability=0.005, fix_m_probability=True),
            ],
        ),
        _levels(
            "iin",
            [
                cll.NullLevel("iin"),  # missing on either side: no evidence either way
                cll.ExactMatchLevel("iin"),
                # One mistyped digit. Caveat: IINs of people born on the same day differ only
                # in the serial, so this level also rewards some different people (docs).
                cll.LevenshteinLevel("iin", 1),
                cll.ElseLevel(),
            ],
            m,
        ),
        _levels(
            "address",
            [cll.NullLevel("address"), cll.ExactMatchLevel("address"), cll.ElseLevel()],
            m,
        ),
    ]
    comparisons = [c for c in comparisons if c.create_output_column_name() not in drop]
    comparisons += extra
    return SettingsCreator(
        link_type=link_type,
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=[
            block_on(*rule) if isinstance(rule, tuple) else rule for rule in blocking
        ],
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=False,
        probability_two_random_records_match=prior,
    )


def _inputs(frames: list, names: list[str],
            con: duckdb.DuckDBPyConnection | None = None) -> list:  # fmt: skip
    """The inputs as tables of a DuckDB connection (a fresh one unless given), registered with
    Splink. A pandas frame or an Arrow table is copied once: Splink's queries scan their inputs
    many times (sampling, every blocking rule's self-join, prediction), and a registered pandas
    frame of Python strings is converted again, on one thread, at each scan. A string names a
    table already in `con`."""
    if con is None:
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")  # no bars in the command's output
    db = DuckDBAPI(connection=con)
    tables = []
    for frame, name in zip(frames, names, strict=True):
        if not isinstance(frame, str):
            con.register("frame_in", frame)
            con.execute(f"CREATE TABLE {name}_rows AS SELECT * FROM frame_in")
            con.unregister("frame_in")
            frame = f"{name}_rows"
        tables.append(db.register(frame, dataset_display_name=name))
    return tables


def _new_linker(tables: list, link_type: str, model: Path | str | None,
                sets: SettingsCreator | dict | None = None) -> Linker:  # fmt: skip
    inputs = tables if len(tables) > 1 else tables[0]
    if model is not None:
        model = Path(model)
        if not model.is_file():
            raise LinkageError(f"model file not found: {model}")
        return Linker(inputs, str(model), log_level=None)
    return Linker(inputs, sets or settings(link_type), log_level=None)


def _linker(frames: list[pd.DataFrame], names: list[str], link_type: str,
            model: Path | str | None, sets: SettingsCreator | None = None) -> Linker:  # fmt: skip
    return _new_linker(_inputs(frames, names), link_type, model, sets)


def train(linker: Linker, mapping: Mapping, blocks: tuple[tuple[str, ...], ...] = TRAINING,
          prior: bool = True) -> None:  # fmt: skip
    """u by random sampling (fixed seed); m by EM over blocking rules; λ deterministically
    (unless `prior` is False: λ as the settings give it)."""
    if prior:
        linker.training.estimate_probability_two_random_records_match(
            [block_on("first_name", "surname", "dob"), block_on("iin")], recall=0.7
        )
    linker.training.estimate_u_using_random_sampling(max_pairs=mapping.max_pairs,
                                                     seed=mapping.seed)  # fmt: skip
    # Each EM round trains every comparison but those it blocks on (with the defaults: birth
    # date trains the names, IIN and address; first name and sex the birth-date levels).
    for rule in (block_on(*cols) for cols in blocks):
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(rule)
        except ValueError as ex:
            # Splink 5.0.0 rejects an m that EM drove below 1e-300 instead of clamping it: a
            # level seen only among non-matches. Say which, rather than a traceback.
            blocked_on = rule.get_blocking_rule("duckdb").blocking_rule_sql
            raise LinkageError(
                f"training failed (EM blocked on {blocked_on}): "
                f"{ex}. A comparison level is never seen among true matches in this data; "
                "train on more data or reuse a model with --model."
            ) from ex


def _quiet() -> None:
    logging.getLogger("splink").setLevel(logging.ERROR)


def _fit(linker: Linker, mapping: Mapping, model: Path | str | None,
         save_model: Path | str | None) -> None:  # fmt: skip
    if model is None:
        train(linker, mapping)
    if save_model is not None:
        Path(save_model).parent.mkdir(parents=True, exist_ok=True)
        linker.misc.save_model_to_json(str(save_model), overwrite=True)


def _mutual_best(pairs: pd.DataFrame) -> pd.DataFrame:
    """Keep a pair only if each record is the other's most probable match."""
    if pairs.empty:
        return pairs
    ranked = pairs.sort_values(["match_probability", "left_id", "right_id"],
                               ascending=[False, True, True])  # fmt: skip
    best_l = ranked.drop_duplicates("left_id")
    best_r = ranked.drop_duplicates("right_id")
    keep = best_l.merge(best_r[["left_id", "right_id"]], on=["left_id", "right_id"])
    return keep.reset_index(drop=True)


_SHOWN = ["surname", "first_name", "patronymic", "dob", "iin"]


def link(left: Path | str | pd.DataFrame, right: Path | str | pd.DataFrame, mapping: Mapping,
         out: Path | str | None = None, *, model: Path | str | None = None,
         save_model: Path | str | None = None) -> pd.DataFrame:  # fmt: skip
    """Matched pairs between two person tables, with match probabilities.

    Writes ``out`` (Parquet) if given: ``left_id``, ``right_id``, ``match_probability``,
    ``match_weight`` and the normalised values compared (``surname_l``, ``surname_r``, ...).
    """
    _quiet()
    frames = []
    for src, side, label in ((left, mapping.left, "left"), (right, mapping.right, "right")):
        df = src if isinstance(src, pd.DataFrame) else read_table(src)
        frames.append(
            prepare(df, side, f"{label} ({src if not isinstance(src, pd.DataFrame) else 'frame'})")
        )
    linker = _linker(frames, ["left_table", "right_table"], "link_only", model)
    _fit(linker, mapping, model, save_model)
    pred = linker.inference.predict(threshold_match_probability=mapping.threshold)
    raw = pred.as_pandas_dataframe()
    flip = raw["source_dataset_l"] != "left_table"
    if flip.any():  # put the left table's record on the _l side of every pair
        cols = [c[:-2] for c in raw.columns if c.endswith("_l") and c[:-2] + "_r" in raw.columns]
        for c in cols:
            raw.loc[flip, [f"{c}_l", f"{c}_r"]] = raw.loc[flip, [f"{c}_r", f"{c}_l"]].values
    pairs = pd.DataFrame({
        "left_id": raw["unique_id_l"].astype(str), "right_id": raw["unique_id_r"].astype(str),
        "match_probability": raw["match_probability"].astype(float),
        "match_weight": raw["match_weight"].astype(float),
    })  # fmt: skip
    for c in _SHOWN:
        pairs[f"{c}_l"], pairs[f"{c}_r"] = raw[f"{c}_l"].values, raw[f"{c}_r"].values
    if mapping.one_to_one:
        pairs = _mutual_best(pairs)
    pairs = pairs.sort_values(["left_id", "right_id"]).reset_index(drop=True)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        pairs.to_parquet(out, index=False)
    return pairs


def dedupe(table: Path | str | pd.DataFrame, mapping: Mapping, out: Path | str | None = None,
           *, model: Path | str | None = None,
           save_model: Path | str | None = None) -> pd.DataFrame:  # fmt: skip
    """Clusters of records in one table that are the same person.

    Writes ``out`` (Parquet) if given: one row per record, ``id``, ``cluster_id`` (the smallest
    id in the cluster) and ``cluster_size``.
    """
    _quiet()
    df = table if isinstance(table, pd.DataFrame) else read_table(table)
    prepared = prepare(
        df, mapping.table, f"table ({table if not isinstance(table, pd.DataFrame) else 'frame'})"
    )
    linker = _linker([prepared], ["input_table"], "dedupe_only", model)
    _fit(linker, mapping, model, save_model)
    pred = linker.inference.predict(threshold_match_probability=mapping.threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        pred, threshold_match_probability=mapping.threshold
    ).as_pandas_dataframe()
    result = pd.DataFrame({"id": clusters["unique_id"].astype(str),
                           "cluster_id": clusters["cluster_id"].astype(str)})  # fmt: skip
    result["cluster_id"] = result.groupby("cluster_id")["id"].transform("min")
    result["cluster_size"] = result.groupby("cluster_id")["id"].transform("size")
    result = result.sort_values(["cluster_id", "id"]).reset_index(drop=True)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        result.to_parquet(out, index=False)
    return result


def dedupe_pairs(prepared, mapping: Mapping, *,
                 sets: SettingsCreator | None = None,
                 training: tuple[tuple[str, ...], ...] = TRAINING,
                 prior: bool = True,
                 model: Path | str | None = None,
                 save_model: Path | str | None = None,
                 refine: Callable[[dict], dict | None] | None = None,
                 con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:  # fmt: skip
    """Pairs of records of one prepared table (see ``prepare``; a pandas frame, an Arrow
    table, or the name of a table in ``con``) at or above the threshold: ``id_l``, ``id_r``,
    ``match_probability``, ``match_weight`` and the values compared. ``sets`` replaces the
    default settings; ``training`` are the EM rounds (none: m as set); ``prior`` False keeps
    the settings' λ; ``refine`` is given the trained model (Splink's settings dict) and may
    return another to predict with (the same parameters, other blocking rules), which is then
    the model saved."""
    _quiet()
    tables = _inputs([prepared], ["input_table"], con)
    linker = _new_linker(tables, "dedupe_only", model, sets)
    if model is None:
        train(linker, mapping, training, prior)
    if refine is not None:
        refined = refine(linker.misc.save_model_to_json())
        if refined is not None:
            linker = Linker(tables[0], refined, log_level=None)
    if save_model is not None:
        Path(save_model).parent.mkdir(parents=True, exist_ok=True)
        linker.misc.save_model_to_json(str(save_model), overwrite=True)
    raw = linker.inference.predict(threshold_match_probability=mapping.threshold)
    raw = raw.as_pandas_dataframe()
    pairs = pd.DataFrame({
        "id_l": raw["unique_id_l"].astype(str), "id_r": raw["unique_id_r"].astype(str),
        "match_probability": raw["match_probability"].astype(float),
        "match_weight": raw["match_weight"].astype(float),
    })  # fmt: skip
    for c in _SHOWN:
        if f"{c}_l" in raw.columns:
            pairs[f"{c}_l"], pairs[f"{c}_r"] = raw[f"{c}_l"].values, raw[f"{c}_r"].values
    return pairs.sort_values(["id_l", "id_r"]).reset_index(drop=True)
