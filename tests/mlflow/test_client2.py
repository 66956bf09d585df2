"""The last MLflow 2.x client (cached venv, see _venv.py) against `keel server`, unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from keel.tracking import dump_skops
from tests.mlflow._run import run_scenario
from tests.mlflow._venv import ensure_mlflow2_venv
from tests.server._live import LiveServer, live_server


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, Any]]]:
    python = ensure_mlflow2_venv()
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    home = tmp_path_factory.mktemp("mlflow2")
    x, y = load_iris(return_X_y=True)
    skops_file = home / "model.skops"
    skops_file.write_bytes(dump_skops(LogisticRegression(max_iter=300).fit(x, y)))
    with live_server(home / "home") as live:
        yield live, run_scenario(python, live, home / "facts.json", str(skops_file))


@pytest.fixture(scope="module")
def facts(world: tuple[LiveServer, dict[str, Any]]) -> dict[str, Any]:
    return world[1]


def test_the_client_is_mlflow_2(facts: dict[str, Any]) -> None:
    assert facts["version"].startswith("2.")


def test_tracking_round_trips(facts: dict[str, Any]) -> None:
    assert facts["experiment"]["same"] is True
    assert facts["missing_experiment"] == {"none": True}
    run = facts["run"]
    assert run["params"] == {"alpha": "0.5", "depth": "3", "kind": "rf", "batch_param": "x"}
    assert run["metrics"] == {"loss": 0.25, "odd": None, "acc": 0.8, "f1": 0.7, "batch": 49.0}
    assert [tuple(x) for x in facts["history"]] == [(0, 0.9), (1, 0.5), (2, 0.25)]
    assert facts["artifacts"] == ["config.json", "inputs", "notes"]
    assert facts["artifact_text"] == "hello keel"


def test_search_delete_and_restore(facts: dict[str, Any]) -> None:
    assert facts["search"] == ["high", "mid"]
    assert facts["search_asc"] == ["low", "mid", "high"]
    assert facts["after_delete"] == ["mid", "low"] and facts["after_restore"] == 3
    assert (facts["exp_deleted"], facts["exp_restored"]) == ("deleted", "active")


def test_autolog(facts: dict[str, Any]) -> None:
    assert facts["autolog"]["params"]["C"] == "0.5"
    assert "training_score" in facts["autolog"]["metrics"]


def test_a_pickled_model_goes_to_quarantine_not_the_registry(
    world: tuple[LiveServer, dict[str, Any]],
) -> None:
    live, facts = world
    refused = facts["pickle_refused"]
    assert refused["code"] == "PERMISSION_DENIED"
    assert "pickle" in refused["message"] and "serialization_format='skops'" in refused["message"]
    ctx = live.services.projects.context("user:owner", "default")
    assert live.services.supplychain is not None
    held = live.services.supplychain.quarantined(ctx)
    assert [q.filename for q in held] == ["model.pkl"]
    assert held[0].status == "quarantined"


def test_a_safe_model_registers_and_downloads_by_alias(
    world: tuple[LiveServer, dict[str, Any]],
) -> None:
    live, facts = world
    assert facts["alias"]["version"] == "1" and facts["alias"]["tags"] == {"validated": "yes"}
    assert facts["registered"]["aliases"] == {"champion": "1"}
    assert facts["alias_files"] == ["model.skops"]
    assert facts["alias_deleted"]["code"] == "RESOURCE_DOES_NOT_EXIST"
    ctx = live.services.projects.context("user:owner", "default")
    version = live.services.models.version(ctx, "iris-v2", 1)
    assert version.format == "skops"
    model = live.services.models.load_sklearn(ctx, "iris-v2", 1)
    assert list(model.classes_) == [0, 1, 2]
