"""Identity, authorization and the tamper-evident audit trail that every service goes through."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_names

if TYPE_CHECKING:
    from keel.governance._approvals import ApprovalRequest, ApprovalService
    from keel.governance._audit import AuditEvent, AuditLog, ChainReport
    from keel.governance._chain import ChainBreak
    from keel.governance._compliance import (
        LAWFUL_BASES,
        ComplianceService,
        Location,
        ProcessingRecord,
        RetentionItem,
        retention_due,
    )
    from keel.governance._context import Context
    from keel.governance._decisions import PolicyDecision, PolicyDeniedError
    from keel.governance._export import (
        manifest_path,
        public_key_from_b64,
        sign_export,
        verify_export,
    )
    from keel.governance._gates import (
        dataset_context,
        deployment_context,
        model_context,
        model_subject,
    )
    from keel.governance._governor import Governor, Write
    from keel.governance._identity import (
        OPERATOR_ROLE,
        ApiToken,
        IdentityService,
        IssuedToken,
        Principal,
        RoleBinding,
    )
    from keel.governance._mlbom import EnvironmentAudit, audit_packages, build_ml_bom, validate_bom
    from keel.governance._oidc import OidcVerifier
    from keel.governance._permissions import Permission, Role, allows
    from keel.governance._policy import PolicyService, PolicyVersion
    from keel.governance._policy_fixtures import FixtureResult, load_fixtures, run_fixtures
    from keel.governance._policy_rules import (
        GATES,
        Evaluation,
        PolicyDocument,
        evaluate,
        load_policy_file,
        parse_policy,
    )
    from keel.governance._projects import SYSTEM_PRINCIPAL, Project, ProjectService
    from keel.governance._quarantine import QuarantinedFile, SupplyChainService
    from keel.governance._residency import ResidencyResult, check_residency
    from keel.governance._scanning import ScanReport, scan_file
    from keel.governance._secrets import (
        EnvSecretProvider,
        FileSecretProvider,
        RedactingFilter,
        SecretResolver,
        VaultSecretProvider,
        is_secret_ref,
        redact,
        redact_mapping,
        redact_value,
        register_secret,
    )
    from keel.governance._supplychain import ModelSigner, SignatureInfo, version_payload

__all__ = [
    "GATES",
    "LAWFUL_BASES",
    "OPERATOR_ROLE",
    "SYSTEM_PRINCIPAL",
    "ApiToken",
    "ApprovalRequest",
    "ApprovalService",
    "AuditEvent",
    "AuditLog",
    "ChainBreak",
    "ChainReport",
    "ComplianceService",
    "Context",
    "EnvSecretProvider",
    "EnvironmentAudit",
    "Evaluation",
    "FileSecretProvider",
    "FixtureResult",
    "Governor",
    "IdentityService",
    "IssuedToken",
    "Location",
    "ModelSigner",
    "OidcVerifier",
    "Permission",
    "PolicyDecision",
    "PolicyDeniedError",
    "PolicyDocument",
    "PolicyService",
    "PolicyVersion",
    "Principal",
    "ProcessingRecord",
    "Project",
    "ProjectService",
    "QuarantinedFile",
    "RedactingFilter",
    "ResidencyResult",
    "RetentionItem",
    "Role",
    "RoleBinding",
    "ScanReport",
    "SecretResolver",
    "SignatureInfo",
    "SupplyChainService",
    "VaultSecretProvider",
    "Write",
    "allows",
    "audit_packages",
    "build_ml_bom",
    "check_residency",
    "dataset_context",
    "deployment_context",
    "evaluate",
    "is_secret_ref",
    "load_fixtures",
    "load_policy_file",
    "manifest_path",
    "model_context",
    "model_subject",
    "parse_policy",
    "public_key_from_b64",
    "redact",
    "redact_mapping",
    "redact_value",
    "register_secret",
    "retention_due",
    "run_fixtures",
    "scan_file",
    "sign_export",
    "validate_bom",
    "verify_export",
    "version_payload",
]

# The names load on first use (PEP 562), so a command imports only the modules it calls.
_LAZY: dict[str, str] = {
    "ApiToken": "keel.governance._identity",
    "ApprovalRequest": "keel.governance._approvals",
    "ApprovalService": "keel.governance._approvals",
    "AuditEvent": "keel.governance._audit",
    "AuditLog": "keel.governance._audit",
    "ChainBreak": "keel.governance._chain",
    "ChainReport": "keel.governance._audit",
    "ComplianceService": "keel.governance._compliance",
    "Context": "keel.governance._context",
    "EnvSecretProvider": "keel.governance._secrets",
    "EnvironmentAudit": "keel.governance._mlbom",
    "Evaluation": "keel.governance._policy_rules",
    "FileSecretProvider": "keel.governance._secrets",
    "FixtureResult": "keel.governance._policy_fixtures",
    "GATES": "keel.governance._policy_rules",
    "Governor": "keel.governance._governor",
    "IdentityService": "keel.governance._identity",
    "IssuedToken": "keel.governance._identity",
    "LAWFUL_BASES": "keel.governance._compliance",
    "Location": "keel.governance._compliance",
    "ModelSigner": "keel.governance._supplychain",
    "OPERATOR_ROLE": "keel.governance._identity",
    "OidcVerifier": "keel.governance._oidc",
    "Permission": "keel.governance._permissions",
    "PolicyDecision": "keel.governance._decisions",
    "PolicyDeniedError": "keel.governance._decisions",
    "PolicyDocument": "keel.governance._policy_rules",
    "PolicyService": "keel.governance._policy",
    "PolicyVersion": "keel.governance._policy",
    "Principal": "keel.governance._identity",
    "ProcessingRecord": "keel.governance._compliance",
    "Project": "keel.governance._projects",
    "ProjectService": "keel.governance._projects",
    "QuarantinedFile": "keel.governance._quarantine",
    "RedactingFilter": "keel.governance._secrets",
    "ResidencyResult": "keel.governance._residency",
    "RetentionItem": "keel.governance._compliance",
    "Role": "keel.governance._permissions",
    "RoleBinding": "keel.governance._identity",
    "SYSTEM_PRINCIPAL": "keel.governance._projects",
    "ScanReport": "keel.governance._scanning",
    "SecretResolver": "keel.governance._secrets",
    "SignatureInfo": "keel.governance._supplychain",
    "SupplyChainService": "keel.governance._quarantine",
    "VaultSecretProvider": "keel.governance._secrets",
    "Write": "keel.governance._governor",
    "allows": "keel.governance._permissions",
    "audit_packages": "keel.governance._mlbom",
    "build_ml_bom": "keel.governance._mlbom",
    "check_residency": "keel.governance._residency",
    "dataset_context": "keel.governance._gates",
    "deployment_context": "keel.governance._gates",
    "evaluate": "keel.governance._policy_rules",
    "is_secret_ref": "keel.governance._secrets",
    "load_fixtures": "keel.governance._policy_fixtures",
    "load_policy_file": "keel.governance._policy_rules",
    "manifest_path": "keel.governance._export",
    "model_context": "keel.governance._gates",
    "model_subject": "keel.governance._gates",
    "parse_policy": "keel.governance._policy_rules",
    "public_key_from_b64": "keel.governance._export",
    "redact": "keel.governance._secrets",
    "redact_mapping": "keel.governance._secrets",
    "redact_value": "keel.governance._secrets",
    "register_secret": "keel.governance._secrets",
    "retention_due": "keel.governance._compliance",
    "run_fixtures": "keel.governance._policy_fixtures",
    "scan_file": "keel.governance._scanning",
    "sign_export": "keel.governance._export",
    "validate_bom": "keel.governance._mlbom",
    "verify_export": "keel.governance._export",
    "version_payload": "keel.governance._supplychain",
}


__getattr__, __dir__ = lazy_names(__name__, __all__, _LAZY)
