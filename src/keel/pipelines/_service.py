"""The pipeline service: run, resume, cancel and inspect pipeline runs, governed and audited.

Starting, resuming, cancelling and ending a run are governed writes (authorized, audited in the
same transaction). The per-step state the runner persists while an authorized run executes is
written in plain transactions of its own, so a run of a hundred steps does not add a hundred
audit events; lineage edges (pipeline_run → step_run → artifact) are written with it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError
from keel.governance import Context, Governor, Permission
from keel.pipelines._environment import code_version, owner_alive, process_owner, run_environment
from keel.pipelines._executors import Executor, get_executor
from keel.pipelines._model import (
    PipelineRun,
    PipelineRunStatus,
    RunResult,
    StepRun,
    StepStatus,
)
from keel.pipelines._pipeline import Pipeline, find_pipeline
from keel.pipelines._runner import Outcome, Progress, Runner
from keel.pipelines._serialize import dumps, loads
from keel.pipelines._triggers import TriggerService
from keel.store import PipelineRunRepository
from keel.store._pipelines import cache_get
from keel.store._schema_pipelines import PipelineRunRow, StepRunRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keel.blobs import BlobStore

__all__ = ["PipelineService", "STALE_AFTER"]

_log = logging.getLogger("keel.pipelines")

#: A RUNNING run whose owner has not written for this long counts as killed (resumable).
STALE_AFTER = timedelta(minutes=5)
MAX_LIST = 1000


def _missing(run_id: str) -> NotFoundError:
    return NotFoundError(
        f"Pipeline run '{run_id}' does not exist in this project. Find run ids with "
        "`keel pipelines show PIPELINE` or `keel pipelines list`.",
        run_id=run_id,
    )


def to_step(row: StepRunRow) -> StepRun:
    return StepRun(
        id=row.id,
        name=row.name,
        status=StepStatus(row.status),
        code_digest=row.code_digest,
        cache_key=row.cache_key,
        params=dict(row.params or {}),
        inputs=dict(row.inputs or {}),
        outputs=dict(row.outputs or {}),
        attempts=row.attempts,
        started_at=row.started_at,
        ended_at=row.ended_at,
        error=row.error,
        traceback=row.traceback,
    )


def to_run(row: PipelineRunRow, steps: list[StepRunRow]) -> PipelineRun:
    return PipelineRun(
        id=row.id,
        pipeline=row.pipeline,
        status=PipelineRunStatus(row.status),
        trigger=row.trigger,
        cause=row.cause,
        params=dict(row.params or {}),
        inputs=dict(row.inputs or {}),
        datasets=dict(row.datasets or {}),
        code_version=row.code_version,
        environment=row.environment,
        executor=row.executor,
        created_by=row.created_by,
        created_at=row.created_at,
        ended_at=row.ended_at,
        attempt=row.attempt,
        owner=row.owner,
        heartbeat_at=row.heartbeat_at,
        error=row.error,
        steps=[to_step(s) for s in steps],
    )


def _dataset_ref(value: Any) -> dict[str, Any] | None:
    method = getattr(value, "__keel_dataset_version__", None)
    if not callable(method):
        return None
    ref = method()
    return dict(ref) if isinstance(ref, Mapping) else None


class _Journal:
    """The runner's persistence for one run (implements runner.Journal).

    Each call is one short transaction of plain UPDATE/INSERT statements: the step's state,
    the cache entry, its lineage edges, and the run's heartbeat (which also reads whether
    cancellation was requested).
    """

    def __init__(self, service: PipelineService, ctx: Context, run_id: str) -> None:
        self._db = service._gov.db
        self._blobs = service._blobs
        self._ctx = ctx
        self._run_id = run_id
        with self._db.read() as session:
            self._ids = PipelineRunRepository(session, ctx.project_id).step_ids(run_id)
        self._inputs: dict[str, dict[str, str]] = {}
        self._pending_steps: list[tuple[str, dict[str, Any]]] = []
        self._pending_edges: list[tuple[str, str, str, str, str]] = []
        self._pending_cache: list[tuple[str, str, dict[str, str], str]] = []
        self._cancel = False
        self._lock = threading.RLock()  # the runner and its committer thread share the buffer

    def _repo(self, session: Session) -> PipelineRunRepository:
        return PipelineRunRepository(session, self._ctx.project_id)

    def encode(self, value: Any, *, what: str) -> tuple[str, bytes]:
        data = dumps(value, what=what)
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    def write_blob(self, data: bytes, *, digest: str) -> None:
        stored = self._blobs.put_bytes(data, scope=self._ctx.project_id).digest
        if stored != digest:  # pragma: no cover - put_bytes hashes the same bytes
            raise IntegrityError(f"Stored {stored}, expected {digest}.")

    def load(self, digest: str, *, what: str) -> Any:
        try:
            data = self._blobs.get_bytes(digest, scope=self._ctx.project_id)
        except IntegrityError:
            # A blob that fails verification is garbage: drop it so the recomputed content
            # is written again under its digest instead of being skipped as "stored".
            self._blobs.delete(digest, scope=self._ctx.project_id)
            _log.warning("%s (%s) failed verification; recomputing it.", what, digest)
            raise
        return loads(data, what=what)

    def cache_lookup(self, key: str) -> dict[str, str] | None:
        with self._db.engine.connect() as conn:  # Core, no ORM session: a hot path
            return cache_get(conn, self._ctx.project_id, key)

    # State that resume does not need (a step started; a step served from the cache, which a
    # resumed run would find in the cache again) is written behind: it joins the next
    # write that must be durable, or a flush when the runner is idle, or the run's end.

    @property
    def pending(self) -> bool:
        return bool(self._pending_steps or self._pending_edges)

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
        self._pending_steps, self._pending_edges, self._pending_cache = [], [], []
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
            self._pending_edges.extend(edges)
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


class PipelineService:
    """Runs pipelines and keeps their runs; every call carries a Context (see Governor)."""

    def __init__(self, governor: Governor, blobs: BlobStore) -> None:
        self._gov = governor
        self._blobs = blobs
        self.triggers = TriggerService(governor)

    # -- running -------------------------------------------------------------------------

    def run(
        self,
        ctx: Context,
        pipeline: Pipeline,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        executor: Executor | str | None = None,
        trigger: str = "manual",
        cause: Mapping[str, Any] | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> RunResult:
        """Run ``pipeline`` and wait for it; returns the run and its outputs by name.

        A step that fails does not raise here: the result's status is FAILED and the step's
        error and traceback are stored (``result.run.step(name).traceback``).

        Args:
            ctx: The caller (needs ``pipeline.run``).
            pipeline: The pipeline.
            params: Parameter overrides (``{"lr": 0.1}`` or ``{"train.lr": 0.1}``).
            inputs: Values of the pipeline's inputs (a DatasetInput, or an object with
                ``__keel_dataset_version__``, is recorded as a dataset version used).
            executor: An Executor, or ``inprocess`` (default), ``process`` or ``ray``.
            trigger: What started the run (manual, schedule, dataset, alert, commit, …).
            cause: Details of the trigger (recorded with the run).
            cancel: An Event that cancels the run when set.
            progress: A callback ``(event, step, details)``.

        Raises:
            InvalidInputError: For unknown parameters, values of the wrong type, or inputs
                missing or not declared.
            PermissionDeniedError: Without ``pipeline.run``.
        """
        if not isinstance(pipeline, Pipeline):
            raise InvalidInputError(f"Expected a keel Pipeline, got {type(pipeline).__name__}.")
        if not isinstance(trigger, str) or not 1 <= len(trigger) <= 32:
            raise InvalidInputError("trigger is a short name such as 'manual' or 'schedule'.")
        resolved = pipeline.resolve_params(params or {}, base=pipeline.defaults)
        given = dict(inputs or {})
        missing = sorted(set(pipeline.inputs) - set(given))
        unknown = sorted(set(given) - set(pipeline.inputs))
        if missing or unknown:
            raise InvalidInputError(
                f"Pipeline '{pipeline.name}' takes the inputs {list(pipeline.inputs)}; "
                + (f"missing {missing}. " if missing else "")
                + (f"not declared {unknown}. " if unknown else "")
                + "Pass exactly those in inputs={...}.",
                pipeline=pipeline.name,
            )
        self._gov.check(
            ctx, Permission.PIPELINE_RUN, action="pipeline.run", object_type="pipeline_run"
        )
        digests = {
            name: self._blobs.put_bytes(
                dumps(value, what=f"Input '{name}'"), scope=ctx.project_id
            ).digest
            for name, value in given.items()
        }
        datasets = {n: ref for n, v in given.items() if (ref := _dataset_ref(v)) is not None}
        packages: dict[str, str | None] = {}
        for item in pipeline.steps.values():
            packages.update(item.environment())
        runner_executor, owned = self._executor(executor)
        with self._gov.write(
            ctx, Permission.PIPELINE_RUN, "pipeline.run", object_type="pipeline_run"
        ) as work:
            repo = PipelineRunRepository(work.session, ctx.project_id)
            row = repo.create(
                steps=[
                    {
                        "name": name,
                        "code_digest": pipeline.steps[name].code_digest,
                        "params": resolved[name],
                    }
                    for name in pipeline.order
                ],
                pipeline=pipeline.name,
                trigger=trigger,
                cause=dict(cause) if cause else None,
                params=resolved,
                inputs=digests,
                datasets=datasets or None,
                code_version=code_version(),
                environment=run_environment(packages),
                executor=runner_executor.name,
                created_by=ctx.principal,
                owner=process_owner(),
            )
            edges = [
                ("dataset_version", str(ref["id"]), "pipeline_run", row.id, "input")
                for ref in datasets.values()
                if ref.get("id")
            ]
            if cause and cause.get("trigger_id"):
                edges.append(("trigger", str(cause["trigger_id"]), "pipeline_run", row.id, "fired"))
            edges += [
                ("pipeline_run", row.id, "step_run", step_id, "ran")
                for step_id in repo.step_ids(row.id).values()
            ]
            repo.add_new_edges(edges, request_id=ctx.request_id)
            work.object_id = row.id
            work.details = {"pipeline": pipeline.name, "trigger": trigger}
            run_id = row.id
        return self._execute(
            ctx,
            run_id,
            pipeline,
            params=resolved,
            inputs=digests,
            input_values=given,
            done={},
            executor=runner_executor,
            owned=owned,
            cancel=cancel,
            progress=progress,
        )

    def resume(
        self,
        ctx: Context,
        run_id: str,
        *,
        pipeline: Pipeline | None = None,
        executor: Executor | str | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        force: bool = False,
        root: Path | None = None,
    ) -> RunResult:
        """Continue a failed, cancelled or killed run: its finished steps are kept.

        Args:
            pipeline: The pipeline (default: found by the run's pipeline name in keel.yaml).
            force: Resume a RUNNING run even if its owner may still be alive.

        Raises:
            NotFoundError: For an unknown run.
            ConflictError: If the run finished, or is still running elsewhere.
        """
        self._gov.check(
            ctx, Permission.PIPELINE_RUN, action="pipeline.resume", object_type="pipeline_run"
        )
        current = self.get(ctx, run_id)
        pipeline = pipeline or find_pipeline(current.pipeline, root)
        if pipeline.name != current.pipeline:
            raise InvalidInputError(
                f"Run '{run_id}' is a run of '{current.pipeline}', not of '{pipeline.name}'."
            )
        self._check_resumable(current, force=force)
        runner_executor, owned = self._executor(executor)
        done: dict[str, dict[str, str]] = {}
        with self._gov.write(
            ctx,
            Permission.PIPELINE_RUN,
            "pipeline.resume",
            object_type="pipeline_run",
            object_id=run_id,
        ) as work:
            repo = PipelineRunRepository(work.session, ctx.project_id)
            row = repo.get(run_id, lock=True)
            if row is None:
                raise _missing(run_id)
            if row.status == PipelineRunStatus.FINISHED.value:
                raise ConflictError(
                    f"Pipeline run '{run_id}' finished; there is nothing to resume."
                )
            row.status, row.ended_at, row.error = PipelineRunStatus.RUNNING.value, None, None
            row.attempt += 1
            row.owner, row.heartbeat_at, row.cancel_requested = process_owner(), clock.now(), False
            row.executor = runner_executor.name
            for step_row in repo.steps(run_id):
                if StepStatus(step_row.status).is_done and step_row.name in pipeline.steps:
                    done[step_row.name] = dict(step_row.outputs or {})
                else:
                    step_row.status, step_row.error, step_row.traceback = "PENDING", None, None
                    step_row.attempts = 0
            work.details = {"pipeline": pipeline.name, "attempt": row.attempt, "kept": sorted(done)}
        params = pipeline.resolve_params({}, base={**pipeline.defaults, **current.params})
        return self._execute(
            ctx,
            run_id,
            pipeline,
            params=params,
            inputs=current.inputs,
            input_values={},
            done=done,
            executor=runner_executor,
            owned=owned,
            cancel=cancel,
            progress=progress,
        )

    @staticmethod
    def _check_resumable(run: PipelineRun, *, force: bool) -> None:
        if run.status is PipelineRunStatus.FINISHED:
            raise ConflictError(f"Pipeline run '{run.id}' finished; there is nothing to resume.")
        if run.status is not PipelineRunStatus.RUNNING or force:
            return
        alive = owner_alive(run.owner)
        fresh = run.heartbeat_at is not None and clock.now() - run.heartbeat_at < STALE_AFTER
        if alive or (alive is None and fresh):
            raise ConflictError(
                f"Pipeline run '{run.id}' is still running (owner {run.owner}, last heartbeat "
                f"{run.heartbeat_at}). Cancel it first (`keel pipelines cancel {run.id}`), or "
                "pass --force if you know its process is gone.",
                run_id=run.id,
            )

    def _executor(self, executor: Executor | str | None) -> tuple[Executor, bool]:
        if executor is None or isinstance(executor, str):
            return get_executor(executor or "inprocess"), True
        if not isinstance(executor, Executor):
            raise InvalidInputError(
                f"executor must be an Executor or one of inprocess/process/ray, got "
                f"{type(executor).__name__}."
            )
        return executor, False

    def _execute(
        self,
        ctx: Context,
        run_id: str,
        pipeline: Pipeline,
        *,
        params: dict[str, dict[str, Any]],
        inputs: dict[str, str],
        input_values: dict[str, Any],
        done: dict[str, dict[str, str]],
        executor: Executor,
        owned: bool,
        cancel: threading.Event | None,
        progress: Progress | None,
    ) -> RunResult:
        journal = _Journal(self, ctx, run_id)
        runner = Runner(
            pipeline,
            journal,
            executor=executor,
            params=params,
            inputs=inputs,
            input_values=input_values,
            done=done,
            cancel=cancel,
            progress=progress,
        )
        outcome: Outcome | None = None
        try:
            outcome = runner.execute()
        finally:
            if owned:  # every future the run still needs has ended; abandoned ones (timed out,
                # cancelled) are not waited for
                executor.shutdown(wait=False)
            if outcome is None:  # interrupted: record it, then let the exception go on
                self._finish(
                    ctx, run_id, PipelineRunStatus.CANCELLED, "The run was interrupted.", journal
                )
        run = self._finish(ctx, run_id, outcome.status, outcome.error, journal)
        _log.info("Pipeline run %s of %s ended %s", run_id, pipeline.name, outcome.status.value)
        outputs = {
            name: digest for name, digest in outcome.digests.items() if name in pipeline.producer
        }
        return RunResult(
            run,
            values=outcome.values,
            digests=outputs,
            load=lambda name, digest: journal.load(digest, what=f"Output '{name}'"),
        )

    def _finish(
        self,
        ctx: Context,
        run_id: str,
        status: PipelineRunStatus,
        error: str | None,
        journal: _Journal | None = None,
    ) -> PipelineRun:
        with self._gov.write(
            ctx,
            Permission.PIPELINE_RUN,
            "pipeline.run.end",
            object_type="pipeline_run",
            object_id=run_id,
        ) as work:
            repo = PipelineRunRepository(work.session, ctx.project_id)
            if journal is not None:
                journal.apply_pending(work.session)
            row = repo.get(run_id)
            if row is None:
                raise _missing(run_id)
            row.status, row.error, row.ended_at = status.value, error, clock.now()
            work.details = {"status": status.value}
            return to_run(row, repo.steps(run_id))

    # -- control and reading -------------------------------------------------------------

    def cancel(self, ctx: Context, run_id: str) -> PipelineRun:
        """Ask a running run to stop: it cancels its unfinished steps at the next step end."""
        with self._gov.write(
            ctx,
            Permission.PIPELINE_RUN,
            "pipeline.cancel",
            object_type="pipeline_run",
            object_id=run_id,
        ) as work:
            repo = PipelineRunRepository(work.session, ctx.project_id)
            row = repo.get(run_id, lock=True)
            if row is None:
                raise _missing(run_id)
            if row.status != PipelineRunStatus.RUNNING.value:
                raise ConflictError(
                    f"Pipeline run '{run_id}' is {row.status}; only a RUNNING run can be cancelled."
                )
            row.cancel_requested = True
            if owner_alive(row.owner) is False:  # nobody will see the request: end it here
                row.status, row.ended_at = PipelineRunStatus.CANCELLED.value, clock.now()
                row.error = "Cancelled after its process was gone."
            return to_run(row, repo.steps(run_id))

    def get(self, ctx: Context, run_id: str) -> PipelineRun:
        """One run with its steps."""
        with self._gov.read(
            ctx,
            Permission.PIPELINE_READ,
            "pipeline.read",
            object_type="pipeline_run",
            object_id=run_id,
        ) as session:
            repo = PipelineRunRepository(session, ctx.project_id)
            row = repo.get(run_id)
            if row is None:
                raise _missing(run_id)
            return to_run(row, repo.steps(run_id))

    def list_runs(
        self, ctx: Context, *, pipeline: str | None = None, limit: int = 50
    ) -> list[PipelineRun]:
        """Runs, newest first (without their steps)."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInputError(f"limit must be between 1 and {MAX_LIST}; got {limit}.")
        with self._gov.read(
            ctx, Permission.PIPELINE_READ, "pipeline.list", object_type="pipeline_run"
        ) as session:
            rows = PipelineRunRepository(session, ctx.project_id).recent(
                pipeline=pipeline, limit=limit
            )
            return [to_run(row, []) for row in rows]

    def read_output(self, ctx: Context, run_id: str, name: str) -> Any:
        """The value of output ``name`` of a run (verified against its digest)."""
        run = self.get(ctx, run_id)
        for item in run.steps:
            if name in item.outputs:
                data = self._blobs.get_bytes(item.outputs[name], scope=ctx.project_id)
                return loads(data, what=f"Output '{name}' of run {run_id}")
        raise NotFoundError(
            f"Pipeline run '{run_id}' has no stored output '{name}'.", run_id=run_id, output=name
        )
