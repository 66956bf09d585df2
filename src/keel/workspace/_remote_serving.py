"""``ws.deployments`` and ``ws.pipelines`` over HTTP.

Deployments are routing state in the store, so every read and move maps to a route. Pipelines
are Python code: a remote client reads runs, cancels them, reads their outputs and manages and
fires triggers; the scheduler beside the store runs the pipeline a firing names (see
docs/server.md). Running a pipeline object, resuming a run and the scheduler's own leases need
the code and the store in one place, so they refuse remotely with a message saying where.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from keel import errors
from keel.governance import Context
from keel.lineage import check_depth
from keel.pipelines import (
    Executor,
    Firing,
    Pipeline,
    PipelineRun,
    PipelineService,
    RunResult,
    Trigger,
)
from keel.pipelines._runner import Progress
from keel.pipelines._serialize import loads
from keel.pipelines._triggers import TriggerService
from keel.serving import Deployment, DeploymentRevision, DeploymentService, PredictionTrace
from keel.serving._service import (
    DEFAULT_PREDICTION_ROWS,
    PredictionPage,
    check_prediction_limit,
    decode_page_token,
    token_after,
)
from keel.serving._trace import prediction_moment
from keel.workspace._http import HttpClient
from keel.workspace._http import base_path as _base
from keel.workspace._http import segment as _seg

if TYPE_CHECKING:
    import polars as pl

    from keel.serving._runtime import ModelLoader, RegistryLoader

__all__ = ["RemoteDeploymentService", "RemotePipelineService", "RemoteTriggerService"]


def _beside_the_store(what: str) -> errors.InvalidInputError:
    return errors.InvalidInputError(
        f"{what} runs beside the store, not through a Keel server: run it on the server's host "
        "(a local workspace, `keel serve` or `keel scheduler`)."
    )


#: The most logged predictions one request asks for (the server allows up to 2,000,000).
_REQUEST_ROWS = 1_000_000


class RemoteDeploymentService(DeploymentService):
    """DeploymentService over HTTP (model servers run beside the store and read its state)."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset({"read_predictions"})
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset(
        {
            "apply_decision",
            "labels_since",
            "loader",
            "personal_fields",
            "record_labels",
            "write_log_batch",
        }
    )

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def _path(self, ctx: Context, name: str | None = None) -> str:
        root = f"{_base(ctx)}/deployments"
        return root if name is None else f"{root}/{_seg(name)}"

    def deploy(
        self,
        ctx: Context,
        ref: str,
        *,
        environment: str = "staging",
        strategy: str = "blue-green",
        steps: str | Sequence[float] | None = None,
        name: str | None = None,
        loader: ModelLoader | None = None,
    ) -> Deployment:
        """Deploy on the server (which loads the version and smoke-tests it there)."""
        if loader is not None:
            raise errors.InvalidInputError(
                "A remote deployment is smoke-tested by the server's own loader; drop loader=."
            )
        body = {
            "ref": ref,
            "environment": environment,
            "strategy": strategy,
            "steps": steps if steps is None or isinstance(steps, str) else list(steps),
            "name": name,
        }
        return self._http.call("POST", self._path(ctx), json=body, into=Deployment)

    def get(self, ctx: Context, name: str) -> Deployment:
        return self._http.call("GET", self._path(ctx, name), into=Deployment)

    def list(self, ctx: Context, *, environment: str | None = None) -> builtins.list[Deployment]:
        params = {"environment": environment}
        return self._http.call("GET", self._path(ctx), params=params, into=list[Deployment])

    def revisions(self, ctx: Context, name: str) -> builtins.list[DeploymentRevision]:
        path = f"{self._path(ctx, name)}/revisions"
        return self._http.call("GET", path, into=list[DeploymentRevision])

    def promote(
        self, ctx: Context, name: str, *, reason: str = "", full: bool = False
    ) -> Deployment:
        path = f"{self._path(ctx, name)}/promote"
        return self._http.call("POST", path, json={"reason": reason, "full": full}, into=Deployment)

    def rollback(self, ctx: Context, name: str, *, reason: str = "") -> Deployment:
        path = f"{self._path(ctx, name)}/rollback"
        return self._http.call("POST", path, json={"reason": reason}, into=Deployment)

    def read_prediction_page(
        self,
        ctx: Context,
        deployment: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = DEFAULT_PREDICTION_ROWS,
        page_token: str | None = None,
    ) -> PredictionPage:
        """The page over ``GET .../predictions``, one request per ``_REQUEST_ROWS`` rows.

        Each request asks for one row more than it keeps: that row coming back is how the
        client knows more rows exist, and the next request starts after the last row kept.
        """
        import polars as pl

        cap = check_prediction_limit(limit)
        decode_page_token(page_token)  # a bad token is refused before anything is sent
        path = f"{self._path(ctx, deployment)}/predictions"
        parts: builtins.list[pl.DataFrame] = []
        held, token = 0, page_token
        while True:
            ask = _REQUEST_ROWS if cap is None else min(cap - held, _REQUEST_ROWS)
            params = {
                "since": None if since is None else _utc(since).isoformat(),
                "until": None if until is None else _utc(until).isoformat(),
                "limit": ask + 1,
                "page_token": token,
                "format": "parquet",
            }
            part = pl.read_parquet(io.BytesIO(self._http.download(path, params=params)))
            more = part.height > ask
            part = part.head(ask)
            parts.append(part)
            held += part.height
            token = token_after(part) if more else None
            if token is None or (cap is not None and held >= cap):
                frame = parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed")
                return PredictionPage(frame, token)

    def trace_prediction(
        self, ctx: Context, prediction_id: str, *, deployment: str | None = None, depth: int = 10
    ) -> PredictionTrace:
        prediction_moment(prediction_id)  # a malformed id is refused before anything is sent
        check_depth(depth)
        data = self._http.call(
            "GET",
            f"{_base(ctx)}/predictions/{_seg(prediction_id)}",
            params={"deployment": deployment, "depth": depth},
        )
        return PredictionTrace.from_dict(data)

    def loader(self, ctx: Context) -> RegistryLoader:
        raise _beside_the_store("A model server")

    def personal_fields(self, ctx: Context, dataset_version: str | None) -> frozenset[str]:
        raise _beside_the_store("Prediction-log redaction")

    def apply_decision(self, ctx: Context, name: str, decision: Any, **_: Any) -> Deployment:
        raise _beside_the_store("Automatic canary analysis")

    def write_log_batch(self, ctx: Context, deployment: str, batch_key: str, table: Any) -> None:
        raise _beside_the_store("Prediction logging")

    def record_labels(
        self, ctx: Context, deployment: str | None, labels: Sequence[tuple[str, Any]]
    ) -> int:
        raise _beside_the_store("The model server's label intake (use the monitors API)")

    def labels_since(self, ctx: Context, since: datetime) -> builtins.list[tuple[str, Any]]:
        raise _beside_the_store("The canary analysis's label reader")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class RemoteTriggerService(TriggerService):
    """TriggerService over HTTP (leases and due schedules are the scheduler's, server-side)."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"claim", "complete", "extend", "record_due"})

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def create(
        self,
        ctx: Context,
        name: str,
        *,
        pipeline: str,
        kind: str,
        spec: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        enabled: bool = True,
        replace: bool = False,
    ) -> Trigger:
        body = {
            "name": name,
            "pipeline": pipeline,
            "kind": kind,
            "spec": None if spec is None else dict(spec),
            "params": None if params is None else dict(params),
            "enabled": enabled,
            "replace": replace,
        }
        path = f"{_base(ctx)}/pipelines/triggers"
        return self._http.call("POST", path, json=body, into=Trigger)

    def all(self, ctx: Context, *, kind: str | None = None) -> list[Trigger]:
        path = f"{_base(ctx)}/pipelines/triggers"
        return self._http.call("GET", path, params={"kind": kind}, into=list[Trigger])

    def firings(
        self, ctx: Context, *, trigger: str | None = None, limit: int = 100
    ) -> list[Firing]:
        params = {"trigger": trigger, "limit": min(max(limit, 1), 1000)}
        path = f"{_base(ctx)}/pipelines/firings"
        return self._http.call("GET", path, params=params, into=list[Firing])

    def fire(self, ctx: Context, name: str, *, cause: Mapping[str, Any] | None = None) -> Firing:
        path = f"{_base(ctx)}/pipelines/triggers/{_seg(name)}/fire"
        body = {"cause": None if cause is None else dict(cause)}
        return self._http.call("POST", path, json=body, into=Firing)

    def fire_event(
        self,
        ctx: Context,
        kind: str,
        subject: str,
        *,
        event_id: str,
        details: Mapping[str, Any] | None = None,
    ) -> list[Firing]:
        body = {
            "kind": kind,
            "subject": subject,
            "event_id": event_id,
            "details": None if details is None else dict(details),
        }
        path = f"{_base(ctx)}/pipelines/events"
        return self._http.call("POST", path, json=body, into=list[Firing])

    def record_due(self, ctx: Context, now: datetime, *, limit: int = 100) -> list[Firing]:
        raise _beside_the_store("The scheduler")

    def claim(
        self, ctx: Context, now: datetime, *, owner: str, lease: timedelta, limit: int = 10
    ) -> list[tuple[Firing, Trigger]]:
        raise _beside_the_store("The scheduler")

    def extend(self, ctx: Context, firing_id: str, *, owner: str, until: datetime) -> bool:
        raise _beside_the_store("The scheduler")

    def complete(self, ctx: Context, firing_id: str, **_: Any) -> None:
        raise _beside_the_store("The scheduler")


class RemotePipelineService(PipelineService):
    """PipelineService over HTTP: runs, outputs and triggers (code runs in the scheduler)."""

    COMPOSED: ClassVar[frozenset[str]] = frozenset()
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"resume", "run"})

    def __init__(self, http: HttpClient) -> None:
        self._http = http
        self.triggers = RemoteTriggerService(http)

    def _path(self, ctx: Context, run_id: str) -> str:
        return f"{_base(ctx)}/pipelines/runs/{_seg(run_id)}"

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
        raise errors.InvalidInputError(
            f"Pipeline '{pipeline.name}' is Python code, so it runs where its code is: a Keel "
            "server never receives code. Fire one of its triggers instead "
            "(ws.pipelines.create_trigger(..., kind='schedule'|'dataset'|...) once, then "
            "ws.pipelines.fire(name)); the scheduler beside the store runs it."
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
        raise _beside_the_store(f"Resuming pipeline run '{run_id}'")

    def cancel(self, ctx: Context, run_id: str) -> PipelineRun:
        path = f"{self._path(ctx, run_id)}/cancel"
        return self._http.call("POST", path, json={}, into=PipelineRun)

    def get(self, ctx: Context, run_id: str) -> PipelineRun:
        return self._http.call("GET", self._path(ctx, run_id), into=PipelineRun)

    def list_runs(
        self, ctx: Context, *, pipeline: str | None = None, limit: int = 50
    ) -> list[PipelineRun]:
        params = {"pipeline": pipeline, "limit": limit}
        path = f"{_base(ctx)}/pipelines/runs"
        return self._http.call("GET", path, params=params, into=list[PipelineRun])

    def read_output(self, ctx: Context, run_id: str, name: str) -> Any:
        """The output's value, decoded here from its safe format and checked by digest."""
        run = self.get(ctx, run_id)
        digest = next((s.outputs[name] for s in run.steps if name in s.outputs), None)
        if digest is None:
            raise errors.NotFoundError(
                f"Pipeline run '{run_id}' has no stored output '{name}'.",
                run_id=run_id,
                output=name,
            )
        data = self._http.download(f"{self._path(ctx, run_id)}/outputs/{_seg(name)}")
        if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
            raise errors.IntegrityError(
                f"Output '{name}' of run {run_id} does not match its digest {digest}.",
                run_id=run_id,
            )
        return loads(data, what=f"Output '{name}' of run {run_id}")
