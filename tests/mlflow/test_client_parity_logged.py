"""The official MLflow client searches `keel server`'s MLflow 3 logged models as MLflow's.

Filters take attributes, params and tags (AND-ed), ``order_by`` orders, and pages hold the
matches (the filter is applied before paging, never after).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.server._live import LiveServer

mlflow = pytest.importorskip("mlflow")

from mlflow.exceptions import MlflowException  # noqa: E402

from mlflow import MlflowClient  # noqa: E402


@pytest.fixture
def client(mlflow_env: dict[str, str]) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_env["MLFLOW_TRACKING_URI"])


@pytest.fixture(scope="module")
def world(live: LiveServer) -> str:
    """An experiment with five logged models: a READY 'target' pair, others PENDING."""
    client = MlflowClient(tracking_uri=live.url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_TOKEN", live.admin_token)
        exp = client.create_experiment("logged-parity")
        for name, alpha, team in (
            ("target", "0.1", "ml"),
            ("other", "0.1", "data"),
            ("target", "0.5", None),
            ("zeta", "0.9", "ml"),
            ("alpha", "0.3", None),
        ):
            made = client.create_logged_model(
                exp,
                name=name,
                params={"alpha": alpha},
                tags={"team": team} if team else None,
                model_type="classifier" if name == "target" else "regressor",
            )
            if name == "target":
                client.finalize_logged_model(made.model_id, "READY")
    return exp


def _names(client: MlflowClient, exp: str, filter_string: str, **kwargs: Any) -> list[str]:
    found = client.search_logged_models([exp], filter_string=filter_string, **kwargs)
    return [m.name for m in found]


def test_logged_models_filter_on_attributes_params_and_tags(
    client: MlflowClient, world: str
) -> None:
    assert _names(client, world, "params.alpha = '0.1'") == ["other", "target"]
    assert _names(client, world, "status = 'READY'") == ["target", "target"]
    assert _names(client, world, "model_type = 'regressor' AND tags.team = 'ml'") == ["zeta"]
    assert _names(client, world, "tags.team != 'ml'") == ["other"]  # untagged never match
    assert _names(client, world, "name LIKE 'ta%' AND params.alpha != '0.1'") == ["target"]


def test_a_filtered_search_pages_through_its_matches(client: MlflowClient, world: str) -> None:
    pages, token = [], None
    while True:
        page = client.search_logged_models(
            [world], filter_string="name = 'target'", max_results=1, page_token=token
        )
        pages.append([m.name for m in page])
        token = page.token
        if not token:
            break
    assert pages == [["target"], ["target"]]


def test_logged_models_order_by_the_fields_asked(client: MlflowClient, world: str) -> None:
    by_name = [{"field_name": "name", "ascending": True}]
    assert _names(client, world, "", order_by=by_name) == [
        "alpha",
        "other",
        "target",
        "target",
        "zeta",
    ]
    by_type = [{"field_name": "model_type", "ascending": False}, {"field_name": "name"}]
    assert _names(client, world, "", order_by=by_type) == [
        "alpha",
        "other",
        "zeta",
        "target",
        "target",
    ]
    with pytest.raises(MlflowException) as caught:
        client.search_logged_models([world], order_by=[{"field_name": "bogus"}])
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "bogus" in str(caught.value)
