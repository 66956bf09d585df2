"""Declarative data checks: parse a suite once, run it as one vectorised pass of Polars.

A suite is a list of checks (from YAML or JSON)::

    - {kind: not_null, column: id}
    - {kind: range, column: age, min: 0, max: 120, level: warning}
    - {kind: expression, name: dates_ordered, expr: "end_date >= start_date"}
    - {kind: distribution_shift, column: income, method: psi, max: 0.2}
    - {kind: disparate_impact, column: gender, label: approved, positive: 1, threshold: 0.8}

Row checks (not_null, unique, range, allowed_values, regex, expression) and the per-frame
aggregates are computed in a single ``select``; only a failed row check costs one more pass,
to fetch up to five failing rows, whose personal data is redacted. Cross-column expressions
are Polars SQL expressions (``pl.sql_expr``), never Python ``eval``. Pure: no I/O, no clock —
freshness is measured against the ``now`` the caller passes.

Semantics worth knowing:

- ``unique`` ignores rows with a null in its column(s), as SQL ``UNIQUE`` does; ``not_null``
  is the check for nulls.
- ``range`` counts NaN as out of range whenever a bound is set. On a date-time column bounds
  are compared as instants: an aware bound is converted to the column's time zone, a naive
  bound (or a date, at midnight) is read in the column's zone, and a column without a zone is
  read as UTC (``temporal_value``).
- An ``expression`` with an aggregate or a window (``x <= 2 * AVG(x)``,
  ``... OVER (PARTITION BY g)``) is measured over the whole version, not part by part.
- Dates in a suite (an unquoted ``2024-01-01`` in YAML) are kept as ISO strings, so the suite
  and its report stay JSON, and are turned back into the column's dates when a check runs.
- A bias check with nothing to measure (no rows, fewer than two groups, no positive label)
  fails with the reason rather than passing. With a privileged group, disparate impact is
  two-sided (``GroupRates.impact_ratio``): a privileged group never selected while another is
  gives 0.0. Rates count the rows with a known label: null and NaN labels are left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal

from keel.data._temporal import (
    as_datetime,
    human_age,
    iso_duration,
    parse_duration,
    temporal_value,
)
from keel.errors import InvalidInputError

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "CHECK_KINDS",
    "Check",
    "CheckResult",
    "CheckSuite",
    "ValidationResult",
    "as_datetime",
    "human_age",
    "iso_duration",
    "parse_duration",
    "parse_suite",
    "run_suite",
    "run_suite_parts",
    "streamed_columns",
    "temporal_value",
    "whole_columns",
]

Level = Literal["error", "warning"]
LEVELS: tuple[Level, ...] = ("error", "warning")
MAX_FAILING_ROWS = 5
MAX_CHECKS = 1_000

_ROW_KINDS = ("not_null", "unique", "range", "allowed_values", "regex", "expression")
_FRAME_KINDS = ("type", "row_count", "freshness")
_REFERENCE_KINDS = (
    "distribution_shift",
    "null_rate_change",
    "new_categories",
    "cardinality_change",
)
_BIAS_KINDS = ("representation", "positive_rate_parity", "disparate_impact")

_COMMON = {"kind", "name", "level", "description"}
#: kind -> (required fields, optional fields with their defaults)
CHECK_KINDS: dict[str, tuple[frozenset[str], dict[str, Any]]] = {
    "type": (frozenset({"column", "dtype"}), {}),
    "not_null": (frozenset({"column"}), {"max_fraction": 0.0}),
    "unique": (frozenset(), {"column": None, "columns": None, "max_fraction": 0.0}),
    "range": (frozenset({"column"}), {"min": None, "max": None, "max_fraction": 0.0}),
    "allowed_values": (frozenset({"column", "values"}), {"max_fraction": 0.0}),
    "regex": (frozenset({"column", "pattern"}), {"max_fraction": 0.0}),
    "expression": (frozenset({"expr"}), {"column": None, "max_fraction": 0.0}),
    "row_count": (frozenset(), {"min": None, "max": None}),
    "freshness": (frozenset({"column", "max_age"}), {}),
    "distribution_shift": (frozenset({"column"}), {"method": "psi", "max": None, "bins": 10}),
    "null_rate_change": (frozenset({"column"}), {"max": 0.05}),
    "new_categories": (frozenset({"column"}), {"max": 0}),
    "cardinality_change": (frozenset({"column"}), {"max_ratio": 0.2}),
    "representation": (frozenset({"column"}), {"min_share": 0.1}),
    "positive_rate_parity": (
        frozenset({"column", "label"}),
        {"positive": 1, "max_difference": 0.1, "min_count": 1},
    ),
    "disparate_impact": (
        frozenset({"column", "label"}),
        {"positive": 1, "threshold": 0.8, "privileged": None, "min_count": 1},
    ),
}
_DTYPES = (
    "integer", "int", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float", "float32", "float64", "numeric", "decimal", "string", "str", "bool", "boolean",
    "date", "datetime", "time", "duration", "categorical",
)  # fmt: skip
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Check:
    """One declared check: what it tests, on which column, and how bad a failure is."""

    name: str
    kind: str
    column: str | None
    level: Level
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def needs_reference(self) -> bool:
        return self.kind in _REFERENCE_KINDS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "level": self.level}
        if self.column is not None:
            out["column"] = self.column
        if self.description:
            out["description"] = self.description
        out.update({k: v for k, v in self.params.items() if v is not None})
        return out


@dataclass(frozen=True, slots=True)
class CheckSuite:
    """An ordered, validated list of checks with unique names."""

    checks: tuple[Check, ...]

    @property
    def needs_reference(self) -> bool:
        return any(c.needs_reference for c in self.checks)

    def to_list(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.checks]


def _bad(index: int, what: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"Check #{index + 1} ({what}): {message}", check=index + 1)


def parse_suite(spec: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> CheckSuite:
    """Validate a suite given as ``[{kind: ..., ...}, ...]`` or ``{checks: [...]}``.

    Errors name the check (number and name), the field, and the allowed values.
    """
    items: Any = spec.get("checks") if isinstance(spec, Mapping) else spec
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise InvalidInputError(
            "A check suite is a list of checks, or a mapping with a 'checks' list; "
            f"got {type(items).__name__}."
        )
    if len(items) > MAX_CHECKS:
        raise InvalidInputError(f"A suite holds at most {MAX_CHECKS} checks; got {len(items)}.")
    checks: list[Check] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        check = _parse_check(index, item)
        if check.name in seen:
            raise _bad(index, check.name, "another check has this name; give it a unique 'name'.")
        seen.add(check.name)
        checks.append(check)
    return CheckSuite(tuple(checks))


def _parse_check(index: int, item: object) -> Check:
    if not isinstance(item, Mapping):
        raise _bad(index, "?", f"a check is a mapping with a 'kind'; got {type(item).__name__}.")
    kind = item.get("kind")
    label = str(item.get("name") or kind)
    if kind not in CHECK_KINDS:
        raise _bad(
            index, label, f"unknown kind {kind!r:.40}; use one of: {', '.join(CHECK_KINDS)}."
        )
    required, optional = CHECK_KINDS[kind]
    unknown = set(item) - _COMMON - required - set(optional)
    if unknown:
        allowed = sorted(_COMMON | required | set(optional))
        raise _bad(
            index,
            label,
            f"unknown field(s) {', '.join(sorted(map(str, unknown)))} for kind '{kind}'; "
            f"allowed: {', '.join(allowed)}.",
        )
    missing = required - set(item)
    if missing:
        raise _bad(index, label, f"kind '{kind}' needs the field(s) {', '.join(sorted(missing))}.")
    level = item.get("level", "error")
    if level not in LEVELS:
        raise _bad(index, label, f"level {level!r:.20} is not one of: error, warning.")
    params = {key: item.get(key, default) for key, default in optional.items()}
    params.update({key: item[key] for key in required if key != "column"})
    column = item.get("column")
    if (column is not None or "column" in required) and (not isinstance(column, str) or not column):
        raise _bad(index, label, "'column' must be a column name (a non-empty string).")
    params.pop("column", None)
    _validate_params(index, label, str(kind), column, params)
    name = item.get("name") or (f"{kind}:{column}" if column else str(kind))
    if not isinstance(name, str) or not name or len(name) > 200:
        raise _bad(index, label, "'name' must be a non-empty string of at most 200 characters.")
    return Check(name, str(kind), column, level, params, str(item.get("description", ""))[:500])


def _number(index: int, label: str, params: Mapping[str, Any], key: str) -> None:
    value = params.get(key)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value)
    ):
        raise _bad(index, label, f"'{key}' must be a number; got {value!r:.40}.")


def _validate_params(
    index: int, label: str, kind: str, column: str | None, params: dict[str, Any]
) -> None:
    for key in ("max_fraction", "max_ratio", "min_share", "max_difference", "threshold"):
        _number(index, label, params, key)
    _iso_dates(params)
    if kind == "range":
        for key in ("min", "max"):
            params[key] = _bound(index, label, key, params[key])
    else:
        _number(index, label, params, "max")
    fraction = params.get("max_fraction")
    if fraction is not None and not 0 <= fraction <= 1:
        raise _bad(index, label, f"'max_fraction' must be between 0 and 1; got {fraction}.")
    if kind == "type" and str(params["dtype"]).lower() not in _DTYPES:
        raise _bad(
            index,
            label,
            f"unknown dtype {params['dtype']!r:.30}; use one of: {', '.join(_DTYPES)}.",
        )
    if kind == "type":
        params["dtype"] = str(params["dtype"]).lower()
    if kind in ("range", "row_count"):
        if params["min"] is None and params["max"] is None:
            raise _bad(index, label, f"kind '{kind}' needs 'min', 'max' or both.")
        if kind == "row_count":
            _number(index, label, params, "min")
            _number(index, label, params, "max")
    if kind == "unique":
        cols = params.pop("columns") or ([column] if column else None)
        if not cols or not all(isinstance(c, str) for c in cols):
            raise _bad(index, label, "kind 'unique' needs 'column' or a list 'columns'.")
        params["columns"] = list(cols)
    if kind == "allowed_values" and (
        isinstance(params["values"], str | bytes) or not isinstance(params["values"], Sequence)
    ):
        raise _bad(index, label, "'values' must be a list of the allowed values.")
    if kind == "regex":
        _check_regex(index, label, params["pattern"])
    if kind == "expression":
        _check_expression(index, label, params["expr"])
    if kind == "freshness":
        params["max_age"] = _seconds(index, label, params["max_age"])
    if kind in _BIAS_KINDS:
        _bias_params(index, label, column, params)
    if kind == "distribution_shift":
        method = params["method"]
        if method not in ("psi", "ks"):
            raise _bad(index, label, f"'method' {method!r:.20} is not one of: psi, ks.")
        if params["max"] is None:
            params["max"] = 0.2 if method == "psi" else 0.1
        bins = params["bins"]
        if not isinstance(bins, int) or isinstance(bins, bool) or not 2 <= bins <= 100:
            raise _bad(index, label, f"'bins' must be an integer from 2 to 100; got {bins!r:.20}.")


def _bias_params(index: int, label: str, column: str | None, params: dict[str, Any]) -> None:
    """Bounds that are shares or ratios, a ``label`` other than the attribute, single values
    for ``positive`` and ``privileged``, ``min_count`` in rows: anything else makes a bias
    check that cannot fail, or one that crashes on every frame."""
    for key in ("min_share", "max_difference", "threshold"):
        if key in params and (params[key] is None or not 0 <= params[key] <= 1):
            got = f"got {params[key]!r:.40}"
            raise _bad(index, label, f"'{key}' must be a number between 0 and 1; {got}.")
    if "label" not in params:
        return
    name, count = params["label"], params["min_count"]
    problem = None
    if not isinstance(name, str) or not name:
        problem = f"'label' must be the label column's name; got {name!r:.40}."
    elif name == column:
        problem = (
            f"'label' and 'column' both name {name!r:.40}; "
            "'column' is the sensitive attribute, 'label' the outcome."
        )
    elif isinstance(count, bool) or not isinstance(count, int) or count < 1:
        problem = f"'min_count' must be a whole number of rows, at least 1; got {count!r:.40}."
    for key, of in (("privileged", "column"), ("positive", "label")):
        value = params.get(key)
        if (value is not None or key == "positive") and (
            not isinstance(value, str | int | float)
            or (isinstance(value, float) and math.isnan(value))
        ):
            problem = problem or (
                f"'{key}' must be one value of the {of} "
                f"(a string, number, boolean or date); got {value!r:.40}."
            )
    if problem:
        raise _bad(index, label, problem)


def _iso_dates(params: dict[str, Any]) -> None:
    """Dates, date-times, times and durations (an unquoted ``2024-01-01`` in YAML, a
    ``timedelta`` in Python) become ISO 8601 strings, so a suite and its report stay JSON; the
    check turns them back into the column's type when it runs (``temporal_value``)."""
    for key in ("values", "positive", "privileged"):
        value = params.get(key)
        if isinstance(value, Sequence) and not isinstance(value, str | bytes):
            params[key] = [_iso(v) for v in value]
        elif key in params:
            params[key] = _iso(value)


def _iso(value: object) -> object:
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    return value


def _bound(index: int, label: str, key: str, value: object) -> object:
    """A range bound: a number, or an ISO date or date-time for temporal columns."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        if isinstance(value, float) and math.isnan(value):
            raise _bad(index, label, f"'{key}' must not be NaN.")
        return value
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            (datetime if "T" in value or " " in value else date).fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise _bad(
        index,
        label,
        f"'{key}' must be a number or an ISO date (2026-01-31) or date-time; got {value!r:.40}.",
    )


def _check_regex(index: int, label: str, pattern: object) -> None:
    import polars as pl

    if not isinstance(pattern, str) or len(pattern) > 1000:
        raise _bad(index, label, "'pattern' must be a regular expression of ≤ 1000 characters.")
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except Exception as exc:
        raise _bad(index, label, f"'pattern' is not a valid regular expression: {exc}") from None


def _check_expression(index: int, label: str, expr: object) -> None:
    import polars as pl

    if not isinstance(expr, str) or not expr.strip() or len(expr) > 2000:
        raise _bad(index, label, "'expr' must be a SQL expression of ≤ 2000 characters.")
    try:
        pl.sql_expr(expr)
    except Exception as exc:
        raise _bad(
            index, label, f"'expr' is not a valid SQL expression ({exc}); write e.g. 'a >= b'."
        ) from None


def _seconds(index: int, label: str, value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise _bad(
            index,
            label,
            f"'max_age' {value!r:.30} is not a duration; write seconds or e.g. 90m, 24h, 7d.",
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    kind: str
    column: str | None
    level: Level
    passed: bool
    observed: Any
    threshold: Any
    message: str
    failing_rows: tuple[dict[str, Any], ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "column": self.column,
            "level": self.level,
            "passed": self.passed,
            "observed": self.observed,
            "threshold": self.threshold,
            "message": self.message,
            "failing_rows": [dict(r) for r in self.failing_rows],
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        level = data.get("level", "error")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            column=data.get("column"),
            level="warning" if level == "warning" else "error",
            passed=bool(data["passed"]),
            observed=data.get("observed"),
            threshold=data.get("threshold"),
            message=str(data.get("message", "")),
            failing_rows=tuple(dict(r) for r in data.get("failing_rows", ())),
            details=dict(data.get("details", {})),
        )


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """Every check's outcome over a frame of ``rows`` rows."""

    checks: tuple[CheckResult, ...]
    rows: int

    @property
    def passed(self) -> bool:
        """True when no error-level check failed (warnings do not block)."""
        return not self.errors

    @property
    def errors(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed and c.level == "error")

    @property
    def warnings(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if not c.passed and c.level == "warning")

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows": self.rows,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationResult:
        return cls(
            checks=tuple(CheckResult.from_dict(c) for c in data.get("checks", ())),
            rows=int(data.get("rows", 0)),
        )


def run_suite(
    frame: pl.DataFrame,
    suite: CheckSuite,
    *,
    reference: pl.DataFrame | None = None,
    sensitive_columns: Collection[str] = (),
    now: datetime | None = None,
) -> ValidationResult:
    """Run every check of ``suite`` over ``frame``.

    Args:
        frame: the data to validate.
        suite: from ``parse_suite``.
        reference: the reference data for the distribution checks; without it those checks
            fail with a message that says so (a gate fails closed).
        sensitive_columns: columns whose values are always redacted in failing rows, on top of
            those the classifier finds personal data in.
        now: the time freshness is measured against (required when the suite has a freshness
            check; the engine reads no clock).
    """
    return run_suite_parts(
        [frame],
        suite,
        whole=frame,
        reference=reference,
        sensitive_columns=sensitive_columns,
        now=now,
    )


def run_suite_parts(
    parts: Iterable[pl.DataFrame],
    suite: CheckSuite,
    *,
    whole: pl.DataFrame | None,
    reference: pl.DataFrame | None = None,
    sensitive_columns: Collection[str] = (),
    now: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> ValidationResult:
    """Run ``suite`` over data that arrives in parts (a stored version, part by part).

    The checks that count, compare or bound values row by row (``streamed``) are folded over
    ``parts`` with one part in memory at a time; ``unique``, the bias checks and the reference
    comparisons run over ``whole``, a frame of only the columns they name (``whole_columns``),
    which may be None when the suite has none of them. ``columns`` are the data's (the
    version's), which a check naming a missing column lists; by default those of the frames
    given, which hold only the columns the checks name. Otherwise as ``run_suite``.
    """
    from keel.data._evaluate import evaluate_parts

    if now is None and any(c.kind == "freshness" for c in suite.checks):
        raise InvalidInputError(
            "The suite has a freshness check, which needs the current time: pass now=… "
            "(for example keel.clock.now()) to run_suite."
        )
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    results, rows = evaluate_parts(
        parts,
        suite.checks,
        whole=whole,
        reference=reference,
        sensitive=set(sensitive_columns),
        now=now,
        columns=columns,
    )
    return ValidationResult(tuple(results), rows)


def whole_columns(suite: CheckSuite) -> list[str]:
    """The columns that the suite's non-streamed checks need whole (see ``run_suite_parts``)."""
    return _columns(suite, streamed=False)


def streamed_columns(suite: CheckSuite) -> list[str]:
    """The columns that the suite's streamed checks read part by part."""
    return _columns(suite, streamed=True)


def _columns(suite: CheckSuite, *, streamed: bool) -> list[str]:
    from keel.data._evaluate import columns_of
    from keel.data._evaluate import streamed as is_streamed

    named = (n for c in suite.checks if is_streamed(c) is streamed for n in columns_of(c))
    return [*dict.fromkeys(named)]
