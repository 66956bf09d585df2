"""The model host: endpoints (models or deployments), routing, shadow copies, logging, analysis."""

# ruff: noqa: N803, N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.serving._analysis import AnalysisConfig, Decision, VariantSample, analyse
from keel.serving._metrics import ServerMetrics
from keel.serving._predlog import PredictionLogger
from keel.serving._protocol import RequestError
from keel.serving._routing import DeploymentState, Route, route
from keel.serving._runtime import Batcher, ModelLoader, ServedVersion, smoke_test
from keel.types import new_id

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Endpoint", "ModelHost", "VariantStats"]

_log = logging.getLogger("keel.serving")
_WINDOW = 5000
_AWAITING = 100_000
#: how often the shadow worker drains its copies (seconds)
_SHADOW_TICK = 0.01


@dataclass(slots=True)
class VariantStats:
    """What one variant did since the current canary step began (bounded windows)."""

    requests: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))
    predictions: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))
    labelled: int = 0
    correct: int = 0

    def sample(self) -> VariantSample:
        return VariantSample(
            self.requests,
            self.errors,
            list(self.latencies_ms),
            list(self.predictions),
            labelled=self.labelled,
            correct=self.correct,
        )


@dataclass(slots=True)
class ShadowStats:
    sent: int = 0
    dropped: int = 0
    errors: int = 0
    compared: int = 0
    disagreements: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))

    def to_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "sent": self.sent,
            "dropped": self.dropped,
            "errors": self.errors,
            "compared": self.compared,
            "disagreement_rate": self.disagreements / self.compared if self.compared else 0.0,
            "latency_ms_p50": lat[len(lat) // 2] if lat else None,
        }


@dataclass(slots=True)
class Endpoint:
    """A name the server answers to: one model, or one deployment with its routing state."""

    name: str
    model: str
    state: DeploymentState
    versions: dict[int, tuple[ServedVersion, Batcher]]
    deployment: str | None = None
    revision: int = 0
    stats: dict[str, VariantStats] = field(default_factory=dict)
    shadow: ShadowStats = field(default_factory=ShadowStats)
    #: copies waiting for the shadow worker (a plain deque: appending wakes nobody)
    shadow_queue: deque[tuple[Any, Any]] | None = None
    #: recent predictions of a rolling canary (id -> variant, prediction), for late labels
    awaiting: OrderedDict[str, tuple[str, Any]] = field(default_factory=OrderedDict)

    def record_label(self, prediction_id: str, label: Any) -> bool:
        """Count a late ground-truth label for the canary analysis; False if unknown."""
        found = self.awaiting.pop(prediction_id, None)
        if found is None:
            return False
        variant, prediction = found
        stats = self.stats.get(variant)
        if stats is not None:
            stats.labelled += 1
            stats.correct += int(prediction == label)
        return True

    def served(self, version: int) -> ServedVersion:
        return self.versions[version][0]

    def reset_stats(self) -> None:
        self.stats = {"primary": VariantStats(), "candidate": VariantStats()}


class ModelHost:
    """Holds loaded versions and answers predictions for several models in one process.

    Args:
        loader: loads and verifies versions (the registry by default).
        logger: the prediction logger (None: no logging).
        max_batch: micro-batch size limit per version.
        max_wait: the longest a request waits for others to batch with (seconds).
        shadow_queue: copies the shadow queue holds before it drops (and counts) them.
        draw: the random source of routing (a seeded one in tests).
    """

    def __init__(
        self,
        loader: ModelLoader,
        *,
        logger: PredictionLogger | None = None,
        metrics: ServerMetrics | None = None,
        max_batch: int = 64,
        max_wait: float = 0.0005,
        shadow_queue: int = 1000,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._loader = loader
        self.logger = logger
        self.metrics = metrics or ServerMetrics()
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._shadow_size = shadow_queue
        self._draw = draw
        self.endpoints: dict[str, Endpoint] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # --- loading ---------------------------------------------------------------------------

    def _load(self, model: str, version: int | str | None) -> tuple[ServedVersion, Batcher]:
        served = self._loader.load(model, version)
        smoke_test(served)
        batcher = Batcher(served.predict, max_batch=self._max_batch, max_wait=self._max_wait)
        return served, batcher

    def add_model(self, model: str, version: int | str | None = None) -> Endpoint:
        """Serve one version of ``model`` under the model's name."""
        served, batcher = self._load(model, version)
        endpoint = self.endpoints.get(model)
        if endpoint is None:
            endpoint = Endpoint(
                model,
                model,
                DeploymentState("blue-green", primary=served.version),
                {served.version: (served, batcher)},
            )
            endpoint.reset_stats()
            self.endpoints[model] = endpoint
        else:
            endpoint.versions[served.version] = (served, batcher)
        return endpoint

    def load_versions(
        self, name: str, model: str, state: DeploymentState
    ) -> dict[int, tuple[ServedVersion, Batcher]]:
        """The versions ``state`` needs that deployment ``name`` does not hold yet, loaded and
        smoke-tested (slow for a large model: the server calls this off its event loop, then
        ``apply_state`` with them)."""
        endpoint = self.endpoints.get(name)
        held = endpoint.versions if endpoint else {}
        return {v: self._load(model, v) for v in state.versions() if v not in held}

    def apply_state(
        self,
        name: str,
        model: str,
        state: DeploymentState,
        *,
        revision: int,
        loaded: Mapping[int, tuple[ServedVersion, Batcher]] | None = None,
    ) -> Endpoint:
        """Serve deployment ``name`` in ``state``: load what it needs first (unless ``loaded``
        by ``load_versions`` already), then switch.

        A version that fails to load or to predict its example raises before the switch, so
        the endpoint keeps serving its previous state.
        """
        endpoint = self.endpoints.get(name)
        held = dict(endpoint.versions) if endpoint else {}
        held.update(loaded or {})
        for version in state.versions():
            if version not in held:
                held[version] = self._load(model, version)
        needed = set(state.versions())
        fresh = {v: held[v] for v in needed}
        if endpoint is None:
            endpoint = Endpoint(name, model, state, fresh, deployment=name, revision=revision)
            endpoint.reset_stats()
            self.endpoints[name] = endpoint
        else:
            old = endpoint.state
            endpoint.versions = fresh
            endpoint.state = state  # one assignment: the switch is atomic for new requests
            endpoint.revision = revision
            if (old.candidate, old.primary) != (state.candidate, state.primary):
                endpoint.reset_stats()
            elif old.step != state.step:
                # each step needs fresh canary samples; the baseline keeps its window (at
                # 100% it gets no traffic of its own)
                endpoint.stats["candidate"] = VariantStats()
        if state.is_mirroring and endpoint.shadow_queue is None:
            self._start_shadow(endpoint)
        return endpoint

    # --- predicting ------------------------------------------------------------------------

    def endpoint(self, name: str) -> Endpoint:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            known = ", ".join(sorted(self.endpoints)) or "none"
            raise RequestError(404, f"Unknown model '{name[:100]}'. Served models: {known}.")
        return endpoint

    def pick(self, endpoint: Endpoint, version: str | None, key: str | None) -> Route:
        if version is None:
            return route(endpoint.state, key, self._draw())
        try:
            number = int(version)
        except ValueError:
            raise RequestError(
                404, f"Unknown version '{version[:40]}' of '{endpoint.name}'."
            ) from None
        if number not in endpoint.versions:
            held = ", ".join(str(v) for v in sorted(endpoint.versions))
            raise RequestError(
                404, f"Version {number} of '{endpoint.name}' is not served (served: {held})."
            )
        return Route("primary" if number == endpoint.state.primary else "candidate", number)

    async def predict(
        self,
        endpoint: Endpoint,
        chosen: Route,
        X: NDArray[Any],
        *,
        request_id: str | None = None,
    ) -> tuple[ServedVersion, dict[str, NDArray[Any]], list[str]]:
        """Predict ``X`` with the routed version; log, count, and mirror as the route says."""
        served, batcher = endpoint.versions[chosen.version]
        started = time.perf_counter()
        stats = endpoint.stats.get(chosen.variant)
        try:
            out = await batcher.predict(X)
        except Exception as exc:
            if stats is not None:
                stats.requests += 1
                stats.errors += 1
            self.metrics.error(endpoint.name, served.version, chosen.variant, 500)
            raise RequestError(
                500, f"Model {served.model}:{served.version} failed to predict: {exc}"
            ) from exc
        seconds = time.perf_counter() - started
        self.metrics.observe(endpoint.name, served.version, chosen.variant, seconds)
        if stats is not None:
            stats.requests += 1
            stats.latencies_ms.append(seconds * 1000.0)
            stats.predictions.extend(_numbers(out))
        if chosen.mirror_to is not None and endpoint.shadow_queue is not None:
            if len(endpoint.shadow_queue) < self._shadow_size:
                endpoint.shadow_queue.append((X, out["prediction"]))
                endpoint.shadow.sent += 1
            else:
                endpoint.shadow.dropped += 1
                self.metrics.shadow_dropped.labels(endpoint.name).inc()
        base = new_id()
        ids = [base] if len(X) == 1 else [f"{base}-{i}" for i in range(len(X))]
        if endpoint.state.canary_weight > 0.0:
            awaiting = endpoint.awaiting
            for pid, prediction in zip(ids, out["prediction"].tolist(), strict=True):
                awaiting[pid] = (chosen.variant, prediction)
            while len(awaiting) > _AWAITING:
                awaiting.popitem(last=False)
        if self.logger is not None and endpoint.deployment is not None:
            self._log(endpoint, served, chosen, X, out, ids, request_id, seconds)
        return served, out, ids

    def _log(
        self,
        endpoint: Endpoint,
        served: ServedVersion,
        chosen: Route,
        X: NDArray[Any],
        out: dict[str, NDArray[Any]],
        ids: list[str],
        request_id: str | None,
        seconds: float,
    ) -> None:
        assert self.logger is not None
        assert endpoint.deployment is not None
        self.logger.log_request(
            prediction_ids=ids,
            deployment=endpoint.deployment,
            model=served.model,
            version=served.version,
            variant=chosen.variant,
            request_id=request_id,
            timestamp=clock.now(),
            latency_ms=seconds * 1000.0,
            features=served.signature.features,
            rows=X,
            predictions=out["prediction"],
            redact=served.redact,
            probabilities=out.get("probabilities"),
            classes=served.classes,
        )

    # --- shadow ----------------------------------------------------------------------------

    def _start_shadow(self, endpoint: Endpoint) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            endpoint.shadow_queue = None
            return
        endpoint.shadow_queue = deque()
        self._tasks.append(loop.create_task(self._shadow_worker(endpoint, endpoint.shadow_queue)))

    def start(self) -> None:
        """Start background work that needs the event loop (shadow workers)."""
        for endpoint in self.endpoints.values():
            if endpoint.state.is_mirroring and endpoint.shadow_queue is None:
                self._start_shadow(endpoint)

    async def _shadow_worker(self, endpoint: Endpoint, queue: deque[tuple[Any, Any]]) -> None:
        """Drain the copies every tick, one model call per batch, off the response path.

        The worker wakes on a timer rather than per copy, so a mirrored request costs the
        primary one deque append. When the event loop falls behind its timer (the process is
        CPU-bound), the copies beyond one batch per tick are shed and counted as dropped: the
        shadow may lose samples under load but never takes the primary's CPU.
        """
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(_SHADOW_TICK)
            if not queue:
                continue
            saturated = loop.time() - asked > 2 * _SHADOW_TICK
            take = min(len(queue), self._max_batch) if saturated else len(queue)
            copies = [queue.popleft() for _ in range(take)]
            if saturated and queue:
                endpoint.shadow.dropped += len(queue)
                self.metrics.shadow_dropped.labels(endpoint.name).inc(len(queue))
                queue.clear()
            for start in range(0, len(copies), self._max_batch):
                self._compare_shadow(endpoint, copies[start : start + self._max_batch])
                await asyncio.sleep(0)  # let primary requests run between shadow batches

    def _compare_shadow(self, endpoint: Endpoint, copies: list[tuple[Any, Any]]) -> None:
        import numpy as np

        candidate = endpoint.state.candidate
        if candidate is None or candidate not in endpoint.versions:
            return
        served = endpoint.versions[candidate][0]
        X = copies[0][0] if len(copies) == 1 else np.concatenate([c[0] for c in copies])
        started = time.perf_counter()
        try:
            out = served.predict(X)
        except Exception:  # recorded, never raised: the shadow cannot fail the primary
            endpoint.shadow.errors += len(copies)
            return
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        endpoint.shadow.latencies_ms.append(elapsed_ms)
        endpoint.shadow.compared += len(X)
        primary = np.concatenate([np.asarray(c[1]).reshape(-1) for c in copies])
        differ = int(np.sum(np.asarray(out["prediction"]) != primary))
        endpoint.shadow.disagreements += differ
        if differ:
            self.metrics.shadow_disagreements.labels(endpoint.name).inc(differ)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # --- analysis --------------------------------------------------------------------------

    def analyse(self, name: str, config: AnalysisConfig) -> Decision:
        """Compare the canary with its baseline on what this process has seen."""
        endpoint = self.endpoint(name)
        return analyse(
            endpoint.stats["primary"].sample(), endpoint.stats["candidate"].sample(), config
        )


def _numbers(out: dict[str, Any]) -> list[float]:
    proba = out.get("probabilities")
    if proba is not None and proba.ndim == 2:
        return [float(v) for v in proba[:, -1]]
    pred = out["prediction"]
    if pred.dtype.kind in "iufb":
        return [float(v) for v in pred]
    return []
