"""Regions of keel.yaml checked with keel.governance residency at promotion and deployment.

Where a model may go is the intersection of the regions of the data it was trained on (the
model's ``dataset`` and everything it is ``derived_from``, when they declare a ``region``) and
the ``regions`` its target environment allows; a deployment's own ``regions`` must lie inside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keel.cicd._project import ProjectFile
from keel.cicd._report import StageReport

__all__ = ["check_regions", "data_regions"]


def data_regions(project: ProjectFile | None, model: str) -> list[list[str]]:
    """The declared region of each dataset behind ``model`` (one list per dataset)."""
    if project is None:
        return []
    models = project.data.get("models") or {}
    datasets: Mapping[str, Any] = project.data.get("datasets") or {}
    entry = models.get(model) or {}
    todo = [entry["dataset"]] if isinstance(entry.get("dataset"), str) else []
    seen: set[str] = set()
    out: list[list[str]] = []
    while todo:
        name = todo.pop()
        if name in seen or not isinstance(datasets.get(name), dict):
            continue
        seen.add(name)
        dataset = datasets[name]
        if isinstance(dataset.get("region"), str):
            out.append([dataset["region"]])
        todo.extend(d for d in dataset.get("derived_from") or [] if isinstance(d, str))
    return out


def check_regions(
    report: StageReport,
    project: ProjectFile | None,
    *,
    model: str,
    environment: str,
    env: Mapping[str, Any],
    destinations: Mapping[str, str | None],
    group: str,
) -> None:
    """Add a ``residency`` case when keel.yaml restricts regions anywhere on this path."""
    from keel.governance import check_residency

    allowed_env = env.get("regions")
    data = data_regions(project, model)
    if allowed_env is None and not data and not any(destinations.values()):
        return
    targets = dict(destinations)
    if not any(targets.values()):
        if allowed_env:  # promotion: the environment's regions are where the model goes
            targets = {f"environment {environment}": r for r in allowed_env}
        else:
            targets = {f"environment {environment}": None}
    result = check_residency(
        destinations=targets,
        data_allowed=data,
        policy_allowed=list(allowed_env) if allowed_env is not None else None,
    )
    allowed = ", ".join(result.allowed_regions or ()) or "none"
    report.add(
        "residency",
        result.allowed,
        f"regions {', '.join(str(v) for v in targets.values())} within {allowed}"
        if result.allowed
        else "; ".join(result.violations)
        + f". Allowed: {allowed} (the data's regions and environments.{environment}.regions); "
        "correct 'regions' in keel.yaml",
        group=group,
    )
