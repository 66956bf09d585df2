"""The runner: executes a pipeline's steps in dependency order on an executor.

Independent steps run at the same time. Before a step runs, its cache key (code digest,
parameters, input digests, declared environment) is looked up; a hit whose artifacts verify is
used instead of running it (a corrupt or missing artifact is never used: the step runs and the
entry is replaced). After every step the journal persists its state, so a failed or killed
run can resume from its unfinished steps.

A step is called with its inputs decoded from their stored bytes, a fresh copy for each step:
what it sees does not depend on whether the producer ran just now, came from the cache or
from an earlier attempt, or on the executor, and a step that changes its input in place
changes nothing for the others. Failures are retried with exponential backoff; an
attempt that outlives its timeout counts as failed; a step that fails for good skips the steps
downstream of it while independent branches finish.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from keel.errors import IntegrityError, NotFoundError
from keel.pipelines._dag import descendants
from keel.pipelines._definition import Step, split_outputs
from keel.pipelines._executors import Executor
from keel.pipelines._model import PipelineRunStatus, StepStatus
from keel.pipelines._pipeline import Pipeline
from keel.pipelines._serialize import UnstorableError, check_returnable

__all__ = ["Journal", "Outcome", "Progress", "Runner", "cache_key", "invoke_step"]

_MAX_TRACEBACK = 20_000
_MAX_BACKOFF = 300.0
_POLL = 1.0
_IDLE = 0.2

#: Progress callback: ``(event, step, details)`` with event one of started, cached,
#: completed, retry, failed, skipped, cancelled.
Progress = Callable[[str, str, dict[str, Any]], None]


class Journal(Protocol):
    """Where the runner persists state and artifacts (implemented by the pipeline service)."""

    def encode(self, value: Any, *, what: str) -> tuple[str, bytes]: ...
    def decode(self, data: bytes, *, what: str) -> Any: ...
    def write_blob(self, data: bytes, *, digest: str) -> None: ...
    def read(self, digest: str, *, what: str) -> bytes: ...
    def cache_lookup(self, key: str) -> dict[str, str] | None: ...
    def step_started(self, name: str, *, cache_key: str | None, inputs: dict[str, str]) -> None: ...
    def step_done(
        self,
        name: str,
        *,
        status: StepStatus,
        outputs: dict[str, str],
        cache_key: str | None,
        attempts: int,
        replace_cache: bool,
    ) -> bool: ...
    def record_done(
        self,
        name: str,
        *,
        status: StepStatus,
        outputs: dict[str, str],
        cache_key: str | None,
        attempts: int,
        replace_cache: bool,
    ) -> None: ...
    def step_failed(self, name: str, *, error: str, traceback: str, attempts: int) -> bool: ...
    def steps_ended(self, names: list[str], *, status: StepStatus, reason: str) -> None: ...
    def heartbeat(self) -> bool: ...
    def flush(self) -> bool: ...
    @property
    def pending(self) -> bool: ...


def invoke_step(step: Step, kwargs: dict[str, Any], remote: bool = False) -> dict[str, Any]:
    """Run one step (this is what executors run, in-process or in a worker).

    In a worker (``remote``), an output that no safe format here takes and that could not
    travel back to the runner fails the step with the step, output and type named, instead
    of the executor's pickling error.
    """
    outputs = split_outputs(step, step.fn(**kwargs))
    if remote:
        for name, value in outputs.items():
            check_returnable(value, what=f"Output '{name}' of step '{step.name}'")
    return outputs


def cache_key(step: Step, params: dict[str, Any], inputs: dict[str, str]) -> str:
    """The step's cache key: its code, parameters, input digests and declared environment."""
    material = json.dumps(
        {
            "code": step.code_digest,
            "params": params,
            "inputs": inputs,
            "env": step.environment(),
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return "sha256:" + hashlib.sha256(material.encode()).hexdigest()


@dataclass
class Outcome:
    """How the run ended, and its outputs (encoded bytes still in memory, and every digest)."""

    status: PipelineRunStatus
    error: str | None
    data: dict[str, bytes]
    digests: dict[str, str]


class _Committer:
    """Persists completed steps behind the runner, in completion order, with group commit.

    The runner hands over a step's encoded outputs and goes on with the steps downstream;
    the blobs are written (fsynced) by a small pool in parallel, and the committer thread
    records the step COMPLETED only once all its blobs are durable — several steps in one
    transaction when they are ready together. A kill loses at most the steps not yet
    recorded, which resume then runs again.
    """

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._blobs = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="keel-blob"
        )
        self._queue: queue.SimpleQueue[_Commit | None] = queue.SimpleQueue()
        self.cancel_requested = False
        self.lost: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run, name="keel-commit", daemon=True)
        self._thread.start()

    def submit(
        self,
        name: str,
        blobs: list[bytes],
        digests: dict[str, str],
        *,
        cache_key: str | None,
        attempts: int,
    ) -> None:
        writes = [
            self._blobs.submit(self._journal.write_blob, data, digest=digest)
            for data, digest in zip(blobs, digests.values(), strict=True)
        ]
        self._queue.put(_Commit(name, writes, digests, cache_key, attempts))

    def _run(self) -> None:
        done = False
        while not done:
            batch: list[_Commit] = []
            item = self._queue.get()
            while True:
                if item is None:
                    done = True
                    break
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[_Commit]) -> None:
        stored = []
        for commit in batch:
            try:
                for write in commit.writes:
                    write.result()
            except Exception as exc:  # the blob store failed: the step is not durable
                self.lost[commit.name] = f"{type(exc).__name__}: {exc}"[:2000]
                continue
            stored.append(commit)
        try:
            for commit in stored:
                self._journal.record_done(
                    commit.name,
                    status=StepStatus.COMPLETED,
                    outputs=commit.digests,
                    cache_key=commit.cache_key,
                    attempts=commit.attempts,
                    replace_cache=True,
                )
            if stored:
                self.cancel_requested |= self._journal.flush()
        except Exception as exc:
            for commit in stored:
                self.lost[commit.name] = f"{type(exc).__name__}: {exc}"[:2000]

    def close(self) -> dict[str, str]:
        """Wait until every handed-over step is recorded; returns the steps that were not."""
        self._queue.put(None)
        self._thread.join()
        self._blobs.shutdown(wait=True)
        return self.lost


@dataclass
class _Commit:
    name: str
    writes: list[concurrent.futures.Future[None]]
    digests: dict[str, str]
    cache_key: str | None
    attempts: int


@dataclass
class _Running:
    name: str
    attempt: int
    deadline: float | None
    started: float


class Runner:
    """Runs one attempt of a pipeline run. Create one per attempt; call :meth:`execute`."""

    def __init__(
        self,
        pipeline: Pipeline,
        journal: Journal,
        *,
        executor: Executor,
        params: dict[str, dict[str, Any]],
        inputs: dict[str, str],
        input_data: dict[str, bytes],
        done: dict[str, dict[str, str]],
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.journal = journal
        self.executor = executor
        self.params = params
        self.cancel = cancel
        self.progress = progress
        self.digests: dict[str, str] = dict(inputs)
        # Encoded artifacts kept while a step still needs them; each step decodes its own copy.
        self.data: dict[str, bytes] = dict(input_data)
        self.fresh: set[str] = set()  # steps recomputed because an output did not read back
        self.remote = executor.name != "inprocess"
        self.state = dict.fromkeys(pipeline.steps, StepStatus.PENDING)
        self.attempts = dict.fromkeys(pipeline.steps, 0)
        self.keys: dict[str, str | None] = {}
        self.running: dict[concurrent.futures.Future[dict[str, Any]], _Running] = {}
        self.retry_at: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.consumers = {
            output: {n for n, s in pipeline.steps.items() if output in s.inputs}
            for output in pipeline.producer
        }
        for name, outputs in done.items():
            self.state[name] = StepStatus.COMPLETED
            self.digests.update(outputs)
        self._cancelled = False

    # -- events ---------------------------------------------------------------------------

    def _emit(self, event: str, name: str, **details: Any) -> None:
        if self.progress is not None:
            self.progress(event, name, details)

    # -- the loop -------------------------------------------------------------------------

    def execute(self) -> Outcome:
        """Run every unfinished step; returns when all ended (or the run was cancelled)."""
        self.committer = _Committer(self.journal)
        try:
            outcome = self._loop()
        finally:
            lost = self.committer.close()
        if lost and outcome.status is PipelineRunStatus.FINISHED:
            for name, error in lost.items():
                self.state[name] = StepStatus.FAILED
                self.journal.step_failed(name, error=error, traceback=error, attempts=1)
            first = sorted(lost)[0]
            return Outcome(
                PipelineRunStatus.FAILED,
                f"The outputs of step '{first}' could not be stored: {lost[first]}"[:2000],
                outcome.data,
                outcome.digests,
            )
        return outcome

    def _loop(self) -> Outcome:
        last_beat = time.monotonic()
        try:
            while True:
                if self._cancel_requested():
                    return self._cancel_all()
                self._start_ready()
                if not self.running and not self.retry_at:
                    break
                timeout = self._next_wakeup()
                if not self.running:
                    time.sleep(timeout)
                    continue
                if self.journal.pending:  # write state behind while the steps run
                    finished, _ = concurrent.futures.wait(
                        list(self.running),
                        timeout=min(timeout, _IDLE),
                        return_when="FIRST_COMPLETED",
                    )
                    if not finished:
                        self._cancelled |= self.journal.flush()
                        continue
                else:
                    finished, _ = concurrent.futures.wait(
                        list(self.running), timeout=timeout, return_when="FIRST_COMPLETED"
                    )
                for future in finished:
                    self._collect(future)
                self._expire()
                if time.monotonic() - last_beat > 10 * _POLL:
                    last_beat = time.monotonic()
                    if self.journal.heartbeat():
                        self._cancelled = True
        except KeyboardInterrupt:
            self._cancel_all()
            raise
        failed = [n for n, s in self.state.items() if s is StepStatus.FAILED]
        stuck = [n for n, s in self.state.items() if s is StepStatus.PENDING]
        if stuck and not failed:
            self.journal.steps_ended(stuck, status=StepStatus.SKIPPED, reason="inputs missing")
            return Outcome(
                PipelineRunStatus.FAILED,
                f"Steps {stuck} could not start: their inputs are missing.",
                self._kept_data(),
                self.digests,
            )
        if failed:
            first = failed[0]
            return Outcome(
                PipelineRunStatus.FAILED,
                f"Step '{first}' failed: {self.errors.get(first, '')}"[:2000],
                self._kept_data(),
                self.digests,
            )
        return Outcome(PipelineRunStatus.FINISHED, None, self._kept_data(), self.digests)

    def _cancel_requested(self) -> bool:
        return (
            self._cancelled
            or self.committer.cancel_requested
            or (self.cancel is not None and self.cancel.is_set())
        )

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        moments = [r.deadline for r in self.running.values() if r.deadline is not None]
        moments.extend(self.retry_at.values())
        if moments:
            return max(0.0, min(_POLL, min(moments) - now))
        return _POLL

    def _ready(self, name: str) -> bool:
        if self.state[name] is not StepStatus.PENDING or name in self._in_flight():
            return False
        if self.retry_at.get(name, 0.0) > time.monotonic():
            return False
        return all(needed in self.digests for needed in self.pipeline.steps[name].inputs)

    def _in_flight(self) -> set[str]:
        return {r.name for r in self.running.values()}

    def _start_ready(self) -> None:
        progressed = True
        while progressed and not self._cancel_requested():
            progressed = False
            for name in self.pipeline.order:
                if self._ready(name):
                    self._start(name)
                    progressed = True

    def _start(self, name: str) -> None:
        step = self.pipeline.steps[name]
        self.retry_at.pop(name, None)
        inputs = {needed: self.digests[needed] for needed in step.inputs}
        key = cache_key(step, self.params[name], inputs) if step.cache else None
        self.keys[name] = key
        if (
            key is not None
            and self.attempts[name] == 0
            and name not in self.fresh
            and self._use_cache(name, key)
        ):
            return
        kwargs = dict(self.params[name])
        for needed in step.inputs:
            try:
                kwargs[needed] = self._value(needed)
            except (IntegrityError, NotFoundError) as exc:
                producer = self.pipeline.producer.get(needed)
                if producer is None or producer in self.fresh:
                    # A pipeline input (nothing can recompute it), or an output computed
                    # again just now that still does not read back: the step cannot start.
                    now = time.monotonic()
                    self._failed(_Running(name, self.attempts[name], None, now), exc, final=True)
                    return
                self._emit("corrupt", producer, error=str(exc)[:300])
                self._recompute(producer)
                return
        if self.attempts[name] == 0:
            self.journal.step_started(name, cache_key=key, inputs=inputs)
            self._emit("started", name)
        self.attempts[name] += 1
        future = self.executor.submit(invoke_step, step, kwargs, self.remote)
        now = time.monotonic()
        deadline = None if step.timeout is None else now + step.timeout
        self.running[future] = _Running(name, self.attempts[name], deadline, now)

    def _recompute(self, name: str) -> None:
        """Run ``name`` again: one of its stored outputs failed to verify."""
        for output in self.pipeline.steps[name].outputs:
            self.digests.pop(output, None)
            self.data.pop(output, None)
        self.state[name] = StepStatus.PENDING
        self.attempts[name] = 0
        self.fresh.add(name)  # its cache entry names the same bytes: run it

    def _use_cache(self, name: str, key: str) -> bool:
        found = self.journal.cache_lookup(key)
        if found is None:
            return False
        step = self.pipeline.steps[name]
        if set(found) != set(step.outputs):
            return False
        loaded: dict[str, bytes] = {}
        try:  # read and verified now; decoded by each step that needs them
            for output, digest in found.items():
                loaded[output] = self.journal.read(digest, what=f"Output '{output}' of '{name}'")
        except (IntegrityError, NotFoundError) as exc:
            self._emit("corrupt", name, error=str(exc)[:300])
            return False
        self.data.update(loaded)
        self.digests.update(found)
        self.state[name] = StepStatus.CACHED
        self._cancelled |= self.journal.step_done(
            name,
            status=StepStatus.CACHED,
            outputs=found,
            cache_key=key,
            attempts=0,
            replace_cache=False,
        )
        self._emit("cached", name)
        self._release_inputs(name)
        return True

    def _value(self, output: str) -> Any:
        """A fresh copy of ``output`` for one step, decoded from its stored bytes."""
        data = self.data.get(output)
        if data is None:
            data = self.journal.read(self.digests[output], what=f"Artifact '{output}'")
            self.data[output] = data
        return self.journal.decode(data, what=f"Artifact '{output}'")

    def _collect(self, future: concurrent.futures.Future[dict[str, Any]]) -> None:
        info = self.running.pop(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self._completed(info, future.result())
        else:
            self._failed(info, error)

    def _completed(self, info: _Running, outputs: dict[str, Any]) -> None:
        name = info.name
        try:
            encoded = {
                output: self.journal.encode(value, what=f"Output '{output}' of step '{name}'")
                for output, value in outputs.items()
            }
        except Exception as exc:  # a value no safe format takes fails the step for good
            self._failed(info, exc, final=True)
            return
        digests = {output: digest for output, (digest, _) in encoded.items()}
        self.data.update({output: data for output, (_, data) in encoded.items()})
        self.digests.update(digests)
        self.state[name] = StepStatus.COMPLETED
        self.committer.submit(
            name,
            [data for _, data in encoded.values()],
            digests,
            cache_key=self.keys.get(name),
            attempts=self.attempts[name],
        )
        self._emit("completed", name, seconds=time.monotonic() - info.started)
        self._release_inputs(name)

    def _failed(self, info: _Running, error: BaseException, *, final: bool = False) -> None:
        name = info.name
        step = self.pipeline.steps[name]
        text = f"{type(error).__name__}: {error}"
        final = final or isinstance(error, UnstorableError)  # the same value would come back
        if not final and self.attempts[name] <= step.retries:
            delay = min(_MAX_BACKOFF, step.backoff * 2 ** (self.attempts[name] - 1))
            self.retry_at[name] = time.monotonic() + delay
            self._emit("retry", name, attempt=self.attempts[name], delay=delay, error=text[:300])
            return
        stack = "".join(traceback.format_exception(error))[-_MAX_TRACEBACK:]
        self.state[name] = StepStatus.FAILED
        self.errors[name] = text[:1000]
        self._cancelled |= self.journal.step_failed(
            name, error=text[:2000], traceback=stack, attempts=self.attempts[name]
        )
        self._emit("failed", name, error=text[:300], traceback=stack)
        skipped = sorted(
            n
            for n in descendants(self.pipeline.edges, [name])
            if self.state[n] is StepStatus.PENDING
        )
        for other in skipped:
            self.state[other] = StepStatus.SKIPPED
            self._emit("skipped", other, because=name)
        if skipped:
            self.journal.steps_ended(
                skipped, status=StepStatus.SKIPPED, reason=f"upstream step '{name}' failed"
            )

    def _expire(self) -> None:
        now = time.monotonic()
        for future, info in list(self.running.items()):
            if info.deadline is not None and now >= info.deadline:
                del self.running[future]
                future.cancel()
                timeout = self.pipeline.steps[info.name].timeout
                self._failed(
                    info,
                    TimeoutError(
                        f"Step '{info.name}' ran longer than its timeout of {timeout:g} s "
                        f"(attempt {info.attempt}). Raise @keel.step(timeout=...) or make it "
                        "faster."
                    ),
                )

    def _release_inputs(self, name: str) -> None:
        """Drop in-memory values whose consumers have all ended (bounded memory)."""
        for needed in self.pipeline.steps[name].inputs:
            users = self.consumers.get(needed)
            if users and all(self.state[u] is not StepStatus.PENDING for u in users):
                self.data.pop(needed, None)

    def _kept_data(self) -> dict[str, bytes]:
        return {k: v for k, v in self.data.items() if k in self.pipeline.producer}

    def _cancel_all(self) -> Outcome:
        for future in self.running:
            future.cancel()
        names = sorted(
            {r.name for r in self.running.values()}
            | {n for n, s in self.state.items() if s is StepStatus.PENDING}
        )
        self.running.clear()
        for name in names:
            self.state[name] = StepStatus.CANCELLED
            self._emit("cancelled", name)
        if names:
            self.journal.steps_ended(names, status=StepStatus.CANCELLED, reason="run cancelled")
        return Outcome(PipelineRunStatus.CANCELLED, "The run was cancelled.", {}, self.digests)
