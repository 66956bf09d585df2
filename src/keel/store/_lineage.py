"""Repository of lineage edges, with level-by-level graph walks (bounded)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from keel import clock
from keel.store._schema_lineage import LineageEdgeRow

__all__ = ["LineageRepository", "NodeKey"]

#: A node of the graph: (object type, object id).
NodeKey = tuple[str, str]

_CHUNK = 400


class LineageRepository:
    """Lineage edges of one project, inside the caller's transaction."""

    def __init__(self, session: Session, project_id: str) -> None:
        self._session = session
        self._project_id = project_id

    def add(
        self,
        upstream: NodeKey,
        downstream: NodeKey,
        relation: str,
        *,
        request_id: str,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """Record an edge; returns False when the same edge already exists."""
        existing = self._session.execute(
            select(LineageEdgeRow.id).where(
                LineageEdgeRow.project_id == self._project_id,
                LineageEdgeRow.src_type == upstream[0],
                LineageEdgeRow.src_id == upstream[1],
                LineageEdgeRow.dst_type == downstream[0],
                LineageEdgeRow.dst_id == downstream[1],
                LineageEdgeRow.relation == relation,
            )
        ).first()
        if existing is not None:
            return False
        self._session.add(
            LineageEdgeRow(
                project_id=self._project_id,
                src_type=upstream[0],
                src_id=upstream[1],
                dst_type=downstream[0],
                dst_id=downstream[1],
                relation=relation,
                details=details,
                created_at=clock.now(),
                request_id=request_id,
            )
        )
        self._session.flush()
        return True

    def edges_touching(self, nodes: Iterable[NodeKey], *, direction: str) -> list[LineageEdgeRow]:
        """Edges whose downstream (``direction='up'``) or upstream (``'down'``) is in ``nodes``."""
        keys = list(nodes)
        found: list[LineageEdgeRow] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            if direction == "up":
                match = or_(
                    *(
                        and_(LineageEdgeRow.dst_type == t, LineageEdgeRow.dst_id == i)
                        for t, i in chunk
                    )
                )
            else:
                match = or_(
                    *(
                        and_(LineageEdgeRow.src_type == t, LineageEdgeRow.src_id == i)
                        for t, i in chunk
                    )
                )
            stmt = (
                select(LineageEdgeRow)
                .where(LineageEdgeRow.project_id == self._project_id, match)
                .order_by(LineageEdgeRow.id)
            )
            found.extend(self._session.execute(stmt).scalars())
        return found
