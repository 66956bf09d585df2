"""Retraining policies: on a trigger, retrain, compare with the champion, maybe register.

"On trigger X, retrain on the newest published data, evaluate against the current champion on
the same data, register the result as ``challenger`` if it wins by the declared margin."

:func:`decide` is the pure rule (no I/O); :func:`retrain` does the work with the services.
"""

# ruff: noqa: N803, N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError, NotFoundError
from keel.tracking import Metric, ModelVersion
from keel.training._data import DatasetsPort, TrainingData, load_dataset
from keel.training._estimators import build_estimator
from keel.training._metrics import evaluate, greater_is_better
from keel.training._train import SPEC_ARTIFACT, train_model
from keel.types import validate_name

if TYPE_CHECKING:
    from keel.pipelines import Pipeline
    from keel.training._ports import WorkspacePort

__all__ = [
    "Decision",
    "RetrainOutcome",
    "RetrainingPolicy",
    "champion_estimator",
    "decide",
    "retrain",
    "retraining_pipeline",
]


@dataclass(frozen=True)
class RetrainingPolicy:
    """What a pipeline declares about retraining one registered model.

    Attributes:
        model: the registered model.
        trigger: what starts it (``schedule:<cron>``, ``dataset:<name>``, ``alert:<rule>``,
            ``commit:<repo>``); recorded with every retraining.
        metric: the held-out metric compared (``auc``, ``f1``, ``rmse``, …).
        margin: how much better the new model must be (absolute, or a fraction of the
            champion's value with ``relative``).
        relative: read ``margin`` as a fraction of the champion's value.
        recent: judge on the held-out rows among the newest ``recent`` fraction of the data
            (rows in version order: an appended version ends with its newest rows), so a
            retraining after drift is judged where the drift is; None: every held-out row.
        champion_alias: the alias of the model to beat.
        challenger_alias: the alias given to a winner.
    """

    model: str
    trigger: str
    metric: str = "auc"
    margin: float = 0.0
    relative: bool = False
    recent: float | None = None
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"

    def __post_init__(self) -> None:
        validate_name(self.model, what="model name")
        validate_name(self.champion_alias, what="alias")
        validate_name(self.challenger_alias, what="alias")
        if not isinstance(self.margin, int | float) or not math.isfinite(self.margin):
            raise InvalidInputError(f"margin must be a finite number; got {self.margin!r}.")
        if self.recent is not None and (
            isinstance(self.recent, bool)
            or not isinstance(self.recent, int | float)
            or not 0 < self.recent <= 1
        ):
            raise InvalidInputError(
                f"recent is the newest fraction of the rows to judge on, in (0, 1]; got "
                f"{self.recent!r}. Use e.g. 0.4, or None for every held-out row."
            )
        if self.margin < 0:
            raise InvalidInputError(
                f"margin is {self.margin}; use 0 or more (how much better a new model must be)."
            )
        if not self.trigger:
            raise InvalidInputError("A retraining policy names its trigger (e.g. 'dataset:x').")

    @property
    def higher_is_better(self) -> bool:
        return greater_is_better(self.metric)


@dataclass(frozen=True)
class Decision:
    """The verdict of comparing a retrained model with the champion on the same data."""

    register: bool
    reason: str
    challenger: float
    champion: float | None
    improvement: float | None
    required: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(policy: RetrainingPolicy, *, challenger: float, champion: float | None) -> Decision:
    """The pure margin rule: register when the new model beats the champion by the margin.

    The improvement is measured in the metric's good direction (lower RMSE is an
    improvement). A model must improve strictly, and by at least the margin; with no champion
    the new model is registered. A NaN score never wins.
    """
    if math.isnan(challenger):
        return Decision(False, "the new model's score is NaN", challenger, champion, None, 0.0)
    if champion is None:
        return Decision(True, "there is no champion to beat", challenger, None, None, 0.0)
    if math.isnan(champion):
        return Decision(True, "the champion's score is NaN", challenger, champion, None, 0.0)
    improvement = challenger - champion if policy.higher_is_better else champion - challenger
    required = policy.margin * abs(champion) if policy.relative else policy.margin
    wins = improvement > 0 and improvement >= required
    verdict = "beats" if wins else "does not beat"
    reason = (
        f"{policy.metric} {challenger:.6g} vs champion {champion:.6g}: improvement "
        f"{improvement:.6g} {verdict} the required margin {required:.6g}"
    )
    if policy.recent is not None:
        reason += f" (held-out rows of the newest {policy.recent:.0%} of the data)"
    return Decision(wins, reason, challenger, champion, improvement, required)


@dataclass(frozen=True)
class RetrainOutcome:
    run_id: str
    decision: Decision
    version: ModelVersion | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "decision": self.decision.to_dict(),
            "version": None if self.version is None else self.version.to_dict(),
        }


def retrain(
    ws: WorkspacePort,
    policy: RetrainingPolicy,
    estimator: Any,
    data: TrainingData | Callable[[], TrainingData],
    *,
    cause: str,
    seed: int = 0,
    test_size: float = 0.2,
    valid_size: float = 0.2,
    experiment: str = "Retraining",
) -> RetrainOutcome:
    """Apply ``policy``: retrain, evaluate against the champion on the same data, decide.

    Args:
        ws: the workspace.
        policy: the retraining policy.
        estimator: the (unfitted) estimator to train.
        data: the newest published data, or a function that loads it.
        cause: why the trigger fired (recorded: a dataset version id, an alert id, a commit).
        seed: the split and the estimator's seed.
        test_size: the held-out fraction both models are scored on.
        valid_size: the validation fraction.
        experiment: where the retraining run is logged.
    """
    newest = data() if callable(data) else data
    result = train_model(
        ws,
        estimator,
        newest,
        experiment=experiment,
        seed=seed,
        test_size=test_size,
        valid_size=valid_size,
        tags={"keel.trigger": policy.trigger, "keel.trigger.cause": cause[:500]},
    )
    rows = _judged_rows(
        policy,
        result.splits.test if len(result.splits.test) else result.splits.valid,
        len(newest.y),
    )
    X, y = newest.X[rows], newest.y[rows]
    challenger = _score(policy, result.model, X, y, result.task)
    try:
        champion_model = ws.models.load(f"{policy.model}@{policy.champion_alias}")
    except NotFoundError:
        champion = None
    else:
        champion = _score(policy, champion_model, X, y, result.task)
    decision = decide(policy, challenger=challenger, champion=champion)
    version = None
    if decision.register:
        version = ws.models.log_model(
            result.model,
            name=policy.model,
            sample=X,
            holdout=X,
            run_id=result.run_id,
            feature_names=newest.feature_names,
            dataset_version=newest.dataset_version,
            seed=seed,
            # Both spellings: ``model.metrics.<metric>`` is what policy gates read.
            metrics={policy.metric: challenger, f"test.{policy.metric}": challenger},
            tags={"keel.stage": policy.challenger_alias, "keel.trigger": policy.trigger},
        )
        ws.models.set_alias(
            policy.model, policy.challenger_alias, version.version, reason=decision.reason
        )
    _log_decision(ws, result.run_id, policy, decision)
    return RetrainOutcome(run_id=result.run_id, decision=decision, version=version)


def _judged_rows(policy: RetrainingPolicy, held_out: Any, total: int) -> Any:
    """The held-out rows both models are scored on (only the newest with ``policy.recent``)."""
    if policy.recent is None:
        return held_out
    first = total - math.ceil(total * policy.recent)
    chosen = held_out[held_out >= first]
    if len(chosen) < 10:
        raise InvalidInputError(
            f"Only {len(chosen)} held-out rows fall in the newest {policy.recent:.0%} of the "
            f"{total} rows; raise recent or test_size so both models are judged on enough.",
            recent=policy.recent,
        )
    return chosen


def _score(policy: RetrainingPolicy, model: Any, X: Any, y: Any, task: Any) -> float:
    classes = None
    proba = None
    if task == "classification":
        proba = model.predict_proba(X)
        classes = getattr(model, "classes_", None)
        if classes is None:
            classes = model.predictor.classes
        classes = list(classes)
    metrics = evaluate(task, y, model.predict(X), proba, classes)
    if policy.metric not in metrics:
        raise InvalidInputError(
            f"The policy compares '{policy.metric}', which the {task} metrics do not include "
            f"({', '.join(sorted(metrics))}).",
            metric=policy.metric,
        )
    return metrics[policy.metric]


def _log_decision(
    ws: WorkspacePort, run_id: str, policy: RetrainingPolicy, decision: Decision
) -> None:
    values = {f"retrain.challenger.{policy.metric}": decision.challenger}
    if decision.champion is not None and math.isfinite(decision.champion):
        values[f"retrain.champion.{policy.metric}"] = decision.champion
    ws.runs.log_batch(
        run_id,
        metrics=[Metric(key, value) for key, value in values.items()],
        tags={
            "keel.retrain.decision": "register" if decision.register else "keep-champion",
            "keel.retrain.reason": decision.reason[:2000],
        },
    )


def champion_estimator(ws: WorkspacePort, policy: RetrainingPolicy) -> Any:
    """A fresh, unfitted copy of the champion's estimator, rebuilt from its training run.

    Retraining warm-starts from what won last time: the same class and hyperparameters (from
    the run's recorded training spec), fitted again on the newest data.
    """
    ref = f"{policy.model}@{policy.champion_alias}"
    found = ws.models.version(ref)
    if not found.run_id:
        raise NotFoundError(
            f"{ref} (version {found.version}) records no training run, so its estimator cannot "
            "be rebuilt. Pass estimator=... to retraining_pipeline().",
            model=policy.model,
        )
    try:
        spec = json.loads(ws.runs.read_artifact(found.run_id, SPEC_ARTIFACT))
    except NotFoundError as exc:
        raise NotFoundError(
            f"The training run {found.run_id} of {ref} has no '{SPEC_ARTIFACT}' (it was not "
            "trained with keel.training). Pass estimator=... to retraining_pipeline().",
            model=policy.model,
            run=found.run_id,
        ) from exc
    return build_estimator(spec["estimator"])


def retraining_pipeline(
    ws: WorkspacePort,
    policy: RetrainingPolicy,
    *,
    dataset: str,
    target: str,
    features: Sequence[str] | None = None,
    estimator: Any | None = None,
    name: str | None = None,
    experiment: str = "Retraining",
    seed: int = 0,
    test_size: float = 0.2,
    valid_size: float = 0.2,
) -> Pipeline:
    """The pipeline a retraining trigger runs: ``newest`` -> ``retrain``.

    ``newest`` picks the newest *published* version of ``dataset`` when the run starts (so a
    trigger always trains on what passed the gate last); ``retrain`` fits ``estimator`` (by
    default the champion's, see :func:`champion_estimator`) on it, scores it and the champion
    on the same held-out rows, and registers it as the policy's challenger only if it wins by
    the margin (the registry's policy gates apply to that registration and alias move). Its
    output ``outcome`` is :meth:`RetrainOutcome.to_dict` plus the dataset version used.

    Args:
        ws: the workspace (``keel.connect()``); it must have ``ws.datasets``.
        policy: what to retrain and how to judge it.
        dataset: the dataset whose newest published version is trained on.
        target: its target column.
        features: its feature columns (default: every other column).
        estimator: an unfitted estimator (default: rebuilt from the champion's training run).
        name: the pipeline's name (default ``retrain-<model>``).
        experiment: where the retraining runs are logged.
        seed: the split and the estimator's seed.
        test_size: the held-out fraction both models are scored on.
        valid_size: the validation fraction.
    """
    from keel.pipelines import Pipeline, step

    datasets: DatasetsPort | None = getattr(ws, "datasets", None)
    if datasets is None:
        raise InvalidInputError(
            "A retraining pipeline reads a Keel dataset; open the workspace with keel.connect().",
            dataset=dataset,
        )
    validate_name(dataset, what="dataset name")
    columns = None if features is None else list(features)
    pipeline_name = name or f"retrain-{policy.model}"

    @step(outputs="data", cache=False)
    def newest() -> dict[str, Any]:
        published = [v for v in datasets.versions(dataset) if v.published]
        if not published:
            raise NotFoundError(
                f"Dataset '{dataset}' has no published version to retrain on. Validate and "
                f"publish one (`keel datasets publish {dataset} <version>`).",
                dataset=dataset,
            )
        found = max(published, key=lambda v: v.version)
        return {
            "dataset": dataset,
            "version": int(found.version),
            "id": str(found.id),
            "rows": int(found.row_count),
        }

    @step(name="retrain", outputs="outcome", cache=False)
    def retrain_step(data: dict[str, Any]) -> dict[str, Any]:
        loaded = load_dataset(datasets, dataset, data["version"], target=target, features=columns)
        chosen = estimator if estimator is not None else champion_estimator(ws, policy)
        outcome = retrain(
            ws,
            policy,
            chosen,
            loaded,
            cause=f"pipeline {pipeline_name} on {dataset}:{data['version']}",
            seed=seed,
            test_size=test_size,
            valid_size=valid_size,
            experiment=experiment,
        )
        return {**outcome.to_dict(), "model": policy.model, "data": data}

    return Pipeline(
        pipeline_name,
        steps=[newest, retrain_step],
        description=(
            f"Retrain {policy.model} on the newest published {dataset}; register the result "
            f"as '{policy.challenger_alias}' if it beats '{policy.champion_alias}' on "
            f"{policy.metric} by {policy.margin:g}{' (relative)' if policy.relative else ''}."
        ),
    )
