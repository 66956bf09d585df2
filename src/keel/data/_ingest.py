"""An ingest in progress: parts and file bytes journaled for gc, then written to the blob store.

Every blob an ingest writes is first recorded in ``dataset_pending_blobs`` (committed), then
written. The version's commit deletes those records in its own transaction; an ingest that is
killed leaves them behind, and ``keel gc`` removes the blobs they name that nothing references.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from queue import Empty, Full, Queue
from typing import TYPE_CHECKING, Any, TypeVar

from keel.data._model import Part, Reject
from keel.data._parts import encode_part
from keel.store import DatasetRepository
from keel.types import new_id

if TYPE_CHECKING:
    import polars as pl

    from keel.blobs import BlobStore
    from keel.governance import Context
    from keel.store import Database

__all__ = ["MAX_REJECTS_KEPT", "Ingest", "prefetch", "progress_callback"]

T = TypeVar("T")

MAX_REJECTS_KEPT = 100_000
_FLUSH_BYTES = 32 * 1024 * 1024
_QUEUED = 2


class Ingest:
    """Writes the blobs of one version-to-be; implements the sources' ``BlobSink``.

    Bytes are hashed once, where they are produced (file bytes in ``put``, parts in
    ``encode_part``), then handed in batches to a writer thread that journals their digests
    and seals them in one pass (``BlobStore.put_many``: no second hash, one fsync pass per
    batch). Reading and encoding go on meanwhile; at most ``_QUEUED`` batches wait, so memory
    stays bounded. :meth:`flush` waits until everything handed over is stored (and raises
    what the writer raised); :meth:`close` stops the writer without waiting for more work.
    """

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        ctx: Context,
        *,
        known: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.id = new_id()
        self._db = db
        self._blobs = blobs
        self._ctx = ctx
        self._known = known or {}
        self._buffer: list[tuple[str, bytes]] = []
        self._buffered = 0
        self.parts: list[Part] = []
        self.file_digests: list[str] = []
        self.rejects: list[Reject] = []
        self.rejected = 0
        self.written = 0
        self.reused = 0
        # A source may put file bytes from the prefetch thread while parts are added here.
        self._lock = threading.RLock()
        self._queue: Queue[list[tuple[str, bytes]] | None] = Queue(maxsize=_QUEUED)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # --- BlobSink -------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._lock:
            self._buffer.append((digest, data))
            self._buffered += len(data)
            self.file_digests.append(digest)
            if self._buffered >= _FLUSH_BYTES:
                self._submit()
        return digest

    def known(self, path: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
        row = self._known.get(path)
        if row is not None and row.get("size") == size and row.get("mtime_ns") == mtime_ns:
            with self._lock:
                self.file_digests.append(str(row["digest"]))
            return dict(row)
        return None

    # --- writing --------------------------------------------------------------------------

    def _submit(self) -> None:
        """Hand the buffered blobs to the writer thread (blocks while it is ``_QUEUED`` behind)."""
        with self._lock:
            self._raise_failure()
            if not self._buffer:
                return
            batch, self._buffer, self._buffered = self._buffer, [], 0
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="keel-ingest-writer", daemon=True
                )
                self._thread.start()
            self._queue.put(batch)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is not None:
                continue  # drain without writing: the ingest is failing
            try:
                self._store(batch)
            except BaseException as exc:  # handed to the producer, which re-raises it
                self._error = exc

    def _store(self, batch: list[tuple[str, bytes]]) -> None:
        """Journal the batch's digests (one transaction), then seal and write the new ones."""
        with self._db.write() as session:
            DatasetRepository(session, self._ctx.project_id).add_pending(
                self.id, sorted({d for d, _ in batch})
            )
        # A key per blob: erasure (keel compliance erase) crypto-shreds parts one by one.
        written = self._blobs.put_many(batch, scope=self._ctx.project_id, dedicated_key=True)
        self.written += written
        self.reused += len(batch) - written

    def _stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _raise_failure(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._stop()
            raise error

    def flush(self) -> None:
        """Store everything handed over so far; raise what the writer raised, if anything."""
        with self._lock:
            self._submit()
            self._stop()
            self._raise_failure()

    def close(self) -> None:
        """Stop the writer (after what it holds); a failed ingest calls this and moves on."""
        with self._lock:
            self._buffer, self._buffered = [], 0
            self._stop()
            self._error = None

    def add_frame(self, frame: pl.DataFrame, *, part_rows: int) -> None:
        """Encode ``frame`` into parts of at most ``part_rows`` rows and store them."""
        if frame.height == 0:
            if not self.parts and frame.width:
                self.add_empty(frame)
            return
        for offset in range(0, frame.height, part_rows):
            data, part = encode_part(frame.slice(offset, part_rows))
            with self._lock:
                self._buffer.append((part.digest, data))
                self._buffered += len(data)
                self.parts.append(part)
                if self._buffered >= _FLUSH_BYTES:
                    self._submit()
        self._submit()  # a batch's parts go to the writer now, while the next is read

    def add_empty(self, frame: pl.DataFrame) -> None:
        """Store a zero-row part, so a version of no rows still knows its column types."""
        data, part = encode_part(frame)
        with self._lock:
            self._buffer.append((part.digest, data))
            self._buffered += len(data)
            self.parts.append(part)

    def add_rejects(self, rejects: tuple[Reject, ...]) -> None:
        self.rejected += len(rejects)
        room = MAX_REJECTS_KEPT - len(self.rejects)
        if room > 0:
            self.rejects.extend(rejects[:room])

    def store_rejects(self) -> str | None:
        """Write the kept rejects as one Parquet blob; return its digest."""
        import polars as pl

        if not self.rejects:
            return None
        frame = pl.DataFrame(
            {
                "line": [r.line for r in self.rejects],
                "reason": [r.reason for r in self.rejects],
                "text": [r.text for r in self.rejects],
            },
            schema={"line": pl.Int64, "reason": pl.String, "text": pl.String},
        )
        data, part = encode_part(frame)
        with self._lock:
            self._buffer.append((part.digest, data))
            self._buffered += len(data)
        self.flush()
        return part.digest


def prefetch(items: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    """Produce ``items`` in a background thread, ``depth`` ahead of the consumer.

    Parsing the next batch (Polars, no GIL) overlaps encoding, hashing, encrypting and writing
    the current one. Memory stays bounded by ``depth + 2`` batches; an error in the producer is
    raised in the consumer; closing the consumer stops the producer.
    """
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put(("item", item), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(("error", exc))

    thread = threading.Thread(target=produce, name="keel-ingest-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while thread.is_alive():
            try:
                queue.get_nowait()
            except Empty:
                thread.join(0.05)


def progress_callback(report: Callable[[int], None] | None) -> Callable[[int], None]:
    """``report`` or a no-op."""
    return report if report is not None else (lambda _n: None)
