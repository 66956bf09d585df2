"""The documented context documents that the model gates hand to policies (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "dataset_context",
    "deployment_context",
    "features_of",
    "gate_metrics",
    "model_context",
    "model_subject",
]


def features_of(signature: Mapping[str, Any] | None) -> list[str]:
    """Input names of a model signature (``{"inputs": [{"name": ...}, ...]}`` or names)."""
    if not signature:
        return []
    inputs = signature.get("inputs") or []
    names: list[str] = []
    for item in inputs if isinstance(inputs, Sequence) else []:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            names.append(item["name"])
        elif isinstance(item, str):
            names.append(item)
    return names


def model_subject(name: str, version: int | None = None, alias: str | None = None) -> str:
    """The subject a model gate decides about: ``model:churn``, ``model:churn:3@champion``."""
    text = f"model:{name}"
    if version is not None:
        text += f":{version}"
    if alias is not None:
        text += f"@{alias}"
    return text


def model_context(
    *,
    name: str,
    version: int | None,
    fmt: str,
    digest: str | None,
    metrics: Mapping[str, Any] | None,
    tags: Mapping[str, str] | None,
    signature: Mapping[str, Any] | None,
    run_id: str | None,
    region: str | None,
    alias: str | None = None,
    data_allowed: Sequence[Sequence[str]] = (),
) -> dict[str, Any]:
    """The context of ``model.register`` and ``alias.promote`` (see docs/policies.md)."""
    regions: dict[str, Any] = {"storage": region}
    if data_allowed:
        regions["data_allowed"] = [list(r) for r in data_allowed]
    return {
        "model": {
            "name": name,
            "version": version,
            "format": fmt,
            "digest": digest,
            "metrics": gate_metrics(metrics or {}),
            "tags": dict(tags or {}),
            "features": features_of(signature),
            "run_id": run_id,
        },
        "alias": alias,
        "regions": regions,
    }


def gate_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics a model gate reads: those registered, plus the short names a rule means.

    ``train_model`` registers held-out scores as ``test.<metric>``; a rule on
    ``model.metrics.auc`` means that score, so each ``test.<metric>`` is also given as
    ``<metric>`` unless a metric of that name was registered itself. ``disparate_impact`` is
    the lowest ``disparate_impact.<attribute>`` (the four-fifths rule holds only if it holds for
    every sensitive attribute), again unless registered itself.
    """
    out = dict(metrics)
    for key, value in metrics.items():
        if key.startswith("test.") and len(key) > len("test."):
            out.setdefault(key[len("test.") :], value)
    ratios = [
        float(value)
        for key, value in out.items()
        if key.startswith("disparate_impact.") and isinstance(value, int | float)
    ]
    if ratios and "disparate_impact" not in out:  # a NaN ratio fails every comparison
        out["disparate_impact"] = math.nan if any(map(math.isnan, ratios)) else min(ratios)
    return out


def dataset_context(
    *,
    name: str,
    version: int,
    columns: Sequence[str],
    categories: Sequence[str] = (),
    sensitivity: str | None = None,
    restricted_columns: Sequence[str] = (),
    region: str | None = None,
    allowed_regions: Sequence[str] = (),
    target_region: str | None = None,
) -> dict[str, Any]:
    """The context of ``dataset.publish`` and ``data.copy`` (see docs/policies.md).

    ``region`` is where the version is stored; ``target_region`` where a copy would go.
    """
    regions: dict[str, Any] = {"storage": region}
    if target_region is not None:
        regions["target"] = target_region
    if allowed_regions:
        regions["data_allowed"] = [list(allowed_regions)]
    return {
        "dataset": {
            "name": name,
            "version": version,
            "columns": list(columns),
            "categories": list(categories),
            "sensitivity": sensitivity,
            "allowed_regions": list(allowed_regions),
        },
        "restricted_columns": list(restricted_columns),
        "regions": regions,
    }


def deployment_context(
    *,
    model: Mapping[str, Any],
    target: str,
    target_region: str | None,
    data_allowed: Sequence[Sequence[str]] = (),
) -> dict[str, Any]:
    """The context of ``deployment.create``: ``model`` as in :func:`model_context`, plus the
    target and its region, and the allowed regions of the data the model was trained on."""
    regions: dict[str, Any] = {"target": target_region}
    if data_allowed:
        regions["data_allowed"] = [list(r) for r in data_allowed]
    return {
        "model": dict(model),
        "target": {"name": target, "region": target_region},
        "regions": regions,
    }
