"""Routing decisions: pure functions of (deployment state, request key, random draw).

No I/O, no clock, no globals: the server passes the state it holds, the request's optional
sticky key, and a uniform draw in [0, 1). The same inputs always give the same decision.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from keel.errors import InvalidInputError

__all__ = [
    "PHASES",
    "STRATEGIES",
    "DeploymentState",
    "Route",
    "bucket_of",
    "route",
]

Strategy = Literal["blue-green", "canary", "shadow"]
Phase = Literal["stable", "rolling", "promoted", "rolled_back"]
Variant = Literal["primary", "candidate"]

STRATEGIES: tuple[str, ...] = ("blue-green", "canary", "shadow")
PHASES: tuple[str, ...] = ("stable", "rolling", "promoted", "rolled_back")
DEFAULT_STEPS: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0)


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """Which versions serve a deployment, and how traffic is split between them.

    Attributes:
        strategy: ``blue-green``, ``canary`` or ``shadow``.
        primary: the version that answers (the baseline).
        candidate: the version being rolled out, mirrored, or None.
        previous: the version served before the last switch (instant rollback), or None.
        steps: canary traffic percentages, in order (the last is 100).
        step: index into ``steps`` of the current canary share.
        phase: ``stable`` (primary only), ``rolling`` (candidate gets traffic or copies),
            ``promoted`` or ``rolled_back`` (the rollout ended; primary only).
    """

    strategy: Strategy
    primary: int
    candidate: int | None = None
    previous: int | None = None
    steps: tuple[float, ...] = field(default=DEFAULT_STEPS)
    step: int = 0
    phase: Phase = "stable"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InvalidInputError(
                f"Unknown strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}.",
                strategy=self.strategy,
            )
        if not self.steps or any(not 0 < s <= 100 for s in self.steps):
            raise InvalidInputError(
                f"Canary steps must be percentages in (0, 100]; got {list(self.steps)}.",
            )
        if list(self.steps) != sorted(self.steps) or self.steps[-1] != 100:
            raise InvalidInputError(
                f"Canary steps must increase and end at 100 (e.g. 5,25,50,100); got "
                f"{list(self.steps)}.",
            )
        if not 0 <= self.step < len(self.steps):
            raise InvalidInputError(f"Canary step {self.step} is outside {list(self.steps)}.")

    @property
    def canary_weight(self) -> float:
        """The share of requests (0..1) the candidate answers right now."""
        if self.strategy != "canary" or self.phase != "rolling" or self.candidate is None:
            return 0.0
        return self.steps[self.step] / 100.0

    @property
    def is_mirroring(self) -> bool:
        return self.strategy == "shadow" and self.phase == "rolling" and self.candidate is not None

    def versions(self) -> tuple[int, ...]:
        """The versions a server must hold loaded to serve this state."""
        held = [self.primary]
        if self.candidate is not None and self.phase == "rolling":
            held.append(self.candidate)
        return tuple(held)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "primary": self.primary,
            "candidate": self.candidate,
            "previous": self.previous,
            "steps": list(self.steps),
            "step": self.step,
            "phase": self.phase,
            "weight": self.canary_weight,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentState:
        return cls(
            strategy=data["strategy"],
            primary=int(data["primary"]),
            candidate=None if data.get("candidate") is None else int(data["candidate"]),
            previous=None if data.get("previous") is None else int(data["previous"]),
            steps=tuple(float(s) for s in data.get("steps", DEFAULT_STEPS)),
            step=int(data.get("step", 0)),
            phase=data.get("phase", "stable"),
        )

    # --- transitions (pure) ---------------------------------------------------------------

    def start(
        self, candidate: int, strategy: Strategy, steps: tuple[float, ...]
    ) -> DeploymentState:
        """Begin rolling out ``candidate`` (blue-green switches at once)."""
        if strategy == "blue-green":
            return DeploymentState(
                strategy, primary=candidate, previous=self.primary, steps=steps, phase="stable"
            )
        return DeploymentState(
            strategy,
            primary=self.primary,
            candidate=candidate,
            previous=self.previous,
            steps=steps,
            step=0,
            phase="rolling",
        )

    def advance(self) -> DeploymentState:
        """The next canary step, or the promotion of the candidate after the last one."""
        if self.phase != "rolling" or self.candidate is None:
            raise InvalidInputError("Only a rolling canary or shadow can be promoted.")
        if self.strategy == "canary" and self.step + 1 < len(self.steps):
            return replace(self, step=self.step + 1)
        return self.promote()

    def promote(self) -> DeploymentState:
        """The candidate becomes the primary at once."""
        if self.candidate is None:
            raise InvalidInputError("There is no candidate to promote.")
        return replace(
            self, primary=self.candidate, candidate=None, previous=self.primary, phase="promoted"
        )

    def rollback(self) -> DeploymentState:
        """Drop a rolling candidate, or switch back to the previous primary."""
        if self.phase == "rolling" and self.candidate is not None:
            return replace(self, candidate=None, step=0, phase="rolled_back")
        if self.previous is None:
            raise InvalidInputError("There is no previous version to roll back to.")
        return replace(self, primary=self.previous, previous=self.primary, phase="rolled_back")


@dataclass(frozen=True, slots=True)
class Route:
    """Where one request goes: the variant that answers, and whether a copy is mirrored."""

    variant: Variant
    version: int
    mirror_to: int | None = None


def bucket_of(key: str) -> float:
    """A stable position in [0, 1) for a sticky request key (same key, same bucket)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def route(state: DeploymentState, key: str | None, draw: float) -> Route:
    """Decide which variant answers a request.

    Args:
        state: the deployment's current state.
        key: an optional sticky key (a user or session id): the same key always lands on the
            same variant while the split stays the same.
        draw: a uniform random number in [0, 1), used when there is no key.
    """
    weight = state.canary_weight
    if weight > 0.0 and state.candidate is not None:
        position = bucket_of(key) if key is not None else draw
        if position < weight:
            return Route("candidate", state.candidate)
        return Route("primary", state.primary)
    if state.is_mirroring:
        return Route("primary", state.primary, mirror_to=state.candidate)
    return Route("primary", state.primary)
