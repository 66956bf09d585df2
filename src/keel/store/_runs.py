"""Repository of runs: params, tags, metrics (batched), latest values and artifacts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Dialect,
    Select,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.orm import Session, defer

from keel import clock
from keel.store._filter import Expr, OrderKey
from keel.store._schema import (
    LatestMetricRow,
    MetricRow,
    ParamRow,
    RunArtifactRow,
    RunRow,
    RunTagRow,
)
from keel.store._search import compile_filter, compile_order
from keel.types import new_id

__all__ = ["MetricPoint", "RunRepository"]

#: One metric value: (key, value, step, timestamp in ms). NaN is stored as NULL.
MetricPoint = tuple[str, float, int, int]

_CHUNK = 900  # rows per IN (...) query, under SQLite's bound-parameter limit


def _numeric(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class RunRepository:
    """Runs of one project, inside the caller's transaction."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    # --- runs ---------------------------------------------------------------------------

    def create(
        self,
        *,
        experiment_id: str,
        name: str,
        user: str,
        parent_run_id: str | None = None,
        code_version: str | None = None,
        environment: dict[str, Any] | None = None,
    ) -> RunRow:
        row = RunRow(
            id=new_id(),
            project_id=self._project_id,
            experiment_id=experiment_id,
            parent_run_id=parent_run_id,
            name=name,
            status="RUNNING",
            user=user,
            start_time=clock.now_millis(),
            end_time=None,
            lifecycle="active",
            code_version=code_version,
            environment=environment,
        )
        self._session.add(row)
        self._session.flush()
        return row

    def get(self, run_id: str) -> RunRow | None:
        return self._session.execute(
            select(RunRow).where(RunRow.id == run_id, RunRow.project_id == self._project_id)
        ).scalar_one_or_none()

    def get_many(self, run_ids: Sequence[str]) -> dict[str, RunRow]:
        found: dict[str, RunRow] = {}
        for chunk in _chunks(run_ids):
            rows = self._session.execute(
                select(RunRow).where(RunRow.id.in_(chunk), RunRow.project_id == self._project_id)
            ).scalars()
            found.update((row.id, row) for row in rows)
        return found

    def search(
        self,
        *,
        where: Expr | None,
        order_by: Sequence[OrderKey],
        experiment_ids: Sequence[str] | None,
        include_deleted: bool,
        limit: int,
        offset: int,
    ) -> list[RunRow]:
        """Runs matching the parsed filter, ordered, one page at a time."""
        stmt: Select[Any] = (
            select(RunRow)
            .options(defer(RunRow.environment))  # search results never show it
            .where(RunRow.project_id == self._project_id)
        )
        if experiment_ids is not None:
            stmt = stmt.where(RunRow.experiment_id.in_(list(experiment_ids)))
        if not include_deleted:
            stmt = stmt.where(RunRow.lifecycle == "active")
        if where is not None:
            stmt = stmt.where(compile_filter(where))
        stmt = compile_order(stmt, order_by)
        return list(self._session.execute(stmt.limit(limit).offset(offset)).scalars())

    # --- params and tags ----------------------------------------------------------------

    def params(self, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        result: dict[str, dict[str, str]] = {run_id: {} for run_id in run_ids}
        for chunk in _chunks(run_ids):
            for row in self._session.execute(
                select(ParamRow.run_id, ParamRow.key, ParamRow.value).where(
                    ParamRow.run_id.in_(chunk)
                )
            ):
                result[row.run_id][row.key] = row.value
        return result

    def insert_params(self, run_id: str, items: Iterable[tuple[str, str]]) -> None:
        rows = [
            {"run_id": run_id, "key": key, "value": value, "value_num": _numeric(value)}
            for key, value in items
        ]
        if rows:
            self._session.execute(insert(ParamRow), rows)

    def tags(self, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        result: dict[str, dict[str, str]] = {run_id: {} for run_id in run_ids}
        for chunk in _chunks(run_ids):
            for row in self._session.execute(
                select(RunTagRow.run_id, RunTagRow.key, RunTagRow.value).where(
                    RunTagRow.run_id.in_(chunk)
                )
            ):
                result[row.run_id][row.key] = row.value
        return result

    def set_tags(self, run_id: str, items: dict[str, str]) -> None:
        for key, value in items.items():
            row = self._session.get(RunTagRow, (run_id, key))
            if row is None:
                self._session.add(RunTagRow(run_id=run_id, key=key, value=value))
            else:
                row.value = value
        self._session.flush()

    def delete_tag(self, run_id: str, key: str) -> bool:
        result = self._session.execute(
            delete(RunTagRow).where(RunTagRow.run_id == run_id, RunTagRow.key == key)
        )
        return bool(getattr(result, "rowcount", 0))

    # --- metrics ------------------------------------------------------------------------

    def insert_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        """Write a batch of points in the caller's transaction, and move the latest values.

        The rows go to the driver as plain tuples (no per-row dicts, no ORM): one
        ``executemany`` on SQLite, one ``COPY`` on PostgreSQL (psycopg 3), a plain
        ``executemany`` on other drivers.
        """
        if not points:
            return
        rows = [
            (run_id, key, None if value != value else value, step, ts)  # NaN -> NULL
            for key, value, step, ts in points
        ]
        self._session.flush()  # raw statements below bypass autoflush
        connection = self._session.connection()
        if not _copy_metrics(connection, rows):
            _execute_metric_insert(connection, rows)
        newest: dict[str, tuple[int, int, float]] = {}
        for key, value, step, ts in points:
            seen = newest.get(key)
            # Later points win ties, like the upsert below (excluded.timestamp >= current).
            if seen is None or step > seen[0] or (step == seen[0] and ts >= seen[1]):
                newest[key] = (step, ts, value)
        self._upsert_latest(
            run_id, [(key, value, step, ts) for key, (step, ts, value) in newest.items()]
        )

    def _upsert_latest(self, run_id: str, points: list[MetricPoint]) -> None:
        rows = [
            {
                "run_id": run_id,
                "key": key,
                "value": None if value != value else value,
                "step": step,
                "timestamp": ts,
            }
            for key, value, step, ts in points
        ]
        connection = self._session.connection()
        stmt = _latest_upsert(connection.dialect.name)
        for start in range(0, len(rows), _CHUNK // 5):
            connection.execute(stmt, rows[start : start + _CHUNK // 5])

    def latest_metrics(
        self, run_ids: Sequence[str]
    ) -> dict[str, dict[str, tuple[float, int, int]]]:
        result: dict[str, dict[str, tuple[float, int, int]]] = {run_id: {} for run_id in run_ids}
        for chunk in _chunks(run_ids):
            for run_id, key, value, step, ts in self._session.execute(
                select(
                    LatestMetricRow.run_id,
                    LatestMetricRow.key,
                    LatestMetricRow.value,
                    LatestMetricRow.step,
                    LatestMetricRow.timestamp,
                ).where(LatestMetricRow.run_id.in_(chunk))
            ):
                result[run_id][key] = (math.nan if value is None else value, step, ts)
        return result

    def metric_history(self, run_id: str, key: str) -> list[tuple[float, int, int]]:
        """Every (value, step, timestamp) of one metric, by step then time."""
        rows = self._session.execute(
            select(MetricRow.value, MetricRow.step, MetricRow.timestamp)
            .where(MetricRow.run_id == run_id, MetricRow.key == key)
            .order_by(MetricRow.step, MetricRow.timestamp, MetricRow.id)
        )
        return [(math.nan if v is None else v, s, t) for v, s, t in rows]

    def metric_extent(self, run_ids: Sequence[str], key: str) -> tuple[int, int, int]:
        """(lowest step, highest step, number of points) of ``key`` over ``run_ids``."""
        low, high, count = self._session.execute(
            select(func.min(MetricRow.step), func.max(MetricRow.step), func.count()).where(
                MetricRow.run_id.in_(self._scoped(run_ids)), MetricRow.key == key
            )
        ).one()
        return int(low or 0), int(high or 0), int(count)

    def metric_points(self, run_ids: Sequence[str], key: str) -> dict[str, list[tuple[int, float]]]:
        """Every (step, value) of ``key`` per run (NaN for NULL), by step then time."""
        result: dict[str, list[tuple[int, float]]] = {run_id: [] for run_id in run_ids}
        for run_id, step, value in self._session.execute(
            select(MetricRow.run_id, MetricRow.step, MetricRow.value)
            .where(MetricRow.run_id.in_(self._scoped(run_ids)), MetricRow.key == key)
            .order_by(MetricRow.run_id, MetricRow.step, MetricRow.timestamp, MetricRow.id)
        ):
            result[run_id].append((step, math.nan if value is None else value))
        return result

    def metric_buckets(
        self, run_ids: Sequence[str], key: str, *, low: int, high: int, buckets: int
    ) -> list[tuple[str, int, float, float]]:
        """(run id, bucket, min, max) of the finite values of ``key``, in ``buckets`` step buckets.

        Bucket ``b`` holds the steps ``s`` with ``floor((s - low) * buckets / (high - low)) == b``
        (the highest step falls in bucket ``buckets``; callers fold it into the last one). The
        division is an integer floor division on every engine.
        """
        span = max(high - low, 1)
        bucket = ((MetricRow.step - low) * buckets) // span
        rows = self._session.execute(
            select(MetricRow.run_id, bucket, func.min(MetricRow.value), func.max(MetricRow.value))
            .where(
                MetricRow.run_id.in_(self._scoped(run_ids)),
                MetricRow.key == key,
                MetricRow.value.is_not(None),
            )
            .group_by(MetricRow.run_id, bucket)
        )
        return [
            (run_id, int(b), float(lo), float(hi))
            for run_id, b, lo, hi in rows
            if lo is not None and hi is not None
        ]

    def _scoped(self, run_ids: Sequence[str]) -> Select[Any]:
        return select(RunRow.id).where(
            RunRow.project_id == self._project_id, RunRow.id.in_(list(run_ids))
        )

    # --- artifacts ----------------------------------------------------------------------

    def add_artifact(self, run_id: str, path: str, *, digest: str, size: int) -> None:
        row = self._session.get(RunArtifactRow, (run_id, path))
        if row is None:
            self._session.add(
                RunArtifactRow(
                    run_id=run_id, path=path, digest=digest, size=size, created_at=clock.now()
                )
            )
        else:
            row.digest, row.size, row.created_at = digest, size, clock.now()
        self._session.flush()

    def artifacts(self, run_id: str) -> list[RunArtifactRow]:
        return list(
            self._session.execute(
                select(RunArtifactRow)
                .where(RunArtifactRow.run_id == run_id)
                .order_by(RunArtifactRow.path)
            ).scalars()
        )

    def artifact(self, run_id: str, path: str) -> RunArtifactRow | None:
        return self._session.get(RunArtifactRow, (run_id, path))


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    values = list(items)
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


_METRICS = cast(Table, MetricRow.__table__)
_LATEST = cast(Table, LatestMetricRow.__table__)
_METRIC_COLUMNS = ["run_id", "key", "value", "step", "timestamp"]
_metric_sql: dict[tuple[str, str], str | None] = {}
_upserts: dict[str, Any] = {}


def _positional_metric_insert(dialect: Dialect) -> str | None:
    """The compiled ``INSERT INTO metrics`` taking tuples, or None for a named paramstyle."""
    cache_key = (dialect.name, dialect.paramstyle)
    if cache_key not in _metric_sql:
        compiled = insert(_METRICS).compile(dialect=dialect, column_keys=_METRIC_COLUMNS)
        ordered = compiled.positional and list(compiled.positiontup or ()) == _METRIC_COLUMNS
        _metric_sql[cache_key] = compiled.string if ordered else None
    return _metric_sql[cache_key]


def _execute_metric_insert(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """One executemany of ``rows``: tuples straight to the driver when its paramstyle allows."""
    sql = _positional_metric_insert(connection.dialect)
    if sql is not None:
        connection.exec_driver_sql(sql, rows)
    else:
        connection.execute(
            insert(_METRICS), [dict(zip(_METRIC_COLUMNS, row, strict=True)) for row in rows]
        )


def _copy_metrics(connection: Connection, rows: list[tuple[Any, ...]]) -> bool:
    """COPY ``rows`` into ``metrics`` on PostgreSQL through psycopg 3; False when unavailable."""
    if connection.dialect.name != "postgresql":
        return False
    raw: Any = connection.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        if not hasattr(cursor, "copy"):  # psycopg 2 or another driver
            return False
        preparer = connection.dialect.identifier_preparer
        table = preparer.format_table(_METRICS)
        columns = ", ".join(preparer.quote(name) for name in _METRIC_COLUMNS)
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()
    return True


def _latest_upsert(dialect_name: str) -> Any:
    """The upsert of ``latest_metrics`` that keeps the value at the highest (step, time)."""
    stmt = _upserts.get(dialect_name)
    if stmt is None:
        # imported here, only the one in use: PostgreSQL's takes 25-40 ms to import
        module: Any
        if dialect_name == "postgresql":
            from sqlalchemy.dialects import postgresql as module
        else:
            from sqlalchemy.dialects import sqlite as module
        table = _LATEST
        stmt = module.insert(table)
        newer = or_(
            stmt.excluded.step > table.c.step,
            and_(
                stmt.excluded.step == table.c.step,
                stmt.excluded.timestamp >= table.c.timestamp,
            ),
        )
        stmt = _upserts[dialect_name] = stmt.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={
                "value": stmt.excluded.value,
                "step": stmt.excluded.step,
                "timestamp": stmt.excluded.timestamp,
            },
            where=newer,
        )
    return stmt
