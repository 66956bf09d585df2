"""Declarative cleansing steps: validated once, applied to Polars frames, recorded as data.

Expressions (``filter`` and ``derive``) are SQL expressions parsed by Polars' SQL front end
(``pl.sql_expr``): they can name columns and call SQL functions, never run Python. Most are
row-local; the ones that combine rows (an aggregate such as ``AVG(x)``, a window ``... OVER
(...)``) are told apart by ``uses_aggregates``, so a part-by-part run can give them the whole
version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel.data._parts import parse_dtype
from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["OPS", "CleanStep", "apply_steps", "parse_transform", "uses_aggregates"]

OPS = (
    "cast",
    "clip",
    "derive",
    "drop_columns",
    "drop_duplicates",
    "drop_nulls",
    "fill_null",
    "filter",
    "rename",
)
_STRATEGIES = ("backward", "forward", "max", "mean", "median", "min", "zero")
_MAX_EXPR = 2000

# SQL functions (and keywords written before a parenthesis) that Polars evaluates row by row.
# Anything else named before "(" counts as combining rows: a function missing here only costs
# memory (the step then runs over the whole version), while a row-combining one wrongly listed
# would give each part its own answer, so the list holds only functions known to be row-local.
_ROW_LOCAL_LISTS = (
    # keywords that may precede "(": x IN (...), NOT (...), CASE WHEN (...) THEN (...)
    "AND OR NOT IN IS AS CASE WHEN THEN ELSE END BETWEEN LIKE ILIKE FROM FOR",
    # types inside CAST(x AS DECIMAL(10, 2))
    "DECIMAL NUMERIC VARCHAR CHAR CHARACTER",
    # conditionals and casts
    "CAST TRY_CAST COALESCE GREATEST LEAST NULLIF IFNULL",
    # mathematics
    "ABS CBRT CEIL CEILING DIV EXP FLOOR LN LOG LOG10 LOG1P LOG2 MOD PI POW POWER ROUND SIGN "
    "SQRT ACOS ACOSD ASIN ASIND ATAN ATAND ATAN2 ATAN2D COS COSD COT COTD SIN SIND TAN TAND "
    "DEGREES RADIANS",
    # strings
    "BIT_LENGTH CHAR_LENGTH CHARACTER_LENGTH CONCAT CONCAT_WS ENDS_WITH INITCAP LEFT LENGTH "
    "LOWER LTRIM NORMALIZE OCTET_LENGTH REGEXP_LIKE REPLACE REVERSE RIGHT RTRIM SPLIT_PART "
    "STARTS_WITH STRPOS SUBSTR SUBSTRING TRIM UPPER",
    # dates and times
    "DATE DATE_PART EXTRACT STRFTIME STRPTIME TIMESTAMP",
)
_ROW_LOCAL_SQL = frozenset(word for words in _ROW_LOCAL_LISTS for word in words.split())
_QUOTED_SQL = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`")
_SQL_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_SQL_OVER = re.compile(r"\bOVER\b", re.IGNORECASE)


def uses_aggregates(sql: str) -> bool:
    """Whether a SQL expression may combine rows (an aggregate, a window, or a function not
    known to be row-local), so that evaluating it part by part would not equal evaluating it
    over the whole frame.

    Conservative: string literals and quoted names are ignored, then any ``OVER`` or any call of
    a function outside a list of row-local ones counts. A false "yes" only costs memory.
    """
    text = _QUOTED_SQL.sub(" ", sql)
    if _SQL_OVER.search(text):
        return True
    return any(name.upper() not in _ROW_LOCAL_SQL for name in _SQL_CALL.findall(text))


@dataclass(frozen=True, slots=True)
class CleanStep:
    """One validated step: its op and its arguments, as written."""

    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, **self.args}


def _fail(index: int, message: str) -> InvalidInputError:
    return InvalidInputError(f"Transform step {index + 1}: {message}", step=index + 1)


def _columns(index: int, value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise _fail(index, f"'{what}' must be a column name or a list of column names.")


def _expression(index: int, text: Any, what: str) -> str:
    import polars as pl

    if not isinstance(text, str) or not text.strip() or len(text) > _MAX_EXPR:
        raise _fail(index, f"'{what}' must be a SQL expression of 1-{_MAX_EXPR} characters.")
    try:
        pl.sql_expr(text)
    except Exception as exc:  # polars raises SQLSyntaxError, SQLInterfaceError, ComputeError
        raise _fail(
            index, f"the expression {text[:80]!r} does not parse: {str(exc)[:200]}"
        ) from exc
    return text


def parse_transform(spec: Sequence[Mapping[str, Any]]) -> tuple[CleanStep, ...]:
    """Validate a list of steps such as ``[{"op": "drop_nulls", "subset": ["age"]}]``."""
    if isinstance(spec, str | bytes) or not isinstance(spec, Sequence) or not spec:
        raise InvalidInputError("A transform is a non-empty list of steps ({'op': ..., ...}).")
    steps: list[CleanStep] = []
    for i, raw in enumerate(spec):
        if not isinstance(raw, Mapping) or raw.get("op") not in OPS:
            raise _fail(i, f"each step needs 'op', one of {', '.join(OPS)}.")
        op = str(raw["op"])
        args = {k: v for k, v in raw.items() if k != "op"}
        if op in ("drop_duplicates", "drop_nulls"):
            if args.get("subset") is not None:
                args["subset"] = _columns(i, args["subset"], "subset")
        elif op == "fill_null":
            args["columns"] = _columns(i, args.get("columns", args.pop("column", None)), "columns")
            if ("value" in args) == ("strategy" in args):
                raise _fail(i, "fill_null takes either 'value' or 'strategy'.")
            if "strategy" in args and args["strategy"] not in _STRATEGIES:
                raise _fail(i, f"strategy must be one of {', '.join(_STRATEGIES)}.")
        elif op == "cast":
            args["column"] = _columns(i, args.get("column"), "column")[0]
            parse_dtype(str(args.get("dtype")))
        elif op == "clip":
            args["column"] = _columns(i, args.get("column"), "column")[0]
            bounds = [args.get("lower"), args.get("upper")]
            quantiles = args.get("quantiles")
            if quantiles is not None:
                if (
                    not isinstance(quantiles, Sequence)
                    or len(quantiles) != 2
                    or not all(isinstance(q, int | float) and 0 <= q <= 1 for q in quantiles)
                    or quantiles[0] >= quantiles[1]
                ):
                    raise _fail(i, "quantiles must be [low, high] with 0 <= low < high <= 1.")
            elif all(b is None for b in bounds):
                raise _fail(i, "clip needs 'lower', 'upper' or 'quantiles'.")
        elif op == "filter":
            args["where"] = _expression(i, args.get("where"), "where")
        elif op == "derive":
            args["column"] = _columns(i, args.get("column"), "column")[0]
            args["expr"] = _expression(i, args.get("expr"), "expr")
        elif op == "drop_columns":
            args["columns"] = _columns(i, args.get("columns"), "columns")
        elif op == "rename":
            mapping = args.get("mapping")
            if not isinstance(mapping, Mapping) or not mapping:
                raise _fail(i, "rename needs 'mapping': {old: new}.")
        steps.append(CleanStep(op, args))
    return tuple(steps)


def _need(frame: pl.DataFrame, index: int, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise _fail(index, f"no column {missing[0]!r}; the columns are {frame.columns[:20]}.")


def apply_steps(frame: pl.DataFrame, steps: Sequence[CleanStep], *, start: int = 0) -> pl.DataFrame:
    """Apply ``steps`` in order and return the new frame (``start``: the first step's index
    in the whole transform, for messages)."""
    import polars as pl

    for i, step in enumerate(steps, start=start):
        a = step.args
        try:
            if step.op == "drop_duplicates":
                _need(frame, i, a.get("subset") or [])
                frame = frame.unique(subset=a.get("subset"), keep="first", maintain_order=True)
            elif step.op == "drop_nulls":
                _need(frame, i, a.get("subset") or [])
                frame = frame.drop_nulls(subset=a.get("subset"))
            elif step.op == "fill_null":
                _need(frame, i, a["columns"])
                if "value" in a:
                    frame = frame.with_columns(pl.col(a["columns"]).fill_null(a["value"]))
                elif a["strategy"] == "median":  # (not one of Polars' fill strategies)
                    frame = frame.with_columns(
                        pl.col(c).fill_null(pl.col(c).median()) for c in a["columns"]
                    )
                else:
                    frame = frame.with_columns(
                        pl.col(a["columns"]).fill_null(strategy=a["strategy"])
                    )
            elif step.op == "cast":
                _need(frame, i, [a["column"]])
                frame = frame.with_columns(pl.col(a["column"]).cast(parse_dtype(a["dtype"])))
            elif step.op == "clip":
                _need(frame, i, [a["column"]])
                lower, upper = a.get("lower"), a.get("upper")
                if a.get("quantiles") is not None:
                    col = frame.get_column(a["column"])
                    if not col.dtype.is_numeric():  # (Polars panics on a date's quantile)
                        raise _fail(
                            i,
                            f"clip with quantiles needs a numeric column; {a['column']!r} is "
                            f"{col.dtype}. Cast it first, or give 'lower' and 'upper' bounds.",
                        )
                    lower = col.quantile(a["quantiles"][0])
                    upper = col.quantile(a["quantiles"][1])
                frame = frame.with_columns(pl.col(a["column"]).clip(lower, upper))
            elif step.op == "filter":
                frame = frame.filter(pl.sql_expr(a["where"]))
            elif step.op == "derive":
                frame = frame.with_columns(pl.sql_expr(a["expr"]).alias(a["column"]))
            elif step.op == "drop_columns":
                _need(frame, i, a["columns"])
                frame = frame.drop(a["columns"])
            elif step.op == "rename":
                _need(frame, i, list(a["mapping"]))
                frame = frame.rename(dict(a["mapping"]))
        except InvalidInputError:
            raise
        except pl.exceptions.PolarsError as exc:
            raise _fail(i, f"{step.op} failed: {str(exc)[:300]}") from exc
    return frame
