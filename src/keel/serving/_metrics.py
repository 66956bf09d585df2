"""Prometheus metrics of a model server: requests, errors, latency by model, version, variant."""

from __future__ import annotations

from typing import Any

__all__ = ["ServerMetrics"]

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    """Counters and histograms in a registry of their own (never the process-global one)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version", "variant")
        self.requests = Counter(
            "keel_requests", "Inference requests served", labels, registry=self.registry
        )
        self.errors = Counter(
            "keel_request_errors",
            "Inference requests that failed",
            (*labels, "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "keel_request_latency_seconds",
            "Inference latency",
            labels,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.shadow_dropped = Counter(
            "keel_shadow_dropped",
            "Shadow copies dropped (queue full)",
            ("model",),
            registry=self.registry,
        )
        self.shadow_disagreements = Counter(
            "keel_shadow_disagreements",
            "Shadow predictions that differ from the primary",
            ("model",),
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe(self, model: str, version: int, variant: str, seconds: float) -> None:
        key = (model, str(version), variant)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(*key), self.latency.labels(*key))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def error(self, model: str, version: int | str, variant: str, status: int) -> None:
        self.errors.labels(model, str(version), variant, str(status)).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
