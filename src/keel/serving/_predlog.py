"""Asynchronous prediction logging in Arrow batches: bounded queue, back-pressure, exactly once.

The server hands each predicted row to ``PredictionLogger.log``. A background thread groups
rows per deployment into Arrow tables and gives each batch to a ``LogSink`` (the deployment
service stores a Parquet part in the blob store and one row per batch). A batch carries a key
derived from its first prediction id, so a retried write lands once; rows leave memory only
after their batch is stored; ``close`` drains the queue and flushes what is left.

Classifier rows also carry their scores: ``score`` (binary: the probability of the model's
last class, its positive one) or ``scores`` (several classes: a JSON object of class label to
probability). Both are null for regressors and in logs written before they existed.
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
    "score",
    "scores",
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
        score: float | None = None,
        scores: Mapping[str, float] | None = None,
    ) -> None:
        """Queue one predicted row (blocks while the queue is full, up to a bound).

        ``score`` is a binary classifier's positive-class probability; ``scores`` maps each
        class label of a classifier with several classes to its probability.
        """
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
            None if score is None else float(score),
            None if scores is None else json.dumps(dict(scores), default=str),
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
        probabilities: Any = None,
        classes: Sequence[Any] | None = None,
    ) -> None:
        """Queue every row of one request at once; the writer thread expands and redacts them.

        ``rows`` is the request's input matrix, ``predictions`` its outputs and
        ``probabilities`` a classifier's class probabilities (arrays, one column per class of
        ``classes``), so the request path does no per-row work here.
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
            probabilities,
            classes,
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
    probabilities: Any = None
    classes: Sequence[Any] | None = None

    def expand(self) -> list[tuple[Any, ...]]:
        out = []
        predictions = self.predictions.tolist()
        score, scores = self._scores(len(predictions))
        for pid, row, prediction, one, many in zip(
            self.ids, self.rows.tolist(), predictions, score, scores, strict=True
        ):
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
                    one,
                    many,
                )
            )
        return out

    def _scores(self, rows: int) -> tuple[list[float | None], list[str | None]]:
        """Per row: the positive-class probability (two classes) or the JSON of all of them."""
        proba = self.probabilities
        if proba is None or getattr(proba, "ndim", 0) != 2 or len(proba) != rows:
            return [None] * rows, [None] * rows
        width = proba.shape[1]
        if width == 2:
            return [float(v) for v in proba[:, 1].tolist()], [None] * rows
        keys = [class_key(c) for c in self.classes] if self.classes is not None else []
        if len(keys) != width:  # no (or mismatched) class labels: name columns by index
            keys = [str(i) for i in range(width)]
        return [None] * rows, [json.dumps(dict(zip(keys, p, strict=True))) for p in proba.tolist()]


def class_key(label: Any) -> str:
    """A class label as a JSON object key: strings as they are, other labels as JSON."""
    if isinstance(label, str):
        return label
    if hasattr(label, "item"):  # a NumPy scalar
        label = label.item()
    return json.dumps(label, default=str)


def _to_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """Rows (without the score columns: rows written before scores existed) as Arrow."""
    import pyarrow as pa

    width = len(LOG_SCHEMA_FIELDS)
    rows = [r if len(r) == width else (*r, *([None] * (width - len(r)))) for r in rows]
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
            ("score", pa.float64()),
            ("scores", pa.string()),
        ]
    )
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )
