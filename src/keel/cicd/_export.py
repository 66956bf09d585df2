"""``keel export``: the current state of a project as a project file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from keel.cicd._resources import to_project_data

__all__ = [
    "PIPELINE_PLACEHOLDER",
    "export_project",
    "make_trigger_entry",
    "render_yaml",
    "trigger_entry",
]

#: The reference written for a pipeline known only from its triggers (its code is not stored).
PIPELINE_PLACEHOLDER = "module:attribute"


def trigger_entry(trigger: Any) -> dict[str, Any]:
    """The keel.yaml entry of a live trigger."""
    return make_trigger_entry(
        pipeline=trigger.pipeline,
        kind=trigger.kind,
        spec=dict(trigger.spec),
        params=dict(trigger.params or {}),
        enabled=bool(trigger.enabled),
    )


def make_trigger_entry(
    *, pipeline: str, kind: str, spec: Mapping[str, Any], params: Mapping[str, Any], enabled: bool
) -> dict[str, Any]:
    """A keel.yaml trigger entry in its canonical shape."""
    entry: dict[str, Any] = {"pipeline": pipeline}
    if kind == "schedule":
        entry["schedule"] = spec.get("cron", "")
    elif kind == "dataset":
        entry["dataset"] = spec.get("dataset", "")
    elif kind == "alert":
        entry["alert"] = spec.get("rule", "")
    else:
        entry["commit"] = dict(spec)
    if params:
        entry["params"] = dict(params)
    if not enabled:
        entry["enabled"] = False
    return entry


def export_project(
    recorded: Mapping[tuple[str, str], Mapping[str, Any]],
    *,
    project: str | None = None,
    datasets: Iterable[Any] = (),
    models: Iterable[Any] = (),
    triggers: Iterable[Any] = (),
    deployments: Iterable[Any] = (),
) -> dict[str, Any]:
    """The project-file mapping of the recorded resources plus the live objects no file manages.

    Live datasets, registered models, enabled triggers and deployments that ``keel apply`` has
    not recorded are added, so an export of a project built by hand is a starting point.
    """
    resources: dict[tuple[str, str], Mapping[str, Any]] = dict(recorded)
    for dataset in datasets:
        resources.setdefault(
            ("dataset", dataset.name),
            {"description": dataset.description} if dataset.description else {},
        )
    for model in models:
        resources.setdefault(
            ("model", model.name),
            {"description": model.description} if model.description else {},
        )
    for trigger in triggers:
        if trigger.enabled or ("trigger", trigger.name) in resources:
            resources.setdefault(("trigger", trigger.name), trigger_entry(trigger))
            resources.setdefault(("pipeline", trigger.pipeline), {"ref": PIPELINE_PLACEHOLDER})
    for deployment in deployments:
        resources.setdefault(
            ("deployment", deployment.name),
            {
                "model": deployment.model,
                "environment": deployment.environment,
                "strategy": deployment.state.strategy,
            },
        )
        resources.setdefault(("model", deployment.model), {})
    return to_project_data(resources, project=project)


def render_yaml(data: Mapping[str, Any]) -> str:
    """The YAML text of a project-file mapping (sections in file order, keys as given)."""
    import yaml

    header = (
        "# keel.yaml: exported by `keel export`. A pipeline known only from its triggers is\n"
        f"# written as '{PIPELINE_PLACEHOLDER}': replace it with the real module:attribute, then\n"
        "# `keel validate`, `keel plan` and `keel apply`.\n"
    )
    body: str = yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False)
    return header + body
