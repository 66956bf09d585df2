"""The pipeline service: run, resume, cancel and inspect pipeline runs, governed and audited.

Starting, resuming, cancelling and ending a run are governed writes (authorized, audited in the
same transaction). The per-step state the runner persists while an authorized run executes is
written in plain transactions of its own, so a run of a hundred steps does not add a hundred
audit events; lineage edges (pipeline_run → step_run → artifact) are written with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import ConflictError, InvalidInputError, NotFoundError
from keel.governance import Context, Governor, Permission
from keel.pipelines._environment import code_version, owner_alive, process_owner, run_environment
from keel.pipelines._executors import Executor, get_executor
from keel.pipelines._journal import RunJournal
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
from keel.store._schema_pipelines import PipelineRunRow, StepRunRow

if TYPE_CHECKING:
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
        encoded = {name: dumps(value, what=f"Input '{name}'") for name, value in given.items()}
        digests = {
            name: self._blobs.put_bytes(data, scope=ctx.project_id).digest
            for name, data in encoded.items()
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
            input_data=encoded,
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
        self._check_same_steps(current, pipeline)
        params = self._resumed_params(current, pipeline)
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
            # Checked again under the row lock: another resumer may have taken the run since
            # the read above (it is RUNNING now, owned by a live process).
            self._check_resumable(to_run(row, []), force=force)
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
        return self._execute(
            ctx,
            run_id,
            pipeline,
            params=params,
            inputs=current.inputs,
            input_data={},
            done=done,
            executor=runner_executor,
            owned=owned,
            cancel=cancel,
            progress=progress,
        )

    @staticmethod
    def _check_same_steps(run: PipelineRun, pipeline: Pipeline) -> None:
        """A run resumes only with the steps it was made with (the code may have changed)."""
        recorded = {item.name for item in run.steps}
        added, removed = (
            sorted(set(pipeline.steps) - recorded),
            sorted(recorded - set(pipeline.steps)),
        )
        if added or removed:
            raise ConflictError(
                f"Pipeline run '{run.id}' was made with other steps than pipeline "
                f"'{pipeline.name}' has now"
                + (f"; new steps: {added}" if added else "")
                + (f"; steps no longer there: {removed}" if removed else "")
                + ". A resumed run finishes the work it started with; start a new run "
                "instead (`keel pipelines run`).",
                run_id=run.id,
            )

    @staticmethod
    def _resumed_params(run: PipelineRun, pipeline: Pipeline) -> dict[str, dict[str, Any]]:
        """The run's recorded parameters, checked again: the step gets what a fresh run
        would (a run recorded by an older Keel may hold, e.g., an int for a float)."""
        overrides = {
            f"{name}.{param}": value
            for name, values in run.params.items()
            if name in pipeline.steps
            for param, value in values.items()
            if param in pipeline.steps[name].params
        }
        return pipeline.resolve_params(overrides, base=pipeline.defaults)

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
        input_data: dict[str, bytes],
        done: dict[str, dict[str, str]],
        executor: Executor,
        owned: bool,
        cancel: threading.Event | None,
        progress: Progress | None,
    ) -> RunResult:
        journal = RunJournal(self._gov.db, self._blobs, ctx, run_id, done=sorted(done))
        runner = Runner(
            pipeline,
            journal,
            executor=executor,
            params=params,
            inputs=inputs,
            input_data=input_data,
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
        kept = outcome.data

        def load(name: str, digest: str) -> Any:
            what = f"Output '{name}'"
            data = kept.get(name)
            return journal.load(digest, what=what) if data is None else loads(data, what=what)

        return RunResult(run, values={}, digests=outputs, load=load)

    def _finish(
        self,
        ctx: Context,
        run_id: str,
        status: PipelineRunStatus,
        error: str | None,
        journal: RunJournal | None = None,
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
