"""Keel: the governed machine-learning lifecycle in one package.

``import keel`` is cheap and has no side effects: the names below load on first use.

Example:
    >>> import keel
    >>> ws = keel.connect()  # doctest: +SKIP
    >>> with ws.runs.start(experiment="churn") as run:  # doctest: +SKIP
    ...     run.log_metrics({"auc": 0.91}, step=3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_names

__version__ = "0.1.0"

__all__ = ["Metric", "Pipeline", "RunStatus", "Workspace", "__version__", "connect", "step"]

if TYPE_CHECKING:
    from keel.pipelines import Pipeline, step
    from keel.tracking import Metric
    from keel.types import RunStatus
    from keel.workspace import Workspace, connect

_LAZY: dict[str, str] = {
    "connect": "keel.workspace",
    "Workspace": "keel.workspace",
    "Metric": "keel.tracking",
    "RunStatus": "keel.types",
    "Pipeline": "keel.pipelines",
    "step": "keel.pipelines",
}


__getattr__, __dir__ = lazy_names(__name__, __all__, _LAZY)
