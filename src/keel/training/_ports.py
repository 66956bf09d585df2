"""What training needs from a workspace: a narrow port, so this layer never imports the SDK.

``keel.workspace.Workspace`` satisfies it; so does anything with the same ``runs`` and
``models`` faces (a remote client, a test double of the SDK).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from keel.tracking import ActiveRun, AliasMove, LoadedModel, Metric, ModelVersion, Run, RunPage

__all__ = ["ModelsPort", "RunsPort", "WorkspacePort"]


class RunsPort(Protocol):
    def start(
        self,
        *,
        experiment: str = "Default",
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        capture_env: bool = True,
    ) -> ActiveRun: ...

    def get(self, run_id: str) -> Run: ...

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None: ...

    def read_artifact(self, run_id: str, path: str) -> bytes: ...

    def metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    def search(
        self,
        filter: str | None = None,
        *,
        experiments: Sequence[str] | None = None,
        order_by: str | Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> RunPage: ...


class ModelsPort(Protocol):
    def log_model(
        self,
        model: Any,
        *,
        name: str,
        sample: Any,
        holdout: Any | None = None,
        run_id: str | None = None,
        onnx: bool | Literal["auto"] = "auto",
        feature_names: Sequence[str] | None = None,
        code_version: str | None = None,
        dataset_version: str | None = None,
        seed: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion: ...

    def load(
        self,
        ref: str,
        version: int | str | None = None,
        *,
        format: str | None = None,
        verify: bool = True,
    ) -> LoadedModel: ...

    def version(self, ref: str, version: int | str | None = None) -> ModelVersion: ...

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str = "",
        expected_current: int | None = None,
    ) -> AliasMove: ...


class WorkspacePort(Protocol):
    """The services training uses: ``ws.runs`` and ``ws.models``."""

    @property
    def runs(self) -> RunsPort: ...

    @property
    def models(self) -> ModelsPort: ...
