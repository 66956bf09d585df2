"""``ws.project_file``: validate, plan, apply and export ``keel.yaml`` for one workspace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from keel.cicd._apply import ApplyResult, Observe, ProjectStateService
from keel.cicd._drift import RoleBindings, observe
from keel.cicd._effects import LiveEffects, LiveServices
from keel.cicd._export import export_project, render_yaml
from keel.cicd._plan import Change, Plan
from keel.cicd._project import ProjectFile, load_project
from keel.governance import Context

__all__ = ["ProjectFiles"]


class ProjectFiles:
    """The project file of a workspace's project (see ProjectStateService)."""

    def __init__(self, service: ProjectStateService, ctx: Context, live: LiveServices) -> None:
        self.service = service
        self._ctx = ctx
        self._live = live

    def load(self, path: str | Path = "keel.yaml") -> ProjectFile:
        """Read and check a project file (every problem at once, with lines)."""
        return load_project(path)

    def _bindings(self) -> RoleBindings:
        return RoleBindings(self.service.governor, self._ctx)

    def _observer(self, project: ProjectFile) -> Observe:
        bindings = self._bindings()

        def live(
            recorded: dict[tuple[str, str], dict[str, Any]],
        ) -> dict[tuple[str, str], dict[str, Any]]:
            return observe(recorded, self._live, bindings, desired=project.resources)

        return live

    def plan(self, path: str | Path | ProjectFile = "keel.yaml") -> Plan:
        """What apply would change, against the live state (changes made by hand included)."""
        project = path if isinstance(path, ProjectFile) else load_project(path)
        return self.service.plan(self._ctx, project, observe=self._observer(project))

    def apply(
        self,
        path: str | Path | ProjectFile = "keel.yaml",
        *,
        wait: float = 30.0,
        progress: Callable[[Change], None] | None = None,
    ) -> ApplyResult:
        """Make the project match the file; idempotent, audited, one apply at a time."""
        project = path if isinstance(path, ProjectFile) else load_project(path)
        effects = LiveEffects(
            self._live, root=project.path.resolve().parent, bindings=self._bindings()
        )
        return self.service.apply(
            self._ctx,
            project,
            effects=effects,
            wait=wait,
            progress=progress,
            observe=self._observer(project),
        )

    def force_unlock(self) -> str | None:
        return self.service.force_unlock(self._ctx)

    def export(self) -> dict[str, Any]:
        """The current state as a project-file mapping (recorded resources + live objects)."""
        live: Any = self._live
        return export_project(
            self.service.current(self._ctx),
            project=self._ctx.project_name,
            datasets=live.datasets.list(),
            models=live.models.list(),
            triggers=live.pipelines.triggers(),
            deployments=live.deployments.list(),
        )

    def export_yaml(self) -> str:
        return render_yaml(self.export())
