"""The Spark engine: the batch SQL (DuckDB dialect) transpiled by SQLGlot, run on local PySpark.

`run_query_spark` registers each Parquet input as a temporary view, transpiles the query from
DuckDB to Spark SQL with SQLGlot, applies the rewrites below so that Spark returns what DuckDB
returns, runs it, collects the result to Arrow and writes one Parquet file.

Rewrites (each fixes a place where SQLGlot's plain transpilation gives another answer; see
docs/engines.md for the portable subset they support):

- `a / b`: DuckDB divides as DOUBLE with IEEE results for a zero divisor (±inf, NaN); Spark
  returns DECIMAL for decimals and raises on zero in ANSI mode. Rewritten to a DOUBLE division
  that gives the same infinities and NaN.
- `round(x, n)`, n > 0: DuckDB rounds a DOUBLE as `round(x * 10^n) / 10^n`; Spark rounds the
  decimal text of x (1.005 gives 1.01 on Spark, 1.0 on DuckDB). Rewritten to DuckDB's formula
  unless x is known to be an integer or DECIMAL; scale 0 already agrees.
- `CAST(x AS <integer>)` of a DOUBLE: DuckDB rounds half to even, Spark truncates. Rewritten to
  `CAST(rint(x) AS ...)` where x is known to be DOUBLE (see `_kind`); a DECIMAL rounds half away
  from zero on DuckDB, so `CAST(round(x) AS ...)`. `CAST(x AS DECIMAL(p, s))` of a DOUBLE: DuckDB
  rounds x * 10^s, Spark the decimal text of x; rewritten to DuckDB's rounding.
- `date_diff(unit, a, b)`: DuckDB counts unit boundaries crossed; Spark's DATEDIFF(unit, …)
  counts whole units. Rewritten to calendar arithmetic for year, quarter, month, week, day.
- `median(x)`, `quantile_cont(x, q)`: Spark's `percentile` interpolates with another formula
  and differs in the last bit; SQLGlot's `PERCENTILE_CONT(x, q)` does not even parse on Spark.
  Rewritten to DuckDB's interpolation over the sorted values: `lo * (1 - d) + hi * d` as one
  fused multiply-add. `quantile_disc` becomes `percentile_disc(q) WITHIN GROUP (ORDER BY x)`.
- `any_value(x)`: SQLGlot writes `ANY_VALUE(x) IGNORE NULLS`, which Spark cannot parse before
  FILTER; rewritten to `any_value(x, true)`.
- `dayofweek`/`isodow`: Spark numbers days from 1 = Sunday; rewritten to DuckDB's numbering.
- `list(x ORDER BY k)`/`array_agg`: Spark's `collect_list` drops NULLs and the ORDER BY;
  rewritten to sort a list of structs, keeping NULL elements, and NULL for no rows.

Queries that use what cannot be made to agree (`hash()`, `date_sub(part, a, b)`, a DATE minus
a DATE) are refused with an EngineError naming the portable replacement.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from qamqor.engine import PARQUET_COMPRESSION, EngineError

JAVA_HINT = (
    "install a JDK 17 or newer (Debian/Ubuntu: apt-get install openjdk-17-jdk-headless) "
    "or point JAVA_HOME at one; or use the DuckDB engine"
)

_LOG4J2 = """\
rootLogger.level = {level}
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{HH:mm:ss}} %p %c{{1}}: %m%n
"""

_lock = threading.Lock()
_session: Any = None


# --- Java and the session -------------------------------------------------------------------


def _java_binary() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        return str(java) if java.exists() else None
    return shutil.which("java")


def java_problem() -> str | None:
    """Why Spark cannot start on this machine (no Java, or Java older than 17), else None."""
    java = _java_binary()
    if java is None:
        where = "JAVA_HOME/bin/java" if os.environ.get("JAVA_HOME") else "`java` on PATH"
        return f"the Spark engine needs Java 17+, and there is no {where}: {JAVA_HINT}"
    try:
        run = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"the Spark engine needs Java 17+, and `{java} -version` failed ({e}): {JAVA_HINT}"
    m = re.search(r'version "(\d+)(?:\.(\d+))?', run.stderr + run.stdout)
    if not m:
        return f"could not read the Java version from `{java} -version`: {JAVA_HINT}"
    major = int(m.group(2)) if m.group(1) == "1" else int(m.group(1))
    if major < 17:
        return f"the Spark engine needs Java 17+, and {java} is Java {major}: {JAVA_HINT}"
    return None


def _quiet_python_side() -> None:
    from pyspark.logger import PySparkLogger

    # PySpark logs every SQL error it raises as JSON on stderr; we raise it as EngineError.
    PySparkLogger.getLogger("SQLQueryContextLogger").disabled = True
    PySparkLogger.getLogger("DataFrameQueryContextLogger").disabled = True
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")


def _conf(conf_dir: Path) -> dict[str, str]:
    env = os.environ.get
    conf = {
        "spark.master": env("QAMQOR_SPARK_MASTER", "local[2]"),
        "spark.app.name": "qamqor",
        "spark.driver.memory": env("QAMQOR_SPARK_MEMORY", "1g"),
        "spark.driver.maxResultSize": "0",  # the result is collected whole; memory bounds it
        "spark.driver.extraJavaOptions": (
            f"-Dlog4j2.configurationFile=file:{conf_dir / 'log4j2.properties'}"
        ),
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(conf_dir / "warehouse"),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": env("QAMQOR_SPARK_PARTITIONS", "4"),
        # ANSI: integer overflow and malformed casts raise, as in DuckDB (division is rewritten).
        "spark.sql.ansi.enabled": "true",
        "spark.sql.timestampType": "TIMESTAMP_NTZ",  # DuckDB's TIMESTAMP has no time zone
    }
    java_opts = env("QAMQOR_SPARK_JAVA_OPTS", "")
    if java_opts:
        conf["spark.driver.extraJavaOptions"] += " " + java_opts
    for item in env("QAMQOR_SPARK_CONF", "").split(";"):
        key, sep, value = item.partition("=")
        if sep:
            conf[key.strip()] = value.strip()
    return conf


def session() -> Any:
    """The process's one local SparkSession, created on first use (5–20 s) and then reused.

    Settings: master QAMQOR_SPARK_MASTER (default local[2]), driver memory QAMQOR_SPARK_MEMORY
    (default 1g; the query result is collected to the driver, so size it for the output),
    QAMQOR_SPARK_PARTITIONS shuffle partitions (default 4), JVM log level QAMQOR_SPARK_LOG
    (default ERROR), extra JVM options QAMQOR_SPARK_JAVA_OPTS, extra Spark settings
    QAMQOR_SPARK_CONF ("key=value;key=value"). The JVM's output goes to spark.log in a
    qamqor-spark-* temporary folder, removed at exit.
    """
    global _session
    with _lock:
        if _session is not None:
            return _session
        problem = java_problem()
        if problem:
            raise EngineError(problem)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            from pyspark import SparkConf, SparkContext
            from pyspark.java_gateway import launch_gateway
            from pyspark.sql import SparkSession
        _quiet_python_side()
        level = os.environ.get("QAMQOR_SPARK_LOG", "ERROR").upper()
        conf_dir = Path(tempfile.mkdtemp(prefix="qamqor-spark-"))
        atexit.register(shutil.rmtree, conf_dir, True)
        (conf_dir / "log4j2.properties").write_text(_LOG4J2.format(level=level.lower()))
        conf = SparkConf(loadDefaults=False).setAll(list(_conf(conf_dir).items()))
        log_path = conf_dir / "spark.log"
        try:
            with open(log_path, "ab") as log, warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning)
                gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
                spark = SparkSession(SparkContext(conf=conf, gateway=gateway))
        except Exception as e:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            raise EngineError(
                f"Spark did not start: {_reason(e)}; the JVM said: {' | '.join(tail)}"
            ) from e
        spark.sparkContext.setLogLevel(level)
        _session = spark
        return spark


def stop_session() -> None:
    """Stop the shared session (the next query starts a new one)."""
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None


# --- SQL: transpilation and rewrites --------------------------------------------------------

_INT_TYPES = {
    exp.DataType.Type.TINYINT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
    exp.DataType.Type.INT128,
    exp.DataType.Type.UTINYINT,
    exp.DataType.Type.USMALLINT,
    exp.DataType.Type.UINT,
    exp.DataType.Type.UBIGINT,
}
_FLOAT_TYPES = {exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT}
_DOUBLE_RESULT = (
    exp.Div,
    exp.Avg,
    exp.Median,
    exp.PercentileCont,
    exp.Stddev,
    exp.StddevPop,
    exp.StddevSamp,
    exp.Variance,
    exp.VariancePop,
    exp.Sqrt,
    exp.Ln,
    exp.Log,
    exp.Exp,
    exp.Pow,
)
_SAME_AS_ARG = (
    exp.Paren,
    exp.Neg,
    exp.Abs,
    exp.Sum,
    exp.Min,
    exp.Max,
    exp.AnyValue,
    exp.First,
    exp.Last,
    exp.Floor,
    exp.Ceil,
    exp.Round,
    exp.Window,
    exp.Filter,
    exp.IgnoreNulls,
)
_TYPED = (exp.Cast, exp.TryCast, exp.Round)
_COMBINE = (exp.Add, exp.Sub, exp.Mul, exp.Mod, exp.Coalesce, exp.Greatest, exp.Least)


def _arrow_kind(t: pa.DataType) -> str | None:
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_decimal(t):
        return "decimal"
    return None


def _combine(kinds: list[str | None]) -> str | None:
    if "double" in kinds:
        return "double"
    if None in kinds:
        return None
    return "decimal" if "decimal" in kinds else "int"


ColumnKind = Callable[[exp.Column], "str | None"]


def _kind(node: exp.Expression, columns: ColumnKind) -> str | None:
    """The numeric kind of a DuckDB expression — "int", "decimal", "double" — or None if unknown.

    Conservative: see `_column_kinds` for when a column's kind is known.
    """
    if isinstance(node, exp.Literal):
        if node.is_string:
            return None
        text = node.name.lower()
        return "double" if "e" in text else "decimal" if "." in text else "int"
    if isinstance(node, exp.Cast | exp.TryCast):
        to = node.to.this
        if to in _INT_TYPES:
            return "int"
        if to in _FLOAT_TYPES:
            return "double"
        return "decimal" if to == exp.DataType.Type.DECIMAL else None
    if isinstance(node, _DOUBLE_RESULT):
        return "double"
    if isinstance(node, exp.Count):
        return "int"
    if isinstance(node, _SAME_AS_ARG):
        return _kind(node.this, columns)
    if isinstance(node, _COMBINE):
        args = [a for a in node.iter_expressions() if not isinstance(a, exp.Interval)]
        return _combine([_kind(a, columns) for a in args]) if args else None
    if isinstance(node, exp.Case):
        values = [i.args["true"] for i in node.args.get("ifs") or []]
        if node.args.get("default") is not None:
            values.append(node.args["default"])
        return _combine([_kind(v, columns) for v in values]) if values else None
    if isinstance(node, exp.If):
        values = [node.args["true"]] + ([node.args["false"]] if node.args.get("false") else [])
        return _combine([_kind(v, columns) for v in values])
    if isinstance(node, exp.Column):
        return columns(node)
    return None


def _double(node: exp.Expression) -> exp.Expression:
    return exp.cast(node.copy(), exp.DataType.build("DOUBLE"))


def _spark(text: str, **nodes: exp.Expression) -> exp.Expression:
    """A Spark SQL template parsed with SQLGlot; each `__name` placeholder is replaced by a node."""
    tree = sqlglot.parse_one(text, read="spark")
    for column in list(tree.find_all(exp.Column)):
        if column.name.startswith("__") and not column.table:
            column.replace(nodes[column.name[2:]].copy())
    return tree


def _rewrite_div(node: exp.Div) -> exp.Expression:
    a, b = _double(node.this), _double(node.expression)
    divisor = node.expression
    if isinstance(divisor, exp.Literal) and not divisor.is_string and float(divisor.name) != 0:
        return exp.Div(this=a, expression=b)
    # DuckDB: x / 0 is +inf, -inf or NaN (IEEE). Spark in ANSI mode raises; try_divide (never
    # raising, even where the optimizer evaluates both branches) returns x / y otherwise.
    return _spark(
        "CASE WHEN __b = 0 THEN __a * CAST('Infinity' AS DOUBLE) ELSE try_divide(__a, __b) END",
        a=a,
        b=b,
    )


def _rewrite_round(node: exp.Round, kind: str | None) -> exp.Expression:
    digits = node.args.get("decimals")
    if digits is None or not (isinstance(digits, exp.Literal) and digits.is_int):
        return node
    n = int(digits.name)
    if n <= 0 or kind in ("int", "decimal"):
        return node  # scale 0 and negative scales, integers and decimals agree already
    scale = exp.Literal.number(10**n)
    return _spark("round(__x * __m) / __m", x=node.this, m=scale)


def _rewrite_cast(node: exp.Cast, kind: str | None) -> exp.Expression:
    if node.to.this == exp.DataType.Type.DECIMAL and kind == "double":
        # DuckDB: round(x * 10^scale), ties away from zero; Spark rounds the decimal text of x
        # (1.005 gives 1.00 on DuckDB, 1.01 on Spark). DuckDB's bare DECIMAL is (18, 3).
        params = node.to.expressions
        scale = int(params[1].name) if len(params) > 1 else 0 if params else 3
        m = exp.Literal.number(10**scale)
        node.set("this", _spark("round(__x * __m) / __m", x=node.this, m=m))
        return node
    if node.to.this not in _INT_TYPES:
        return node
    if kind == "double":  # DuckDB: nearest, ties to even (as Java's rint); Spark truncates
        node.set("this", exp.Anonymous(this="rint", expressions=[node.this.copy()]))
    elif kind == "decimal":  # DuckDB: nearest, ties away from zero (Spark's round of a DECIMAL)
        node.set("this", exp.Round(this=node.this.copy()))
    return node


_DATE_DIFF = {
    "YEAR": "year(__b) - year(__a)",
    "QUARTER": "(year(__b) * 4 + quarter(__b)) - (year(__a) * 4 + quarter(__a))",
    "MONTH": "(year(__b) * 12 + month(__b)) - (year(__a) * 12 + month(__a))",
    "WEEK": "datediff(CAST(__b AS DATE), CAST(__a AS DATE)) DIV 7",
    "DAY": "datediff(CAST(__b AS DATE), CAST(__a AS DATE))",
}


def _rewrite_date_diff(node: exp.DateDiff) -> exp.Expression:
    unit = (node.unit.name if node.unit else "DAY").upper().rstrip("S")
    if unit not in _DATE_DIFF:
        raise EngineError(
            f"date_diff('{unit.lower()}', …) is outside the portable subset: "
            f"use one of {', '.join(u.lower() for u in _DATE_DIFF)}"
        )
    return _spark(_DATE_DIFF[unit], a=node.expression, b=node.this)


# DuckDB interpolates as lo * (1 - d) + hi * d, computed with one fused multiply-add (found by
# comparing 600 groups bit for bit); Spark SQL reaches Java's Math.fma through reflect().
_QUANTILE_CONT = """
element_at(transform(array(array_sort(__agg)), v ->
  CASE WHEN size(v) = 0 THEN CAST(NULL AS DOUBLE) ELSE
    element_at(transform(array(CAST(size(v) - 1 AS DOUBLE) * CAST(__q AS DOUBLE)), rn ->
      CASE WHEN floor(rn) = ceil(rn) THEN element_at(v, CAST(floor(rn) AS INT) + 1)
      ELSE CAST(reflect('java.lang.Math', 'fma',
        element_at(v, CAST(floor(rn) AS INT) + 1),
        1 - (rn - floor(rn)),
        element_at(v, CAST(ceil(rn) AS INT) + 1) * (rn - floor(rn))) AS DOUBLE) END), 1)
  END), 1)"""

_LIST = "element_at(transform(array(__agg), l -> CASE WHEN size(l) = 0 THEN NULL ELSE {} END), 1)"


def _wrapped(node: exp.Expression, inner: exp.Expression) -> tuple[exp.Expression, exp.Expression]:
    """Move a FILTER and OVER around aggregate `node` onto `inner`; return (outermost, inner)."""
    outer = node
    parent = node.parent
    if isinstance(parent, exp.Filter) and parent.this is node:
        inner = exp.Filter(this=inner, expression=parent.expression.copy())
        outer = parent
        parent = parent.parent
    if isinstance(parent, exp.Window) and parent.this is outer:
        window = parent.copy()
        window.set("this", inner)
        inner = window
        outer = parent
    return outer, inner


_QUANTILES = (exp.Median, exp.PercentileCont, exp.PercentileDisc, exp.Quantile)


def _rewrite_aggregates(tree: exp.Expression) -> None:
    """Quantiles, median and list() over a replacement inner aggregate (see module docs)."""
    # Innermost first (reversed pre-order), as a replacement copies the nodes it contains.
    for node in reversed(list(tree.find_all(*_QUANTILES, bfs=False))):
        if isinstance(node.parent, exp.WithinGroup):
            within = node.parent
            order = within.expression.expressions
            if len(order) != 1 or isinstance(node, exp.Median):
                raise EngineError("WITHIN GROUP (ORDER BY …) takes one key on both engines")
            x, q = order[0].this, node.this
            anchor = within
        else:
            x = node.this
            q = (
                exp.Literal.number(0.5)
                if isinstance(node, exp.Median)
                else node.args.get("quantile", node.expression)
            )
            anchor = node
        if isinstance(q, exp.Array | exp.Tuple) or q is None:
            raise EngineError("quantile with a list of fractions is outside the portable subset")
        if isinstance(node, exp.PercentileDisc | exp.Quantile):
            # Built by hand: SQLGlot writes this WITHIN GROUP form as Spark's approximate one.
            disc = exp.Anonymous(this="percentile_disc", expressions=[q.copy()])
            order = exp.Order(expressions=[exp.Ordered(this=x.copy())])
            anchor.replace(exp.WithinGroup(this=disc, expression=order))
            continue
        agg = exp.Anonymous(this="collect_list", expressions=[_double(x)])
        outer, inner = _wrapped(anchor, agg)
        outer.replace(_spark(_QUANTILE_CONT, agg=inner, q=q))

    for node in reversed(list(tree.find_all(exp.ArrayAgg, bfs=False))):
        value, keys = node.this, []
        if isinstance(value, exp.Order):
            keys, value = value.expressions, value.this
        if len({bool(k.args.get("desc")) for k in keys}) > 1:
            raise EngineError("list(x ORDER BY …) with mixed ASC/DESC is outside the subset")
        # Sorted as structs (null flag, key, …, value); DuckDB puts NULL keys last by default.
        args: list[exp.Expression] = []
        for i, k in enumerate(keys):
            is_null: exp.Expression = exp.Is(this=k.this.copy(), expression=exp.null())
            if bool(k.args.get("desc")) != bool(k.args.get("nulls_first")):
                is_null = exp.Not(this=is_null)
            args += [exp.Literal.string(f"n{i}"), is_null]
            args += [exp.Literal.string(f"k{i}"), k.this.copy()]
        args += [exp.Literal.string("v"), value.copy()]
        agg = exp.Anonymous(
            this="collect_list", expressions=[exp.Anonymous(this="named_struct", expressions=args)]
        )
        body = "transform(l, e -> e.v)"
        if keys:
            body = "transform(array_sort(l), e -> e.v)"
            if keys[0].args.get("desc"):
                body = f"reverse({body})"
        outer, inner = _wrapped(node, agg)
        outer.replace(_spark(_LIST.format(body), agg=inner))


_REFUSED = {
    "hash": "hash() gives other numbers on Spark: use sha256(x) or md5(x)",
    "date_sub": "date_sub(part, a, b) has no Spark equivalent here: use date_diff(part, a, b)",
    "strlen": "strlen() is DuckDB-only: use length(x)",
}


def _column_kinds(tree: exp.Expression, schemas: dict[str, dict[str, str | None]]) -> ColumnKind:
    """How `_kind` reads a column: from the input table its qualifier names (`p.income` with
    `FROM people p`), or, unqualified, from the one kind that name has in every input — unless the
    query defines a column or CTE of that name, which may have another type."""
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    aliases: dict[str, str | None] = {}
    for table in tree.find_all(exp.Table):
        base = table.name if table.name in schemas and table.name not in ctes else None
        key = table.alias_or_name
        aliases[key] = base if aliases.get(key, base) == base else None
    merged: dict[str, str | None] = {}
    for schema in schemas.values():
        for name, kind in schema.items():
            merged[name] = kind if merged.get(name, kind) == kind else None
    for node in tree.find_all(exp.Alias, exp.TableAlias):
        if isinstance(node, exp.Alias):
            merged.pop(node.alias, None)
        else:
            for col in node.columns:
                merged.pop(col.name, None)

    def kind(column: exp.Column) -> str | None:
        if column.table:
            base = aliases.get(column.table)
            return schemas[base].get(column.name) if base else None
        return merged.get(column.name)

    return kind


def to_spark_sql(sql: str, schemas: dict[str, dict[str, str | None]] | None = None) -> str:
    """Transpile one DuckDB SELECT to Spark SQL with this module's rewrites.

    `schemas` gives, for each input table, its columns' numeric kinds ("int", "decimal",
    "double"); it lets the CAST and round rewrites see that a column is DOUBLE.
    """
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except SqlglotError as e:
        raise EngineError(f"SQLGlot could not parse the query as DuckDB SQL: {e}") from e
    statements = [s for s in statements if s is not None]
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise EngineError("run_query takes exactly one SELECT (CTEs allowed)")
    tree = statements[0]
    for fn in tree.find_all(exp.Anonymous):
        reason = _REFUSED.get(fn.name.lower())
        if reason:
            raise EngineError(reason)
    columns = _column_kinds(tree, schemas or {})

    nodes = list(tree.walk(bfs=False))
    # Types are read on the DuckDB tree, before any rewrite (a division becomes a CASE).
    kinds = {id(n): _kind(n.this, columns) for n in nodes if isinstance(n, _TYPED)}

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Div):
            return _rewrite_div(node)
        if isinstance(node, exp.Round):
            return _rewrite_round(node, kinds[id(node)])
        if isinstance(node, exp.Cast | exp.TryCast):
            return _rewrite_cast(node, kinds[id(node)])
        if isinstance(node, exp.DateDiff):
            return _rewrite_date_diff(node)
        if isinstance(node, exp.IgnoreNulls) and isinstance(node.this, exp.AnyValue):
            return exp.Anonymous(this="any_value", expressions=[node.this.this, exp.true()])
        if isinstance(node, exp.AnyValue) and not isinstance(node.parent, exp.IgnoreNulls):
            return exp.Anonymous(this="any_value", expressions=[node.this, exp.true()])
        if isinstance(node, exp.DayOfWeekIso):
            return _spark("weekday(__d) + 1", d=node.this)
        if isinstance(node, exp.DayOfWeek):
            return _spark("dayofweek(__d) - 1", d=node.this)
        return node

    # Bottom-up (reversed pre-order: every node after its descendants), so that a rewritten
    # node is built from already rewritten operands; the nodes a rewrite adds are not visited.
    for node in reversed(nodes):
        new = rewrite(node)
        if new is not node:
            node.replace(new)
    _rewrite_aggregates(tree)
    try:
        return tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as e:
        raise EngineError(f"SQLGlot cannot write this query for Spark: {e}") from e


# --- Running --------------------------------------------------------------------------------


def _reason(e: BaseException) -> str:
    """The message of a Spark error: its deepest Java cause, without stack frames."""
    lines = [x.strip() for x in str(e).splitlines()]
    lines = [x for x in lines if x and not x.startswith("at ") and not x.startswith("...")]
    causes = [x for x in lines if x.startswith("Caused by:")]
    if causes:
        return causes[-1].removeprefix("Caused by:").strip()
    for x in lines:
        if x.startswith(": "):
            return x[2:]
    return lines[0] if lines else type(e).__name__


def _schemas(tables: dict[str, Path]) -> dict[str, dict[str, str | None]]:
    return {
        name: {f.name: _arrow_kind(f.type) for f in pq.read_schema(path)}
        for name, path in tables.items()
    }


def run_query_spark(sql: str, tables: dict[str, Path], out: Path) -> int:
    """Run one DuckDB-dialect SELECT on Spark over Parquet inputs; write `out`; return its rows."""
    for name, path in tables.items():
        if not Path(path).is_file():
            raise EngineError(f"input {name!r}: {path} is not a file")
    # Only the inputs the query names: each registration reads a Parquet footer on Spark.
    try:
        named = {t.name for t in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table)}
    except SqlglotError:
        named = set(tables)  # to_spark_sql reports the parse error
    named &= set(tables)
    spark_sql = to_spark_sql(sql, _schemas({k: Path(tables[k]) for k in named}))
    spark = session().newSession()
    try:
        for name, path in tables.items():
            if name in named:
                spark.read.parquet(str(path)).createOrReplaceTempView(name)
        try:
            df = spark.sql(spark_sql)
        except Exception as e:
            raise EngineError(f"Spark rejected the query: {_reason(e)}\n{spark_sql}") from e
        for field in df.schema.fields:
            if "interval" in field.dataType.simpleString():
                raise EngineError(
                    f"column {field.name!r} is an interval on Spark (a DATE minus a DATE is a "
                    "number of days in DuckDB): use date_diff('day', a, b)"
                )
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning)
                table = df.toArrow()
        except Exception as e:
            raise EngineError(f"Spark failed running the query: {_reason(e)}") from e
    finally:
        for name in tables:
            if name in named:
                spark.catalog.dropTempView(name)
    table = _plain_arrow(table)
    pq.write_table(table, out, compression=PARQUET_COMPRESSION)
    return table.num_rows


def _plain_arrow(table: pa.Table) -> pa.Table:
    """Spark's Arrow types as DuckDB writes them: plain strings, and timestamps without a time
    zone (Spark's TIMESTAMP, e.g. from date_trunc, is UTC in this session: the same wall clock)."""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_large_string(t):
            t = pa.string()
        elif pa.types.is_timestamp(t) and t.tz is not None:
            t = pa.timestamp(t.unit)
        fields.append(pa.field(f.name, t, nullable=True))
    schema = pa.schema(fields)
    return table if schema.equals(table.schema) else table.cast(schema)
