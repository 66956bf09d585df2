"""Identity, authorization and the tamper-evident audit trail that every service goes through."""

from keel.governance._audit import AuditEvent, AuditLog, ChainReport
from keel.governance._chain import ChainBreak
from keel.governance._context import Context
from keel.governance._governor import Governor, Write
from keel.governance._permissions import Permission, Role, allows
from keel.governance._projects import SYSTEM_PRINCIPAL, Project, ProjectService

__all__ = [
    "SYSTEM_PRINCIPAL",
    "AuditEvent",
    "AuditLog",
    "ChainBreak",
    "ChainReport",
    "Context",
    "Governor",
    "Permission",
    "Project",
    "ProjectService",
    "Role",
    "Write",
    "allows",
]
