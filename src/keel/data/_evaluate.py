"""How a parsed suite runs: one ``select`` for every row and frame check, then the rest.

Kept apart from the declarations in ``_checks`` so each module stays small. Every result is a
``CheckResult``; a check that cannot run (a missing column, a wrong type, no reference) fails
with a message that says why, so a gate fails closed instead of crashing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keel.data._bias import missing_columns
from keel.data._checks import (
    MAX_FAILING_ROWS,
    Check,
    CheckResult,
    temporal_value,
)
from keel.data._redact import Redactor
from keel.data._results import (
    bias_result,
    bias_threshold,
    frame_check,
    freshness,
    result,
    row_result,
)
from keel.data._transforms import uses_aggregates

if TYPE_CHECKING:
    import polars as pl

__all__ = ["columns_of", "evaluate", "evaluate_parts", "streamed"]

_ROW_KINDS = frozenset({"not_null", "unique", "range", "allowed_values", "regex", "expression"})
_BIAS_KINDS = frozenset({"representation", "positive_rate_parity", "disparate_impact"})
_STREAMED = frozenset(
    {"not_null", "range", "allowed_values", "regex", "expression", "freshness", "type", "row_count"}
)


def columns_of(check: Check) -> list[str]:
    """The columns ``check`` reads."""
    import polars as pl

    if check.kind == "unique":
        return list(check.params["columns"])
    if check.kind == "expression":
        names = pl.sql_expr(check.params["expr"]).meta.root_names()
        return [*dict.fromkeys(names)] + ([check.column] if check.column else [])
    cols = [check.column] if check.column else []
    if check.kind in ("positive_rate_parity", "disparate_impact"):
        cols.append(check.params["label"])
    return cols


def _violation(check: Check, schema: pl.Schema) -> pl.Expr:
    """A boolean expression that is True on the rows that break a row check."""
    import polars as pl

    p = check.params
    if check.kind == "not_null":
        return pl.col(check.column or "").is_null()
    if check.kind == "unique":
        # As SQL UNIQUE: a row with a null in the key is no duplicate (not_null checks nulls).
        cols = p["columns"]
        target: pl.Expr = pl.col(cols[0]) if len(cols) == 1 else pl.struct(cols)
        # Rows equal to a complete row are complete too, so masking after the count is exact.
        complete = pl.all_horizontal([pl.col(c).is_not_null() for c in cols])
        duplicated: pl.Expr = target.is_duplicated() & complete
        return duplicated
    if check.kind == "expression":
        parsed: pl.Expr = pl.sql_expr(str(p["expr"]))
        return (~parsed.cast(pl.Boolean)).fill_null(False)
    col = pl.col(check.column or "")
    dtype = schema[check.column or ""]
    if check.kind == "regex":
        return (~col.cast(pl.String).str.contains(p["pattern"])).fill_null(False)
    if check.kind == "allowed_values":
        return (~col.is_in(_allowed(list(p["values"]), dtype))).fill_null(False)
    # range: NaN is outside any range (Polars orders it above every number)
    low, high = (_literal(p[k], dtype) for k in ("min", "max"))
    parts = []
    if low is not None:
        parts.append(col < low)
    if high is not None:
        parts.append(col > high)
    if dtype.is_float():
        parts.append(col.is_nan())
    outside = parts[0]
    for part in parts[1:]:
        outside = outside | part
    return outside.fill_null(False)


def _literal(value: Any, dtype: pl.DataType) -> pl.Expr | None:
    """A range bound as a literal comparable with a column of ``dtype`` (see
    ``temporal_value``: a date-time bound is compared as an instant)."""
    import polars as pl

    if value is None:
        return None
    value = temporal_value(value, dtype)
    if isinstance(dtype, pl.Datetime) and isinstance(value, datetime):
        return pl.lit(value, dtype=dtype)
    return pl.lit(value)


def _allowed(values: list[Any], dtype: pl.DataType) -> pl.Series | list[Any]:
    """The allowed values, with ISO dates turned back into the column's dates or times."""
    import polars as pl

    if not dtype.is_temporal():
        return values
    converted = [temporal_value(v, dtype) for v in values]
    if all(v is None or not isinstance(v, str) for v in converted):
        return pl.Series(converted, dtype=dtype, strict=False)
    return converted


def streamed(check: Check) -> bool:
    """Whether ``check`` can be folded over a version's parts one at a time: counts, extremes
    and the schema merge, whereas ``unique``, an expression with an aggregate or a window,
    the bias checks and the comparisons with a reference need their columns whole."""
    if check.kind == "expression" and uses_aggregates(str(check.params["expr"])):
        return False
    return check.kind in _STREAMED


def evaluate(
    frame: pl.DataFrame,
    checks: Sequence[Check],
    *,
    reference: pl.DataFrame | None,
    sensitive: set[str],
    now: datetime | None,
) -> list[CheckResult]:
    """Every check of ``checks`` over one in-memory frame."""
    return evaluate_parts(
        [frame], checks, whole=frame, reference=reference, sensitive=sensitive, now=now
    )[0]


def evaluate_parts(
    parts: Iterable[pl.DataFrame],
    checks: Sequence[Check],
    *,
    whole: pl.DataFrame | None,
    reference: pl.DataFrame | None,
    sensitive: set[str],
    now: datetime | None,
    columns: Sequence[str] | None = None,
) -> tuple[list[CheckResult], int]:
    """Run ``checks`` with the streamed ones folded over ``parts`` (one held at a time) and the
    rest over ``whole`` (the columns they name, for every row); returns the results in the
    suite's order and the number of rows seen. ``columns`` are the data's, which a check
    naming a missing column lists (by default those of the frames it reads)."""
    import polars as pl

    fold = _Fold({i: c for i, c in enumerate(checks) if streamed(c)}, sensitive, columns)
    rest = {i: c for i, c in enumerate(checks) if not streamed(c)}
    # A whole check that names no column (``COUNT(*) > 0``) leaves the caller no column to
    # read whole: the parts themselves make up the frame then.
    kept: list[pl.DataFrame] | None = [] if rest and whole is None else None
    named = {n for c in rest.values() for n in columns_of(c)}
    for part in parts:
        fold.feed(part)
        if kept is not None:
            kept.append(part.select([c for c in part.columns if c in named] or part.columns[:1]))
    results = fold.results(now)
    if rest:
        if kept is not None:
            whole = pl.concat(kept, how="diagonal_relaxed") if kept else pl.DataFrame()
        assert whole is not None
        results |= _whole(whole, rest, reference, sensitive, columns)
    return [results[i] for i in range(len(checks))], fold.rows


def _missing(check: Check, schema: pl.Schema, columns: Sequence[str] | None) -> CheckResult | None:
    missing = [c for c in columns_of(check) if c not in schema]
    if not missing:
        return None
    there = list(schema) if columns is None else list(columns)
    if check.kind in _BIAS_KINDS:  # the threshold still shown, the field at fault named
        named = {"column": check.column or "", "label": check.params.get("label")}
        reason = missing_columns({k: v for k, v in named.items() if v is not None}, there)
        return result(check, False, None, bias_threshold(check), reason)
    shown = ", ".join(there[:20])
    return result(
        check,
        False,
        None,
        None,
        f"Column(s) {', '.join(missing)} not in the data (columns: {shown}).",
    )


def _cannot_run(check: Check, schema: pl.Schema, exc: Exception) -> CheckResult:
    # a check of one column names its type; a bias check reads two (the group and the label)
    # and its message names the one at fault itself. A bias check still shows its threshold:
    # what it measures on data it can read fails with its own reason in ``bias_result``.
    column = check.column or ""
    dtype = schema[column] if column in schema and "label" not in check.params else None
    return result(
        check,
        False,
        None,
        bias_threshold(check) if check.kind in _BIAS_KINDS else None,
        f"The check cannot run on this data{f' (column dtype {dtype})' if dtype else ''}: "
        f"{str(exc).splitlines()[0][:300]}",
    )


def _failing_frame(
    frame: pl.DataFrame, violation: pl.Expr, *, offset: int, limit: int
) -> pl.DataFrame:
    """The first ``limit`` rows of ``frame`` that break a check, numbered from ``offset``."""
    index = "row" if "row" not in frame.schema else "__row__"
    return frame.lazy().with_row_index(index, offset=offset).filter(violation).head(limit).collect()


class _Fold:
    """Row, freshness, type and row-count checks accumulated part by part.

    Each part is read by one ``select`` of every check's aggregate; a row check that still
    shows fewer than ``MAX_FAILING_ROWS`` failing rows takes the part's first ones (numbered
    across the whole version). The schema, the type errors and the redactor's sample come
    from the first part; the failing rows shown are classified themselves as well, so personal
    data that only later parts hold is still redacted.
    """

    def __init__(
        self, checks: Mapping[int, Check], sensitive: set[str], columns: Sequence[str] | None
    ) -> None:
        self._checks = checks
        self._sensitive = sensitive
        self._columns = columns
        self._done: dict[int, CheckResult] = {}
        self._violations: dict[int, pl.Expr] = {}
        self._aggregates: list[pl.Expr] = []
        self._counts: dict[int, int] = {}
        self._failing: dict[int, list[pl.DataFrame]] = {}
        self._latest: dict[int, Any] = {}
        self._schema: pl.Schema | None = None
        self._redactor: Redactor | None = None
        self.rows = 0

    def _prepare(self, first: pl.DataFrame) -> None:
        import polars as pl

        self._schema = schema = first.schema
        self._redactor = Redactor(first, self._sensitive)
        empty = first.head(0)
        for index, check in self._checks.items():
            if (missing := _missing(check, schema, self._columns)) is not None:
                self._done[index] = missing
                continue
            try:
                if check.kind in _ROW_KINDS:
                    expr = _violation(check, schema)
                    empty.select(expr.sum())  # type errors surface here, on no rows
                    self._violations[index] = expr
                    self._aggregates.append(expr.sum().alias(f"v{index}"))
                    self._counts[index] = 0
                    self._failing[index] = []
                elif check.kind == "freshness":
                    if not schema[check.column or ""].is_temporal():
                        raise TypeError("freshness needs a date or datetime column")
                    self._aggregates.append(pl.col(check.column or "").max().alias(f"v{index}"))
            except Exception as exc:
                self._done[index] = _cannot_run(check, schema, exc)

    def feed(self, part: pl.DataFrame) -> None:
        if self._schema is None:
            self._prepare(part)
        values = part.select(self._aggregates).row(0, named=True) if self._aggregates else {}
        for index, expr in self._violations.items():
            found = int(values[f"v{index}"] or 0)
            self._counts[index] += found
            have = sum(f.height for f in self._failing[index])
            if found and have < MAX_FAILING_ROWS:
                self._failing[index].append(
                    _failing_frame(part, expr, offset=self.rows, limit=MAX_FAILING_ROWS - have)
                )
        for index in self._checks:
            if self._checks[index].kind == "freshness" and index not in self._done:
                latest, previous = values[f"v{index}"], self._latest.get(index)
                if previous is None or (latest is not None and latest > previous):
                    self._latest[index] = latest
        self.rows += part.height

    def results(self, now: datetime | None) -> dict[int, CheckResult]:
        import polars as pl

        if self._schema is None:  # no part at all: every column is absent
            self._prepare(pl.DataFrame())
        assert self._schema is not None
        assert self._redactor is not None
        results = dict(self._done)
        for index, check in self._checks.items():
            if index in results:
                continue
            if check.kind in _ROW_KINDS:
                failing = self._failing[index]
                shown = pl.concat(failing, how="diagonal_relaxed") if failing else None
                results[index] = row_result(
                    check,
                    self._counts[index],
                    self.rows,
                    shown,
                    self._redactor,
                    columns_of(check),
                )
            elif check.kind == "freshness":
                results[index] = freshness(check, self._latest.get(index), now)
            else:
                results[index] = frame_check(check, self._schema, self.rows)
        return results


def _whole(
    frame: pl.DataFrame,
    checks: Mapping[int, Check],
    reference: pl.DataFrame | None,
    sensitive: set[str],
    columns: Sequence[str] | None = None,
) -> dict[int, CheckResult]:
    """``unique``, aggregate expressions, the bias checks and the reference comparisons over
    whole columns."""
    results: dict[int, CheckResult] = {}
    redactor = Redactor(frame, sensitive)
    for index, check in checks.items():
        if (missing := _missing(check, frame.schema, columns)) is not None:
            results[index] = missing
            continue
        if check.kind not in _ROW_KINDS:
            try:
                results[index] = _other(frame, check, reference, redactor)
            except Exception as exc:
                results[index] = _cannot_run(check, frame.schema, exc)
            continue
        try:
            violation = _violation(check, frame.schema)
            failing = int(frame.select(violation.sum()).item() or 0)
        except Exception as exc:
            results[index] = _cannot_run(check, frame.schema, exc)
            continue
        shown = (
            _failing_frame(frame, violation, offset=0, limit=MAX_FAILING_ROWS) if failing else None
        )
        results[index] = row_result(
            check, failing, frame.height, shown, redactor, columns_of(check)
        )
    return results


def _other(
    frame: pl.DataFrame, check: Check, reference: pl.DataFrame | None, redactor: Redactor
) -> CheckResult:
    if check.kind in _BIAS_KINDS:
        return bias_result(frame, check, redact=redactor.values)
    if reference is None:
        return result(
            check,
            False,
            None,
            None,
            "This check compares with a reference version, and none was given: "
            "set a reference for the dataset or pass one.",
        )
    if (check.column or "") not in reference.schema:
        return result(
            check, False, None, None, f"Column {check.column} is not in the reference data."
        )
    from keel.data._drift import reference_check

    observed, threshold, passed, message, details = reference_check(
        frame, reference, check, redact=redactor.values
    )
    return result(check, passed, observed, threshold, message, **details)
