"""``ws.deployments``: the deployment service bound to a workspace's context."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from keel.governance import Context
from keel.serving._serve import ServeOptions, build_server
from keel.serving._service import (
    DEFAULT_PREDICTION_ROWS,
    Deployment,
    DeploymentRevision,
    DeploymentService,
    PredictionPage,
    PredictionTrace,
)

if TYPE_CHECKING:
    import polars as pl

    from keel.serving._app import ServerApp

__all__ = ["Deployments"]


class Deployments:
    """Deployments of the workspace's project (see DeploymentService)."""

    def __init__(self, service: DeploymentService, ctx: Context) -> None:
        self.service, self._ctx = service, ctx

    def deploy(
        self,
        ref: str,
        *,
        environment: str = "staging",
        strategy: str = "blue-green",
        steps: str | Sequence[float] | None = None,
        name: str | None = None,
    ) -> Deployment:
        return self.service.deploy(
            self._ctx, ref, environment=environment, strategy=strategy, steps=steps, name=name
        )

    def get(self, name: str) -> Deployment:
        return self.service.get(self._ctx, name)

    def list(self, *, environment: str | None = None) -> builtins.list[Deployment]:
        return self.service.list(self._ctx, environment=environment)

    def revisions(self, name: str) -> builtins.list[DeploymentRevision]:
        return self.service.revisions(self._ctx, name)

    def promote(self, name: str, *, reason: str = "", full: bool = False) -> Deployment:
        return self.service.promote(self._ctx, name, reason=reason, full=full)

    def rollback(self, name: str, *, reason: str = "") -> Deployment:
        return self.service.rollback(self._ctx, name, reason=reason)

    def read_predictions(
        self,
        name: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        limit: int | None = DEFAULT_PREDICTION_ROWS,
    ) -> pl.DataFrame:
        """Logged predictions with ``since <= timestamp < until``: at most ``limit`` rows (the
        oldest first; ``limit=None`` reads the whole window). ``read_prediction_page`` pages."""
        return self.service.read_predictions(self._ctx, name, since=since, until=until, limit=limit)

    def read_prediction_page(
        self,
        name: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        limit: int | None = DEFAULT_PREDICTION_ROWS,
        page_token: str | None = None,
    ) -> PredictionPage:
        """One page of logged predictions in (timestamp, prediction id) order; pass its
        ``next_page_token`` back as ``page_token`` for the next page (None: the last page)."""
        return self.service.read_prediction_page(
            self._ctx, name, since=since, until=until, limit=limit, page_token=page_token
        )

    def trace(
        self, prediction_id: str, *, deployment: str | None = None, depth: int = 10
    ) -> PredictionTrace:
        """Follow one served prediction back to its data: the logged row, the deployment
        revision that routed it, the model version that answered, its late label, and the
        lineage upstream (``depth`` levels: run, dataset versions, sources)."""
        return self.service.trace_prediction(
            self._ctx, prediction_id, deployment=deployment, depth=depth
        )

    def server(self, options: ServeOptions) -> ServerApp:
        """A model server app for ``options`` (run it with ``keel.serving.run_server``)."""
        return build_server(self.service, self._ctx, options)
