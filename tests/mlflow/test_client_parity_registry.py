"""The official MLflow client gets from `keel server`'s registry what an MLflow server answers.

Searches of registered models and versions filter and order as MLflow's do; versions are
created only in existing models; alias names follow MLflow's rules (``latest`` and ``v<N>``
are reserved, ``@latest`` reads the highest version); deleting an alias that is not set is a
no-op.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keel.tracking import dump_skops
from tests.server._live import LiveServer

mlflow = pytest.importorskip("mlflow")

from mlflow.exceptions import MlflowException  # noqa: E402

from mlflow import MlflowClient  # noqa: E402

MODEL = "mv-model"


@pytest.fixture
def client(mlflow_env: dict[str, str]) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_env["MLFLOW_TRACKING_URI"])


@pytest.fixture(scope="module")
def source(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A run holding a skops model under ``model/``, and the model's versions 1-3 made from it."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    folder = tmp_path_factory.mktemp("model")
    (folder / "model.skops").write_bytes(dump_skops(LogisticRegression(max_iter=300).fit(x, y)))
    client = MlflowClient(tracking_uri=live.url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_TOKEN", live.admin_token)
        run_id = client.create_run(client.create_experiment("registry-parity")).info.run_id
        client.log_artifact(run_id, str(Path(folder, "model.skops")), artifact_path="model")
        client.create_registered_model(MODEL)
        for _ in range(3):
            client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id)
        client.set_model_version_tag(MODEL, "2", "t", "1")
    return run_id, f"runs:/{run_id}/model"


def _refused(call: Any) -> str:
    with pytest.raises(MlflowException) as caught:
        call()
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE", str(caught.value)
    return str(caught.value)


def test_registered_models_order_by_the_key_asked(client: MlflowClient) -> None:
    for name in ("rm-a", "rm-c", "rm-b"):
        client.create_registered_model(name)
    found = list(client.search_registered_models("name LIKE 'rm-%'"))
    assert [m.name for m in found] == ["rm-a", "rm-b", "rm-c"]  # by name by default
    newest_first = sorted(found, key=lambda m: (-m.last_updated_timestamp, m.name))
    for key in ("last_updated_timestamp DESC", "timestamp DESC"):
        got = client.search_registered_models("name LIKE 'rm-%'", order_by=[key])
        assert [m.name for m in got] == [m.name for m in newest_first], key
    assert "Invalid order_by" in _refused(
        lambda: client.search_registered_models(order_by=["bogus DESC"])
    )
    assert "at most 1000" in _refused(lambda: client.search_registered_models(max_results=1001))


def test_a_registered_model_tag_comparison_skips_untagged_models(client: MlflowClient) -> None:
    client.create_registered_model("tagged-a", tags={"team": "ml"})
    client.create_registered_model("tagged-b", tags={"team": "data"})
    client.create_registered_model("tagged-c")
    found = client.search_registered_models("name LIKE 'tagged-%' AND tags.team != 'ml'")
    assert [m.name for m in found] == ["tagged-b"]
    both = client.search_registered_models("name IN ('tagged-a', 'tagged-c')")
    assert [m.name for m in both] == ["tagged-a", "tagged-c"]


def test_model_versions_filter_and_order_as_mlflow_does(
    client: MlflowClient, source: tuple[str, str]
) -> None:
    def versions(filter_string: str, **kwargs: Any) -> list[str]:
        return [v.version for v in client.search_model_versions(filter_string, **kwargs)]

    named = f"name = '{MODEL}'"
    assert versions(named) == ["3", "2", "1"]  # newest update first
    assert versions(named, order_by=["version_number ASC"]) == ["1", "2", "3"]
    assert versions(f"{named} AND version_number > 1") == ["3", "2"]
    assert versions(f"{named} AND version_number <= 2", order_by=["version_number"]) == ["1", "2"]
    assert versions(f"run_id IN ('{source[0]}') AND version_number = 2") == ["2"]
    assert versions("tags.t != '2'") == ["2"]  # versions without the tag never match
    created = sorted(
        client.search_model_versions(named), key=lambda v: (v.creation_timestamp, v.version)
    )
    assert versions(named, order_by=["creation_timestamp ASC", "version_number ASC"]) == [
        v.version for v in created
    ]
    assert "Invalid order_by" in _refused(
        lambda: client.search_model_versions(named, order_by=["run_id DESC"])
    )
    assert "version_number" in _refused(
        lambda: client.search_model_versions("version_number = 'two'")
    )


def test_a_version_of_a_model_that_does_not_exist_is_refused(
    client: MlflowClient, source: tuple[str, str]
) -> None:
    with pytest.raises(MlflowException) as caught:
        client.create_model_version("never-created", source[1], run_id=source[0])
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "never-created" in str(caught.value)
    assert client.search_registered_models("name = 'never-created'") == []


def test_alias_names_follow_mlflows_rules(client: MlflowClient, source: tuple[str, str]) -> None:
    for reserved in ("latest", "Latest", "v2", "V10"):
        message = _refused(
            lambda alias=reserved: client.set_registered_model_alias(MODEL, alias, "1")
        )
        assert "reserved" in message and "champion" in message
    assert client.get_registered_model(MODEL).aliases == {}
    client.set_registered_model_alias(MODEL, "champion", "1")
    assert client.get_model_version_by_alias(MODEL, "latest").version == "3"  # the highest
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"
    client.delete_registered_model_alias(MODEL, "never-set")  # already gone: no error
    client.delete_registered_model_alias(MODEL, "champion")
    client.delete_registered_model_alias(MODEL, "champion")
    assert client.get_registered_model(MODEL).aliases == {}
    with pytest.raises(MlflowException) as caught:
        client.delete_registered_model_alias("no-such-model", "champion")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_archiving_others_needs_an_active_stage(
    client: MlflowClient, source: tuple[str, str]
) -> None:
    message = _refused(
        lambda: client.transition_model_version_stage(
            MODEL, "1", "Archived", archive_existing_versions=True
        )
    )
    assert "Staging or Production" in message
    assert client.get_model_version(MODEL, "1").current_stage == "None"
    moved = client.transition_model_version_stage(MODEL, "1", "Archived")
    assert moved.current_stage == "Archived"


def test_a_deleted_versions_number_is_never_given_again(
    client: MlflowClient, source: tuple[str, str], live: LiveServer
) -> None:
    # before: the next version was max + 1, so deleting version 3 gave the next model "3"
    run_id, uri = source
    client.create_registered_model("hw-model")
    for _ in range(3):
        client.create_model_version("hw-model", uri, run_id=run_id)
    client.delete_model_version("hw-model", "3")
    assert client.create_model_version("hw-model", uri, run_id=run_id).version == "4"
    client.delete_model_version("hw-model", "4")
    client.delete_model_version("hw-model", "2")
    assert client.create_model_version("hw-model", uri, run_id=run_id).version == "5"
    numbers = sorted(int(v.version) for v in client.search_model_versions("name = 'hw-model'"))
    assert numbers == [1, 5]


def test_a_deployed_version_is_not_deleted(
    client: MlflowClient, source: tuple[str, str], live: LiveServer
) -> None:
    from keel.workspace import connect
    from tests.serving.conftest import register_forest

    live.token_for("admin", name="user:deployer")  # an admin of the project
    with connect(settings=live.settings, principal="user:deployer") as ws:
        register_forest(ws, trees=3, seed=0, alias="champion")  # the model "churn", version 1
        ws.deployments.deploy("churn:1", environment="staging")
    with pytest.raises(MlflowException) as caught:
        client.delete_model_version("churn", "1")
    assert caught.value.error_code == "INVALID_STATE"
    assert "deployed (churn-staging" in str(caught.value)
    assert [v.version for v in client.search_model_versions("name = 'churn'")] == ["1"]
