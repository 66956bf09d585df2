"""The lineage graph that links every object to what it was made from, for auditors to follow."""

from keel.lineage._graph import (
    NODE_TYPES,
    LineageEdge,
    LineageGraph,
    LineageService,
    Node,
    parse_node,
)

__all__ = ["NODE_TYPES", "LineageEdge", "LineageGraph", "LineageService", "Node", "parse_node"]
