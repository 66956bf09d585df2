"""Policy documents and their evaluation: pure functions of (policy, context), no I/O.

A policy is a YAML (or JSON) document::

    name: production
    gates: [alias.promote]            # the gates it speaks at (default: every gate)
    rules:
      - id: auc
        when: {alias: [champion, production]}     # optional: where the rule applies
        require: {path: model.metrics.auc, op: ">=", value: 0.8}
      - id: no-restricted-features
        forbid_features: {columns: [nationality, religion]}
      - id: residency
        residency: {allowed: [ae]}
      - id: second-approver
        approvals: {min: 1}

or, with ``backend: rego``, a Rego module in ``rego:`` whose ``data.keel.deny`` set holds the
reasons to deny (evaluated by regopy). The context a policy sees is documented in
``docs/policies.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.errors import InvalidInputError, MissingDependencyError
from keel.governance._residency import check_residency
from keel.types import validate_name

__all__ = [
    "GATES",
    "Evaluation",
    "PolicyDocument",
    "Rule",
    "evaluate",
    "load_policy_file",
    "parse_policy",
    "policy_digest",
]

#: The gates that evaluate policies.
GATES = frozenset(
    {"dataset.publish", "model.register", "alias.promote", "deployment.create", "data.copy"}
)
_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not_in", "exists")
_KINDS = ("require", "forbid_features", "residency", "approvals")
MAX_SOURCE = 256 * 1024
MAX_RULES = 500


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: where it applies (``gates``, ``when``) and what it checks (``kind``, ``spec``)."""

    id: str
    kind: str
    spec: Mapping[str, Any]
    gates: tuple[str, ...] = ()
    when: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """A parsed policy: its name, gates, and YAML rules or Rego module."""

    name: str
    gates: tuple[str, ...]
    backend: str
    rules: tuple[Rule, ...] = ()
    rego: str = ""
    description: str = ""

    def applies_to(self, gate: str) -> bool:
        return not self.gates or gate in self.gates


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of policies over one context.

    ``approvals_needed`` is how many further approvals (by principals other than the
    requester) would turn a denial into an allow, when that is the only thing missing.
    """

    allowed: bool
    reasons: tuple[str, ...]
    evidence: dict[str, Any]
    approvals_needed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "evidence": self.evidence,
            "approvals_needed": self.approvals_needed,
        }


def policy_digest(source: str) -> str:
    """The digest a policy version is stored under: ``sha256:<hex>`` of its exact text."""
    return "sha256:" + hashlib.sha256(source.encode("utf-8")).hexdigest()


def _bad(where: str, problem: str, fix: str) -> InvalidInputError:
    return InvalidInputError(f"Policy {where}: {problem}. {fix}", where=where)


def load_policy_file(path: Path) -> tuple[str, PolicyDocument]:
    """Read and parse one policy file; returns (exact text, document)."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(
            f"Cannot read the policy file {path}: {exc.strerror}. Check the path.",
            path=str(path),
        ) from exc
    return source, parse_policy(source, origin=str(path))


def parse_policy(source: str, *, origin: str = "<policy>") -> PolicyDocument:
    """Parse and validate a policy document (YAML, or JSON, which YAML includes)."""
    if len(source) > MAX_SOURCE:
        raise _bad(origin, f"the file is {len(source)} characters", "Keep policies under 256 KiB.")
    data = load_document(source, origin)
    if not isinstance(data, Mapping):
        raise _bad(origin, "the document is not a mapping", "Start it with 'name:' and 'rules:'.")
    unknown = set(data) - {"name", "description", "gates", "backend", "rules", "rego"}
    if unknown:
        raise _bad(
            origin,
            f"unknown keys {sorted(unknown)}",
            "Use name, description, gates, backend, rules and rego.",
        )
    name = validate_name(data.get("name"), what="policy name")
    gates = _gates(data.get("gates"), f"{origin} ({name})")
    backend = data.get("backend", "yaml")
    if backend == "rego":
        rego = data.get("rego")
        if not isinstance(rego, str) or "package keel" not in rego:
            raise _bad(
                origin,
                "a rego policy needs a 'rego:' module declaring 'package keel'",
                "Define a 'deny' set of reason strings in package keel.",
            )
        _compile_rego(rego, origin)
        return PolicyDocument(
            name=name, gates=gates, backend="rego", rego=rego, description=_text(data)
        )
    if backend != "yaml":
        raise _bad(origin, f"unknown backend {backend!r}", "Use 'yaml' (default) or 'rego'.")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise _bad(origin, "'rules' is missing or empty", "List at least one rule.")
    if len(raw_rules) > MAX_RULES:
        raise _bad(origin, f"{len(raw_rules)} rules", f"Keep at most {MAX_RULES}.")
    rules = tuple(_rule(raw, f"{origin} rule #{i + 1}") for i, raw in enumerate(raw_rules))
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise _bad(origin, "two rules share an id", "Give every rule its own id.")
    return PolicyDocument(
        name=name, gates=gates, backend="yaml", rules=rules, description=_text(data)
    )


def _text(data: Mapping[str, Any]) -> str:
    return str(data.get("description", ""))[:2000]


def load_document(source: str, origin: str) -> Any:
    stripped = source.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(source)
        except json.JSONDecodeError as exc:
            raise _bad(origin, f"invalid JSON ({exc})", "Fix the syntax.") from exc
    import yaml  # type: ignore[import-untyped, unused-ignore]  # a base dependency

    try:
        return yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise _bad(origin, f"invalid YAML ({str(exc)[:300]})", "Fix the syntax.") from exc


def _gates(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise _bad(where, "'gates' must be a list of gate names", f"Use some of {sorted(GATES)}.")
    unknown = [g for g in value if g not in GATES]
    if unknown:
        raise _bad(where, f"unknown gates {unknown}", f"Use some of {sorted(GATES)}.")
    return tuple(value)


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise _bad(where, "a rule must be a mapping", "Write 'id:' and one check.")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise _bad(where, "the rule has no 'id'", "Give it a short id such as 'auc'.")
    kinds = [k for k in _KINDS if k in raw]
    if len(kinds) != 1:
        raise _bad(where, f"rule '{rule_id}' has {len(kinds)} checks", f"Use one of {_KINDS}.")
    unknown = set(raw) - {"id", "gates", "when", "message", *kinds}
    if unknown:
        raise _bad(where, f"rule '{rule_id}' has unknown keys {sorted(unknown)}", "Remove them.")
    kind = kinds[0]
    spec = raw[kind]
    if kind == "approvals" and isinstance(spec, int):
        spec = {"min": spec}
    if not isinstance(spec, Mapping):
        raise _bad(
            where, f"'{kind}' of rule '{rule_id}' must be a mapping", "See docs/policies.md."
        )
    _check_spec(kind, spec, f"{where} ({rule_id})")
    when = raw.get("when") or {}
    if not isinstance(when, Mapping):
        raise _bad(where, "'when' must map context paths to values", "e.g. when: {alias: champion}")
    return Rule(
        id=rule_id,
        kind=kind,
        spec=dict(spec),
        gates=_gates(raw.get("gates"), where),
        when=dict(when),
        message=str(raw.get("message", "")),
    )


def _check_spec(kind: str, spec: Mapping[str, Any], where: str) -> None:
    if kind == "require":
        if not isinstance(spec.get("path"), str) or spec.get("op", "==") not in _OPS:
            raise _bad(where, "'require' needs 'path' and an 'op'", f"op is one of {_OPS}.")
        if spec.get("op", "==") != "exists" and "value" not in spec:
            raise _bad(where, "'require' needs a 'value'", "Add value: ...")
    elif kind == "forbid_features":
        cols = spec.get("columns", [])
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            raise _bad(where, "'columns' must be a list of names", "e.g. [nationality]")
    elif kind == "residency":
        allowed = spec.get("allowed")
        if not isinstance(allowed, list) or not allowed:
            raise _bad(where, "'residency' needs a non-empty 'allowed' list", "e.g. [ae]")
        check_residency(destinations={}, policy_allowed=allowed)  # validates the codes
    elif kind == "approvals":
        minimum = spec.get("min", 1)
        if not isinstance(minimum, int) or not 1 <= minimum <= 10:
            raise _bad(where, "'approvals.min' must be 1 to 10", "e.g. approvals: {min: 1}")


def _compile_rego(source: str, origin: str) -> None:
    interpreter = _rego_interpreter()
    try:
        interpreter.add_module("policy", source)
        interpreter.query("x = data.keel.deny")
    except Exception as exc:  # regopy raises its own RegoError
        raise _bad(
            origin, f"the Rego module does not compile ({str(exc)[:300]})", "Fix it."
        ) from exc


def _rego_interpreter() -> Any:
    try:
        import regopy  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependencyError(
            "regopy", extra="policy", purpose="Evaluating Rego policies"
        ) from exc
    return regopy.Interpreter()


# --- evaluation ---------------------------------------------------------------------------


def lookup(context: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """The value at a dotted ``path`` of ``context`` and whether it was there.

    A key may hold dots itself (metric names do: ``test.auc``), so at each level the longest
    key matching the next parts is tried first: ``model.metrics.test.auc`` finds the metric
    ``test.auc`` of ``model.metrics``.
    """
    return _walk(context, path.split("."))


def _walk(node: Any, parts: list[str]) -> tuple[bool, Any]:
    if not parts:
        return True, node
    if not isinstance(node, Mapping):
        return False, None
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end])
        if key in node:
            found, value = _walk(node[key], parts[end:])
            if found:
                return True, value
    return False, None


def _matches(rule: Rule, context: Mapping[str, Any]) -> bool:
    for path, expected in rule.when.items():
        found, value = lookup(context, str(path))
        options = expected if isinstance(expected, list) else [expected]
        if not found or value not in options:
            return False
    return True


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "exists":
        return True
    if op in ("in", "not_in"):
        options = expected if isinstance(expected, list) else [expected]
        return bool(actual in options) == (op == "in")
    if op in ("==", "!="):
        return bool(actual == expected) == (op == "==")
    try:
        left, right = float(actual), float(expected)
    except (TypeError, ValueError):
        return False
    if math.isnan(left) or math.isnan(right):
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


def _check(rule: Rule, context: Mapping[str, Any]) -> tuple[bool, str, Any, int]:
    """(passed, reason if not, evidence, approvals still needed)."""
    spec = rule.spec
    if rule.kind == "require":
        path, op = spec["path"], spec.get("op", "==")
        found, actual = lookup(context, path)
        if not found:
            return False, f"{path} is not known, so '{op} {spec.get('value')}' fails", None, 0
        ok = _compare(actual, op, spec.get("value"))
        return ok, f"{path} is {actual!r}, needs {op} {spec.get('value')!r}", actual, 0
    if rule.kind == "forbid_features":
        _, features = lookup(context, spec.get("path", "model.features"))
        _, restricted_ctx = lookup(context, "restricted_columns")
        restricted = {c.lower() for c in spec.get("columns", [])}
        restricted |= {str(c).lower() for c in (restricted_ctx or [])}
        used = sorted(str(f) for f in (features or []) if str(f).lower() in restricted)
        reason = f"restricted columns used as features: {', '.join(used)}"
        return not used, reason, {"features": list(features or []), "restricted": used}, 0
    if rule.kind == "residency":
        _, regions = lookup(context, "regions")
        regions = regions if isinstance(regions, Mapping) else {}
        destinations = {k: v for k, v in regions.items() if k in ("storage", "target", "compute")}
        result = check_residency(
            destinations=destinations,
            data_allowed=regions.get("data_allowed") or [],
            policy_allowed=spec["allowed"],
        )
        if not destinations:
            return False, "no region is known for where this goes", result.to_dict(), 0
        reason = f"outside the allowed regions: {'; '.join(result.violations)}"
        return result.allowed, reason, result.to_dict(), 0
    minimum = int(spec.get("min", 1))
    _, approvals = lookup(context, "approvals")
    approvals = approvals if isinstance(approvals, Mapping) else {}
    requester = approvals.get("requester")
    approvers = sorted({a for a in approvals.get("approved_by", []) if a != requester})
    missing = max(0, minimum - len(approvers))
    reason = f"needs {minimum} approval(s) by someone other than {requester}, has {len(approvers)}"
    return missing == 0, reason, {"approved_by": approvers, "min": minimum}, missing


def evaluate(
    policies: Sequence[PolicyDocument], gate: str, context: Mapping[str, Any]
) -> Evaluation:
    """Evaluate every policy that speaks at ``gate``: allow only if none denies."""
    reasons: list[str] = []
    evidence: dict[str, Any] = {}
    needed = 0
    other_failures = 0
    for policy in policies:
        if not policy.applies_to(gate):
            continue
        if policy.backend == "rego":
            denied = _evaluate_rego(policy, context)
            evidence[f"{policy.name}"] = {"deny": denied}
            reasons.extend(f"{policy.name}: {r}" for r in denied)
            other_failures += len(denied)
            continue
        for rule in policy.rules:
            if rule.gates and gate not in rule.gates:
                continue
            if not _matches(rule, context):
                continue
            ok, reason, seen, missing = _check(rule, context)
            evidence[f"{policy.name}.{rule.id}"] = {"passed": ok, "value": seen}
            if not ok:
                reasons.append(f"{policy.name}.{rule.id}: {rule.message or reason}")
                if rule.kind == "approvals":
                    needed = max(needed, missing)
                else:
                    other_failures += 1
    return Evaluation(
        allowed=not reasons,
        reasons=tuple(reasons),
        evidence=evidence,
        approvals_needed=needed if other_failures == 0 else 0,
    )


def _evaluate_rego(policy: PolicyDocument, context: Mapping[str, Any]) -> list[str]:
    interpreter = _rego_interpreter()
    interpreter.add_module("policy", policy.rego)
    interpreter.set_input(json.loads(json.dumps(context, default=str)))
    output = interpreter.query("x = data.keel.deny")
    answer = json.loads(str(output))
    denied = answer.get("bindings", {}).get("x", [])
    if not isinstance(denied, list):
        return [f"data.keel.deny is not a set of reasons: {str(denied)[:100]}"]
    return sorted(str(item) for item in denied)
