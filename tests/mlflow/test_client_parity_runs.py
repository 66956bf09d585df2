"""The official MLflow client gets from `keel server` the runs an MLflow server would give it.

Metrics carry the step and timestamp of their latest value, the run name is the
``mlflow.runName`` tag (so searches find it), and get-history-bulk-interval samples steps the
way MLflow does. The Python client never calls that endpoint (it samples get-history itself,
with MLflow's code; MLflow's UI calls it), so those tests call it over HTTP and compare the
answer with the client's own sampling of the same runs.
"""

from __future__ import annotations

import pytest

from tests.server._live import LiveServer

mlflow = pytest.importorskip("mlflow")

from mlflow.entities import Metric  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from mlflow import MlflowClient  # noqa: E402


@pytest.fixture
def client(mlflow_env: dict[str, str]) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_env["MLFLOW_TRACKING_URI"])


@pytest.fixture
def experiment(client: MlflowClient, request: pytest.FixtureRequest) -> str:
    return client.create_experiment(f"parity-{request.node.name}"[:120])


def _metrics(client: MlflowClient, run_id: str) -> dict[str, tuple[float, int, int]]:
    data = client.get_run(run_id).to_proto().data
    return {m.key: (m.value, m.step, m.timestamp) for m in data.metrics}


def test_a_metric_carries_the_step_and_time_of_its_latest_value(
    client: MlflowClient, experiment: str
) -> None:
    run_id = client.create_run(experiment).info.run_id
    client.log_metric(run_id, "loss", 0.5, timestamp=1_700_000_000_300, step=3)
    client.log_metric(run_id, "loss", 0.7, timestamp=1_700_000_000_900, step=1)  # older step
    client.log_batch(
        run_id, metrics=[Metric("acc", 0.1 * i, 1_700_000_000_000 + i, i) for i in range(5)]
    )
    # The latest value is the one at the highest step (then the latest time), with its own
    # step and timestamp, not step 0 at the run's start time.
    assert _metrics(client, run_id) == {
        "loss": (0.5, 3, 1_700_000_000_300),
        "acc": (pytest.approx(0.4), 4, 1_700_000_000_004),
    }
    found = client.search_runs([experiment], "metrics.acc > 0.3")
    assert [
        (m.key, m.step, m.timestamp) for m in found[0].to_proto().data.metrics if m.key == "acc"
    ] == [("acc", 4, 1_700_000_000_004)]


def test_the_run_name_is_a_tag_that_search_finds(client: MlflowClient, experiment: str) -> None:
    named = client.create_run(experiment, run_name="alpha").info.run_id
    unnamed = client.create_run(experiment).info.run_id
    generated = client.get_run(unnamed).info.run_name

    def by_tag(name: str) -> list[str]:
        return [
            r.info.run_id
            for r in client.search_runs([experiment], f"tags.`mlflow.runName` = '{name}'")
        ]

    assert by_tag("alpha") == [named]
    assert by_tag(generated) == [unnamed]  # a name the server chose is a tag as well
    client.update_run(named, name="beta")
    assert by_tag("beta") == [named] and by_tag("alpha") == []
    run = client.get_run(named)
    assert (run.info.run_name, run.data.tags["mlflow.runName"]) == ("beta", "beta")


def test_a_run_name_that_contradicts_its_tag_is_refused(
    client: MlflowClient, experiment: str
) -> None:
    with pytest.raises(MlflowException) as caught:
        client.create_run(experiment, run_name="a", tags={"mlflow.runName": "b"})
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "run_name='a'" in str(caught.value) and "mlflow.runName='b'" in str(caught.value)
    assert client.search_runs([experiment]) == []  # nothing was created
    same = client.create_run(experiment, run_name="a", tags={"mlflow.runName": "a"})
    assert same.info.run_name == "a"


def _server(live: LiveServer, run_ids: list[str], **params: int) -> dict[str, list[int]]:
    """The steps the server's get-history-bulk-interval returns (the call MLflow's UI makes)."""
    http = live.client(live.admin_token)
    answer = http.get(
        "/api/2.0/mlflow/metrics/get-history-bulk-interval",
        params={"run_ids": run_ids, "metric_key": "m", **params},
    )
    assert answer.status_code == 200, answer.text
    out: dict[str, list[int]] = {run_id: [] for run_id in run_ids}
    for metric in answer.json()["metrics"]:
        out[metric["run_id"]].append(int(metric["step"]))
    return out


def _mlflow(client: MlflowClient, run_ids: list[str], **params: int) -> dict[str, list[int]]:
    """The same sampling done by MLflow's own code (its store base class, over get-history)."""
    store = client._tracking_client.store
    got = store.get_metric_history_bulk_interval(
        run_ids=run_ids,
        metric_key="m",
        max_results=params.get("max_results", 2500),  # the server's default
        start_step=params.get("start_step"),
        end_step=params.get("end_step"),
    )
    out: dict[str, list[int]] = {run_id: [] for run_id in run_ids}
    for metric in got:
        out[metric.run_id].append(metric.step)
    return out


def test_bulk_interval_samples_steps_across_runs_as_mlflow_does(
    live: LiveServer, client: MlflowClient, experiment: str
) -> None:
    dense = client.create_run(experiment).info.run_id
    sparse = client.create_run(experiment).info.run_id
    client.log_batch(dense, metrics=[Metric("m", float(i), 1_000 + i, i) for i in range(100)])
    client.log_batch(sparse, metrics=[Metric("m", float(i), 1_000 + i, i) for i in (0, 37, 99)])
    client.log_metric(sparse, "m", 5.0, timestamp=2_000, step=99)  # two values at one step
    runs = [dense, sparse]
    # Ten steps sampled from the union of both runs' steps (0, 10, ..., 90) plus the last;
    # each run keeps its own first and last step; 37 is not a sampled step.
    sampled = _server(live, runs, max_results=10)
    assert sampled[dense] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99]
    assert sampled[sparse] == [0, 99, 99]
    assert sampled == _mlflow(client, runs, max_results=10)
    ranged = {"max_results": 3, "start_step": 30, "end_step": 60}
    assert _server(live, runs, **ranged) == {dense: [30, 40, 50, 60], sparse: []}
    assert _server(live, runs, **ranged) == _mlflow(client, runs, **ranged)


def test_bulk_interval_returns_up_to_2500_steps_by_default(
    live: LiveServer, client: MlflowClient, experiment: str
) -> None:
    run_id = client.create_run(experiment).info.run_id
    client.log_batch(run_id, metrics=[Metric("m", float(i), 1_000 + i, i) for i in range(400)])
    assert _server(live, [run_id]) == {run_id: list(range(400))} == _mlflow(client, [run_id])
    http = live.client(live.admin_token)
    for bad in (0, 2501):
        answer = http.get(
            "/api/2.0/mlflow/metrics/get-history-bulk-interval",
            params={"run_ids": [run_id], "metric_key": "m", "max_results": bad},
        )
        assert answer.status_code == 400
        assert answer.json() == {
            "error_code": "INVALID_PARAMETER_VALUE",
            "message": "max_results must be between 1 and 2500.",
        }


def test_keel_runs_read_through_mlflow_show_names_and_metric_steps(
    live: LiveServer, client: MlflowClient
) -> None:
    ctx = live.services.projects.context("user:owner", "default")
    run = live.services.runs.create(ctx, experiment="keel-native", name="native", capture_env=False)
    live.services.runs.log_metrics(ctx, run.id, {"auc": 0.9}, step=7, timestamp=1_700_000_000_007)
    got = client.get_run(run.id)
    assert got.info.run_name == "native" and got.data.tags["mlflow.runName"] == "native"
    assert _metrics(client, run.id) == {"auc": (0.9, 7, 1_700_000_000_007)}


def test_system_tags_find_runs_made_by_keels_own_sdk(
    client: MlflowClient, live: LiveServer
) -> None:
    # before: `tags.mlflow.runName` and `tags.mlflow.parentRunId` found only the runs the
    # MLflow API made (the SDK keeps the name and the parent as columns, not tags)
    from keel.workspace import connect

    live.token_for("admin", name="user:sdk")
    with connect(settings=live.settings, principal="user:sdk") as ws:
        with ws.runs.start(experiment="sdk-made", name="sdk-parent") as parent:
            pass
        with ws.runs.start(
            experiment="sdk-made", name="sdk-child", parent_run_id=parent.id
        ) as child:
            pass
    experiment = client.get_experiment_by_name("sdk-made")
    assert experiment is not None
    ids = [experiment.experiment_id]
    found = client.search_runs(ids, "tags.mlflow.runName = 'sdk-child'")
    assert [r.info.run_id for r in found] == [child.id]
    kids = client.search_runs(ids, f"tags.mlflow.parentRunId = '{parent.id}'")
    assert [r.info.run_id for r in kids] == [child.id]
    roots = client.search_runs(ids, "tags.mlflow.parentRunId IS NULL")
    assert [r.info.run_id for r in roots] == [parent.id]
    named = client.search_runs(ids, "tags.mlflow.runName LIKE 'sdk-%'")
    assert {r.info.run_id for r in named} == {parent.id, child.id}
