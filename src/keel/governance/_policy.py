"""Policy as code: versioned policy files, evaluated at the gates, decisions stored and audited.

Gates (dataset publish, model registration, alias promotion, deployment, data copy) call
:meth:`PolicyService.gate` with a context document (see ``docs/policies.md``). With no active
policy speaking at a gate, the gate allows and records nothing; otherwise the decision is
stored with its evidence and audited, a denial that only lacks approvals opens an approval
request, and a denial raises :class:`PolicyDeniedError`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from keel.errors import InvalidInputError, NotFoundError
from keel.governance._approvals import approvals_for
from keel.governance._context import Context
from keel.governance._decisions import (
    PolicyDecision,
    PolicyDeniedError,
    record_decision,
    to_decision,
)
from keel.governance._governor import Governor
from keel.governance._permissions import Permission
from keel.governance._policy_rules import (
    GATES,
    Evaluation,
    PolicyDocument,
    evaluate,
    load_policy_file,
    parse_policy,
    policy_digest,
)
from keel.store import ApprovalRepository, PolicyRepository
from keel.store._schema_policy import PolicyRow

__all__ = ["PolicyService", "PolicyVersion", "load_policy_file"]

MAX_POLICY_FILES = 200


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One stored version of a policy."""

    name: str
    version: int
    digest: str
    backend: str
    gates: tuple[str, ...]
    is_active: bool
    created_by: str
    created_at: datetime
    source: str

    def to_dict(self, *, with_source: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "backend": self.backend,
            "gates": list(self.gates),
            "is_active": self.is_active,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }
        if with_source:
            out["source"] = self.source
        return out


def _version(row: PolicyRow) -> PolicyVersion:
    return PolicyVersion(
        name=row.name,
        version=row.version,
        digest=row.digest,
        backend=row.backend,
        gates=tuple(row.gates),
        is_active=row.is_active,
        created_by=row.created_by,
        created_at=row.created_at,
        source=row.source,
    )


class PolicyService:
    """Stores policy versions and evaluates them at the gates."""

    def __init__(self, governor: Governor) -> None:
        self._gov = governor
        self._parsed: dict[str, PolicyDocument] = {}

    # --- policy versions ----------------------------------------------------------------

    def apply(self, ctx: Context, source: str, *, origin: str = "<policy>") -> PolicyVersion:
        """Store ``source`` as the next version of its policy (unchanged text: no new version)."""
        document = parse_policy(source, origin=origin)
        digest = policy_digest(source)
        with self._gov.write(
            ctx, Permission.POLICY_WRITE, "policy.apply", object_type="policy"
        ) as work:
            repo = PolicyRepository(work.session, ctx.project_id)
            latest = repo.latest(document.name, lock=True)
            if latest is not None and latest.digest == digest and latest.is_active:
                work.object_id = latest.id
                work.details = {"name": document.name, "version": latest.version, "same": True}
                return _version(latest)
            row = repo.add(
                name=document.name,
                digest=digest,
                backend=document.backend,
                source=source,
                gates=document.gates,
                created_by=ctx.principal,
            )
            work.object_id = row.id
            work.details = {"name": row.name, "version": row.version, "digest": digest}
            return _version(row)

    def apply_dir(self, ctx: Context, folder: Path) -> list[PolicyVersion]:
        """Apply every ``*.yaml``/``*.yml``/``*.json`` file directly in ``folder``."""
        files = sorted(
            p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
        )
        if len(files) > MAX_POLICY_FILES:
            raise InvalidInputError(
                f"{folder} holds {len(files)} policy files; the limit is {MAX_POLICY_FILES}."
            )
        return [self.apply(ctx, load_policy_file(p)[0], origin=str(p)) for p in files]

    def list(self, ctx: Context, *, include_history: bool = False) -> list[PolicyVersion]:
        with self._gov.read(
            ctx, Permission.POLICY_READ, "policy.list", object_type="policy"
        ) as session:
            repo = PolicyRepository(session, ctx.project_id)
            rows = repo.all() if include_history else repo.active()
            return [_version(row) for row in rows]

    def get(self, ctx: Context, name: str, version: int | None = None) -> PolicyVersion:
        with self._gov.read(
            ctx, Permission.POLICY_READ, "policy.read", object_type="policy"
        ) as session:
            repo = PolicyRepository(session, ctx.project_id)
            row = repo.latest(name) if version is None else repo.get(name, version)
            if row is None:
                raise NotFoundError(
                    f"Policy '{name}'{'' if version is None else f' version {version}'} does "
                    "not exist in this project. List policies with `keel policy list`.",
                    policy=name,
                )
            return _version(row)

    def decisions(
        self,
        ctx: Context,
        *,
        gate: str | None = None,
        subject: str | None = None,
        limit: int = 100,
        subject_under: str | None = None,
    ) -> builtins.list[PolicyDecision]:
        """Stored gate decisions, newest first; ``subject`` is exact, ``subject_under`` also
        matches the subjects extending it after ``:`` or ``@`` (a model and its versions)."""
        with self._gov.read(
            ctx, Permission.POLICY_READ, "policy.decisions", object_type="policy_decision"
        ) as session:
            repo = PolicyRepository(session, ctx.project_id)
            rows = repo.decisions(
                gate=gate, subject=subject, limit=limit, subject_under=subject_under
            )
            return [to_decision(r) for r in rows]

    # --- gates --------------------------------------------------------------------------

    def gate(
        self,
        ctx: Context,
        gate: str,
        *,
        subject: str,
        context: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        permission: Permission,
    ) -> PolicyDecision | None:
        """Evaluate the active policies at ``gate``; raise PolicyDeniedError on a denial.

        Returns None when no policy speaks at the gate (the default allows), otherwise the
        stored allow decision. ``context`` may be a function, called only when a policy
        speaks (so gathering evidence costs nothing without policies).
        """
        if gate not in GATES:
            raise InvalidInputError(f"Unknown gate '{gate}'; gates are {sorted(GATES)}.")
        self._gov.check(ctx, permission, action=gate, object_type="gate")
        with self._gov.db.read() as session:
            rows = PolicyRepository(session, ctx.project_id).active()
            documents = [(row, self._document(row)) for row in rows]
            speaking = [(row, doc) for row, doc in documents if doc.applies_to(gate)]
            if not speaking:
                return None
            approvers, pending = approvals_for(session, ctx, gate, subject)
        evidence = context() if callable(context) else context
        full = {
            **evidence,
            "gate": gate,
            "subject": subject,
            "principal": ctx.principal,
            "project": ctx.project_name,
            "approvals": {"requester": ctx.principal, "approved_by": approvers},
        }
        result = evaluate([doc for _, doc in speaking], gate, full)
        names = [f"{row.name}@{row.version}" for row, _ in speaking]
        return self._decide(ctx, gate, subject, result, names, pending_id=_id(pending))

    def evaluate_only(
        self, documents: builtins.list[PolicyDocument], gate: str, context: Mapping[str, Any]
    ) -> Evaluation:
        """Evaluate documents against a context without storing anything (``keel policy test``)."""
        return evaluate(documents, gate, context)

    def _decide(
        self,
        ctx: Context,
        gate: str,
        subject: str,
        result: Evaluation,
        names: builtins.list[str],
        *,
        pending_id: str | None,
    ) -> PolicyDecision:
        approval_id = pending_id
        with self._gov.db.write() as session:
            row = record_decision(
                session,
                self._gov.audit,
                ctx,
                gate=gate,
                subject=subject,
                evaluation=result,
                policies=names,
            )
            if not result.allowed and result.approvals_needed and approval_id is None:
                request = ApprovalRepository(session, ctx.project_id).add(
                    gate=gate,
                    subject=subject,
                    requester=ctx.principal,
                    required=result.approvals_needed,
                    summary="; ".join(result.reasons)[:2000],
                )
                approval_id = request.id
                self._gov.audit.append(
                    session,
                    ctx,
                    "approval.request",
                    object_type="approval",
                    object_id=request.id,
                    details={"gate": gate, "subject": subject, "decision": row.id},
                )
            decision = to_decision(row, approval_id if not result.allowed else None)
        if not result.allowed:
            hint = (
                f" Approval request {approval_id} is waiting: another principal can run "
                f"`keel approvals approve {approval_id}`, then retry."
                if decision.approval_id
                else ""
            )
            raise PolicyDeniedError(
                f"The '{gate}' gate denied {subject} (decision {row.id}): "
                f"{'; '.join(result.reasons)[:1200]}.{hint}",
                decision_id=row.id,
                reasons=list(result.reasons),
                approval_id=decision.approval_id,
            )
        return decision

    def _document(self, row: PolicyRow) -> PolicyDocument:
        cached = self._parsed.get(row.digest)
        if cached is None:
            cached = parse_policy(row.source, origin=f"{row.name}@{row.version}")
            self._parsed[row.digest] = cached
        return cached


def _id(row: Any) -> str | None:
    return None if row is None else str(row.id)
