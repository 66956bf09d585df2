"""Identity, authorization and the tamper-evident audit trail that every service goes through."""

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
from keel.governance._export import manifest_path, public_key_from_b64, sign_export, verify_export
from keel.governance._gates import dataset_context, deployment_context, model_context, model_subject
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
from keel.governance._policy import PolicyService, PolicyVersion, load_policy_file
from keel.governance._policy_fixtures import FixtureResult, load_fixtures, run_fixtures
from keel.governance._policy_rules import GATES, Evaluation, PolicyDocument, evaluate, parse_policy
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
