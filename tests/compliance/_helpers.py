"""Helpers shared by the compliance tests: a dataset of customers and a model trained on it."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import inspect, text

from keel.lineage import Node
from keel.store._schema import Base
from keel.tracking import ModelVersion
from keel.workspace import Workspace

ALICE = "alice.subject@example.org"


def orders(*customers: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer": list(customers),
            "amount": [float(i + 1) for i in range(len(customers))],
            "note": [f"order of {c}" for c in customers],
        }
    )


def setup_orders(ws: Workspace) -> None:
    """orders v1 (alice twice, bob, carol) then v2 = v1 + dave; declared with a subject column."""
    ws.datasets.ingest("orders", orders(ALICE, "bob@example.org", "carol@example.org", ALICE))
    ws.datasets.ingest("orders", orders("dave@example.org"), mode="append")
    ws.compliance.declare(
        "orders",
        purpose="billing",
        lawful_basis="contract",
        categories=["contact"],
        subject_column="customer",
        retention_days=30,
    )


def train_on(ws: Workspace, dataset: str, version: int, model: str = "churn") -> ModelVersion:
    """A run that used the version, and a model version registered from the run."""
    with ws.runs.start(experiment="train", capture_env=False) as run:
        pass
    ws.datasets.record_use(dataset, version, Node("run", run.id))
    return ws.models.register(model, artifact=b"model-bytes", format="onnx", run_id=run.id)


def dump_metadata(ws: Workspace) -> str:
    """Every row of every table, as text (to prove a value is stored nowhere)."""
    engine = ws._governor.db.engine
    names = set(inspect(engine).get_table_names())
    chunks: list[str] = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in names:
                rows: Any = conn.execute(text(f'SELECT * FROM "{table.name}"')).fetchall()
                chunks.extend(repr(tuple(r)) for r in rows)
    return "\n".join(chunks)
