"""What the CI stages need from a workspace (a ``keel.Workspace`` provides all of it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from keel.data import Datasets
    from keel.governance import Context
    from keel.pipelines import Pipelines
    from keel.serving import Deployments

__all__ = ["CiWorkspace"]


class _Models(Protocol):
    def version(self, ref: str, version: int | str | None = None) -> Any: ...

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str = "",
        expected_current: int | None = None,
    ) -> Any: ...


class _SupplyChain(Protocol):
    def verify(self, ref: str, version: int | str | None = None) -> Any: ...

    def scan(self, path: str | Path, *, name: str = "model") -> Any: ...


class _Policies(Protocol):
    def get(self, name: str, version: int | None = None) -> Any: ...


class CiWorkspace(Protocol):
    """The services the ``keel ci`` stages call."""

    @property
    def ctx(self) -> Context: ...

    @property
    def datasets(self) -> Datasets: ...

    @property
    def pipelines(self) -> Pipelines: ...

    @property
    def deployments(self) -> Deployments: ...

    @property
    def models(self) -> _Models: ...

    @property
    def supplychain(self) -> _SupplyChain: ...

    @property
    def policies(self) -> _Policies: ...
