"""The conformance scenario, run by an official MLflow client (2.x or 3.x) in its own process.

Usage: python _scenario.py OUT.json [SKOPS_FILE]  (tracking URI and token from the environment)
Every observation is written to OUT.json for the test to check; nothing is asserted here.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

warnings.simplefilter("ignore")

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

MAJOR = int(mlflow.__version__.split(".")[0])
facts: dict[str, Any] = {"version": mlflow.__version__}


def error_of(call: Any) -> dict[str, Any]:
    try:
        call()
    except MlflowException as exc:
        return {"code": exc.error_code, "message": str(exc)}
    return {}


def main() -> None:
    out = Path(sys.argv[1])
    skops_file = sys.argv[2] if len(sys.argv) > 2 else None
    client = MlflowClient()
    suffix = f"v{MAJOR}"

    # experiments: set_experiment creates once (get-by-name answers 404 first), then finds it
    exp = mlflow.set_experiment(f"conformance-{suffix}")
    again = mlflow.set_experiment(f"conformance-{suffix}")
    facts["experiment"] = {
        "id": exp.experiment_id,
        "same": again.experiment_id == exp.experiment_id,
        "artifact_location": exp.artifact_location,
    }
    client.set_experiment_tag(exp.experiment_id, "team", "ml")
    facts["experiment_tags"] = client.get_experiment(exp.experiment_id).tags

    # a run with params, metrics (history, NaN, batches), tags and artifacts
    with mlflow.start_run(run_name="first") as run:
        run_id = run.info.run_id
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"depth": 3, "kind": "rf"})
        for step, value in enumerate([0.9, 0.5, 0.25]):
            mlflow.log_metric("loss", value, step=step)
        mlflow.log_metric("odd", float("nan"))
        mlflow.log_metrics({"acc": 0.8, "f1": 0.7})
        client.log_batch(
            run_id,
            metrics=[Metric("batch", float(i), 1_700_000_000_000 + i, i) for i in range(50)],
            params=[Param("batch_param", "x")],
            tags=[RunTag("batch_tag", "y")],
        )
        mlflow.set_tag("stage", "test")
        mlflow.set_tags({"a": "1", "b": "2"})
        client.delete_tag(run_id, "b")
        mlflow.log_text("hello keel", "notes/hello.txt")
        mlflow.log_dict({"k": [1, 2]}, "config.json")
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data.csv"
            data.write_text("a,b\n1,2\n")
            mlflow.log_artifact(str(data), artifact_path="inputs")
    got = client.get_run(run_id)
    facts["run"] = {
        "id": run_id,
        "name": got.info.run_name,
        "status": got.info.status,
        "artifact_uri": got.info.artifact_uri,
        "params": got.data.params,
        "metrics": {k: (None if math.isnan(v) else v) for k, v in got.data.metrics.items()},
        "tags": {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.source")},
    }
    facts["history"] = [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")]
    facts["batch_history"] = len(client.get_metric_history(run_id, "batch"))
    facts["artifacts"] = sorted(f.path for f in client.list_artifacts(run_id))
    facts["artifacts_notes"] = sorted(f.path for f in client.list_artifacts(run_id, "notes"))
    facts["artifact_text"] = mlflow.artifacts.load_text(f"{got.info.artifact_uri}/notes/hello.txt")
    facts["artifact_dict"] = mlflow.artifacts.load_dict(f"{got.info.artifact_uri}/config.json")

    # search with filters and ordering
    for name, acc in (("low", 0.1), ("mid", 0.7), ("high", 0.9)):
        with mlflow.start_run(run_name=name):
            mlflow.log_metric("score", acc)
            mlflow.log_param("group", "search")
    found = mlflow.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string="metrics.score > 0.5 and params.group = 'search'",
        order_by=["metrics.score DESC"],
        output_format="list",
    )
    facts["search"] = [r.info.run_name for r in found]
    ascending = client.search_runs(
        [exp.experiment_id], "params.group = 'search'", order_by=["metrics.score ASC"]
    )
    facts["search_asc"] = [r.info.run_name for r in ascending]
    page = client.search_runs([exp.experiment_id], "params.group = 'search'", max_results=2)
    facts["search_pages"] = [len(page), bool(page.token)]

    # delete and restore
    victim = found[0].info.run_id
    client.delete_run(victim)
    facts["after_delete"] = [
        r.info.run_name for r in client.search_runs([exp.experiment_id], "params.group = 'search'")
    ]
    facts["deleted_stage"] = client.get_run(victim).info.lifecycle_stage
    client.restore_run(victim)
    facts["after_restore"] = len(client.search_runs([exp.experiment_id], "params.group = 'search'"))
    scratch = client.create_experiment(f"scratch-{suffix}")
    client.delete_experiment(scratch)
    facts["exp_deleted"] = client.get_experiment(scratch).lifecycle_stage
    client.restore_experiment(scratch)
    facts["exp_restored"] = client.get_experiment(scratch).lifecycle_stage
    client.rename_experiment(scratch, f"renamed-{suffix}")
    facts["exp_renamed"] = client.get_experiment(scratch).name
    facts["missing_experiment"] = error_of(lambda: client.get_experiment_by_name("nope-nope")) or {
        "none": client.get_experiment_by_name("nope-nope") is None
    }
    facts["param_change"] = error_of(lambda: client.log_param(run_id, "alpha", "0.9"))

    # sklearn autolog and models
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    mlflow.sklearn.autolog(log_models=MAJOR >= 3, silent=True)
    with mlflow.start_run(run_name="autolog") as auto:
        LogisticRegression(max_iter=300, C=0.5).fit(x, y)
    mlflow.sklearn.autolog(disable=True)
    auto_run = client.get_run(auto.info.run_id)
    facts["autolog"] = {"params": auto_run.data.params, "metrics": sorted(auto_run.data.metrics)}

    model = LogisticRegression(max_iter=300).fit(x, y)
    name = f"iris-{suffix}"
    if MAJOR >= 3:
        with mlflow.start_run(run_name="train"):
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
        facts["logged_model_uri"] = info.model_uri
    else:
        with mlflow.start_run(run_name="train") as train:
            facts["pickle_refused"] = error_of(
                lambda: mlflow.sklearn.log_model(model, "model", registered_model_name=name)
            )
            assert skops_file is not None
            mlflow.log_artifact(skops_file, artifact_path="skmodel")
        mlflow.register_model(f"runs:/{train.info.run_id}/skmodel", name)
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_tag(name, "owner", "team-a")
    client.update_registered_model(name, description="iris classifier")
    client.set_model_version_tag(name, "1", "validated", "yes")
    by_alias = client.get_model_version_by_alias(name, "champion")
    facts["alias"] = {
        "version": by_alias.version,
        "aliases": by_alias.aliases,
        "tags": by_alias.tags,
    }
    registered = client.get_registered_model(name)
    facts["registered"] = {
        "description": registered.description,
        "tags": registered.tags,
        "aliases": registered.aliases,
    }
    facts["search_models"] = [
        m.name for m in client.search_registered_models(f"name LIKE 'iris-{suffix}%'")
    ]
    facts["search_versions"] = [v.version for v in client.search_model_versions(f"name = '{name}'")]
    if MAJOR >= 3:
        loaded = mlflow.sklearn.load_model(f"models:/{name}@champion")
        facts["alias_predictions_match"] = bool((loaded.predict(x) == model.predict(x)).all())
    else:
        where = mlflow.artifacts.download_artifacts(f"models:/{name}@champion")
        facts["alias_files"] = sorted(os.listdir(where))
    client.delete_registered_model_alias(name, "champion")
    facts["alias_deleted"] = error_of(lambda: client.get_model_version_by_alias(name, "champion"))
    out.write_text(json.dumps(facts, default=str))


if __name__ == "__main__":
    main()
