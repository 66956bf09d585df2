"""Reproduce a training run: same estimator, parameters, data and seed; do the metrics match?

A run made by a Keel training step records ``keel/training.json`` (estimator class and
parameters, the data source and its digest, the split and the seed) and, for arrays given in
code, a snapshot of the data. Reproduction loads the data from the same source again, checks
its digest, retrains as a new run tagged ``keel.reproduces=<run>``, and compares every
``train.*``, ``valid.*`` and ``test.*`` metric within a tolerance.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from keel.errors import InvalidInputError, NotFoundError
from keel.training._data import DataRef, TrainingData, load_builtin, load_dataset, load_file
from keel.training._estimators import build_estimator
from keel.training._train import SNAPSHOT_ARTIFACT, SPEC_ARTIFACT, train_model

if TYPE_CHECKING:
    from keel.training._ports import WorkspacePort

__all__ = ["MetricCheck", "Reproduction", "reproduce_run"]

_COMPARED = ("train.", "valid.", "test.")


@dataclass(frozen=True)
class MetricCheck:
    key: str
    recorded: float | None
    reproduced: float | None
    difference: float | None
    ok: bool


@dataclass(frozen=True)
class Reproduction:
    """The verdict of reproducing a run.

    Attributes:
        matches: every compared metric is within tolerance and the data digest is the same.
        data_matches: the data read again has the recorded digest.
        code_matches: the current code version is the recorded one (None if unknown).
    """

    run_id: str
    new_run_id: str
    matches: bool
    tolerance: float
    data_matches: bool
    recorded_data_digest: str
    data_digest: str
    code_matches: bool | None
    recorded_code_version: str | None
    code_version: str | None
    checks: list[MetricCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> list[MetricCheck]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load(ws: WorkspacePort, run_id: str, spec: dict[str, Any]) -> TrainingData:
    import numpy as np

    source = DataRef.from_dict(spec["data"])
    names = spec["data"].get("feature_names")
    if source.kind == "builtin":
        return load_builtin(source.ref, sensitive=source.sensitive)
    if source.kind == "file":
        return load_file(
            source.ref,
            target=source.target or "target",
            sensitive=source.sensitive,
            features=names,
        )
    if source.kind == "inline":
        raw = ws.runs.read_artifact(run_id, SNAPSHOT_ARTIFACT)
        with np.load(io.BytesIO(raw), allow_pickle=False) as arrays:
            sensitive = arrays.get("sensitive")
            return TrainingData.from_arrays(
                arrays["X"],
                arrays["y"],
                feature_names=[str(n) for n in arrays["feature_names"]],
                sensitive=sensitive,
                sensitive_name=source.sensitive or "group",
            )
    return _load_dataset_version(ws, source, names)


def _load_dataset_version(
    ws: WorkspacePort, source: DataRef, names: list[str] | None
) -> TrainingData:
    datasets = getattr(ws, "datasets", None)
    if datasets is None or not source.dataset:
        raise InvalidInputError(
            f"Run data is dataset version '{source.ref}', which this workspace cannot read "
            "(no ws.datasets, or the run did not record the dataset name).",
            dataset_version=source.ref,
        )
    name, _, number = source.dataset.rpartition(":")
    return load_dataset(
        datasets,
        name,
        int(number),
        target=source.target or "target",
        sensitive=source.sensitive,
        features=names,
        require_published=False,
    )


def reproduce_run(
    ws: WorkspacePort,
    run_id: str,
    *,
    tolerance: float = 1e-6,
    experiment: str = "Reproductions",
) -> Reproduction:
    """Re-execute a training run from its record and compare the metrics.

    Args:
        ws: the workspace.
        run_id: a run made by a Keel training step (``train_model``, an HPO refit).
        tolerance: the largest allowed difference, relative to the metric's size (at least
            absolute ``tolerance``).
        experiment: where the new run is logged.
    """
    if not tolerance >= 0:
        raise InvalidInputError(f"tolerance must be >= 0; got {tolerance!r}.")
    run = ws.runs.get(run_id)
    try:
        spec = json.loads(ws.runs.read_artifact(run_id, SPEC_ARTIFACT))
    except NotFoundError:
        raise InvalidInputError(
            f"Run '{run_id}' has no {SPEC_ARTIFACT}: it was not made by a Keel training step, "
            "so Keel does not know how to re-execute it. Train with keel.training.train_model.",
            run_id=run_id,
        ) from None
    notes: list[str] = []
    if not spec["estimator"].get("reproducible", True):
        notes.append(
            "Parameters not recorded (not JSON): "
            + ", ".join(spec["estimator"].get("unrecorded_params", []))
            + "; their defaults were used."
        )
    data = _load(ws, run_id, spec)
    recorded_digest = str(spec["data"]["digest"])
    data_matches = data.source.digest == recorded_digest
    if not data_matches:
        notes.append(
            f"The data changed: it now has digest {data.source.digest}, the run recorded "
            f"{recorded_digest}."
        )
    split = spec["split"]
    result = train_model(
        ws,
        build_estimator(spec["estimator"]),
        data,
        experiment=experiment,
        run_name=f"reproduce-{run.name}"[:200],
        seed=int(spec["seed"]),
        test_size=float(split["test_size"]),
        valid_size=float(split["valid_size"]),
        tags={"keel.reproduces": run_id},
    )
    checks = _compare(run.metrics, result.metrics, tolerance)
    new_run = ws.runs.get(result.run_id)
    code_matches = None
    if run.code_version and new_run.code_version:
        code_matches = run.code_version == new_run.code_version
        if not code_matches:
            notes.append(
                f"The code version differs: recorded {run.code_version}, now "
                f"{new_run.code_version}. Check out the recorded commit to reproduce exactly."
            )
    return Reproduction(
        run_id=run_id,
        new_run_id=result.run_id,
        matches=data_matches and all(c.ok for c in checks),
        tolerance=tolerance,
        data_matches=data_matches,
        recorded_data_digest=recorded_digest,
        data_digest=data.source.digest,
        code_matches=code_matches,
        recorded_code_version=run.code_version,
        code_version=new_run.code_version,
        checks=checks,
        notes=notes,
    )


def _compare(
    recorded: dict[str, float], reproduced: dict[str, float], tolerance: float
) -> list[MetricCheck]:
    keys = sorted(k for k in {*recorded, *reproduced} if k.startswith(_COMPARED))
    checks = []
    for key in keys:
        before, after = recorded.get(key), reproduced.get(key)
        if before is None or after is None:
            checks.append(MetricCheck(key, before, after, None, False))
            continue
        diff = abs(before - after)
        ok = (math.isnan(before) and math.isnan(after)) or diff <= tolerance * max(1.0, abs(before))
        checks.append(MetricCheck(key, before, after, diff, ok))
    return checks
