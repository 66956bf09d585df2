"""Roles and the permissions they grant: pure data and one pure check (fails closed)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = ["ROLE_PERMISSIONS", "Permission", "Role", "allows"]


class Permission(StrEnum):
    """Every action a service can authorize."""

    PROJECT_READ = "project.read"
    PROJECT_ADMIN = "project.admin"
    EXPERIMENT_READ = "experiment.read"
    EXPERIMENT_WRITE = "experiment.write"
    RUN_READ = "run.read"
    RUN_WRITE = "run.write"
    MODEL_READ = "model.read"
    MODEL_WRITE = "model.write"
    MODEL_PROMOTE = "model.promote"
    DATASET_READ = "dataset.read"
    DATASET_WRITE = "dataset.write"
    DATASET_PUBLISH = "dataset.publish"
    DATASET_CLASSIFY = "dataset.classify"
    PIPELINE_READ = "pipeline.read"
    PIPELINE_RUN = "pipeline.run"
    DEPLOYMENT_READ = "deployment.read"
    DEPLOYMENT_WRITE = "deployment.write"
    DEPLOYMENT_PROMOTE = "deployment.promote"
    MONITOR_READ = "monitor.read"
    MONITOR_WRITE = "monitor.write"
    POLICY_READ = "policy.read"
    POLICY_WRITE = "policy.write"
    APPROVAL_DECIDE = "approval.decide"
    LINEAGE_READ = "lineage.read"
    COMPLIANCE_ADMIN = "compliance.admin"
    AUDIT_READ = "audit.read"


class Role(StrEnum):
    """Project roles, from least to most powerful (auditor is read-only plus the audit log)."""

    VIEWER = "viewer"
    AUDITOR = "auditor"
    CONTRIBUTOR = "contributor"
    MAINTAINER = "maintainer"
    ADMIN = "admin"
    OWNER = "owner"


_READ = frozenset(
    {
        Permission.PROJECT_READ,
        Permission.EXPERIMENT_READ,
        Permission.RUN_READ,
        Permission.MODEL_READ,
        Permission.DATASET_READ,
        Permission.PIPELINE_READ,
        Permission.DEPLOYMENT_READ,
        Permission.MONITOR_READ,
        Permission.POLICY_READ,
        Permission.LINEAGE_READ,
    }
)
_CONTRIBUTE = _READ | {
    Permission.EXPERIMENT_WRITE,
    Permission.RUN_WRITE,
    Permission.MODEL_WRITE,
    Permission.DATASET_WRITE,
    Permission.PIPELINE_RUN,
    Permission.MONITOR_WRITE,
}
_MAINTAIN = _CONTRIBUTE | {
    Permission.MODEL_PROMOTE,
    Permission.DATASET_PUBLISH,
    Permission.DATASET_CLASSIFY,
    Permission.DEPLOYMENT_WRITE,
    Permission.DEPLOYMENT_PROMOTE,
    Permission.APPROVAL_DECIDE,
}
_ADMIN = _MAINTAIN | {
    Permission.PROJECT_ADMIN,
    Permission.AUDIT_READ,
    Permission.POLICY_WRITE,
    Permission.COMPLIANCE_ADMIN,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _READ,
    Role.AUDITOR: _READ | {Permission.AUDIT_READ},  # reads everything, changes nothing
    Role.CONTRIBUTOR: frozenset(_CONTRIBUTE),
    Role.MAINTAINER: frozenset(_MAINTAIN),
    Role.ADMIN: frozenset(_ADMIN),
    Role.OWNER: frozenset(_ADMIN),
}


def allows(roles: Iterable[str], permission: Permission) -> bool:
    """True when any of ``roles`` grants ``permission``; unknown roles grant nothing."""
    for name in roles:
        try:
            role = Role(name)
        except ValueError:
            continue
        if permission in ROLE_PERMISSIONS[role]:
            return True
    return False
