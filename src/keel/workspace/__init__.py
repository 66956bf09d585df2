"""The SDK entry point: ``keel.connect()`` wires settings, stores and services into a Workspace."""

from keel.workspace._connect import connect, local_principal, open_components
from keel.workspace._workspace import (
    Audit,
    Experiments,
    Lineage,
    Models,
    Projects,
    Runs,
    Workspace,
)

__all__ = [
    "Audit",
    "Experiments",
    "Lineage",
    "Models",
    "Projects",
    "Runs",
    "Workspace",
    "connect",
    "local_principal",
    "open_components",
]
