"""Lineage tables: one edge per "this object was made from that one" fact."""

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keel.store._schema import ID, SERIAL, Base

__all__ = ["LineageEdgeRow"]


class LineageEdgeRow(Base):
    """A directed edge ``upstream → downstream`` of the project's lineage graph."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        UniqueConstraint(
            "project_id",
            "src_type",
            "src_id",
            "dst_type",
            "dst_id",
            "relation",
            name="uq_lineage_edges_edge",
        ),
        Index(None, "project_id", "dst_type", "dst_id"),
        Index(None, "project_id", "src_type", "src_id"),
    )
    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    src_type: Mapped[str] = mapped_column(String(32))
    src_id: Mapped[str] = mapped_column(String(256))
    dst_type: Mapped[str] = mapped_column(String(32))
    dst_id: Mapped[str] = mapped_column(String(256))
    relation: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    request_id: Mapped[str] = mapped_column(ID)
