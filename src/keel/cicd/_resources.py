"""Resources: the project file as a flat set of (kind, name) -> spec, and back again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "KINDS",
    "SECTION_OF",
    "desired_resources",
    "resource_digest",
    "to_project_data",
]

#: Kind -> section of keel.yaml, in the order apply creates them (deletes go in reverse).
SECTION_OF: dict[str, str] = {
    "source": "sources",
    "check": "checks",
    "dataset": "datasets",
    "pipeline": "pipelines",
    "search": "hpo",
    "environment": "environments",
    "model": "models",
    "deployment": "deployments",
    "monitor": "monitors",
    "alert": "alerts",
    "trigger": "triggers",
    "role": "roles",
}
KINDS: tuple[str, ...] = tuple(SECTION_OF)


def resource_digest(spec: Mapping[str, Any]) -> str:
    """A stable digest of a spec (canonical JSON)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def desired_resources(
    data: Mapping[str, Any],
    *,
    root: Path,
    builtin_environments: Mapping[str, Mapping[str, Any]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource a (valid) project file declares, keyed by (kind, name)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, section in SECTION_OF.items():
        entries = data.get(section) or {}
        if kind == "environment":
            entries = {
                **{k: dict(v) for k, v in builtin_environments.items()},
                **{k: {**builtin_environments.get(k, {}), **v} for k, v in entries.items()},
            }
        for name, value in entries.items():
            out[(kind, str(name))] = _spec(kind, value, root)
    return out


def _spec(kind: str, value: Any, root: Path) -> dict[str, Any]:
    if kind == "pipeline":
        return {"ref": value}
    if kind == "role":
        return {"role": value}
    spec = json.loads(json.dumps(value, default=str))
    if kind == "environment" and spec.get("policies"):
        spec["policy_digests"] = {
            rel: "sha256:" + hashlib.sha256((root / rel).read_bytes()).hexdigest()
            for rel in spec["policies"]
        }
    return dict(spec)


def to_project_data(
    resources: Mapping[tuple[str, str], Mapping[str, Any]], *, project: str | None = None
) -> dict[str, Any]:
    """The project-file mapping of ``resources`` (the inverse of ``desired_resources``)."""
    data: dict[str, Any] = {"version": 1}
    if project:
        data["project"] = project
    for kind, section in SECTION_OF.items():
        names = sorted(name for k, name in resources if k == kind)
        if not names:
            continue
        entries: dict[str, Any] = {}
        for name in names:
            spec = dict(resources[(kind, name)])
            if kind == "pipeline":
                entries[name] = spec["ref"]
            elif kind == "role":
                entries[name] = spec["role"]
            else:
                spec.pop("policy_digests", None)
                spec.pop("pending", None)
                entries[name] = spec
        data[section] = entries
    return data
