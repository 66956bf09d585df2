"""Pipelines: steps wired by name, a caching and resumable runner, executors, triggers.

The definition side (``step``, ``Pipeline``, executors, serializers, webhook verification)
imports no database code, so ``@keel.step`` in a user module stays cheap; every name loads
on first use.

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

from typing import TYPE_CHECKING

from keel._lazy import lazy_names

if TYPE_CHECKING:
    from keel._cron import next_fire_time
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
    from keel.pipelines._facade import Pipelines
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
    from keel.pipelines._scheduler import FiringOutcome, Scheduler
    from keel.pipelines._serialize import Serializer, register_serializer
    from keel.pipelines._service import PipelineService
    from keel.pipelines._triggers import TRIGGER_KINDS, TriggerService
    from keel.pipelines._webhooks import (
        CommitEvent,
        WebhookResult,
        handle_webhook,
        parse_commit_event,
        verify_github_signature,
        verify_gitlab_token,
    )

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

# The names load on first use (PEP 562), so a command imports only the modules it calls.
_LAZY: dict[str, str] = {
    "CommitEvent": "keel.pipelines._webhooks",
    "DatasetInput": "keel.pipelines._model",
    "EXECUTOR_KINDS": "keel.pipelines._executors",
    "Executor": "keel.pipelines._executors",
    "Firing": "keel.pipelines._model",
    "FiringOutcome": "keel.pipelines._scheduler",
    "InProcessExecutor": "keel.pipelines._executors",
    "PROJECT_FILE": "keel.pipelines._pipeline",
    "Param": "keel.pipelines._definition",
    "Pipeline": "keel.pipelines._pipeline",
    "PipelineRun": "keel.pipelines._model",
    "PipelineRunStatus": "keel.pipelines._model",
    "PipelineService": "keel.pipelines._service",
    "Pipelines": "keel.pipelines._facade",
    "ProcessExecutor": "keel.pipelines._executors",
    "RayExecutor": "keel.pipelines._executors",
    "RunResult": "keel.pipelines._model",
    "Scheduler": "keel.pipelines._scheduler",
    "Serializer": "keel.pipelines._serialize",
    "Step": "keel.pipelines._definition",
    "StepRun": "keel.pipelines._model",
    "StepStatus": "keel.pipelines._model",
    "TRIGGER_KINDS": "keel.pipelines._triggers",
    "Trigger": "keel.pipelines._model",
    "TriggerService": "keel.pipelines._triggers",
    "WebhookResult": "keel.pipelines._webhooks",
    "descendants": "keel.pipelines._dag",
    "find_cycle": "keel.pipelines._dag",
    "find_pipeline": "keel.pipelines._pipeline",
    "get_executor": "keel.pipelines._executors",
    "handle_webhook": "keel.pipelines._webhooks",
    "load_pipeline": "keel.pipelines._pipeline",
    "next_fire_time": "keel._cron",
    "parse_commit_event": "keel.pipelines._webhooks",
    "project_pipelines": "keel.pipelines._pipeline",
    "register_serializer": "keel.pipelines._serialize",
    "step": "keel.pipelines._definition",
    "topological_order": "keel.pipelines._dag",
    "verify_github_signature": "keel.pipelines._webhooks",
    "verify_gitlab_token": "keel.pipelines._webhooks",
}


__getattr__, __dir__ = lazy_names(__name__, __all__, _LAZY)
