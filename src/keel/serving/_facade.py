"""``ws.deployments``: the deployment service bound to a workspace's context."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from keel.governance import Context
from keel.serving._serve import ServeOptions, build_server
from keel.serving._service import Deployment, DeploymentRevision, DeploymentService

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
        self, name: str, since: datetime | None = None, until: datetime | None = None
    ) -> pl.DataFrame:
        return self.service.read_predictions(self._ctx, name, since=since, until=until)

    def server(self, options: ServeOptions) -> ServerApp:
        """A model server app for ``options`` (run it with ``keel.serving.run_server``)."""
        return build_server(self.service, self._ctx, options)
