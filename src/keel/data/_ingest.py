"""An ingest in progress: parts and file bytes journaled for gc, then written to the blob store.

Every blob an ingest writes is first recorded in ``dataset_pending_blobs`` (committed), then
written. The version's commit deletes those records in its own transaction; an ingest that is
killed leaves them behind, and ``keel gc`` removes the blobs they name that nothing references.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from queue import Empty, Full, Queue
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from keel.data._model import Part, Reject
from keel.data._parts import encode_part
from keel.errors import ConflictError, InvalidInputError
from keel.store import DatasetRepository
from keel.types import new_id

if TYPE_CHECKING:
    import polars as pl

    from keel.blobs import BlobStore
    from keel.blobs._storage import HeldWrites
    from keel.blobs._store import BlobUpload
    from keel.governance import Context
    from keel.store import Database

__all__ = ["MAX_REJECTS_KEPT", "Ingest", "prefetch", "progress_callback"]

T = TypeVar("T")

MAX_REJECTS_KEPT = 100_000
_FLUSH_BYTES = 32 * 1024 * 1024
_QUEUED = 2
#: Chunk buffers shared by a streaming reader and the writer (memory: this many chunks).
_STREAM_BUFFERS = 32
#: Streamed bytes per published batch (one journal transaction, one fsync pass).
_PUBLISH_BYTES = 64 * 1024 * 1024
#: Parts encoded at once, each on a thread of its own (pyarrow, Polars and hashlib release
#: the GIL): while one part is encoded the caller goes on to read the next batch, and when
#: the reading is over (the end of an ingest) the last two parts use both cores. Parts of
#: fewer rows are encoded by the caller, as they come (a thread would not pay for itself).
_ENCODING = 2
_CONCURRENT_ROWS = 50_000


class _Stream:
    """One file streamed to the writer; the writer opens its upload on the first chunk."""

    __slots__ = ("upload",)

    def __init__(self) -> None:
        self.upload: BlobUpload | None = None


@dataclass(frozen=True)
class _Chunk:
    """A chunk of a streamed file, in a pooled buffer; ``digest`` comes with the final one."""

    stream: _Stream
    buffer: bytearray
    size: int
    final: bool
    digest: str | None


@dataclass(slots=True)
class PreparedStream:
    """A small file read and hashed ahead (``Ingest.prepare_stream``), its bytes in pooled
    buffers, waiting to be handed to the writer in file order (``Ingest.send_prepared``)."""

    chunks: list[tuple[bytearray, int]]
    digest: str
    size: int


class _Publish:
    """Tells the writer to journal and publish the streamed blobs written so far."""


_PUBLISH = _Publish()
_Message = list[tuple[str, bytes | memoryview]] | _Chunk | _Publish | None


class Ingest:
    """Writes the blobs of one version-to-be; implements the sources' ``BlobSink``.

    Bytes are hashed once, where they are produced (file bytes in ``put``, parts in
    ``encode_part``), then handed in batches to a writer thread that journals their digests
    and seals them in one pass (``BlobStore.put_many``: no second hash, one fsync pass per
    batch). Reading and encoding go on meanwhile; at most ``_QUEUED`` batches wait, so memory
    stays bounded. :meth:`flush` waits until everything handed over is stored (and raises
    what the writer raised); :meth:`close` stops the writer without waiting for more work.

    Large files take another road (:meth:`put_stream`): the reader reads them into a pool of
    ``_STREAM_BUFFERS`` reused chunk buffers and hashes each chunk, and the writer encrypts
    and writes each chunk as it comes (no copy of the file in memory, both cores busy). Small
    files may also be read and hashed ahead on other threads (:meth:`prepare_stream`) and
    handed over in order (:meth:`send_prepared`). On a
    local disk such blobs are written to temporary files first; every ``_PUBLISH_BYTES`` the
    writer hands them to a publisher thread, which journals their digests (committed) and only
    then publishes them under their final names, durably (one fsync pass), while the writer
    goes on with the next ones; so a killed ingest leaves only temporary files or journaled
    blobs (and, killed in the middle of a publish, dedicated key files whose blob was not
    renamed yet, which ``keel gc`` sweeps). Elsewhere (S3, GCS, memory) a blob is published
    as soon as it is written, so the reader journals each file's digest (committed) before it
    sends the final chunk. A blob found stored already is reused only once its digest is
    journaled by this ingest (a ``keel gc`` running meanwhile then keeps it).
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
        self._buffer: list[tuple[str, bytes | memoryview]] = []
        self._buffered = 0
        self._parts: list[Part] = []
        # parts being encoded, in order; only the caller's thread touches these two
        self._encoding: deque[Future[tuple[bytes | memoryview, Part]]] = deque()
        self._encoder: ThreadPoolExecutor | None = None
        self.file_digests: list[str] = []
        self.rejects: list[Reject] = []
        self.rejected = 0
        self.written = 0
        self.reused = 0
        # A source may put file bytes from the prefetch thread while parts are added here.
        self._lock = threading.RLock()
        # unbounded: list batches are bounded by _slots, chunks by the buffer pool
        self._queue: Queue[_Message] = Queue()
        self._slots = threading.Semaphore(_QUEUED)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Lock()  # one _stop at a time: one None, one join
        # the first failure of the writer or the publisher, until a producer raises it
        self._error: BaseException | None = None  # taken by the thread that raises it first
        self._failure: BaseException | None = None  # kept: raised again to any later caller
        self._error_lock = threading.Lock()
        # sticky: once anything failed, the writer and the publisher write nothing more
        self._failed = False
        self._pool: Queue[bytearray] = Queue()
        self._pooled = 0
        self._streamed = 0  # bytes streamed since the last _PUBLISH
        # writer-thread state of the streamed blobs not yet published
        self._open_batch: contextlib.AbstractContextManager[HeldWrites] | None = None
        self._held: HeldWrites | None = None
        # written batches on their way to the publisher thread (journal, then publish)
        self._publishing: Queue[tuple[list[str], HeldWrites] | None] = Queue(maxsize=1)
        self._unpublished: list[str] = []
        self._deferred: bool | None = None  # whether the store holds blobs back until publish
        self._seen: set[str] = set()
        self._journaled: set[str] = set()  # streamed digests journaled by this ingest
        self._out: bytearray | None = None
        self._current: _Stream | None = None  # the streamed file whose final chunk is due

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

    def put_stream(self, handle: BinaryIO | io.RawIOBase) -> tuple[str, int]:
        """Store the rest of a binary file, read chunk by chunk; return ``(digest, size)``.

        Each chunk is read into a pooled buffer and hashed here, then encrypted and written
        by the writer thread while the next one is read. Blocks while every buffer is in use.
        Where the store publishes a blob as soon as it is written (not a local disk), the
        digest is journaled (committed) before the final chunk goes to the writer.
        """
        chunk_size = self._blobs.chunk_size
        readinto = getattr(handle, "readinto", None)
        if not callable(readinto):
            raise InvalidInputError(
                f"put_stream reads a binary file (with readinto), got {type(handle).__name__}.",
                field="handle",
            )
        hasher = hashlib.sha256()
        stream = _Stream()
        size = 0
        digest: str | None = None
        self._start_writer()
        first = self._take_buffer()
        current: bytearray | None = first
        following: bytearray | None = None
        try:
            filled = _fill(readinto, first)
            while current is not None:
                more = 0
                if filled == chunk_size:  # a full chunk: is there more?
                    following = self._take_buffer()
                    more = _fill(readinto, following)
                    if more == 0:
                        self._pool.put(following)
                        following = None
                with memoryview(current) as view, view[:filled] as piece:
                    hasher.update(piece)
                size += filled
                if following is None:
                    digest = "sha256:" + hasher.hexdigest()
                    if not self._publication_deferred():
                        self._journal(digest)
                self._send(_Chunk(stream, current, filled, following is None, digest))
                current, following, filled = following, None, more
        except BaseException:
            for unsent in (current, following):  # back to the pool
                if unsent is not None:
                    self._pool.put(unsent)
            raise
        assert digest is not None
        return self._streamed_file(digest, size)

    def _streamed_file(self, digest: str, size: int) -> tuple[str, int]:
        """Count a file whose last chunk went to the writer; publish every _PUBLISH_BYTES."""
        with self._lock:
            self.file_digests.append(digest)
            self._streamed += size
            publish = self._streamed >= _PUBLISH_BYTES
            if publish:
                self._streamed = 0
        if publish:  # not under the lock: a failure raised here stops the writer first
            self._send(_PUBLISH)
        return digest, size

    @property
    def chunk_size(self) -> int:
        """The plaintext bytes of one blob chunk (one pooled buffer)."""
        return self._blobs.chunk_size

    def prepare_stream(
        self, handle: io.RawIOBase | io.BytesIO, *, max_chunks: int
    ) -> PreparedStream | None:
        """Read and hash the rest of a small file into pooled buffers (from any thread).

        Hashing is what bounds a folder's ingest on a CPU without SHA instructions, and one
        file's SHA-256 is sequential: several files prepared at once use every core. The
        buffers stay out of the pool until :meth:`send_prepared` (in file order) or
        :meth:`discard_prepared`; a caller must hold at most a few such files at a time (the
        pool has ``_STREAM_BUFFERS``). Returns None, holding nothing, when the file has more
        than ``max_chunks`` chunks: then stream it with :meth:`put_stream`.
        """
        readinto = handle.readinto
        chunk_size = self._blobs.chunk_size
        hasher = hashlib.sha256()
        chunks: list[tuple[bytearray, int]] = []
        try:
            while True:
                buffer = self._take_buffer(helper=True)
                filled = _fill(readinto, buffer)
                if filled == 0 and chunks:  # the end, found by a read after a full chunk
                    self._pool.put(buffer)
                    break
                chunks.append((buffer, filled))
                with memoryview(buffer) as view, view[:filled] as piece:
                    hasher.update(piece)
                if filled < chunk_size:
                    break
                if len(chunks) > max_chunks:
                    self._release(chunks)
                    return None
        except BaseException:
            self._release(chunks)
            raise
        size = sum(filled for _, filled in chunks)
        return PreparedStream(chunks, "sha256:" + hasher.hexdigest(), size)

    def send_prepared(self, prepared: PreparedStream) -> tuple[str, int]:
        """Hand a prepared file to the writer (the caller's files in order); ``(digest, size)``.

        As in :meth:`put_stream`, where the store publishes a blob as soon as it is written
        the digest is journaled (committed) before the final chunk goes to the writer.
        """
        self._start_writer()
        stream = _Stream()
        chunks, prepared.chunks = prepared.chunks, []
        last = len(chunks) - 1
        for index, (buffer, filled) in enumerate(chunks):
            final = index == last
            try:
                if final and not self._publication_deferred():
                    self._journal(prepared.digest)
                self._send(
                    _Chunk(stream, buffer, filled, final, prepared.digest if final else None)
                )
            except BaseException:
                self._release(chunks[index:])
                raise
        return self._streamed_file(prepared.digest, prepared.size)

    def discard_prepared(self, prepared: PreparedStream) -> None:
        """Give a prepared file's buffers back without storing it."""
        chunks, prepared.chunks = prepared.chunks, []
        self._release(chunks)

    def _release(self, chunks: list[tuple[bytearray, int]]) -> None:
        for buffer, _ in chunks:
            self._pool.put(buffer)
        chunks.clear()

    def _publication_deferred(self) -> bool:
        """Whether streamed blobs wait unpublished for the publisher (a local disk)."""
        if self._deferred is None:
            self._deferred = self._blobs.defers_publication
        return self._deferred

    def _journal(self, digest: str) -> None:
        """Record a streamed digest for gc (committed) at once, unless this ingest did."""
        if digest in self._journaled:
            return
        with self._db.write() as session:
            DatasetRepository(session, self._ctx.project_id).add_pending(self.id, [digest])
        self._journaled.add(digest)

    def _reusable(self, digest: str) -> bool:
        """Whether a streamed file's blob is stored already and may be reused (writer thread).

        Its digest is journaled first, then the blob checked again: a gc that starts later
        sees the journal entry and keeps the blob."""
        if digest in self._seen:  # written or reused by this ingest: journaled already
            return True
        scope = self._ctx.project_id
        if not self._blobs.exists(digest, scope=scope):
            return False
        self._journal(digest)
        if not self._blobs.exists(digest, scope=scope):  # a gc removed it just before
            return False
        self._seen.add(digest)
        return True

    def _take_buffer(self, *, helper: bool = False) -> bytearray:
        """A pooled chunk buffer (blocks while all are in use). A ``helper`` thread (a folder
        lane) raises a failure without stopping the writer: only the ingest's own threads do."""
        try:
            return self._pool.get_nowait()
        except Empty:
            pass
        with self._lock:
            if self._pooled < _STREAM_BUFFERS:
                self._pooled += 1
                return bytearray(self._blobs.chunk_size)
        while True:
            if helper:
                self._raise_if_failed()
            else:
                self._raise_failure()
            try:
                return self._pool.get(timeout=0.1)
            except Empty:
                continue

    def _send(self, message: _Message) -> None:
        self._raise_failure()
        self._queue.put(message)

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
            self._start_writer()
            self._slots.acquire()
            self._queue.put(batch)

    def _start_writer(self) -> None:
        self._raise_failure()  # a failed ingest never starts a writer again
        with self._lock, self._stopping:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="keel-ingest-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        publisher = threading.Thread(
            target=self._run_publisher, name="keel-ingest-publisher", daemon=True
        )
        publisher.start()
        aborted = False
        try:
            while True:
                message = self._queue.get()
                try:
                    if self._failed:  # drain without writing: the ingest is failing
                        if not aborted:
                            aborted = True
                            self._abort_streamed(RuntimeError("the ingest failed"))
                    else:
                        self._handle(message)
                except BaseException as exc:  # handed to the producer, which re-raises it
                    self._fail(exc)
                    aborted = True
                    self._abort_streamed(exc)
                finally:
                    if isinstance(message, _Chunk):
                        self._pool.put(message.buffer)
                    elif isinstance(message, list):
                        self._slots.release()
                if message is None:
                    return
        finally:
            self._publishing.put(None)
            publisher.join()

    def _run_publisher(self) -> None:
        """Journal, then publish, each batch of streamed blobs while the writer goes on."""
        while True:
            item = self._publishing.get()
            if item is None:
                return
            digests, held = item
            if self._failed:  # the ingest is failing: publish nothing more
                held.discard()
                continue
            try:
                digests = sorted({d for d in digests if d not in self._journaled})
                if digests:
                    with self._db.write() as session:
                        DatasetRepository(session, self._ctx.project_id).add_pending(
                            self.id, digests
                        )
            except BaseException as exc:  # handed to the producer, which re-raises it
                held.discard()
                self._fail(exc)
                continue
            try:
                held.publish()  # fsync, rename, fsync folders
            except BaseException as exc:
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """Record a failure of the writer or the publisher (the first one is raised)."""
        with self._error_lock:
            if not self._failed:
                self._error = exc
                self._failure = exc
            self._failed = True

    def _handle(self, message: _Message) -> None:
        if isinstance(message, list):
            self._store(message)
        elif isinstance(message, _Chunk):
            self._write_chunk(message)
        else:  # _PUBLISH, or None (the end): publish what was streamed
            self._publish_streamed()

    def _write_chunk(self, chunk: _Chunk) -> None:
        """Encrypt and write one chunk of a streamed file (writer thread)."""
        stream = chunk.stream
        scope = self._ctx.project_id
        if self._current is not None and self._current is not stream:
            self._drop_unfinished()  # its reader failed before the final chunk
        if stream.upload is None:
            if chunk.digest is not None and self._reusable(chunk.digest):
                self.reused += 1  # a one-chunk file already stored: nothing to write
                return
            if self._open_batch is None:
                self._open_batch = self._blobs.held_batch()
                self._held = self._open_batch.__enter__()
            # A key per blob: erasure (keel compliance erase) crypto-shreds files one by one.
            stream.upload = self._blobs.begin(scope=scope, dedicated_key=True)
            self._current = stream
        if self._out is None:
            self._out = bytearray(self._blobs.chunk_size + 16)
        with memoryview(chunk.buffer) as view, view[: chunk.size] as piece:
            stream.upload.write(piece, final=chunk.final, out=self._out)
        if chunk.digest is None:
            return
        self._current = None
        if self._reusable(chunk.digest):
            stream.upload.abort()
            self.reused += 1
        elif stream.upload.finish(chunk.digest):  # journaled before published (see above)
            self._seen.add(chunk.digest)
            self._unpublished.append(chunk.digest)
            self.written += 1
        else:  # stored by another writer since _reusable looked: journal, then check
            self._journal(chunk.digest)
            if not self._blobs.exists(chunk.digest, scope=scope):
                raise ConflictError(
                    f"Blob {chunk.digest} was removed while this ingest reused it (by a "
                    "concurrent keel gc?); nothing was committed. Ingest again.",
                    digest=chunk.digest,
                )
            self._seen.add(chunk.digest)
            self.reused += 1

    def _publish_streamed(self) -> None:
        """Hand the streamed blobs written since the last call to the publisher thread
        (blocks while it is one batch behind)."""
        self._drop_unfinished()
        batch, self._open_batch = self._open_batch, None
        held, self._held = self._held, None
        if batch is None or held is None:
            return
        digests, self._unpublished = self._unpublished, []
        batch.__exit__(None, None, None)  # written; not yet durable nor published
        self._publishing.put((digests, held))

    def _drop_unfinished(self) -> None:
        stream, self._current = self._current, None
        if stream is not None and stream.upload is not None:
            stream.upload.abort()

    def _abort_streamed(self, exc: BaseException) -> None:
        """Drop the streamed blobs not yet published (their temporary files and keys)."""
        with contextlib.suppress(BaseException):
            self._drop_unfinished()
        batch, self._open_batch = self._open_batch, None
        self._held = None
        self._unpublished = []
        if batch is not None:
            with contextlib.suppress(BaseException):
                batch.__exit__(type(exc), exc, exc.__traceback__)

    def _store(self, batch: list[tuple[str, bytes | memoryview]]) -> None:
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
        with self._stopping:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
                thread.join()

    def _raise_failure(self) -> None:
        """Once the writer or the publisher failed, raise their error in the calling thread.

        The first caller to see it stops the writer; every later one (another thread of the
        ingest) raises the same error again rather than go on with a stopped writer.
        """
        if not self._failed:
            return
        with self._error_lock:
            error, self._error = self._error, None
        if error is not None:
            self._stop()
            raise error
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        """Raise the failure, if any, without stopping the writer (for helper threads)."""
        failure = self._failure
        if self._failed and failure is not None:
            raise failure

    def flush(self) -> None:
        """Store everything handed over so far; raise what the writer (or an encoding) raised."""
        try:
            self._collect(wait=True)
        except BaseException:
            self._stop_encoding()
            raise
        self._stop_encoding()
        with self._lock:
            self._submit()
            self._stop()
            self._raise_failure()

    def close(self) -> None:
        """Stop the writer (after what it holds); a failed ingest calls this and moves on."""
        self._stop_encoding()
        with self._lock:
            self._buffer, self._buffered = [], 0
            self._stop()
            self._error = None

    @property
    def parts(self) -> list[Part]:
        """The parts so far, in order (waits for those being encoded)."""
        self._collect(wait=True)
        return self._parts

    def add_frame(self, frame: pl.DataFrame, *, part_rows: int) -> None:
        """Encode ``frame`` into parts of at most ``part_rows`` rows and store them.

        Parts of ``_CONCURRENT_ROWS`` rows or more are encoded on threads, up to
        ``_ENCODING`` at once, and this returns while the last of them may still be being
        encoded: :attr:`parts` and :meth:`flush` wait for them, and an encoding error is
        raised by a later call.
        """
        if frame.height == 0:
            if not self.parts and frame.width:
                self.add_empty(frame)
            return
        for offset in range(0, frame.height, part_rows):
            # The slice is a frame object of the encoder's own: the caller never touches it
            # again (two threads on one Polars frame can deadlock, see ``encode_part``).
            piece = frame.slice(offset, part_rows)
            if piece.height < _CONCURRENT_ROWS:
                self._collect(wait=True)
                self._add(*encode_part(piece))
                continue
            while len(self._encoding) >= _ENCODING:
                self._collect(wait=True, one=True)
            if self._encoder is None:
                self._encoder = ThreadPoolExecutor(
                    _ENCODING, thread_name_prefix="keel-part-encoder"
                )
            self._encoding.append(self._encoder.submit(encode_part, piece))
            self._collect(wait=False)
        self._submit()  # a batch's parts go to the writer now, while the next is read

    def _collect(self, *, wait: bool, one: bool = False) -> None:
        """Hand the encoded parts to the writer, in order: the finished ones at the front (or
        all of them, or the first one, waiting as needed). Raises what an encoding raised."""
        while self._encoding and (wait or self._encoding[0].done()):
            self._add(*self._encoding.popleft().result())
            if one:
                return

    def _add(self, data: bytes | memoryview, part: Part) -> None:
        with self._lock:
            self._buffer.append((part.digest, data))
            self._buffered += len(data)
            self._parts.append(part)
            if self._buffered >= _FLUSH_BYTES:
                self._submit()

    def _stop_encoding(self) -> None:
        """Wait for the parts being encoded (dropping them and their errors), end the pool."""
        pending, self._encoding = self._encoding, deque()
        for future in pending:
            future.cancel()
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            encoder.shutdown(wait=True, cancel_futures=True)

    def add_empty(self, frame: pl.DataFrame) -> None:
        """Store a zero-row part, so a version of no rows still knows its column types."""
        self._collect(wait=True)
        self._add(*encode_part(frame))

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


def _fill(readinto: Callable[[bytearray], int | None], buffer: bytearray) -> int:
    """Read into ``buffer`` until it is full or the file ends; return the bytes read."""
    filled = 0
    with memoryview(buffer) as view:
        while filled < len(buffer):
            with view[filled:] as rest:
                got = readinto(rest)  # type: ignore[arg-type]
            if not got:
                break
            filled += got
    return filled


def prefetch(items: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    """Produce ``items`` in a background thread, ``depth`` ahead of the consumer.

    Parsing the next batch (Polars, no GIL) overlaps encoding, hashing, encrypting and writing
    the current one. Memory stays bounded by ``depth + 3`` batches (``depth`` queued, one being
    parsed, one being consumed, and the one whose last parts are still being encoded, see
    ``Ingest.add_frame``); an error in the producer is raised in the consumer; closing the
    consumer stops the producer.
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
        _import_encoder()  # meanwhile: the consumer's first part would wait for it
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


def _import_encoder() -> None:
    """Import pyarrow's Parquet writer (about 0.1 s), which encoding a part needs."""
    with contextlib.suppress(ImportError):
        import pyarrow.parquet  # type: ignore[import-untyped]  # noqa: F401


def progress_callback(report: Callable[[int], None] | None) -> Callable[[int], None]:
    """``report`` or a no-op."""
    return report if report is not None else (lambda _n: None)
