"""The same assertions, local and remote: datasets, model packages, deployments, pipelines, runs.

Each test takes ``either``: a local workspace on SQLite, or ``keel.connect(url, token=...)`` on
a live server over the same kind of store. What a caller sees must not depend on which.
"""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import platform
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import keel
from keel.errors import ConflictError, InvalidInputError, NotFoundError
from keel.pipelines import Firing, PipelineRun, Trigger
from keel.serving import Deployment, DeploymentRevision
from keel.tracking import LoadedModel, ModelVersion
from keel.workspace import Workspace
from keel.workspace._remote import RemoteWorkspace
from tests.conftest import make_settings
from tests.server._live import live_server
from tests.serving.conftest import training_data


@pytest.fixture(params=["local", "remote"])
def either(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    if request.param == "local":
        workspace = keel.connect(settings=make_settings(tmp_path / "home"), principal="user:t")
        try:
            yield workspace
        finally:
            workspace.close()
        return
    with live_server(tmp_path / "home") as server:
        workspace = keel.connect(server.url, token=server.token_for("admin", name="user:t"))
        try:
            yield workspace
        finally:
            workspace.close()


def _frame(n: int = 1000) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": list(range(n)),
            "amount": [float(i % 97) * 10.5 for i in range(n)],
            "grade": [("A", "B", "C")[i % 3] for i in range(n)],
        }
    )


def test_a_frame_is_ingested_and_read_back_the_same_way(either: Workspace) -> None:
    frame = _frame()
    v1 = either.datasets.ingest("loans", frame, part_rows=300)
    assert (v1.version, v1.row_count, len(v1.parts)) == (1, 1000, 4)
    assert v1.schema == [("id", "Int64"), ("amount", "Float64"), ("grade", "String")]
    assert v1.source == {"kind": "frame", "type": "DataFrame", "mode": "new"}
    assert either.datasets.ingest("loans", frame, part_rows=300).id == v1.id
    assert either.datasets.read("loans").equals(frame)
    assert either.datasets.read("loans", 1, format="pandas")["id"].tolist() == list(range(1000))
    assert either.datasets.read("loans", "latest", format="arrow").num_rows == 1000
    parts = list(either.datasets.iter_frames("loans"))
    assert [p.height for p in parts] == [300, 300, 300, 100]
    assert pl.concat(parts).equals(frame)
    assert either.datasets.version("loans", 1).digest == v1.digest
    assert either.datasets.get("loans").latest == 1
    assert [d.name for d in either.datasets.list()] == ["loans"]
    empty = pl.DataFrame(schema={"id": pl.Int64, "grade": pl.String})
    made = either.datasets.ingest("empty", empty)
    assert (made.row_count, made.schema) == (0, [("id", "Int64"), ("grade", "String")])
    assert either.datasets.read("empty").schema == empty.schema


def test_a_csv_file_and_a_folder_are_ingested_from_paths(either: Workspace, tmp_path: Path) -> None:
    csv = tmp_path / "loans.csv"
    csv.write_text("id;amount\n1;2.5\n2;3.5\n", encoding="utf-8")
    version = either.datasets.ingest("csv", csv, delimiter=";")
    assert version.row_count == 2 and version.source is not None
    assert version.source["kind"] == "csv" and version.source["url"] == str(csv)
    assert either.datasets.read("csv")["amount"].to_list() == [2.5, 3.5]
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha\n", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("beta\nbeta\n", encoding="utf-8")
    files = either.datasets.ingest("docs", folder)
    assert files.kind == "files" and files.row_count == 2
    manifest = either.datasets.read("docs")
    assert manifest["path"].to_list() == ["a.txt", "sub/b.txt"]
    assert manifest["text_lines"].to_list() == [1, 2]
    import fsspec

    with fsspec.open("memory://parity/loans.csv", "wb") as out:
        out.write(b"id,amount\n1,2.5\n2,oops\n3,4.0\n")
    remote_file = either.datasets.ingest(
        "mem", "memory://parity/loans.csv", schema={"amount": "float64"}
    )
    assert (remote_file.row_count, remote_file.rejected_rows) == (2, 1)
    assert remote_file.source is not None
    assert remote_file.source["url"] == "memory://parity/loans.csv"
    assert either.datasets.rejects("mem")["line"].to_list() == [3]
    with pytest.raises(NotFoundError, match="No file at"):
        either.datasets.ingest("nope", tmp_path / "missing.csv")


def test_a_function_transform_and_record_use_keep_lineage(either: Workspace) -> None:
    either.datasets.ingest("loans", _frame(100))
    derived = either.datasets.transform("loans", function=lambda f: f.filter(pl.col("id") < 10))
    assert derived.version == 2 and derived.row_count == 10
    assert derived.transform is not None
    assert derived.transform["function"].endswith("<lambda>")
    if isinstance(either, RemoteWorkspace):
        # the server did not run it: recorded as the client's claim, by whom, of which file
        assert derived.transform["kind"] == "client_function"
        assert derived.transform["principal"] == "user:t"
        assert derived.transform["upload_digest"].startswith("sha256:")
    else:
        assert derived.transform["kind"] == "function"
    with pytest.raises(InvalidInputError, match="not both"):
        either.datasets.transform("loans")
    per_part = either.datasets.transform(
        "loans", function=lambda f: f.filter(pl.col("id") < 5), per_part=True, version=1
    )
    assert per_part.row_count == 5
    (only,) = list(either.datasets.iter_frames("loans", 1, columns=["id"]))
    assert only.columns == ["id"] and only.height == 100
    with pytest.raises(InvalidInputError, match="has no column 'nope'"):
        either.datasets.iter_frames("loans", 1, columns=["nope"])
    with either.runs.start(experiment="e") as run:
        pass
    either.datasets.record_use("loans", 2, f"run:{run.id}")
    graph = either.lineage.graph(f"run:{run.id}", direction="up", depth=1)
    assert [str(e.upstream) for e in graph.upstream] == [f"dataset_version:{derived.id}"]


def test_a_packaged_model_is_logged_and_loaded_in_every_format(either: Workspace) -> None:
    from sklearn.ensemble import RandomForestClassifier

    X, y = training_data(0)
    model = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0).fit(X, y)
    version = either.models.log_model(model, name="churn", sample=X[:50], seed=7)
    assert isinstance(version, ModelVersion) and version.format == "skops"
    assert version.tags["keel.formats"] == "skops,onnx" and version.tags["keel.seed"] == "7"
    native = either.models.load("churn")
    assert isinstance(native, LoadedModel) and native.format == "skops"
    assert np.array_equal(native.predict(X[:20]), model.predict(X[:20]))
    onnx = either.models.load("churn:1", format="onnx")
    assert onnx.format == "onnx"
    assert np.allclose(onnx.predict_proba(X[:20]), model.predict_proba(X[:20]), atol=1e-4)
    assert native.package["environment"]["python"] == platform.python_version()
    with pytest.raises(NotFoundError, match="not stored as 'xgboost-json'"):
        either.models.load("churn", format="xgboost-json")
    with pytest.raises(keel.errors.PermissionDeniedError, match="arbitrary code"):
        either.models.load("churn", format="pickle")


def test_deployments_move_and_keep_their_revisions(either: Workspace) -> None:
    from tests.serving.conftest import register_forest

    register_forest(either, trees=3, seed=0, alias="champion")
    register_forest(either, trees=3, seed=1, alias="challenger")
    first = either.deployments.deploy("churn@champion", environment="production")
    assert isinstance(first, Deployment) and first.state.primary == 1
    rolling = either.deployments.deploy(
        "churn@challenger", environment="production", strategy="canary", steps=[5, 25, 100]
    )
    assert rolling.state.canary_weight == 0.05 and rolling.state.candidate == 2
    with pytest.raises(ConflictError, match="rolling out version 2"):
        either.deployments.deploy("churn@challenger", environment="production")
    stepped = either.deployments.promote("churn-production")
    assert stepped.state.canary_weight == 0.25
    back = either.deployments.rollback("churn-production", reason="errors")
    assert back.state.phase == "rolled_back" and back.state.primary == 1
    assert either.deployments.get("churn-production").state == back.state
    revisions = either.deployments.revisions("churn-production")
    assert all(isinstance(r, DeploymentRevision) for r in revisions)
    assert [r.action for r in revisions] == ["deploy", "deploy", "promote", "rollback"]
    assert revisions[-1].reason == "errors"
    assert [d.name for d in either.deployments.list(environment="production")] == [
        "churn-production"
    ]
    assert either.deployments.list(environment="staging") == []
    logged = either.deployments.read_predictions("churn-production")
    assert logged.height == 0 and "prediction_id" in logged.columns
    with pytest.raises(NotFoundError, match="does not exist"):
        either.deployments.get("nope")


def test_runs_record_the_environment_of_the_code(either: Workspace) -> None:
    with either.runs.start(experiment="env") as run:
        run.log_metrics({"m": 1.0})
    got = either.runs.get(run.id)
    assert got.environment is not None
    assert got.environment["python"] == platform.python_version()
    assert "polars" in got.environment["packages"]
    with either.runs.start(experiment="env", capture_env=False) as bare:
        pass
    assert either.runs.get(bare.id).environment is None


def test_triggers_are_created_fired_and_listed(either: Workspace) -> None:
    made = either.pipelines.create_trigger(
        "nightly", pipeline="train", kind="schedule", spec={"cron": "0 3 * * *"}
    )
    assert isinstance(made, Trigger) and made.next_fire_at is not None
    fired = either.pipelines.fire("nightly", cause={"why": "test"})
    assert isinstance(fired, Firing) and fired.status == "pending"
    assert fired.cause["why"] == "test" and fired.cause["kind"] == "manual"
    assert [f.id for f in either.pipelines.firings(trigger="nightly")] == [fired.id]
    assert [t.name for t in either.pipelines.triggers()] == ["nightly"]
    either.pipelines.create_trigger(
        "on-data", pipeline="train", kind="dataset", spec={"dataset": "d"}
    )
    events = either.pipelines.fire_event("dataset", "d", event_id="d@1")
    assert [f.trigger for f in events] == ["on-data"]
    assert either.pipelines.fire_event("dataset", "d", event_id="d@1") == []
    assert either.pipelines.runs() == []
    with pytest.raises(NotFoundError, match="does not exist"):
        either.pipelines.get("01ABCDEFGHJKMNPQRSTVWXYZ00")


def test_pipeline_runs_made_beside_the_store_are_read_remotely(tmp_path: Path) -> None:
    from tests.pipelines._steps import arith

    with live_server(tmp_path / "home") as server:
        owner = keel.connect(settings=server.settings, principal="user:owner")
        try:
            result = owner.pipelines.run(arith, params={"n": 3})
        finally:
            owner.close()
        remote = keel.connect(server.url, token=server.token_for("viewer", name="user:v"))
        try:
            got = remote.pipelines.get(result.id)
            assert isinstance(got, PipelineRun) and got.status.value == "FINISHED"
            assert sorted(s.name for s in got.steps) == ["count", "source", "squares", "total"]
            assert remote.pipelines.read_output(result.id, "total") == 5
            assert remote.pipelines.read_output(result.id, "source") == [0, 1, 2]
            assert [r.id for r in remote.pipelines.runs(pipeline="arith")] == [result.id]
            with pytest.raises(InvalidInputError, match="never receives code"):
                remote.pipelines.run(arith)
            with pytest.raises(keel.errors.PermissionDeniedError):
                remote.pipelines.cancel(result.id)
        finally:
            remote.close()


def test_the_server_refuses_a_package_that_does_not_reproduce_its_example(
    tmp_path: Path,
) -> None:
    from dataclasses import replace

    from sklearn.linear_model import LogisticRegression

    from keel.tracking._packaging import build_package

    X, y = training_data(1)
    package = build_package(LogisticRegression().fit(X, y), sample=X[:20], onnx=False)
    example = package.sidecar["example"]
    stored = example["predictions"]["skops"]
    flipped = {**stored, "prediction": [1 - p for p in stored["prediction"]]}
    lying = {**package.sidecar, "example": {**example, "predictions": {"skops": flipped}}}
    malformed = {**package.sidecar, "example": {**example, "predictions": {"skops": {"x": 1}}}}
    with live_server(tmp_path / "home") as server:
        remote = keel.connect(server.url, token=server.token_for("admin", name="user:t"))
        try:
            with pytest.raises(InvalidInputError, match="does not verify"):
                remote.models._s.register_package(remote.ctx, "m", replace(package, sidecar=lying))
            with pytest.raises(InvalidInputError, match="malformed"):
                remote.models._s.register_package(
                    remote.ctx, "m", replace(package, sidecar=malformed)
                )
            with pytest.raises(NotFoundError):
                remote.models.get("m")
            good = remote.models._s.register_package(remote.ctx, "m", package)
            assert good.version == 1
        finally:
            remote.close()


def test_versions_download_as_streamed_parquet_or_csv_and_local_only_work_refuses(
    tmp_path: Path,
) -> None:
    import io

    from keel.serving import ServeOptions

    with live_server(tmp_path / "home") as server:
        token = server.token_for("admin", name="user:t")
        remote = keel.connect(server.url, token=token)
        try:
            remote.datasets.ingest("loans", _frame(1000), part_rows=300)
            base = "/api/v1/projects/default/datasets/loans/versions/1/data"
            client = server.client(token)
            parquet = client.get(base)
            assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
            import pyarrow.parquet as pq

            assert pq.ParquetFile(io.BytesIO(parquet.content)).num_row_groups == 4
            csv = client.get(base, params={"format": "csv"})
            assert csv.headers["content-disposition"] == 'attachment; filename="loans-1.csv"'
            assert pl.read_csv(io.BytesIO(csv.content)).equals(_frame(1000))
            assert client.get(base, params={"format": "xml"}).status_code == 400
            beside = "beside the store"
            with pytest.raises(InvalidInputError, match=beside):
                remote.deployments.server(ServeOptions(models=("churn@champion",)))
            with pytest.raises(InvalidInputError, match=beside):
                remote.pipelines.resume("01ABCDEFGHJKMNPQRSTVWXYZ00")
            with pytest.raises(InvalidInputError, match=beside):
                remote.datasets.gc()
            with pytest.raises(keel.errors.PermissionDeniedError, match="never leaves"):
                remote.datasets.gate.pseudonym_key(remote.ctx)
        finally:
            remote.close()


def test_signed_push_deliveries_fire_commit_triggers_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import hmac
    import json

    monkeypatch.setenv("KEEL_SECRET_WEBHOOK_DEFAULT_GITHUB", "s3cret")
    push = {"ref": "refs/heads/main", "after": "a" * 40, "repository": {"full_name": "acme/churn"}}
    body = json.dumps(push).encode()
    signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-github-event": "push",
        "x-hub-signature-256": signature,
    }
    url = "/api/v1/projects/default/pipelines/webhooks/github"
    with live_server(tmp_path / "home") as server:
        remote = keel.connect(server.url, token=server.token_for("admin", name="user:t"))
        try:
            remote.pipelines.create_trigger(
                "on-push", pipeline="train", kind="commit", spec={"repository": "acme/churn"}
            )
            client = server.client()
            refused = client.post(url, content=body, headers=headers)  # no role yet: fail closed
            assert refused.status_code == 403
            remote.projects.grant("service:webhook-github", "contributor")
            fired = client.post(url, content=body, headers=headers)
            assert fired.status_code == 202, fired.text
            assert [f["trigger"] for f in fired.json()] == ["on-push"]
            again = client.post(url, content=body, headers=headers)
            assert (again.status_code, again.json()) == (202, [])
            forged = {**headers, "x-hub-signature-256": "sha256=" + "0" * 64}
            assert client.post(url, content=body, headers=forged).status_code == 401
            other = "/api/v1/projects/nope/pipelines/webhooks/github"
            assert client.post(other, content=body, headers=headers).status_code == 401
            firings = remote.pipelines.firings(trigger="on-push")
            assert len(firings) == 1 and firings[0].cause["commit"] == "a" * 40
            server.audit_flush()
            principals = {e.principal for e in remote.audit.events(action="http.post")}
            assert "service:webhook-github" in principals
        finally:
            remote.close()
