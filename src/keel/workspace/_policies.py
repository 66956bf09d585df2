"""Workspace faces of governance: policies and decisions, approvals, supply chain."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import IntegrityError

if TYPE_CHECKING:
    from keel.governance import (
        ApprovalRequest,
        ApprovalService,
        Context,
        EnvironmentAudit,
        PolicyDecision,
        PolicyService,
        PolicyVersion,
        QuarantinedFile,
        SignatureInfo,
        SupplyChainService,
    )
    from keel.tracking import ModelRegistry

__all__ = ["Approvals", "Policies", "SupplyChain"]


class Policies:
    """Policy versions and gate decisions of the workspace's project (see PolicyService)."""

    def __init__(self, service: PolicyService, ctx: Context) -> None:
        self._s, self._ctx = service, ctx

    @property
    def service(self) -> PolicyService:
        return self._s

    def apply(self, source: str, *, origin: str = "<policy>") -> PolicyVersion:
        """Store a policy document as the next version of its policy."""
        return self._s.apply(self._ctx, source, origin=origin)

    def apply_file(self, path: str | Path) -> PolicyVersion:
        from keel.governance import load_policy_file

        source, _ = load_policy_file(Path(path))
        return self._s.apply(self._ctx, source, origin=str(path))

    def apply_dir(self, folder: str | Path) -> list[PolicyVersion]:
        return self._s.apply_dir(self._ctx, Path(folder))

    def list(self, *, include_history: bool = False) -> list[PolicyVersion]:
        return self._s.list(self._ctx, include_history=include_history)

    def get(self, name: str, version: int | None = None) -> PolicyVersion:
        return self._s.get(self._ctx, name, version)

    def decisions(
        self, *, gate: str | None = None, subject: str | None = None, limit: int = 100
    ) -> builtins.list[PolicyDecision]:
        return self._s.decisions(self._ctx, gate=gate, subject=subject, limit=limit)

    def gate(
        self, gate: str, *, subject: str, context: dict[str, Any], permission: Any
    ) -> PolicyDecision | None:
        """Evaluate a gate (for services in other layers and tests)."""
        return self._s.gate(
            self._ctx, gate, subject=subject, context=context, permission=permission
        )


class Approvals:
    """Approval requests of the workspace's project (see ApprovalService)."""

    def __init__(self, service: ApprovalService, ctx: Context) -> None:
        self._s, self._ctx = service, ctx

    def list(self, *, status: str | None = "pending") -> builtins.list[ApprovalRequest]:
        return self._s.list(self._ctx, status=status)

    def get(self, request_id: str) -> ApprovalRequest:
        return self._s.get(self._ctx, request_id)

    def approve(self, request_id: str, *, comment: str = "") -> ApprovalRequest:
        return self._s.approve(self._ctx, request_id, comment=comment)

    def reject(self, request_id: str, *, comment: str = "") -> ApprovalRequest:
        return self._s.reject(self._ctx, request_id, comment=comment)


class SupplyChain:
    """Signatures, scans, quarantine, ML-BOMs and environment audits of model versions."""

    def __init__(
        self, service: SupplyChainService, registry: ModelRegistry, runs: Any, ctx: Context
    ) -> None:
        self._s, self._registry, self._runs, self._ctx = service, registry, runs, ctx

    def verify(self, ref: str, version: int | str | None = None) -> SignatureInfo:
        """Check a version's signature; raise IntegrityError if it is missing or wrong."""
        found = self._registry.version(self._ctx, ref, version)
        info = self._registry.verify_signature(self._ctx, found)
        if info is None:  # pragma: no cover - the workspace always has a signer
            raise IntegrityError("This workspace has no signing key configured.")
        return info

    def sign(self, ref: str, version: int | str | None = None) -> SignatureInfo:
        """Sign a version registered before signing existed, then verify it."""
        from keel.governance import version_payload

        found = self._registry.version(self._ctx, ref, version)
        payload = version_payload(
            project_id=self._ctx.project_id,
            model=found.model,
            version=found.version,
            version_id=found.id,
            digest=found.artifact_digest,
            fmt=found.format,
        )
        self._s.sign(self._ctx, payload, found.id, what=f"{found.model}:{found.version}")
        return self.verify(ref, version)

    def scan(self, path: str | Path, *, name: str = "model") -> QuarantinedFile:
        """Scan a pickle/joblib file; it stays quarantined unless clean and allowed by policy."""
        return self._s.scan(self._ctx, path, name=name)

    def quarantined(self, *, limit: int = 100) -> builtins.list[QuarantinedFile]:
        return self._s.quarantined(self._ctx, limit=limit)

    def _environment(self, run_id: str | None) -> dict[str, Any]:
        if run_id is None:
            return {}
        return dict(self._runs.get(run_id).environment or {})

    def bom(self, ref: str, version: int | str | None = None) -> dict[str, Any]:
        """The CycloneDX 1.6 ML-BOM of a version, validated against the bundled schema."""
        from keel import __version__, clock
        from keel.governance import build_ml_bom, validate_bom

        found = self._registry.version(self._ctx, ref, version)
        signature = self.verify(ref, found.version)
        env = self._environment(found.run_id)
        document = build_ml_bom(
            project=self._ctx.project_name,
            model=found.model,
            version=found.version,
            version_id=found.id,
            digest=found.artifact_digest,
            fmt=found.format,
            created_at=found.created_at.isoformat(),
            metrics=found.metrics,
            signature=found.signature,
            run_id=found.run_id,
            packages=env.get("packages") or {},
            python=env.get("python"),
            signed_by=signature.key_id,
            timestamp=clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            tool_version=__version__,
        )
        validate_bom(document)
        return document

    def audit_environment(self, ref: str, version: int | str | None = None) -> EnvironmentAudit:
        """pip-audit of the packages recorded by the run that produced the version."""
        from keel.errors import InvalidInputError
        from keel.governance import audit_packages

        found = self._registry.version(self._ctx, ref, version)
        if found.run_id is None:
            raise InvalidInputError(
                f"Model {found.model}:{found.version} has no source run, so no recorded "
                "environment to audit. Register versions with run_id=... to keep one."
            )
        return audit_packages(self._environment(found.run_id).get("packages") or {})
