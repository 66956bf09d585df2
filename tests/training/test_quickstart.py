"""The quickstart's training pipeline: load, search, register, verify."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from keel.training import quickstart_pipeline
from keel.workspace import Workspace


def test_quickstart_trains_through_a_pipeline_on_a_builtin_dataset(local_ws: Workspace) -> None:
    result = quickstart_pipeline(local_ws, n_trials=4, trial_executor="inprocess")
    summary = result.summary
    assert summary["trials"] == 4
    assert summary["verified_formats"] == ["onnx", "skops"]
    assert summary["test_metrics"]["test.auc"] > 0.9
    version = local_ws.models.version(f"{result.model}:{result.version}")
    assert version.tags["keel.stage"] == "candidate"
    trials = local_ws.runs.search(
        "tags.`keel.hpo` = 'trial'", experiments=["quickstart"], max_results=10
    ).runs
    assert {t.parent_run_id for t in trials} == {result.search_run_id}
    run = local_ws.pipelines.get(result.pipeline_run_id)
    assert run.status.value == "FINISHED"


def test_quickstart_pipeline_trains_on_a_published_keel_dataset(
    local_ws: Workspace, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    frame = pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "noise": x[:, 2], "label": y})
    frame.write_csv(tmp_path / "rows.csv")
    raw = local_ws.datasets.ingest("rows", tmp_path / "rows.csv")
    local_ws.datasets.validate("rows", [{"kind": "row_count", "min": 100}], version=raw.version)
    published = local_ws.datasets.publish("rows", raw.version)
    result = quickstart_pipeline(
        local_ws,
        model_name="rows-model",
        dataset="rows",
        target="label",
        features=["a", "b", "c"],
        n_trials=3,
        trial_executor="inprocess",
        experiment="rows",
    )
    summary = result.summary
    assert summary["trials"] == 3
    assert summary["test_metrics"]["test.auc"] > 0.8
    search = local_ws.runs.get(result.search_run_id)
    refit = local_ws.runs.get(summary["refit_run_id"])
    assert refit.tags["keel.dataset_version"] == published.id
    assert refit.tags["keel.data.kind"] == "dataset_version"
    assert search.status.value == "FINISHED"
    assert refit.parent_run_id == search.id
    version = local_ws.models.version(f"rows-model:{result.version}")
    assert version.tags["keel.stage"] == "candidate"
    graph = local_ws.lineage.graph(f"dataset_version:{published.id}", direction="down")
    downstream = {str(e.downstream) for e in graph.downstream}
    assert {f"run:{refit.id}", f"pipeline_run:{result.pipeline_run_id}"} <= downstream
    run = local_ws.pipelines.get(result.pipeline_run_id)
    assert [ref["id"] for ref in run.datasets.values()] == [published.id]
