"""The official MLflow client searches `keel server`'s experiments as it searches MLflow's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server._live import LiveServer

mlflow = pytest.importorskip("mlflow")

from mlflow.entities import ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from mlflow import MlflowClient  # noqa: E402


@pytest.fixture
def client(mlflow_env: dict[str, str]) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_env["MLFLOW_TRACKING_URI"])


@pytest.fixture(scope="module")
def made(live: LiveServer) -> dict[str, str]:
    """Three experiments (the module's server is shared): names → ids."""
    client = MlflowClient(tracking_uri=live.url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_TOKEN", live.admin_token)
        return {
            "ex-a": client.create_experiment("ex-a", tags={"team": "ml"}),
            "ex-b": client.create_experiment("ex-b", tags={"team": "data"}),
            "ex-c": client.create_experiment("ex-c"),
        }


def _names(client: MlflowClient, filter_string: str | None = None, **kwargs: Any) -> list[str]:
    found = client.search_experiments(filter_string=filter_string, **kwargs)
    return [e.name for e in found if e.name.startswith("ex-")]


def test_a_tag_comparison_never_matches_experiments_without_the_tag(
    client: MlflowClient, made: dict[str, str]
) -> None:
    assert _names(client, "tags.team != 'ml'") == ["ex-b"]  # not ex-c, which has no tag
    assert _names(client, "tags.team IS NULL") == ["ex-c"]
    assert _names(client, "tags.team IS NOT NULL", order_by=["name"]) == ["ex-a", "ex-b"]


def test_times_and_ids_filter_experiments(client: MlflowClient, made: dict[str, str]) -> None:
    created = {name: client.get_experiment(i).creation_time for name, i in made.items()}
    pivot = created["ex-b"]
    for text, keep in (
        (f"creation_time >= {pivot}", lambda t: t >= pivot),
        (f"creation_time < {pivot}", lambda t: t < pivot),
        (f"last_update_time != {pivot}", lambda t: t != pivot),
    ):
        expected = sorted(name for name, t in created.items() if keep(t))
        assert _names(client, text, order_by=["name"]) == expected, text
    wanted = f"experiment_id IN ('{made['ex-a']}', '{made['ex-c']}') AND name LIKE 'ex-%'"
    assert _names(client, wanted, order_by=["name ASC"]) == ["ex-a", "ex-c"]


def test_experiments_order_by_name_and_refuse_unknown_keys(
    client: MlflowClient, made: dict[str, str]
) -> None:
    assert _names(client, order_by=["name DESC"]) == ["ex-c", "ex-b", "ex-a"]
    assert _names(client, order_by=["attribute.name ASC"]) == ["ex-a", "ex-b", "ex-c"]
    for bad in ("bogus DESC", "name SIDEWAYS", "tags.team"):
        with pytest.raises(MlflowException) as caught:
            client.search_experiments(order_by=[bad])
        assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "Invalid order_by" in str(caught.value)
    with pytest.raises(MlflowException) as caught:
        client.search_experiments(filter_string="name = 'ex-a' OR name = 'ex-b'")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_deleted_experiments_are_searched_by_view_type(
    client: MlflowClient, made: dict[str, str]
) -> None:
    scratch = client.create_experiment("ex-scratch", tags={"team": "ml"})
    client.delete_experiment(scratch)
    assert _names(client, "tags.team = 'ml'") == ["ex-a"]
    assert _names(client, "tags.team = 'ml'", view_type=ViewType.DELETED_ONLY) == ["ex-scratch"]
    assert sorted(_names(client, "tags.team = 'ml'", view_type=ViewType.ALL)) == [
        "ex-a",
        "ex-scratch",
    ]
