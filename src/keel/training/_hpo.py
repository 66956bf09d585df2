"""Hyperparameter search with Optuna: TPE, pruning, trials as tracked child runs, in parallel.

The search runs Optuna's ask/tell loop in the calling process and each trial as a task on an
executor (in-process, process pool or Ray), keeping up to ``max_workers`` trials in flight.
Workers only compute: the calling process records every trial as a child run of the search
run (``parent_run_id``), so workers need no database connection.

Pruning: while a trial fits, its validation loss is reported to Optuna every ``report_every``
rounds (negated when the objective is maximised, so "higher is better" holds for the pruner);
a median pruner stops trials that fall behind. Trials in other processes reach the study
through Optuna's journal-file storage; in-process trials use the in-memory study directly.

The best trial is refitted (same parameters and seed) as a reproducible training run and, with
``register_as``, registered as a model version tagged ``keel.stage=candidate``.
"""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import concurrent.futures
import contextlib
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from keel.errors import InvalidInputError, MissingDependencyError
from keel.tracking import ActiveRun, Metric, ModelVersion
from keel.training._data import TrainingData, split_data
from keel.training._estimators import (
    Pruned,
    Reporter,
    build_estimator,
    describe_estimator,
    fit_with_curves,
    task_of,
    with_seed,
)
from keel.training._metrics import evaluate, greater_is_better
from keel.training._space import SearchSpace
from keel.training._train import train_model
from keel.types import RunStatus

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from keel.pipelines import Executor
    from keel.training._ports import WorkspacePort

__all__ = ["SearchResult", "TrialResult", "run_trial", "search"]

TrialState = Literal["COMPLETE", "PRUNED", "FAIL"]


@dataclass(frozen=True)
class _PruneLink:
    """How a trial reaches its study: the study itself (same process) or a journal file."""

    study: Any
    journal: str | None
    study_name: str
    trial_id: int
    sign: float
    n_startup_trials: int
    n_warmup_steps: int


@dataclass(frozen=True)
class _TrialTask:
    estimator: dict[str, Any]
    params: dict[str, Any]
    seed: int
    X_train: NDArray[Any]
    y_train: NDArray[Any]
    X_valid: NDArray[Any]
    y_valid: NDArray[Any]
    report_every: int
    prune: _PruneLink | None


@dataclass(frozen=True)
class _TrialOutcome:
    state: TrialState
    metrics: dict[str, float]
    curves: list[tuple[str, float, int]]
    intermediate: list[tuple[int, float]]
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class TrialResult:
    """One trial: its child run, parameters, objective value and state."""

    number: int
    run_id: str
    params: dict[str, Any]
    value: float | None
    state: TrialState
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    """A finished search.

    Attributes:
        run_id: the search (parent) run.
        best: the best completed trial.
        trials: every trial, in order.
        refit: the training run of the best parameters (reproducible, evaluated on test).
        version: the candidate model version, when ``register_as`` was given.
        seconds: wall time of the trials.
    """

    run_id: str
    best: TrialResult
    trials: list[TrialResult]
    refit_run_id: str
    metrics: dict[str, float]
    version: ModelVersion | None
    seconds: float

    @property
    def pruned(self) -> int:
        return sum(t.state == "PRUNED" for t in self.trials)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise MissingDependencyError(
            "optuna", extra="hpo", purpose="Hyperparameter search"
        ) from exc
    return optuna


def _pruner(optuna: Any, link: _PruneLink) -> Any:
    return optuna.pruners.MedianPruner(
        n_startup_trials=link.n_startup_trials, n_warmup_steps=link.n_warmup_steps
    )


def _reporter(link: _PruneLink | None, intermediate: list[tuple[int, float]]) -> Reporter:
    if link is None:

        def keep(step: int, loss: float) -> bool:
            intermediate.append((step, loss))
            return False

        return keep
    optuna = _optuna()
    if link.journal is None:
        study = link.study
    else:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage = JournalStorage(JournalFileBackend(link.journal))
        study = optuna.load_study(
            study_name=link.study_name, storage=storage, pruner=_pruner(optuna, link)
        )
    trial = optuna.trial.Trial(study, link.trial_id)

    def report(step: int, loss: float) -> bool:
        value = link.sign * loss
        intermediate.append((step, value))
        trial.report(value, step)
        return bool(trial.should_prune())

    return report


def run_trial(task: _TrialTask) -> _TrialOutcome:
    """Fit and evaluate one trial (runs in a worker; importable, so it pickles by name)."""
    started = time.perf_counter()
    intermediate: list[tuple[int, float]] = []
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    try:
        model = with_seed(build_estimator(task.estimator, **task.params), task.seed)
        if "n_jobs" in model.get_params(deep=False) and "n_jobs" not in task.params:
            model.set_params(n_jobs=1)
        reporter = _reporter(task.prune, intermediate)
        # Trials are the unit of parallelism: one thread each, or workers fight for cores.
        with threadpool_limits(limits=1):
            curves = fit_with_curves(
                model,
                task.X_train,
                task.y_train,
                task.X_valid,
                task.y_valid,
                reporter=reporter,
                report_every=task.report_every,
            )
    except Pruned:
        return _TrialOutcome("PRUNED", {}, [], intermediate, time.perf_counter() - started)
    except Exception as exc:
        text = "".join(traceback.format_exception(exc))[-4000:]
        return _TrialOutcome("FAIL", {}, [], intermediate, time.perf_counter() - started, text)
    kind = task_of(model)
    classes = list(model.classes_) if kind == "classification" else None
    metrics: dict[str, float] = {}
    for split, X, y in (
        ("train", task.X_train, task.y_train),
        ("valid", task.X_valid, task.y_valid),
    ):
        proba = model.predict_proba(X) if kind == "classification" else None
        found = evaluate(kind, y, model.predict(X), proba, classes)
        metrics.update({f"{split}.{k}": v for k, v in found.items()})
    return _TrialOutcome(
        "COMPLETE",
        metrics,
        [(c.key, c.value, c.step) for c in curves],
        intermediate,
        time.perf_counter() - started,
    )


def _executor(executor: Executor | str, max_workers: int | None) -> tuple[Executor, bool]:
    if isinstance(executor, str):
        from keel.pipelines import get_executor

        options = {} if max_workers is None else {"max_workers": max_workers}
        return get_executor(executor, **options), True
    return executor, False


@contextlib.contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    """Optuna's per-trial INFO lines off during a search, and the caller's level back after
    (Optuna's verbosity is process-wide)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def search(
    ws: WorkspacePort,
    estimator: Any,
    data: TrainingData,
    space: SearchSpace | Mapping[str, Any],
    *,
    metric: str = "valid.auc",
    direction: Literal["maximize", "minimize"] | None = None,
    n_trials: int = 50,
    executor: Executor | str = "inprocess",
    max_workers: int | None = None,
    pruning: bool = True,
    report_every: int = 10,
    seed: int = 0,
    test_size: float = 0.2,
    valid_size: float = 0.2,
    experiment: str = "Default",
    run_name: str | None = None,
    register_as: str | None = None,
    journal: str | Path | None = None,
) -> SearchResult:
    """Search hyperparameters of ``estimator`` with Optuna TPE; each trial a child run.

    Args:
        ws: the workspace.
        estimator: the base estimator; searched parameters override its parameters.
        data: the training data; trials fit on the train split and score on validation.
        space: a :class:`SearchSpace` or its mapping form (see :mod:`keel.training._space`).
        metric: the objective, a trial metric such as ``valid.auc`` or ``valid.rmse``.
        direction: ``maximize`` or ``minimize`` (default: from the metric's name).
        n_trials: how many trials.
        executor: an Executor, or ``inprocess``, ``process`` or ``ray``.
        max_workers: trials in flight (default: the executor's workers, else 2).
        pruning: stop unpromising trials early (median rule on the validation loss).
        report_every: rounds between reports to the pruner.
        seed: the sampler's seed, the split and every trial's ``random_state``.
        test_size: the held-out fraction; only the refitted best model sees it.
        valid_size: the validation fraction the objective is measured on.
        experiment: where the search run and its trials are logged.
        run_name: the search run's name.
        register_as: register the refitted best model under this name (tagged candidate).
        journal: the Optuna journal file for cross-process pruning (default: a temporary one).
    """
    optuna = _optuna()
    if n_trials < 1:
        raise InvalidInputError(f"n_trials must be at least 1; got {n_trials}.")
    if not metric.startswith(("valid.", "train.")):
        raise InvalidInputError(
            f"The objective '{metric}' must be a trial metric (valid.* or train.*); the test "
            "split is kept for the refitted best model."
        )
    if valid_size <= 0:
        raise InvalidInputError("A search needs a validation split: set valid_size > 0.")
    searched = space if isinstance(space, SearchSpace) else SearchSpace.from_mapping(space)
    goal = direction or ("maximize" if greater_is_better(metric) else "minimize")
    base = describe_estimator(estimator)
    splits = split_data(data, test_size=test_size, valid_size=valid_size, seed=seed)
    pool, owned = _executor(executor, max_workers)
    workers = max_workers or int(getattr(pool, "max_workers", 2))
    in_process = getattr(pool, "name", "") == "inprocess"
    with tempfile.TemporaryDirectory(prefix="keel-hpo-") as scratch, _quiet(optuna):
        journal_path = None
        if pruning and not in_process:
            journal_path = str(journal or Path(scratch) / "journal.log")
        storage: Any = None
        if journal_path is not None:
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            storage = JournalStorage(JournalFileBackend(journal_path))
        n_startup = max(5, workers)
        study = optuna.create_study(
            storage=storage,
            study_name=f"keel-{time.time_ns()}",
            direction=goal,
            sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=workers > 1),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=n_startup, n_warmup_steps=0)
            if pruning
            else optuna.pruners.NopPruner(),
        )
        params = {
            "estimator": base["class"],
            "metric": metric,
            "direction": goal,
            "n_trials": n_trials,
            "pruning": pruning,
            "seed": seed,
            "executor": getattr(pool, "name", type(pool).__name__),
            **{f"space.{k}": v for k, v in searched.to_dict().items()},
            **{f"model.{k}": v for k, v in base["params"].items()},
        }
        with ws.runs.start(
            experiment=experiment, name=run_name, params=params, tags={"keel.hpo": "search"}
        ) as parent:
            started = time.perf_counter()
            try:
                trials = _run_trials(
                    ws,
                    study,
                    pool,
                    parent=parent,
                    experiment=experiment,
                    searched=searched,
                    base=base,
                    data=data,
                    rows=(splits.train, splits.valid),
                    seed=seed,
                    metric=metric,
                    n_trials=n_trials,
                    # one trial more than workers waits in the pool's queue, so a worker that
                    # finishes starts the next trial at once instead of waiting while this
                    # process records the finished one (about a third of a trial's time)
                    in_flight=workers if in_process else workers + 1,
                    report_every=report_every,
                    prune=(pruning, journal_path, n_startup),
                )
            finally:
                if owned:
                    pool.shutdown(wait=True)
            seconds = time.perf_counter() - started
            done = [t for t in trials if t.state == "COMPLETE" and t.value is not None]
            if not done:
                raise InvalidInputError(
                    f"No trial of the search completed ({len(trials)} ran; see the failed child "
                    f"runs of run {parent.id}). Check the search space and the data."
                )
            pick = max if goal == "maximize" else min
            best = pick(done, key=lambda t: t.value if t.value is not None else 0.0)
            refit = train_model(
                ws,
                build_estimator(base, **best.params),
                data,
                experiment=experiment,
                run_name=f"{parent.info.name}-best",
                seed=seed,
                test_size=test_size,
                valid_size=valid_size,
                register_as=register_as,
                parent_run_id=parent.id,
                tags={"keel.hpo": "refit", "keel.hpo.trial": str(best.number)},
                model_tags={
                    "keel.stage": "candidate",
                    "keel.hpo.search_run": parent.id,
                    "keel.hpo.trial_run": best.run_id,
                },
            )
            parent.log_batch(
                [Metric(f"best.{metric}", float(best.value or 0.0))]
                + [Metric(k, v) for k, v in refit.metrics.items() if k.startswith("test.")],
                tags={
                    "keel.hpo.best_trial": str(best.number),
                    "keel.hpo.best_run": best.run_id,
                    "keel.hpo.refit_run": refit.run_id,
                    "keel.hpo.pruned": str(sum(t.state == "PRUNED" for t in trials)),
                },
            )
    return SearchResult(
        run_id=parent.id,
        best=best,
        trials=trials,
        refit_run_id=refit.run_id,
        metrics=refit.metrics,
        version=refit.version,
        seconds=seconds,
    )


def _run_trials(
    ws: WorkspacePort,
    study: Any,
    pool: Executor,
    *,
    parent: ActiveRun,
    experiment: str,
    searched: SearchSpace,
    base: dict[str, Any],
    data: TrainingData,
    rows: tuple[NDArray[Any], NDArray[Any]],
    seed: int,
    metric: str,
    n_trials: int,
    in_flight: int,
    report_every: int,
    prune: tuple[bool, str | None, int],
) -> list[TrialResult]:
    from optuna.trial import TrialState as OptunaState

    pruning, journal, n_startup = prune
    sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
    distributions = searched.distributions()
    train, valid = rows
    pending: dict[concurrent.futures.Future[_TrialOutcome], tuple[Any, Any]] = {}
    results: list[TrialResult] = []
    asked = 0
    best: float | None = None
    try:
        while asked < n_trials or pending:
            while asked < n_trials and len(pending) < in_flight:
                trial = study.ask(distributions)
                asked += 1
                run = ws.runs.start(
                    experiment=experiment,
                    name=f"trial-{trial.number:03d}",
                    params={**trial.params, "trial": trial.number},
                    tags={"keel.hpo": "trial", "keel.hpo.trial": str(trial.number)},
                    parent_run_id=parent.id,
                    capture_env=False,
                )
                link = None
                if pruning:
                    link = _PruneLink(
                        study=study if journal is None else None,
                        journal=journal,
                        study_name=study.study_name,
                        trial_id=trial._trial_id,
                        sign=sign,
                        n_startup_trials=n_startup,
                        n_warmup_steps=0,
                    )
                task = _TrialTask(
                    base,
                    dict(trial.params),
                    seed,
                    data.X[train],
                    data.y[train],
                    data.X[valid],
                    data.y[valid],
                    report_every,
                    link,
                )
                pending[pool.submit(run_trial, task)] = (trial, run)
            finished, _ = concurrent.futures.wait(
                list(pending), return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                trial, run = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker itself failed (not the trial's code)
                    text = "".join(traceback.format_exception(exc))[-4000:]
                    outcome = _TrialOutcome("FAIL", {}, [], [], 0.0, text)
                value = outcome.metrics.get(metric) if outcome.state == "COMPLETE" else None
                if outcome.state == "COMPLETE" and value is None:
                    outcome = _TrialOutcome(
                        "FAIL",
                        outcome.metrics,
                        outcome.curves,
                        outcome.intermediate,
                        outcome.seconds,
                        f"The trial logged no metric '{metric}' (it has: "
                        f"{', '.join(sorted(outcome.metrics))}).",
                    )
                if outcome.state == "COMPLETE":
                    study.tell(trial, value)
                else:
                    state = OptunaState.PRUNED if outcome.state == "PRUNED" else OptunaState.FAIL
                    study.tell(trial, state=state)
                if value is not None and (
                    best is None or (value > best if sign < 0 else value < best)
                ):
                    best = value
                points = [Metric(k, v, s) for k, v, s in outcome.curves]
                points += [Metric("hpo.intermediate", v, s) for s, v in outcome.intermediate]
                points += [Metric(k, v) for k, v in outcome.metrics.items()]
                points.append(Metric("hpo.seconds", outcome.seconds))
                tags: dict[str, str] = {"keel.hpo.state": outcome.state}
                if outcome.error:
                    tags["keel.error"] = outcome.error
                run.log_batch(points, tags=tags)
                run.end(RunStatus.FAILED if outcome.state == "FAIL" else RunStatus.FINISHED)
                if best is not None:
                    # step: how many trials have finished, so the history never gets worse
                    parent.log_metrics({"hpo.best_value": best}, step=len(results) + 1)
                results.append(
                    TrialResult(
                        number=trial.number,
                        run_id=run.id,
                        params=dict(trial.params),
                        value=value,
                        state=outcome.state,
                        metrics=outcome.metrics,
                    )
                )
    except BaseException:
        # the search itself failed or was interrupted: stop what is in flight, and end
        # the runs of those trials KILLED rather than leaving them RUNNING
        for future, (_trial, run) in pending.items():
            future.cancel()
            if not run.status.is_final:
                run.end(RunStatus.KILLED)
        raise
    return sorted(results, key=lambda t: t.number)
