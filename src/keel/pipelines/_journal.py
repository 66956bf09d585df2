"""The runner's journal for one pipeline run: step state, the step cache, lineage, blobs.

Each write is one short transaction of plain UPDATE/INSERT statements, without an audit event
per step (starting and ending the run are the governed, audited writes). State a resumed run
does not need is written behind: it joins the next write that must be durable, a flush when
the runner is idle, or the run's end.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import IntegrityError
from keel.governance import Context
from keel.pipelines._model import StepStatus
from keel.pipelines._serialize import dumps, loads
from keel.store import LineageRepository, PipelineRunRepository
from keel.store._pipelines import cache_get

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keel.blobs import BlobStore
    from keel.store import Database

__all__ = ["RunJournal"]

_log = logging.getLogger("keel.pipelines")


class RunJournal:
    """The runner's persistence for one run (implements runner.Journal).

    Each call is one short transaction of plain UPDATE/INSERT statements: the step's state,
    the cache entry, its lineage edges, and the run's heartbeat (which also reads whether
    cancellation was requested).
    """

    def __init__(
        self, db: Database, blobs: BlobStore, ctx: Context, run_id: str, *, done: list[str]
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._ctx = ctx
        self._run_id = run_id
        with self._db.read() as session:
            self._ids = PipelineRunRepository(session, ctx.project_id).step_ids(run_id)
        # Steps whose lineage edges may exist already: done in an earlier attempt, or
        # recorded once in this one (both run again only when an output did not read back).
        self._recorded = {self._ids[name] for name in done}
        self._inputs: dict[str, dict[str, str]] = {}
        self._pending_steps: list[tuple[str, dict[str, Any]]] = []
        self._pending_edges: list[tuple[str, str, str, str, str]] = []
        self._pending_known: list[tuple[str, str, str, str, str]] = []
        self._pending_cache: list[tuple[str, str, dict[str, str], str]] = []
        self._cancel = False
        self._lock = threading.RLock()  # the runner and its committer thread share the buffer

    def _repo(self, session: Session) -> PipelineRunRepository:
        return PipelineRunRepository(session, self._ctx.project_id)

    def encode(self, value: Any, *, what: str) -> tuple[str, bytes]:
        data = dumps(value, what=what)
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    def decode(self, data: bytes, *, what: str) -> Any:
        return loads(data, what=what)

    def write_blob(self, data: bytes, *, digest: str) -> None:
        stored = self._blobs.put_bytes(data, scope=self._ctx.project_id).digest
        if stored != digest:  # pragma: no cover - put_bytes hashes the same bytes
            raise IntegrityError(f"Stored {stored}, expected {digest}.")

    def read(self, digest: str, *, what: str) -> bytes:
        try:
            return self._blobs.get_bytes(digest, scope=self._ctx.project_id)
        except IntegrityError:
            # A blob that fails verification is garbage: drop it so the recomputed content
            # is written again under its digest instead of being skipped as "stored".
            self._blobs.delete(digest, scope=self._ctx.project_id)
            _log.warning("%s (%s) failed verification; recomputing it.", what, digest)
            raise

    def load(self, digest: str, *, what: str) -> Any:
        return self.decode(self.read(digest, what=what), what=what)

    def cache_lookup(self, key: str) -> dict[str, str] | None:
        with self._db.engine.connect() as conn:  # Core, no ORM session: a hot path
            return cache_get(conn, self._ctx.project_id, key)

    # State that resume does not need (a step started; a step served from the cache, which a
    # resumed run would find in the cache again) is written behind: it joins the next
    # write that must be durable, or a flush when the runner is idle, or the run's end.

    @property
    def pending(self) -> bool:
        return bool(self._pending_steps or self._pending_edges or self._pending_known)

    def _apply(self, session: Session, *, touch: bool = True) -> bool:
        repo = self._repo(session)
        merged: dict[str, dict[str, Any]] = {}
        for step_id, values in self._pending_steps:  # one row per step, the latest values
            merged.setdefault(step_id, {}).update(values)
        groups: dict[tuple[str, ...], list[str]] = {}
        for step_id, values in merged.items():
            groups.setdefault(tuple(sorted(values)), []).append(step_id)
        for ids in groups.values():
            repo.update_rows([(step_id, merged[step_id]) for step_id in ids])
        for key, name, outputs, step_id in self._pending_cache:
            repo.cache_put(key, step=name, outputs=outputs, step_run_id=step_id)
        repo.add_new_edges(self._pending_edges, request_id=self._ctx.request_id)
        lineage = LineageRepository(session, self._ctx.project_id)
        for src_type, src_id, dst_type, dst_id, relation in dict.fromkeys(self._pending_known):
            lineage.add(
                (src_type, src_id), (dst_type, dst_id), relation, request_id=self._ctx.request_id
            )
        self._pending_steps, self._pending_edges, self._pending_cache = [], [], []
        self._pending_known = []
        if touch:
            self._cancel = repo.touch(self._run_id)
        return self._cancel

    def apply_pending(self, session: Session) -> None:
        """Write what is pending inside the caller's transaction (the run's end)."""
        with self._lock:
            self._apply(session, touch=False)

    def flush(self) -> bool:
        with self._lock, self._db.write() as session:
            return self._apply(session)

    def step_started(self, name: str, *, cache_key: str | None, inputs: dict[str, str]) -> None:
        self._inputs[name] = inputs
        with self._lock:
            self._pending_steps.append(
                (
                    self._ids[name],
                    {
                        "status": StepStatus.RUNNING.value,
                        "cache_key": cache_key,
                        "inputs": inputs,
                        "started_at": clock.now(),
                        "ended_at": None,
                        "error": None,
                        "traceback": None,
                    },
                )
            )

    def record_done(
        self,
        name: str,
        *,
        status: StepStatus,
        outputs: dict[str, str],
        cache_key: str | None,
        attempts: int,
        replace_cache: bool,
    ) -> None:
        step_id = self._ids[name]
        now = clock.now()
        values: dict[str, Any] = {
            "status": status.value,
            "outputs": outputs,
            "cache_key": cache_key,
            "attempts": attempts,
            "ended_at": now,
            "error": None,
            "traceback": None,
        }
        inputs = self._inputs.get(name, {})
        if status is StepStatus.CACHED:
            values["started_at"] = now
        edges = [("step_run", step_id, "artifact", d, "produced") for d in outputs.values()]
        edges += [("artifact", d, "step_run", step_id, "used") for d in inputs.values()]
        with self._lock:
            self._pending_steps.append((step_id, values))
            if step_id in self._recorded:  # recomputed: some of its edges exist already
                self._pending_known.extend(edges)
            else:
                self._pending_edges.extend(edges)
                self._recorded.add(step_id)
            if replace_cache and cache_key is not None:
                self._pending_cache.append((cache_key, name, outputs, step_id))

    def step_done(
        self,
        name: str,
        *,
        status: StepStatus,
        outputs: dict[str, str],
        cache_key: str | None,
        attempts: int,
        replace_cache: bool,
    ) -> bool:
        self.record_done(
            name,
            status=status,
            outputs=outputs,
            cache_key=cache_key,
            attempts=attempts,
            replace_cache=replace_cache,
        )
        return self._cancel if status is StepStatus.CACHED else self.flush()

    def step_failed(self, name: str, *, error: str, traceback: str, attempts: int) -> bool:
        self._append(
            (
                self._ids[name],
                {
                    "status": StepStatus.FAILED.value,
                    "error": error,
                    "traceback": traceback,
                    "attempts": attempts,
                    "ended_at": clock.now(),
                },
            )
        )
        return self.flush()

    def steps_ended(self, names: list[str], *, status: StepStatus, reason: str) -> None:
        now = clock.now()
        for name in names:
            self._append(
                (self._ids[name], {"status": status.value, "error": reason, "ended_at": now})
            )
        self.flush()

    def _append(self, update: tuple[str, dict[str, Any]]) -> None:
        with self._lock:
            self._pending_steps.append(update)

    def heartbeat(self) -> bool:
        return self.flush()
