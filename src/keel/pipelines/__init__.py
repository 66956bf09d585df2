"""Pipelines: steps wired by name, a caching and resumable runner, executors, triggers.

The definition side (``step``, ``Pipeline``, executors, serializers, webhook verification)
imports no database code, so ``@keel.step`` in a user module stays cheap; the service-side
names load on first use.

Example:
    >>> import keel
    >>> @keel.step
    ... def numbers(*, n: int = 3) -> list[int]:
    ...     return list(range(n))
    >>> @keel.step
    ... def total(numbers: list[int]) -> int:
    ...     return sum(numbers)
    >>> pipeline = keel.Pipeline("demo", steps=[numbers, total])
    >>> result = pipeline.run(ws, params={"n": 5})  # doctest: +SKIP
    >>> result["total"]  # doctest: +SKIP
    10
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keel.pipelines._dag import descendants, find_cycle, topological_order
from keel.pipelines._definition import Param, Step, step
from keel.pipelines._executors import (
    EXECUTOR_KINDS,
    Executor,
    InProcessExecutor,
    ProcessExecutor,
    RayExecutor,
    get_executor,
)
from keel.pipelines._model import (
    DatasetInput,
    Firing,
    PipelineRun,
    PipelineRunStatus,
    RunResult,
    StepRun,
    StepStatus,
    Trigger,
)
from keel.pipelines._pipeline import (
    PROJECT_FILE,
    Pipeline,
    find_pipeline,
    load_pipeline,
    project_pipelines,
)
from keel.pipelines._serialize import Serializer, register_serializer
from keel.pipelines._webhooks import (
    CommitEvent,
    WebhookResult,
    handle_webhook,
    parse_commit_event,
    verify_github_signature,
    verify_gitlab_token,
)

if TYPE_CHECKING:
    from keel.pipelines._facade import Pipelines
    from keel.pipelines._scheduler import FiringOutcome, Scheduler
    from keel.pipelines._service import PipelineService
    from keel.pipelines._triggers import TRIGGER_KINDS, TriggerService, next_fire_time

__all__ = [
    "EXECUTOR_KINDS",
    "PROJECT_FILE",
    "TRIGGER_KINDS",
    "CommitEvent",
    "DatasetInput",
    "Executor",
    "Firing",
    "FiringOutcome",
    "InProcessExecutor",
    "Param",
    "Pipeline",
    "PipelineRun",
    "PipelineRunStatus",
    "PipelineService",
    "Pipelines",
    "ProcessExecutor",
    "RayExecutor",
    "RunResult",
    "Scheduler",
    "Serializer",
    "Step",
    "StepRun",
    "StepStatus",
    "Trigger",
    "TriggerService",
    "WebhookResult",
    "descendants",
    "find_cycle",
    "find_pipeline",
    "get_executor",
    "handle_webhook",
    "load_pipeline",
    "next_fire_time",
    "parse_commit_event",
    "project_pipelines",
    "register_serializer",
    "step",
    "topological_order",
    "verify_github_signature",
    "verify_gitlab_token",
]

_LAZY = {
    "PipelineService": "keel.pipelines._service",
    "Pipelines": "keel.pipelines._facade",
    "Scheduler": "keel.pipelines._scheduler",
    "FiringOutcome": "keel.pipelines._scheduler",
    "TriggerService": "keel.pipelines._triggers",
    "TRIGGER_KINDS": "keel.pipelines._triggers",
    "next_fire_time": "keel.pipelines._triggers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'keel.pipelines' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
