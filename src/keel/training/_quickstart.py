"""The quickstart's training: a three-step pipeline with a small hyperparameter search.

``load`` reads a dataset bundled with scikit-learn, or a published Keel dataset version when
a target column is given; ``tune`` searches a gradient-boosting classifier with Optuna (each
trial a child run, trials on the chosen executor) and registers the refitted best model as a
candidate version, and ``check`` loads that version back from the registry in each of its
formats and verifies it reproduces its stored example predictions.
The search and its refitted best model record where the data came from (a dataset version id
and its digest), so lineage links the dataset version to the runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError, NotFoundError
from keel.training._data import (
    DataRef,
    DatasetsPort,
    TrainingData,
    load_builtin,
    load_dataset,
)
from keel.training._hpo import search

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from keel.pipelines import DatasetInput
    from keel.training._ports import WorkspacePort

__all__ = ["QUICKSTART_SPACE", "QuickstartResult", "quickstart_pipeline"]

#: The search space of the quickstart (the same shape as ``hpo: <name>: space:`` in keel.yaml).
QUICKSTART_SPACE: dict[str, dict[str, Any]] = {
    "n_estimators": {"type": "int", "low": 20, "high": 80, "step": 10},
    "learning_rate": {"type": "float", "low": 0.02, "high": 0.5, "log": True},
    "max_depth": {"type": "categorical", "choices": [1, 2, 3]},
}


@dataclass(frozen=True)
class QuickstartResult:
    """What the quickstart pipeline did.

    Attributes:
        pipeline_run_id: the pipeline run (``keel pipelines show``).
        search_run_id: the search run; its trials are its child runs.
        model: the registered model's name.
        version: the candidate version registered.
        summary: the ``check`` step's output (metrics, formats, verified predictions).
    """

    pipeline_run_id: str
    search_run_id: str
    model: str
    version: int
    summary: dict[str, Any]


def _source(data: TrainingData) -> dict[str, Any]:
    """What ``tune`` needs to rebuild the data's :class:`DataRef` (JSON, for the pipeline)."""
    return {**data.source.to_dict(), "feature_names": list(data.feature_names)}


def _datasets(ws: WorkspacePort, name: str) -> DatasetsPort:
    datasets: DatasetsPort | None = getattr(ws, "datasets", None)
    if datasets is None:
        raise InvalidInputError(
            f"Reading the Keel dataset '{name}' needs a workspace with datasets; open it with "
            "keel.connect().",
            dataset=name,
        )
    return datasets


def _published(datasets: DatasetsPort, name: str) -> DatasetInput:
    """The newest published version of ``name``, as a pipeline input."""
    from keel.pipelines import DatasetInput

    published = [v for v in datasets.versions(name) if v.published]
    if not published:
        raise NotFoundError(
            f"Dataset '{name}' has no published version to train on. Validate and publish one "
            f"first (`keel datasets publish {name} <version>`).",
            dataset=name,
        )
    newest = max(published, key=lambda v: v.version)
    return DatasetInput(name, int(newest.version), str(newest.id))


def quickstart_pipeline(
    ws: WorkspacePort,
    *,
    model_name: str = "quickstart-classifier",
    dataset: str = "breast_cancer",
    target: str | None = None,
    features: list[str] | None = None,
    n_trials: int = 12,
    trial_executor: str = "process",
    max_workers: int = 2,
    seed: int = 0,
    experiment: str = "quickstart",
) -> QuickstartResult:
    """Train through a pipeline with a small HPO search, and register the best model.

    Args:
        ws: the workspace (it must have ``ws.pipelines``; ``keel.connect()`` does).
        model_name: the registered model the candidate goes to.
        dataset: a dataset bundled with scikit-learn (classification: breast_cancer, wine,
            iris), or, with ``target``, a Keel dataset whose newest published version is read.
        target: the target column of the Keel dataset; None reads a bundled dataset.
        features: the feature columns of the Keel dataset (default: every other column).
        n_trials: trials of the search.
        trial_executor: where trials run: ``process`` (default), ``inprocess`` or ``ray``.
        max_workers: trials in flight.
        seed: the seed of the split, the sampler and the models.
        experiment: the experiment of the search and its trials.
    """
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier

    from keel.pipelines import Pipeline, step

    @step(name="load", outputs=("features", "target", "source"))
    def load_bundled(*, dataset: str = "breast_cancer") -> tuple[Any, Any, dict[str, Any]]:
        data = load_builtin(dataset)
        return data.X, data.y, _source(data)

    @step(name="load", outputs=("features", "target", "source"))
    def load_version(
        version: Any, *, target: str = "", columns: list[str] | None = None
    ) -> tuple[Any, Any, dict[str, Any]]:
        data = load_dataset(
            _datasets(ws, version.dataset),
            version.dataset,
            version.version,
            target=target,
            features=columns,
        )
        return data.X, data.y, _source(data)

    @step(outputs="search", cache=False)
    def tune(
        features: NDArray[Any],
        target: NDArray[Any],
        source: dict[str, Any],
        *,
        n_trials: int = 12,
        seed: int = 0,
    ) -> dict[str, Any]:
        ref = DataRef.from_dict(source)
        data = TrainingData(
            np.asarray(features), np.asarray(target), tuple(source["feature_names"]), ref
        )
        found = search(
            ws,
            GradientBoostingClassifier(),
            data,
            QUICKSTART_SPACE,
            metric="valid.auc",
            n_trials=n_trials,
            executor=trial_executor,
            max_workers=max_workers,
            seed=seed,
            experiment=experiment,
            register_as=model_name,
        )
        assert found.version is not None
        return {
            "search_run_id": found.run_id,
            "refit_run_id": found.refit_run_id,
            "best_trial": found.best.number,
            "best_params": found.best.params,
            "best_valid_auc": found.best.value,
            "trials": len(found.trials),
            "pruned": found.pruned,
            "model": found.version.model,
            "version": found.version.version,
            "test_metrics": {k: v for k, v in found.metrics.items() if k.startswith("test.")},
        }

    @step(outputs="summary", cache=False)
    def check(search: dict[str, Any]) -> dict[str, Any]:
        ref = f"{search['model']}:{search['version']}"
        version = ws.models.version(ref)
        formats = version.tags.get("keel.formats", version.format).split(",")
        verified = {}
        for fmt in formats:
            loaded = ws.models.load(ref, format=fmt, verify=True)
            verified[fmt] = loaded.format
        return {**search, "formats": formats, "verified_formats": sorted(verified)}

    params: dict[str, Any] = {"n_trials": n_trials, "seed": seed}
    inputs: dict[str, Any] = {}
    if target is None:
        load = load_bundled
        params["dataset"] = dataset
    else:
        # The published version is a pipeline input: recorded with the run and in lineage.
        load = load_version
        inputs["version"] = _published(_datasets(ws, dataset), dataset)
        params.update(target=target, columns=features)
    pipeline = Pipeline(
        "quickstart-train",
        steps=[load, tune, check],
        inputs=list(inputs),
        description="Load the data, search hyperparameters, register and verify the best.",
    )
    result = pipeline.run(
        ws,
        params=params,
        inputs=inputs,
        executor="inprocess",
        trigger="manual",
        cause={"reason": "keel quickstart"},
    )
    summary: dict[str, Any] = result["summary"]
    return QuickstartResult(
        pipeline_run_id=result.id,
        search_run_id=str(summary["search_run_id"]),
        model=str(summary["model"]),
        version=int(summary["version"]),
        summary=summary,
    )
