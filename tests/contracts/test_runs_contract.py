"""The tracking contract, run on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import math

import pytest

from keel.errors import (
    AlreadyExistsError,
    ConflictError,
    FilterSyntaxError,
    InvalidInputError,
    NotFoundError,
)
from keel.tracking import Metric
from keel.types import RunStatus
from keel.workspace import Workspace


def test_run_lifecycle_records_params_metrics_tags_and_environment(ws: Workspace) -> None:
    with ws.runs.start(experiment="churn", name="first", params={"lr": 0.1}) as run:
        run.log_metrics({"auc": 0.91, "loss": 0.3}, step=3)
        run.log_metric("auc", 0.93, step=4)
        run.set_tag("team", "risk")
    got = ws.runs.get(run.id)
    assert got.status is RunStatus.FINISHED
    assert got.end_time is not None and got.end_time >= got.start_time
    assert got.params == {"lr": "0.1"}
    assert got.metrics == {"auc": 0.93, "loss": 0.3}
    assert got.tags == {"team": "risk"}
    assert got.environment is not None
    assert got.environment["python"].count(".") == 2
    assert "sqlalchemy" in got.environment["packages"]


def test_exception_in_block_marks_run_failed_and_propagates(ws: Workspace) -> None:
    with pytest.raises(RuntimeError, match="boom"), ws.runs.start(experiment="e") as run:
        raise RuntimeError("boom")
    assert ws.runs.get(run.id).status is RunStatus.FAILED


def test_metric_history_keeps_every_value_in_step_order(ws: Workspace) -> None:
    with ws.runs.start(experiment="e", capture_env=False) as run:
        run.log_batch(
            [Metric("loss", 1.0 / (s + 1), s, 1000 + s) for s in reversed(range(50))]
            + [Metric("loss", math.nan, 50, 2000), Metric("loss", math.inf, 51, 2001)]
        )
    history = ws.runs.metric_history(run.id, "loss")
    assert [m.step for m in history] == list(range(52))
    assert history[0].value == 1.0
    assert math.isnan(history[50].value)
    assert history[51].value == math.inf
    assert ws.runs.get(run.id).metrics["loss"] == math.inf


def test_latest_metric_is_highest_step_not_last_logged(ws: Workspace) -> None:
    with ws.runs.start(experiment="e", capture_env=False) as run:
        run.log_metrics({"acc": 0.9}, step=10)
        run.log_metrics({"acc": 0.5}, step=2)
    assert ws.runs.get(run.id).metrics["acc"] == 0.9


def test_params_are_immutable_and_a_bad_batch_writes_nothing(ws: Workspace) -> None:
    with ws.runs.start(experiment="e", capture_env=False, params={"depth": 3}) as run:
        run.log_params({"depth": 3})  # same value again is fine
        with pytest.raises(ConflictError, match="immutable"):
            run.log_batch([Metric("m", 1.0, 0)], params={"depth": 4, "new": 1})
        with pytest.raises(InvalidInputError, match="must be a number"):
            run.log_batch([Metric("ok", 1.0, 0), Metric("bad", "x", 0)])  # type: ignore[arg-type]
    got = ws.runs.get(run.id)
    assert got.params == {"depth": "3"}
    assert got.metrics == {}


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "semi;colon", "x" * 251])
def test_bad_metric_keys_are_refused_with_the_rule(ws: Workspace, key: str) -> None:
    with (
        ws.runs.start(experiment="e", capture_env=False) as run,
        pytest.raises(InvalidInputError, match="key"),
    ):
        run.log_metrics({key: 1.0})


def test_unknown_run_and_experiment_give_not_found(ws: Workspace) -> None:
    with pytest.raises(NotFoundError, match="keel runs list"):
        ws.runs.get("01NOSUCHRUN0000000000000000")
    with pytest.raises(NotFoundError, match="does not exist"):
        ws.experiments.get_by_name("nope")


def test_duplicate_experiment_names_are_refused(ws: Workspace) -> None:
    ws.experiments.create("dup")
    with pytest.raises(AlreadyExistsError, match="already exists"):
        ws.experiments.create("dup")


def test_search_filters_orders_and_pages(ws: Workspace) -> None:
    ids = {}
    for i in range(12):
        model = "rf" if i % 2 else "lr"
        with ws.runs.start(
            experiment="search", capture_env=False, params={"model": model, "n": i}
        ) as run:
            run.log_metrics({"auc": i / 20})
            run.set_tag("parity", "odd" if i % 2 else "even")
        ids[i] = run.id
    page = ws.runs.search(
        "metrics.auc > 0.2 and params.model = 'rf'", order_by="metrics.auc DESC", max_results=3
    )
    assert [r.id for r in page.runs] == [ids[11], ids[9], ids[7]]
    assert page.next_page_token is not None
    rest = ws.runs.search(
        "metrics.auc > 0.2 and params.model = 'rf'",
        order_by="metrics.auc DESC",
        max_results=3,
        page_token=page.next_page_token,
    )
    assert [r.id for r in rest.runs] == [ids[5]]
    assert rest.next_page_token is None
    numeric = ws.runs.search("params.n >= 10", order_by=["params.n ASC"])
    assert [r.id for r in numeric.runs] == [ids[10], ids[11]]
    tagged = ws.runs.search("tags.parity = 'even' and params.n < 3")
    assert {r.id for r in tagged.runs} == {ids[0], ids[2]}
    either = ws.runs.search("params.n = 1 or (params.n = 2 and not metrics.auc < 0)")
    assert {r.id for r in either.runs} == {ids[1], ids[2]}
    assert ws.runs.search("metrics.missing > 0").runs == []


def test_search_matches_nan_only_by_equality_and_in_lists(ws: Workspace) -> None:
    ids = {}
    for name, loss in (("nan", math.nan), ("one", 1.0), ("two", 2.0)):
        with ws.runs.start(experiment="nan", name=name, capture_env=False) as run:
            run.log_metrics({"loss": loss})
        ids[name] = run.id

    def found(text: str) -> set[str]:
        return {r.name for r in ws.runs.search(text).runs}

    assert found("metrics.loss = NaN") == {"nan"}
    assert found("metrics.loss != NaN") == {"one", "two"}
    assert found("metrics.loss IN (NaN, 2)") == {"nan", "two"}
    assert found("metrics.loss NOT IN (NaN, 2)") == {"one"}
    assert found("metrics.loss IN (NaN)") == {"nan"}
    assert found("metrics.loss NOT IN (1)") == {"two"}  # only a list holding NaN speaks of NaN
    with pytest.raises(FilterSyntaxError, match="neither less nor greater"):
        ws.runs.search("metrics.loss > NaN")


def test_search_values_are_bound_not_spliced(ws: Workspace) -> None:
    with ws.runs.start(
        experiment="inj", capture_env=False, params={"x": "a'; DROP TABLE runs; --"}
    ):
        pass
    found = ws.runs.search("params.x = 'a''; DROP TABLE runs; --'")
    assert len(found.runs) == 1
    assert len(ws.runs.search().runs) == 1  # the table is still there


def test_malformed_filter_says_where(ws: Workspace) -> None:
    with pytest.raises(FilterSyntaxError, match="column"):
        ws.runs.search("metrics.auc >> 1")


def test_delete_and_restore_hide_and_show_runs(ws: Workspace) -> None:
    with ws.runs.start(experiment="e", capture_env=False) as run:
        pass
    ws.runs.delete(run.id)
    assert ws.runs.search().runs == []
    assert len(ws.runs.search(include_deleted=True).runs) == 1
    with pytest.raises(ConflictError, match="restore"):
        ws.runs.log_metrics(run.id, {"x": 1.0})
    ws.runs.restore(run.id)
    assert [r.id for r in ws.runs.search().runs] == [run.id]


def test_artifacts_round_trip_through_the_encrypted_blob_store(ws: Workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "report.txt"
    source.write_text("validation report: all good\n")
    with ws.runs.start(experiment="e", capture_env=False) as run:
        art = run.log_artifact(source, name="reports/report.txt")
    assert art.digest.startswith("sha256:")
    assert ws.runs.read_artifact(run.id, "reports/report.txt") == source.read_bytes()
    assert [a.path for a in ws.runs.artifacts(run.id)] == ["reports/report.txt"]
    for bad in ("../escape.txt", "/etc/passwd", "a\\b", "C:/x"):
        with pytest.raises(InvalidInputError):
            ws.runs.log_artifact(run.id, source, name=bad)
