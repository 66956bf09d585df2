"""Safe model packaging: every format reloads and reproduces its stored example predictions."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import platform
from typing import Any

import lightgbm
import numpy as np
import pytest
import xgboost
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge

from keel.errors import IntegrityError, NotFoundError, PermissionDeniedError
from keel.tracking import PACKAGE_SCHEMA, SIDECAR_TAG
from keel.tracking._packaging import build_package, check_example
from keel.workspace import Workspace

BC = load_breast_cancer()
DIA = load_diabetes()


def _fit(kind: str) -> tuple[Any, np.ndarray]:
    if kind == "sklearn-classifier":
        return RandomForestClassifier(20, random_state=0).fit(BC.data, BC.target), BC.data
    if kind == "sklearn-regressor":
        return Ridge().fit(DIA.data, DIA.target), DIA.data
    if kind == "xgboost-classifier":
        return xgboost.XGBClassifier(n_estimators=10).fit(BC.data, BC.target), BC.data
    if kind == "xgboost-regressor":
        return xgboost.XGBRegressor(n_estimators=10).fit(DIA.data, DIA.target), DIA.data
    if kind == "lightgbm-classifier":
        model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1)
        return model.fit(BC.data, BC.target), BC.data
    model = lightgbm.LGBMRegressor(n_estimators=10, verbose=-1)
    return model.fit(DIA.data, DIA.target), DIA.data


CASES = [
    ("sklearn-classifier", "skops"),
    ("sklearn-classifier", "onnx"),
    ("sklearn-regressor", "skops"),
    ("sklearn-regressor", "onnx"),
    ("xgboost-classifier", "xgboost-json"),
    ("xgboost-regressor", "xgboost-json"),
    ("lightgbm-classifier", "lightgbm-text"),
    ("lightgbm-regressor", "lightgbm-text"),
]


@pytest.mark.parametrize(("kind", "fmt"), CASES)
def test_loading_a_version_reproduces_its_stored_predictions(
    local_ws: Workspace, kind: str, fmt: str
) -> None:
    model, X = _fit(kind)
    version = local_ws.models.log_model(
        model, name=kind, sample=X[:100], holdout=X[100:300], seed=7, dataset_version="dv-1"
    )
    local_ws.models.set_alias(kind, "champion", version.version)
    loaded = local_ws.models.load(f"{kind}@champion", format=fmt, verify=False)
    package = loaded.package
    example = np.asarray(package["example"]["inputs"])
    stored = package["example"]["predictions"][fmt]
    got = loaded.predict(example)
    if fmt == "onnx":
        np.testing.assert_allclose(got, stored["prediction"], rtol=0, atol=1e-9)
    else:
        np.testing.assert_array_equal(got, np.asarray(stored["prediction"]))
        np.testing.assert_array_equal(got, model.predict(example))
    if "probabilities" in stored:
        np.testing.assert_allclose(loaded.predict_proba(example), stored["probabilities"])
    assert check_example(loaded.predictor, package) <= 1e-6


def test_package_records_signature_environment_and_provenance(local_ws: Workspace) -> None:
    model, X = _fit("sklearn-classifier")
    version = local_ws.models.log_model(
        model,
        name="bc",
        sample=X[:50],
        feature_names=list(BC.feature_names),
        code_version="abc123",
        dataset_version="dv-9",
        seed=11,
    )
    assert version.format == "skops"
    assert version.tags["keel.formats"] == "skops,onnx"
    assert version.tags["keel.seed"] == "11"
    assert version.tags["keel.dataset_version"] == "dv-9"
    assert version.tags["keel.code_version"] == "abc123"
    signature = version.signature
    assert signature is not None
    assert [i["name"] for i in signature["inputs"]] == list(BC.feature_names)
    assert signature["input_shape"] == [-1, 30]
    assert {o["name"] for o in signature["outputs"]} == {"prediction", "probabilities"}
    package = local_ws.models.package("bc")
    assert package["schema"] == PACKAGE_SCHEMA
    assert version.tags[SIDECAR_TAG].startswith("sha256:")
    assert package["environment"]["python"] == platform.python_version()
    import sklearn

    assert package["environment"]["packages"]["scikit-learn"] == sklearn.__version__
    assert (package["code_version"], package["dataset_version"], package["seed"]) == (
        "abc123",
        "dv-9",
        11,
    )
    parity = package["parity"]["onnx"]
    assert parity["passed"] is True
    assert 0 <= parity["max_abs_diff"] <= parity["threshold"]
    assert parity["rows"] == 50
    assert len(package["example"]["inputs"]) == 5


def test_onnx_parity_is_enforced(local_ws: Workspace) -> None:
    model, X = _fit("sklearn-classifier")
    with pytest.raises(IntegrityError, match="differs from the original"):
        build_package(model, sample=X[:50], onnx=True, parity_atol=0.0, parity_rtol=0.0)
    package = build_package(model, sample=X[:50], onnx="auto", parity_atol=0.0, parity_rtol=0.0)
    assert "onnx" not in package.companions
    assert package.sidecar["parity"]["onnx"]["passed"] is False


def test_a_format_that_was_not_stored_is_not_found(local_ws: Workspace) -> None:
    model, X = _fit("xgboost-classifier")
    local_ws.models.log_model(model, name="xgb", sample=X[:10])
    with pytest.raises(NotFoundError, match="not stored as 'onnx'"):
        local_ws.models.load("xgb", format="onnx")


@pytest.mark.parametrize("fmt", ["pickle", "joblib", "cloudpickle"])
def test_pickle_formats_are_refused(local_ws: Workspace, fmt: str) -> None:
    with pytest.raises(PermissionDeniedError, match="arbitrary code"):
        local_ws.models.register("m", artifact=b"\x80\x04K\x01.", format=fmt)
    with pytest.raises(PermissionDeniedError):
        local_ws.models.load("m", format=fmt)


def test_changed_predictions_fail_verification(local_ws: Workspace) -> None:
    model, X = _fit("lightgbm-regressor")
    version = local_ws.models.log_model(model, name="lgb", sample=X[:20])
    loaded = local_ws.models.load(f"lgb:{version.version}")
    tampered = dict(loaded.package)
    example = dict(tampered["example"])
    predictions = {"lightgbm-text": {"prediction": [0.0] * 5}}
    tampered["example"] = {**example, "predictions": predictions}
    with pytest.raises(IntegrityError, match="does not reproduce its stored example"):
        check_example(loaded.predictor, tampered)


def test_packaged_versions_round_trip_on_every_backend(ws: Workspace) -> None:
    model, X = _fit("xgboost-classifier")
    version = ws.models.log_model(model, name="xgb", sample=X[:30], seed=1)
    loaded = ws.models.load(f"xgb:{version.version}")  # verifies the stored example
    np.testing.assert_array_equal(loaded.predict(X[:30]), model.predict(X[:30]))
    assert ws.models.package("xgb")["seed"] == 1
