"""The plan: what ``keel apply`` would change, computed from desired and current state (pure)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.cicd._resources import KINDS, resource_digest

__all__ = ["Change", "Plan", "make_plan"]

Op = Literal["create", "update", "delete", "unchanged"]
_SYMBOL = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}


@dataclass(frozen=True, slots=True)
class Change:
    """One resource's fate: its operation, the spec before and after, and their diff."""

    op: Op
    kind: str
    name: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    diff: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "kind": self.kind,
            "name": self.name,
            "before": self.before,
            "after": self.after,
            "diff": list(self.diff),
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """Every change, in apply order (creates and updates by kind, then deletes in reverse)."""

    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.op != "unchanged"]

    def count(self, op: Op) -> int:
        return sum(1 for c in self.changes if c.op == op)

    def summary(self) -> str:
        return (
            f"{self.count('create')} to create, {self.count('update')} to update, "
            f"{self.count('delete')} to delete, {self.count('unchanged')} unchanged"
        )

    def render(self, *, show_unchanged: bool = False) -> str:
        lines: list[str] = []
        for change in self.changes:
            if change.op == "unchanged" and not show_unchanged:
                continue
            lines.append(f"{_SYMBOL[change.op]} {change.op} {change.kind} {change.name}")
            lines.extend(f"    {line}" for line in change.diff)
        lines.append(f"Plan: {self.summary()}.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": {op: self.count(op) for op in ("create", "update", "delete", "unchanged")},
            "changes": [c.to_dict() for c in self.changes],
        }


def _lines(spec: Mapping[str, Any] | None) -> list[str]:
    if spec is None:
        return []
    return json.dumps(spec, indent=2, sort_keys=True, default=str).splitlines()


def _diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> tuple[str, ...]:
    out = difflib.unified_diff(_lines(before), _lines(after), "current", "keel.yaml", lineterm="")
    return tuple(line for line in out if not line.startswith(("---", "+++", "@@")))


def make_plan(
    desired: Mapping[tuple[str, str], Mapping[str, Any]],
    current: Mapping[tuple[str, str], Mapping[str, Any]],
) -> Plan:
    """Compare ``desired`` (the file) with ``current`` (what was applied), resource by resource."""
    order = {kind: i for i, kind in enumerate(KINDS)}
    ahead: list[Change] = []
    for key in sorted(desired, key=lambda k: (order.get(k[0], len(order)), k[1])):
        after = dict(desired[key])
        before = current.get(key)
        if before is None:
            ahead.append(Change("create", key[0], key[1], None, after, _diff(None, after)))
        elif resource_digest(before) != resource_digest(after):
            ahead.append(
                Change("update", key[0], key[1], dict(before), after, _diff(before, after))
            )
        else:
            ahead.append(Change("unchanged", key[0], key[1], dict(before), after))
    gone = [
        Change("delete", key[0], key[1], dict(current[key]), None, _diff(current[key], None))
        for key in sorted(
            (k for k in current if k not in desired),
            key=lambda k: (-order.get(k[0], len(order)), k[1]),
        )
    ]
    return Plan(tuple(ahead + gone))
