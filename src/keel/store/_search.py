"""Compile the parsed filter language into SQLAlchemy expressions — never string-built SQL.

Metric comparisons read each run's latest value (``latest_metrics``); parameter comparisons
with a number use the parsed numeric value, with a string the raw text; tags compare as text.
Every value travels as a bound parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, not_, or_, select
from sqlalchemy.orm import InstrumentedAttribute, aliased

from keel.store._filter import And, Comparison, Expr, Not, Or, OrderKey
from keel.store._schema import LatestMetricRow, ParamRow, RunRow, RunTagRow

__all__ = ["compile_filter", "compile_order"]

_ATTRIBUTE_COLUMNS: dict[str, Any] = {
    "status": RunRow.status,
    "name": RunRow.name,
    "run_id": RunRow.id,
    "experiment_id": RunRow.experiment_id,
    "user": RunRow.user,
    "start_time": RunRow.start_time,
    "end_time": RunRow.end_time,
}


def _apply(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "=":
        return column == value  # type: ignore[no-any-return]
    if op == "!=":
        return column != value  # type: ignore[no-any-return]
    if op == "<":
        return column < value  # type: ignore[no-any-return]
    if op == "<=":
        return column <= value  # type: ignore[no-any-return]
    if op == ">":
        return column > value  # type: ignore[no-any-return]
    if op == ">=":
        return column >= value  # type: ignore[no-any-return]
    if op == "LIKE":
        return column.like(value, escape="\\")  # type: ignore[no-any-return]
    if op == "NOT LIKE":
        return column.not_like(value, escape="\\")  # type: ignore[no-any-return]
    if op == "ILIKE":
        return column.ilike(value, escape="\\")  # type: ignore[no-any-return]
    if op == "NOT ILIKE":
        return column.not_ilike(value, escape="\\")  # type: ignore[no-any-return]
    if op == "IN":
        return column.in_(list(value))  # type: ignore[no-any-return]
    if op == "NOT IN":
        return column.not_in(list(value))  # type: ignore[no-any-return]
    if op == "IS NULL":
        return column.is_(None)  # type: ignore[no-any-return]
    if op == "IS NOT NULL":
        return column.is_not(None)  # type: ignore[no-any-return]
    raise AssertionError(f"unknown operator {op!r}")  # the parser only makes the ones above


def _is_number(value: Any) -> bool:
    if isinstance(value, tuple):
        return bool(value) and all(_is_number(item) for item in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


#: MLflow's system tags that Keel keeps as run columns (the MLflow API also stores the name as
#: a tag): a filter on the tag reads the column, so it finds every run however it was made.
_TAG_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "mlflow.runName": RunRow.name,
    "mlflow.parentRunId": RunRow.parent_run_id,
}


def _entity_clause(comparison: Comparison) -> ColumnElement[bool]:
    """``runs.id IN (SELECT run_id FROM <entity table> WHERE key = … AND <condition>)``.

    The IN form lets SQLite drive the lookup from the (key, value) index instead of running a
    correlated subquery for every run.
    """
    op, value, key = comparison.op, comparison.value, comparison.key
    column: Any
    table: Any
    if comparison.entity == "tag" and key in _TAG_COLUMNS:
        held = _TAG_COLUMNS[key]  # runs made by Keel's SDK hold these as columns only
        if op == "IS NULL":
            return held.is_(None)
        if op == "IS NOT NULL":
            return held.is_not(None)
        return and_(held.is_not(None), _apply(held, op, value))
    if comparison.entity == "metric":
        table, column = LatestMetricRow, LatestMetricRow.value
    elif comparison.entity == "param":
        table = ParamRow
        column = ParamRow.value_num if _is_number(value) else ParamRow.value
    else:
        table, column = RunTagRow, RunTagRow.value
    having_key = select(table.run_id).where(table.key == key)
    if op == "IS NULL":
        return RunRow.id.not_in(having_key)
    if op == "IS NOT NULL":
        return RunRow.id.in_(having_key)
    if comparison.entity == "metric" and isinstance(value, float) and value != value:
        # NaN is stored as NULL, and NaN equals nothing but itself (the parser refuses < > NaN).
        cond = column.is_(None) if op == "=" else column.is_not(None)
        return RunRow.id.in_(having_key.where(cond))
    if comparison.entity == "metric" and isinstance(value, tuple) and any(v != v for v in value):
        # An IN list holding NaN also matches the NaN values (stored as NULL), as `= NaN` does.
        numbers = [v for v in value if v == v]
        if op == "IN":
            cond = or_(column.is_(None), column.in_(numbers)) if numbers else column.is_(None)
        else:
            cond = (
                and_(column.is_not(None), column.not_in(numbers))
                if numbers
                else column.is_not(None)
            )
        return RunRow.id.in_(having_key.where(cond))
    if comparison.entity == "param" and not _is_number(value) and op in {"<", "<=", ">", ">="}:
        column = ParamRow.value
    return RunRow.id.in_(having_key.where(_apply(column, op, value)))


def compile_filter(expr: Expr) -> ColumnElement[bool]:
    """The WHERE clause of a parsed filter, over the ``runs`` table."""
    if isinstance(expr, And):
        return and_(*(compile_filter(item) for item in expr.items))
    if isinstance(expr, Or):
        return or_(*(compile_filter(item) for item in expr.items))
    if isinstance(expr, Not):
        return not_(compile_filter(expr.item))
    if expr.entity == "attribute":
        return _apply(_ATTRIBUTE_COLUMNS[expr.key], expr.op, expr.value)
    return _entity_clause(expr)


def compile_order(stmt: Select[Any], keys: Sequence[OrderKey]) -> Select[Any]:
    """Add ORDER BY for each key (missing values last), then newest first, then by id."""
    for index, key in enumerate(keys):
        columns: list[Any]
        if key.entity == "attribute":
            columns = [_ATTRIBUTE_COLUMNS[key.key]]
        elif key.entity == "metric":
            metric = aliased(LatestMetricRow, name=f"order_m{index}")
            stmt = stmt.outerjoin(metric, and_(metric.run_id == RunRow.id, metric.key == key.key))
            columns = [metric.value]
        elif key.entity == "param":
            param = aliased(ParamRow, name=f"order_p{index}")
            stmt = stmt.outerjoin(param, and_(param.run_id == RunRow.id, param.key == key.key))
            columns = [param.value_num, param.value]
        else:
            tag = aliased(RunTagRow, name=f"order_t{index}")
            stmt = stmt.outerjoin(tag, and_(tag.run_id == RunRow.id, tag.key == key.key))
            columns = [tag.value]
        for column in columns:
            ordered = column.desc() if key.descending else column.asc()
            stmt = stmt.order_by(ordered.nulls_last())
    return stmt.order_by(RunRow.start_time.desc(), RunRow.id)
