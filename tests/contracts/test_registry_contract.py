"""The model registry contract, run on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import pytest

from keel.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from keel.workspace import Workspace


def _register(ws: Workspace, payload: bytes, name: str = "churn") -> int:
    return ws.models.register(name, artifact=payload, format="onnx").version


def test_versions_number_up_and_keep_their_artifact(ws: Workspace) -> None:
    assert [_register(ws, b"v%d" % i) for i in range(3)] == [1, 2, 3]
    assert ws.models.read_artifact("churn:2") == b"v1"
    assert ws.models.version("churn").version == 3
    model = ws.models.get("churn")
    assert model.latest_version == 3


def test_alias_moves_are_atomic_and_kept_as_history(ws: Workspace) -> None:
    for i in range(3):
        _register(ws, b"m%d" % i)
    ws.models.set_alias("churn", "champion", 1, reason="first")
    ws.models.set_alias("churn", "champion", 2, reason="better")
    ws.models.set_alias("churn", "champion", 3, reason="best")
    assert ws.models.version("churn@champion").version == 3
    assert ws.models.version("churn@champion").aliases == ("champion",)
    moves = ws.models.alias_history("churn", "champion")
    assert [(m.from_version, m.to_version, m.reason) for m in moves] == [
        (None, 1, "first"),
        (1, 2, "better"),
        (2, 3, "best"),
    ]


def test_rollback_walks_back_like_an_undo_stack(ws: Workspace) -> None:
    for i in range(3):
        _register(ws, b"m%d" % i)
    for version in (1, 2, 3):
        ws.models.set_alias("churn", "champion", version)
    assert ws.models.rollback("churn", "champion", reason="bad canary").to_version == 2
    assert ws.models.rollback("churn", "champion").to_version == 1
    assert ws.models.version("churn@champion").version == 1
    with pytest.raises(ConflictError, match="nothing to roll back"):
        ws.models.rollback("churn", "champion")
    kinds = [m.kind for m in ws.models.alias_history("churn", "champion")]
    assert kinds == ["set", "set", "set", "rollback", "rollback"]


def test_compare_and_set_refuses_a_stale_alias_move(ws: Workspace) -> None:
    _register(ws, b"a")
    _register(ws, b"b")
    ws.models.set_alias("churn", "champion", 1)
    with pytest.raises(ConflictError, match="moved it meanwhile"):
        ws.models.set_alias("churn", "champion", 2, expected_current=2)
    ws.models.set_alias("churn", "champion", 2, expected_current=1)
    assert ws.models.version("churn@champion").version == 2


def test_stale_description_update_is_a_conflict(ws: Workspace) -> None:
    ws.models.create("churn")
    seen = ws.models.get("churn").row_version
    ws.models.update("churn", description="first edit", expected_row_version=seen)
    with pytest.raises(ConflictError, match="changed since you read it"):
        ws.models.update("churn", description="stale edit", expected_row_version=seen)
    assert ws.models.get("churn").description == "first edit"


def test_registry_refuses_pickle_and_unknown_names(ws: Workspace) -> None:
    with pytest.raises(PermissionDeniedError, match="arbitrary code"):
        ws.models.register("churn", artifact=b"\x80\x04", format="pickle")
    with pytest.raises(InvalidInputError, match="Unknown model format"):
        ws.models.register("churn", artifact=b"x", format="h5")
    with pytest.raises(NotFoundError, match="keel models list"):
        ws.models.get("absent")
    ws.models.create("churn")
    with pytest.raises(AlreadyExistsError):
        ws.models.create("churn")
    _register(ws, b"x")
    with pytest.raises(NotFoundError, match="no alias 'gold'"):
        ws.models.version("churn@gold")
    with pytest.raises(NotFoundError, match="no version 9"):
        ws.models.set_alias("churn", "champion", 9)
    with pytest.raises(InvalidInputError, match="Invalid model reference"):
        ws.models.version("a@b@c")
    assert ws.models.versions("churn")[0].status == "READY"


def test_sklearn_models_round_trip_in_skops(ws: Workspace) -> None:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    with ws.runs.start(experiment="iris", capture_env=False) as run:
        version = ws.models.log_sklearn(model, name="iris", run_id=run.id)
    assert version.format == "skops"
    assert version.run_id == run.id
    loaded = ws.models.load_sklearn("iris:1")
    assert (loaded.predict_proba(x) == model.predict_proba(x)).all()
