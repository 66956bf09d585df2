"""``keel policy test``: run policies against fixture contexts and compare with expectations.

A fixture file (YAML or JSON) holds one fixture, or ``fixtures:`` with a list of them::

    name: approved model in the UAE passes
    gate: alias.promote
    expect: allow                    # or deny
    expect_reasons: [second-approver]  # with deny: rule ids (or text) each reason list must hold
    context: {...}                   # the gate's context document (docs/policies.md)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.errors import InvalidInputError
from keel.governance._policy_rules import GATES, Evaluation, PolicyDocument, evaluate, load_document

__all__ = ["FixtureResult", "load_fixtures", "run_fixtures"]

MAX_FIXTURES = 1000


@dataclass(frozen=True, slots=True)
class Fixture:
    name: str
    origin: str
    gate: str
    expect: str
    expect_reasons: tuple[str, ...]
    context: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FixtureResult:
    """One fixture's outcome: passed when the decision and the reasons are as expected."""

    name: str
    origin: str
    gate: str
    expected: str
    passed: bool
    evaluation: Evaluation
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "origin": self.origin,
            "gate": self.gate,
            "expected": self.expected,
            "passed": self.passed,
            "problem": self.problem,
            **self.evaluation.to_dict(),
        }


def _fixture(raw: Any, origin: str) -> Fixture:
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"Fixture in {origin} is not a mapping; see docs/policies.md.")
    gate = raw.get("gate")
    expect = raw.get("expect")
    if gate not in GATES or expect not in ("allow", "deny"):
        raise InvalidInputError(
            f"Fixture {raw.get('name', '?')!r} in {origin} needs 'gate' (one of {sorted(GATES)}) "
            "and 'expect: allow' or 'expect: deny'.",
            origin=origin,
        )
    context = raw.get("context") or {}
    reasons = raw.get("expect_reasons") or []
    if not isinstance(context, Mapping) or not isinstance(reasons, list):
        raise InvalidInputError(
            f"Fixture in {origin}: 'context' must be a mapping and 'expect_reasons' a list."
        )
    return Fixture(
        name=str(raw.get("name") or Path(origin).stem),
        origin=origin,
        gate=str(gate),
        expect=str(expect),
        expect_reasons=tuple(str(r) for r in reasons),
        context=context,
    )


def load_fixtures(path: Path) -> list[Fixture]:
    """The fixtures in a file, or in every YAML/JSON file of a folder (sorted)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
    elif path.is_file():
        files = [path]
    else:
        raise InvalidInputError(f"No fixture file or folder at {path}.", path=str(path))
    fixtures: list[Fixture] = []
    for file in files:
        data = load_document(file.read_text(encoding="utf-8"), str(file))
        items = data.get("fixtures") if isinstance(data, Mapping) and "fixtures" in data else [data]
        if not isinstance(items, list):
            raise InvalidInputError(f"'fixtures' in {file} must be a list.")
        fixtures.extend(_fixture(item, str(file)) for item in items)
        if len(fixtures) > MAX_FIXTURES:
            raise InvalidInputError(f"More than {MAX_FIXTURES} fixtures under {path}.")
    if not fixtures:
        raise InvalidInputError(f"No fixtures found under {path} (*.yaml, *.yml, *.json).")
    return fixtures


def run_fixtures(
    documents: Sequence[PolicyDocument], fixtures: Sequence[Fixture]
) -> list[FixtureResult]:
    """Evaluate each fixture; a fixture passes when the outcome and reasons match."""
    results = []
    for fixture in fixtures:
        evaluation = evaluate(documents, fixture.gate, fixture.context)
        outcome = "allow" if evaluation.allowed else "deny"
        problem = ""
        if outcome != fixture.expect:
            problem = f"expected {fixture.expect}, got {outcome}"
        else:
            missing = [
                r for r in fixture.expect_reasons if not any(r in got for got in evaluation.reasons)
            ]
            if missing:
                problem = f"no reason mentions {', '.join(missing)}"
        results.append(
            FixtureResult(
                name=fixture.name,
                origin=fixture.origin,
                gate=fixture.gate,
                expected=fixture.expect,
                passed=not problem,
                evaluation=evaluation,
                problem=problem,
            )
        )
    return results
