"""Training on a Keel dataset version: its id is recorded, linked in lineage, reproducible."""

from __future__ import annotations

import polars as pl
import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier

from keel.errors import NotFoundError
from keel.lineage import Node
from keel.training import load_dataset, reproduce_run, train_model
from keel.workspace import Workspace


def _frame() -> pl.DataFrame:
    bunch = load_wine()
    names = [n.replace("/", "_") for n in bunch.feature_names]
    return pl.DataFrame(bunch.data, schema=names).with_columns(pl.Series("cultivar", bunch.target))


def test_training_on_a_dataset_version_records_and_links_it(local_ws: Workspace) -> None:
    version = local_ws.datasets.ingest("wine", _frame())
    with pytest.raises(NotFoundError, match="no published version"):
        load_dataset(local_ws.datasets, "wine", target="cultivar")
    data = load_dataset(local_ws.datasets, "wine", target="cultivar", require_published=False)
    assert data.dataset_version == version.id
    assert data.X.shape == (178, 13)
    result = train_model(
        local_ws, RandomForestClassifier(n_estimators=10), data, register_as="wine"
    )
    run = local_ws.runs.get(result.run_id)
    assert run.tags["keel.dataset_version"] == version.id
    assert result.version is not None
    assert result.version.tags["keel.dataset_version"] == version.id
    assert local_ws.models.package("wine")["dataset_version"] == version.id
    graph = local_ws.lineage.graph(Node("run", result.run_id), depth=1, direction="up")
    assert Node("dataset_version", version.id) in graph.nodes
    report = reproduce_run(local_ws, result.run_id)
    assert report.matches
    assert report.data_digest == data.source.digest
