"""Hyperparameter search: child runs, the best registered as a candidate, pruning, parallelism."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.tree import DecisionTreeClassifier

from keel.errors import InvalidInputError, NotFoundError
from keel.pipelines import get_executor
from keel.training import SearchSpace, TrainingData, load_search_config, search
from keel.workspace import Workspace

TREE_SPACE = {
    "max_depth": {"type": "int", "low": 1, "high": 8},
    "min_samples_leaf": {"type": "int", "low": 1, "high": 30, "log": True},
    "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
}
GBM_SPACE = {
    "n_estimators": {"type": "int", "low": 20, "high": 60, "step": 10},
    "learning_rate": {"type": "float", "low": 0.001, "high": 0.5, "log": True},
    "max_depth": {"type": "categorical", "choices": [1, 2]},
}


def test_fifty_trials_are_child_runs_and_the_best_becomes_a_candidate(
    local_ws: Workspace, breast_cancer: TrainingData
) -> None:
    result = search(
        local_ws,
        DecisionTreeClassifier(),
        breast_cancer,
        TREE_SPACE,
        metric="valid.auc",
        n_trials=50,
        pruning=False,
        experiment="hpo",
        register_as="bc-tree",
    )
    assert len(result.trials) == 50
    children = local_ws.runs.search(
        "tags.`keel.hpo` = 'trial'", experiments=["hpo"], max_results=100
    ).runs
    assert len(children) == 50
    assert {c.parent_run_id for c in children} == {result.run_id}
    assert all(c.status.value == "FINISHED" for c in children)
    values = [t.value for t in result.trials if t.value is not None]
    assert result.best.value == max(values)
    best_child = local_ws.runs.get(result.best.run_id)
    assert best_child.metrics["valid.auc"] == pytest.approx(result.best.value)
    assert best_child.params["max_depth"] == str(result.best.params["max_depth"])
    # the refit of the best parameters is a child of the search, and registered as candidate
    refit = local_ws.runs.get(result.refit_run_id)
    assert refit.parent_run_id == result.run_id
    assert result.version is not None
    assert result.version.run_id == result.refit_run_id
    assert result.version.tags["keel.stage"] == "candidate"
    assert result.version.tags["keel.hpo.trial_run"] == result.best.run_id
    parent = local_ws.runs.get(result.run_id)
    assert parent.metrics["best.valid.auc"] == pytest.approx(result.best.value)
    assert "test.auc" in parent.metrics
    progress = local_ws.runs.metric_history(result.run_id, "hpo.best_value")
    assert [p.value for p in progress] == sorted(p.value for p in progress)  # never worse


def test_pruning_stops_unpromising_trials(local_ws: Workspace, breast_cancer: TrainingData) -> None:
    result = search(
        local_ws,
        GradientBoostingClassifier(),
        breast_cancer,
        GBM_SPACE,
        metric="valid.log_loss",
        n_trials=16,
        report_every=10,
        seed=1,
        experiment="pruning",
    )
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    assert pruned, "a median pruner over 16 trials with learning rates down to 0.001 prunes"
    run = local_ws.runs.get(pruned[0].run_id)
    assert run.tags["keel.hpo.state"] == "PRUNED"
    assert local_ws.runs.metric_history(pruned[0].run_id, "hpo.intermediate")
    assert "valid.log_loss" not in run.metrics
    assert result.best.state == "COMPLETE"


def test_trials_run_in_parallel_on_the_process_executor(
    local_ws: Workspace, breast_cancer: TrainingData, tmp_path: Path
) -> None:
    executor = get_executor("process", max_workers=2)
    try:
        result = search(
            local_ws,
            GradientBoostingClassifier(),
            breast_cancer,
            GBM_SPACE,
            n_trials=8,
            executor=executor,
            journal=tmp_path / "journal.log",
            experiment="parallel",
        )
    finally:
        executor.shutdown()
    assert len(result.trials) == 8
    assert {t.state for t in result.trials} <= {"COMPLETE", "PRUNED"}
    assert (tmp_path / "journal.log").stat().st_size > 0  # pruning went through the journal
    parent = local_ws.runs.get(result.run_id)
    assert parent.params["executor"] == "process"


def test_a_failing_trial_is_recorded_and_the_search_goes_on(
    local_ws: Workspace, breast_cancer: TrainingData
) -> None:
    space = {"max_depth": {"type": "categorical", "choices": [2, -5]}}
    result = search(
        local_ws, DecisionTreeClassifier(), breast_cancer, space, n_trials=8, pruning=False
    )
    failed = [t for t in result.trials if t.state == "FAIL"]
    assert failed
    run = local_ws.runs.get(failed[0].run_id)
    assert run.status.value == "FAILED"
    assert "max_depth" in run.tags["keel.error"]
    assert result.best.params["max_depth"] == 2


def test_the_search_gives_back_the_callers_optuna_log_level(
    local_ws: Workspace, breast_cancer: TrainingData
) -> None:
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        space = {"max_depth": {"type": "int", "low": 1, "high": 3}}
        search(local_ws, DecisionTreeClassifier(), breast_cancer, space, n_trials=2)
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(before)


def test_search_space_from_keel_yaml(tmp_path: Path) -> None:
    project = tmp_path / "keel.yaml"
    project.write_text(
        "hpo:\n"
        "  bc:\n"
        "    metric: valid.rmse\n"
        "    n_trials: 7\n"
        "    space:\n"
        "      alpha: {type: float, low: 0.001, high: 10, log: true}\n"
        "      fit_intercept: {type: categorical, choices: [true, false]}\n"
    )
    config = load_search_config("bc", project)
    assert config.direction == "minimize"
    assert config.n_trials == 7
    assert config.space.to_dict()["alpha"] == {
        "type": "float",
        "low": 0.001,
        "high": 10.0,
        "log": True,
    }
    with pytest.raises(NotFoundError, match="searches: bc"):
        load_search_config("other", project)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a": {"type": "float", "low": 1, "high": 0}}, "above high"),
        ({"a": {"type": "float", "low": 0, "high": 1, "log": True}}, "low must be > 0"),
        ({"a": {"type": "int", "low": 1, "high": 5, "choices": [1]}}, "does not take choices"),
        ({"a": {"type": "categorical", "choices": []}}, "non-empty list"),
        ({"a": {"type": "normal"}}, "int, float or categorical"),
        ({"a": [1, 2]}, "must be a mapping"),
    ],
)
def test_bad_search_spaces_say_what_is_wrong(spec: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SearchSpace.from_mapping(spec)


def test_the_objective_must_be_a_trial_metric(
    local_ws: Workspace, breast_cancer: TrainingData
) -> None:
    with pytest.raises(InvalidInputError, match="test split is kept"):
        search(local_ws, DecisionTreeClassifier(), breast_cancer, TREE_SPACE, metric="test.auc")


@pytest.fixture(scope="session")
def ray_executor() -> Iterator[object]:
    pytest.importorskip("ray")
    executor = get_executor("ray", max_workers=2)
    yield executor
    executor.shutdown()
    import ray

    ray.shutdown()


@pytest.mark.slow
def test_trials_run_on_ray(
    local_ws: Workspace, breast_cancer: TrainingData, ray_executor: object, tmp_path: Path
) -> None:
    result = search(
        local_ws,
        DecisionTreeClassifier(),
        breast_cancer,
        TREE_SPACE,
        n_trials=6,
        executor=ray_executor,  # type: ignore[arg-type]
        journal=tmp_path / "journal.log",
        pruning=False,
    )
    assert len(result.trials) == 6
    assert local_ws.runs.get(result.run_id).params["executor"] == "ray"
