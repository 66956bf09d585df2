"""The official MLflow 3 client, unchanged, against `keel server`: what it logs lands in Keel."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from keel.lineage import Node
from keel.store import AuditQuery
from tests.mlflow._run import run_scenario
from tests.server._live import LiveServer, live_server

pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, Any]]]:
    home = tmp_path_factory.mktemp("mlflow3")
    with live_server(home / "home") as live:
        yield live, run_scenario(sys.executable, live, home / "facts.json")


@pytest.fixture(scope="module")
def facts(world: tuple[LiveServer, dict[str, Any]]) -> dict[str, Any]:
    return world[1]


def test_the_client_is_mlflow_3(facts: dict[str, Any]) -> None:
    assert facts["version"].startswith("3.")


def test_set_experiment_creates_once_then_finds_it(facts: dict[str, Any]) -> None:
    assert facts["experiment"]["same"] is True
    assert (
        facts["experiment"]["artifact_location"] == f"mlflow-artifacts:/{facts['experiment']['id']}"
    )
    assert facts["experiment_tags"] == {"team": "ml"}
    assert facts["missing_experiment"] == {"none": True}  # get-by-name's 404 reads as None


def test_params_metrics_tags_and_batches_round_trip(facts: dict[str, Any]) -> None:
    run = facts["run"]
    assert run["name"] == "first" and run["status"] == "FINISHED"
    assert run["params"] == {"alpha": "0.5", "depth": "3", "kind": "rf", "batch_param": "x"}
    assert run["metrics"] == {"loss": 0.25, "odd": None, "acc": 0.8, "f1": 0.7, "batch": 49.0}
    assert run["tags"]["stage"] == "test" and run["tags"]["a"] == "1"
    assert run["tags"]["batch_tag"] == "y" and "b" not in run["tags"]  # deleted tag is gone
    assert [tuple(x) for x in facts["history"]] == [(0, 0.9), (1, 0.5), (2, 0.25)]
    assert facts["batch_history"] == 50


def test_artifacts_upload_list_and_download(facts: dict[str, Any]) -> None:
    assert facts["run"]["artifact_uri"].startswith("mlflow-artifacts:/")
    assert facts["artifacts"] == ["config.json", "inputs", "notes"]
    assert facts["artifacts_notes"] == ["notes/hello.txt"]
    assert facts["artifact_text"] == "hello keel"
    assert facts["artifact_dict"] == {"k": [1, 2]}


def test_search_filters_orders_and_pages(facts: dict[str, Any]) -> None:
    assert facts["search"] == ["high", "mid"]
    assert facts["search_asc"] == ["low", "mid", "high"]
    assert facts["search_pages"] == [2, True]


def test_delete_restore_and_rename(facts: dict[str, Any]) -> None:
    assert facts["after_delete"] == ["mid", "low"]
    assert facts["deleted_stage"] == "deleted"
    assert facts["after_restore"] == 3
    assert (facts["exp_deleted"], facts["exp_restored"]) == ("deleted", "active")
    assert facts["exp_renamed"] == "renamed-v3"


def test_a_changed_param_is_refused_with_mlflow_error(facts: dict[str, Any]) -> None:
    assert facts["param_change"]["code"] == "INVALID_PARAMETER_VALUE"
    assert "already logged" in facts["param_change"]["message"]


def test_sklearn_autolog_logs_params_and_metrics(facts: dict[str, Any]) -> None:
    assert facts["autolog"]["params"]["C"] == "0.5"
    assert "training_score" in facts["autolog"]["metrics"]


def test_log_model_registers_aliases_and_loads_by_alias(facts: dict[str, Any]) -> None:
    assert facts["logged_model_uri"].startswith("models:/m-")
    assert facts["alias"]["version"] == "1"
    assert facts["alias"]["tags"] == {"validated": "yes"}
    assert facts["registered"] == {
        "description": "iris classifier",
        "tags": {"owner": "team-a"},
        "aliases": {"champion": "1"},
    }
    assert facts["search_models"] == ["iris-v3"]
    assert facts["search_versions"] == ["1"]
    assert facts["alias_predictions_match"] is True
    assert facts["alias_deleted"]["code"] == "RESOURCE_DOES_NOT_EXIST"


def test_what_mlflow_logged_is_keels_own(world: tuple[LiveServer, dict[str, Any]]) -> None:
    live, facts = world
    ctx = live.services.projects.context("user:owner", "default")
    run = live.services.runs.get(ctx, facts["run"]["id"])
    assert run.params["alpha"] == "0.5" and run.metrics["acc"] == 0.8
    assert live.services.runs.read_artifact(ctx, run.id, "notes/hello.txt") == b"hello keel"
    version = live.services.models.version(ctx, "iris-v3", 1)
    assert version.format == "skops"  # a safe format Keel can validate, gate and deploy
    assert version.run_id is not None
    model = live.services.models.load_sklearn(ctx, "iris-v3", 1)
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    assert (model.predict(x) == y).mean() > 0.9
    registered = live.services.audit.events(
        AuditQuery(project_id=ctx.project_id, action="model.register", object_id=version.id)
    )
    assert [e.principal for e in registered] == ["user:admin"]
    logged = live.services.audit.events(
        AuditQuery(project_id=ctx.project_id, action="run.log_batch", object_id=run.id)
    )
    assert len(logged) >= 5  # params, metrics and batches, each an audited write


def test_lineage_links_the_run_to_the_version(world: tuple[LiveServer, dict[str, Any]]) -> None:
    live, _ = world
    ctx = live.services.projects.context("user:owner", "default")
    version = live.services.models.version(ctx, "iris-v3", 1)
    graph = live.services.lineage.graph(ctx, Node("model_version", version.id), depth=1)
    assert Node("run", str(version.run_id)) in graph.nodes
