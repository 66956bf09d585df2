"""The shadow worker: batched off the response path, and shed when the event loop is saturated."""

# ruff: noqa: N803  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import numpy as np
import pytest

from keel.serving import DeploymentState, _host
from keel.serving._host import Endpoint, ModelHost


class _Candidate:
    """A served version that predicts the row's first feature, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, X: Any) -> dict[str, Any]:
        self.calls.append(len(X))
        return {"prediction": np.asarray(X)[:, 0]}


def _endpoint(candidate: _Candidate) -> Endpoint:
    state = DeploymentState("shadow", primary=1, candidate=2, phase="rolling")
    versions: dict[int, Any] = {2: (candidate, None)}
    return Endpoint(name="churn-staging", model="churn", state=state, versions=versions)


def _copies(n: int, *, disagree_every: int = 0) -> list[tuple[Any, Any]]:
    out = []
    for i in range(n):
        primary = i + 1 if disagree_every and i % disagree_every == 0 else i
        out.append((np.array([[float(i)]]), np.array([float(primary)])))
    return out


async def _drain(host: ModelHost, endpoint: Endpoint, copies: list[Any], *, block: float) -> None:
    queue: deque[tuple[Any, Any]] = deque()
    task = asyncio.create_task(host._shadow_worker(endpoint, queue))
    await asyncio.sleep(0)  # the worker starts its first tick
    queue.extend(copies)
    if block:
        time.sleep(block)  # a CPU-bound event loop: the worker's timer fires late
    deadline = time.monotonic() + 10.0  # a loaded machine is slow, never wrong
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        shadow = endpoint.shadow
        if not queue and shadow.compared + shadow.dropped + shadow.errors == len(copies):
            break
    task.cancel()


def test_copies_are_compared_in_batches_and_disagreements_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A tick long enough that a loaded machine's late timer is not taken for a saturated loop
    # (late by twice the tick): this test is about batching, the next one about shedding.
    monkeypatch.setattr(_host, "_SHADOW_TICK", 0.25)
    candidate = _Candidate()
    endpoint = _endpoint(candidate)
    host = ModelHost(loader=None, max_batch=16)  # type: ignore[arg-type]
    asyncio.run(_drain(host, endpoint, _copies(100, disagree_every=10), block=0.0))
    stats = endpoint.shadow
    assert stats.compared == 100
    assert stats.dropped == 0
    assert stats.disagreements == 10
    assert max(candidate.calls) <= 16
    assert len(candidate.calls) < 100  # one model call per batch, not per copy


def test_a_saturated_loop_sheds_copies_beyond_one_batch_and_counts_them() -> None:
    candidate = _Candidate()
    endpoint = _endpoint(candidate)
    host = ModelHost(loader=None, max_batch=8)  # type: ignore[arg-type]
    asyncio.run(_drain(host, endpoint, _copies(100), block=0.2))
    stats = endpoint.shadow
    assert stats.compared == 8
    assert stats.dropped == 92
    assert stats.compared + stats.dropped == 100
