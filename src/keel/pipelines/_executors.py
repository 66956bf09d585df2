"""The Executor port and its adapters: in-process threads, a process pool, and Ray.

Every adapter has the same two-method contract (``submit`` returning a standard
``concurrent.futures.Future``, and ``shutdown``) and passes the same contract suite, so a
pipeline, a hyperparameter search or a batch job runs unchanged on each.

A worker that dies underneath a task (``kill -9``, out of memory) does not fail the task: the
process pool replaces its broken pool and submits the lost tasks again (up to
``max_restarts`` times), and Ray retries lost tasks itself (``max_retries``).
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar, runtime_checkable

from keel.errors import InvalidInputError, MissingDependencyError

__all__ = [
    "EXECUTOR_KINDS",
    "Executor",
    "InProcessExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "get_executor",
]

T = TypeVar("T")
_log = logging.getLogger("keel.pipelines")

EXECUTOR_KINDS = ("inprocess", "process", "ray")


@runtime_checkable
class Executor(Protocol):
    """Runs callables somewhere and hands back standard futures."""

    name: str

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Schedule ``fn(*args, **kwargs)`` and return a future of its result."""
        ...

    def shutdown(self, *, wait: bool = True) -> None:
        """Release the workers; with ``wait`` block until running tasks end."""
        ...


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _check_workers(max_workers: int | None) -> int:
    if max_workers is None:
        return _default_workers()
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise InvalidInputError(
            f"max_workers is {max_workers!r}; use a whole number of at least 1 (default: the "
            "number of CPUs).",
            field="max_workers",
        )
    return max_workers


class InProcessExecutor:
    """Runs tasks on threads of the calling process (no pickling, shared memory).

    Args:
        max_workers: Threads running tasks at once (default: the number of CPUs, at least 4).
    """

    name = "inprocess"

    def __init__(self, max_workers: int | None = None) -> None:
        workers = max(4, _default_workers()) if max_workers is None else max_workers
        self.max_workers = _check_workers(workers)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_workers, thread_name_prefix="keel-step"
        )

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def __repr__(self) -> str:
        return f"InProcessExecutor(max_workers={self.max_workers})"


class ProcessExecutor:
    """Runs tasks in a pool of worker processes; survives workers that are killed.

    Tasks and their arguments are pickled, so functions must be importable (defined at module
    level). When a worker dies, Python marks the whole pool broken and fails every task in
    flight; this executor then starts a fresh pool and submits those tasks again, up to
    ``max_restarts`` times per task.

    Args:
        max_workers: Worker processes (default: the number of CPUs).
        max_restarts: How often one task is resubmitted after losing its worker.
        start_method: ``forkserver`` (default: safe with threads), ``spawn`` or ``fork``.
    """

    name = "process"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        max_restarts: int = 3,
        start_method: str = "forkserver",
    ) -> None:
        self.max_workers = _check_workers(max_workers)
        if start_method not in multiprocessing.get_all_start_methods():
            raise InvalidInputError(
                f"start_method {start_method!r} is not available here; use one of "
                f"{', '.join(multiprocessing.get_all_start_methods())}.",
                field="start_method",
            )
        self.max_restarts = max_restarts
        self._context = multiprocessing.get_context(start_method)
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._closed = False
        self.restarts = 0

    def _current(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._closed:
            raise RuntimeError("This ProcessExecutor was shut down; create a new one.")
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.max_workers, mp_context=self._context
            )
        return self._pool

    def _replace(self, broken: concurrent.futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
                self.restarts += 1
                _log.warning("A worker process died; starting a fresh process pool.")
        broken.shutdown(wait=False, cancel_futures=True)

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        outer: concurrent.futures.Future[T] = concurrent.futures.Future()
        current: list[concurrent.futures.Future[T]] = []

        def cancel_inner(done: concurrent.futures.Future[T]) -> None:
            if done.cancelled() and current:
                current[-1].cancel()

        outer.add_done_callback(cancel_inner)
        self._start(outer, current, fn, args, kwargs, lost=0)
        return outer

    def _start(
        self,
        outer: concurrent.futures.Future[T],
        current: list[concurrent.futures.Future[T]],
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        lost: int,
    ) -> None:
        while True:
            with self._lock:
                pool = self._current()
            try:
                inner = pool.submit(fn, *args, **kwargs)
                break
            except BrokenProcessPool:
                self._replace(pool)
        current.append(inner)

        def finish(done: concurrent.futures.Future[T]) -> None:
            if outer.done():
                return
            if done.cancelled():
                outer.cancel()
                return
            error = done.exception()
            if isinstance(error, BrokenProcessPool) and lost < self.max_restarts:
                self._replace(pool)
                _log.warning("Resubmitting a task whose worker died (retry %d).", lost + 1)
                self._start(outer, current, fn, args, kwargs, lost=lost + 1)
            elif error is not None:
                outer.set_exception(error)
            else:
                outer.set_result(done.result())

        inner.add_done_callback(finish)

    def shutdown(self, *, wait: bool = True) -> None:
        with self._lock:
            pool, self._pool, self._closed = self._pool, None, True
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=not wait)

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers})"


class RayExecutor:
    """Runs tasks as Ray tasks, on a local Ray or on the cluster at ``address``.

    Ray is started (``ray.init``) on first use unless it is already running in this process;
    a local start uses ``max_workers`` CPUs (Ray takes ~10 s to start, so start it once).
    Ray retries a task whose worker died ``max_retries`` times.

    Args:
        address: A Ray cluster address (``ray://host:10001`` or ``auto``); None starts Ray
            locally.
        max_workers: CPUs of a local Ray (default: the number of CPUs).
        max_retries: Retries of a task whose worker process died.
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, *, max_workers: int | None = None, max_retries: int = 3
    ) -> None:
        self.address = address
        self.max_workers = _check_workers(max_workers)
        self.max_retries = max_retries
        self._task: Any = None
        self._lock = threading.Lock()

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise MissingDependencyError("ray", extra="ray", purpose="The Ray executor") from exc
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=self.max_workers, **options)
        return ray

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        ray = self._ray()
        with self._lock:
            if self._task is None:
                self._task = ray.remote(max_retries=self.max_retries, retry_exceptions=False)(_call)
            task = self._task
        ref = task.remote(fn, args, kwargs)
        inner: concurrent.futures.Future[T] = ref.future()
        outer: concurrent.futures.Future[T] = concurrent.futures.Future()

        def relay(done: concurrent.futures.Future[T]) -> None:
            if outer.done():
                return
            if done.cancelled():
                outer.cancel()
                return
            error = done.exception()
            if error is None:
                outer.set_result(done.result())
            else:
                outer.set_exception(_task_error(ray, error))

        def cancel_task(done: concurrent.futures.Future[T]) -> None:
            if done.cancelled():
                ray.cancel(ref, force=True)

        inner.add_done_callback(relay)
        outer.add_done_callback(cancel_task)
        return outer

    def shutdown(self, *, wait: bool = True) -> None:
        """Forget the remote function; Ray itself stays up for the rest of the process."""
        with self._lock:
            self._task = None

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r})"


class _RemoteTraceback(Exception):  # noqa: N818 - named like concurrent.futures' own
    """The traceback of an error raised in a Ray worker (attached as its ``__cause__``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _task_error(ray: Any, error: BaseException) -> BaseException:
    """The exception the task raised, as the other executors report it.

    Ray wraps it in a RayTaskError whose text starts with the worker's pid, address and
    terminal colours; the original exception is its ``cause``. Like the process pool, give
    that back with the worker's traceback as its ``__cause__``.
    """
    cause = getattr(error, "cause", None)
    if not isinstance(error, ray.exceptions.RayTaskError) or not isinstance(cause, BaseException):
        return error
    try:  # the dual RayTaskError(<cause>) prints the worker's traceback
        remote = _ANSI.sub("", str(getattr(error, "traceback_str", None) or error))
    except Exception:  # a cause whose __str__ fails: keep the exception alone
        remote = ""
    if remote:
        cause.__cause__ = _RemoteTraceback(f'\n"""\n{remote.rstrip()}\n"""')
    return cause


def _call(fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    """What a Ray task runs: any callable (builtins included) with its arguments."""
    return fn(*args, **kwargs)


def get_executor(kind: str = "inprocess", **options: Any) -> Executor:
    """An executor by name: ``inprocess``, ``process`` or ``ray``.

    Args:
        kind: The adapter.
        **options: ``max_workers`` for all; ``address`` and ``max_retries`` for Ray;
            ``max_restarts`` and ``start_method`` for the process pool.

    Raises:
        InvalidInputError: For an unknown kind or an option the kind does not take.
    """
    factories: dict[str, tuple[Callable[..., Executor], frozenset[str]]] = {
        "inprocess": (InProcessExecutor, frozenset({"max_workers"})),
        "process": (
            ProcessExecutor,
            frozenset({"max_workers", "max_restarts", "start_method"}),
        ),
        "ray": (RayExecutor, frozenset({"max_workers", "address", "max_retries"})),
    }
    entry = factories.get(kind)
    if entry is None:
        raise InvalidInputError(
            f"Unknown executor {kind!r}; use one of {', '.join(EXECUTOR_KINDS)}.",
            field="executor",
        )
    factory, allowed = entry
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InvalidInputError(
            f"The {kind} executor takes no option {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(allowed))}.",
            field="executor",
        )
    return factory(**options)
