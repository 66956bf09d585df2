"""The lineage graph that links every object to what it was made from, for auditors to follow."""

from keel.lineage._graph import (
    NODE_TYPES,
    LineageEdge,
    LineageGraph,
    LineageService,
    Node,
    check_depth,
    parse_node,
)
from keel.lineage._openlineage import (
    OPENLINEAGE_SCHEMA_URL,
    NodeDescription,
    assertions_from_validation,
    build_run_events,
    export_openlineage,
    openlineage_schemas,
)

__all__ = [
    "NODE_TYPES",
    "OPENLINEAGE_SCHEMA_URL",
    "LineageEdge",
    "LineageGraph",
    "LineageService",
    "Node",
    "NodeDescription",
    "assertions_from_validation",
    "build_run_events",
    "check_depth",
    "export_openlineage",
    "openlineage_schemas",
    "parse_node",
]
