"""Asynchronous prediction logging in Arrow batches: bounded queue, back-pressure, exactly once.

The server hands each predicted row to ``PredictionLogger.log``. A background thread groups
rows per deployment into Arrow tables and gives each batch to a ``LogSink`` (the deployment
service stores a Parquet part in the blob store and one row per batch). A batch carries a key
derived from its first prediction id, so a retried write lands once; rows leave memory only
after their batch is stored; ``close`` drains the queue and flushes what is left.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from keel.errors import StorageError

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

__all__ = ["LOG_SCHEMA_FIELDS", "LogSink", "PredictionLogger", "redact_record"]

_log = logging.getLogger("keel.serving")

LOG_SCHEMA_FIELDS = (
    "prediction_id",
    "deployment",
    "model",
    "version",
    "variant",
    "request_id",
    "timestamp",
    "latency_ms",
    "inputs",
    "prediction",
)
REDACTED = "[REDACTED]"


class LogSink(Protocol):
    """Stores one batch of logged predictions (idempotent by ``batch_key``)."""

    def write_batch(self, deployment: str, batch_key: str, table: pa.Table) -> None: ...


def redact_record(record: Mapping[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    """``record`` with the values of personal-data ``fields`` replaced by a marker."""
    return {k: (REDACTED if k in fields else v) for k, v in record.items()}


class PredictionLogger:
    """A bounded queue drained by one thread into Arrow batches.

    Args:
        sink: where batches go.
        batch_rows: rows per batch.
        flush_seconds: the longest a row waits before its batch is written.
        max_queue: rows the queue holds; a full queue blocks ``log`` (back-pressure) for up
            to ``block_seconds``, then the row is counted in ``dropped``.
    """

    def __init__(
        self,
        sink: LogSink,
        *,
        batch_rows: int = 5000,
        flush_seconds: float = 1.0,
        max_queue: int = 100_000,
        block_seconds: float = 5.0,
        retries: int = 5,
    ) -> None:
        self._sink = sink
        self._batch_rows = batch_rows
        self._flush_seconds = flush_seconds
        self._block = block_seconds
        self._retries = retries
        # A deque (appends are atomic under the GIL) drained in bulk: the request path never
        # wakes the writer thread, which would cost a GIL hand-over per request.
        self._queue: deque[tuple[Any, ...] | _Request] = deque()
        self._max_queue = max_queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keel-predlog", daemon=True)
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._thread.start()

    def log(
        self,
        *,
        prediction_id: str,
        deployment: str,
        model: str,
        version: int,
        variant: str,
        request_id: str | None,
        timestamp: datetime,
        latency_ms: float,
        inputs: Mapping[str, Any],
        prediction: Any,
    ) -> None:
        """Queue one predicted row (blocks while the queue is full, up to a bound)."""
        if self._closed:
            raise StorageError("The prediction logger is closed; no more rows are accepted.")
        item = (
            prediction_id,
            deployment,
            model,
            version,
            variant,
            request_id,
            timestamp,
            latency_ms,
            json.dumps(dict(inputs), default=str),
            json.dumps(prediction, default=str),
        )
        if not self._offer(item):
            self.dropped += 1

    def log_request(
        self,
        *,
        prediction_ids: Sequence[str],
        deployment: str,
        model: str,
        version: int,
        variant: str,
        request_id: str | None,
        timestamp: datetime,
        latency_ms: float,
        features: Sequence[str],
        rows: Any,
        predictions: Any,
        redact: frozenset[str] = frozenset(),
    ) -> None:
        """Queue every row of one request at once; the writer thread expands and redacts them.

        ``rows`` is the request's input matrix and ``predictions`` its outputs (arrays), so the
        request path does no per-row work here.
        """
        if self._closed:
            raise StorageError("The prediction logger is closed; no more rows are accepted.")
        item = _Request(
            prediction_ids,
            deployment,
            model,
            version,
            variant,
            request_id,
            timestamp,
            latency_ms,
            features,
            rows,
            predictions,
            redact,
        )
        if not self._offer(item):
            self.dropped += len(prediction_ids)

    def _offer(self, item: tuple[Any, ...] | _Request) -> bool:
        """Append ``item``; while the queue is full, wait (back-pressure) up to the bound."""
        if len(self._queue) >= self._max_queue:
            deadline = time.monotonic() + self._block
            while len(self._queue) >= self._max_queue:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.001)
        self._queue.append(item)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything queued and stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout)

    # --- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        pending: dict[str, list[tuple[Any, ...]]] = {}
        deadline = time.monotonic() + self._flush_seconds
        while True:
            stopping = self._stop.wait(min(0.05, self._flush_seconds))
            while self._queue:
                item = self._queue.popleft()
                for row in item.expand() if isinstance(item, _Request) else (item,):
                    rows = pending.setdefault(row[1], [])
                    rows.append(row)
                    if len(rows) >= self._batch_rows:
                        self._write(row[1], rows)
                        pending.pop(row[1])
            if stopping:
                self._flush_all(pending)
                return
            if time.monotonic() >= deadline:
                self._flush_all(pending)
                deadline = time.monotonic() + self._flush_seconds

    def _flush_all(self, pending: dict[str, list[tuple[Any, ...]]]) -> None:
        for deployment, rows in list(pending.items()):
            if rows:
                self._write(deployment, rows)
        pending.clear()

    def _write(self, deployment: str, rows: Sequence[tuple[Any, ...]]) -> None:
        table = _to_table(rows)
        key = f"{rows[0][0]}-{len(rows)}"
        for attempt in range(self._retries):
            try:
                self._sink.write_batch(deployment, key, table)
            except Exception as exc:  # storage trouble: retry the same batch key
                _log.warning(
                    "prediction log batch %s failed (attempt %d): %s", key, attempt + 1, exc
                )
                time.sleep(min(2.0, 0.05 * 2**attempt))
                continue
            self.written += len(rows)
            return
        self.failed += len(rows)
        _log.error("prediction log batch %s (%d rows) could not be stored", key, len(rows))


@dataclass(frozen=True, slots=True)
class _Request:
    ids: Sequence[str]
    deployment: str
    model: str
    version: int
    variant: str
    request_id: str | None
    timestamp: datetime
    latency_ms: float
    features: Sequence[str]
    rows: Any
    predictions: Any
    redact: frozenset[str]

    def expand(self) -> list[tuple[Any, ...]]:
        out = []
        predictions = self.predictions.tolist()
        for pid, row, prediction in zip(self.ids, self.rows.tolist(), predictions, strict=True):
            record = dict(zip(self.features, row, strict=True))
            if self.redact:
                record = redact_record(record, self.redact)
            out.append(
                (
                    pid,
                    self.deployment,
                    self.model,
                    self.version,
                    self.variant,
                    self.request_id,
                    self.timestamp,
                    self.latency_ms,
                    json.dumps(record, default=str),
                    json.dumps(prediction, default=str),
                )
            )
        return out


def _to_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    import pyarrow as pa

    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in LOG_SCHEMA_FIELDS]
    schema = pa.schema(
        [
            ("prediction_id", pa.string()),
            ("deployment", pa.string()),
            ("model", pa.string()),
            ("version", pa.int64()),
            ("variant", pa.string()),
            ("request_id", pa.string()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("latency_ms", pa.float64()),
            ("inputs", pa.string()),
            ("prediction", pa.string()),
        ]
    )
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )
