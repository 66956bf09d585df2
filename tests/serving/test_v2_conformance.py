"""The model server against the Open Inference Protocol (V2 REST) and its ``/predict`` twin.

One real server (uvicorn in a thread) serves three models: ``churn`` (a random forest with 0/1
classes), ``price`` (a linear regressor) and ``flag`` (a logistic regression with boolean
classes), all through ONNX Runtime (their inputs are FP32). Requests are built with the
``kserve`` SDK where it can express them, and with plain JSON (what curl sends) where it cannot.
"""

# ruff: noqa: N803, N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from keel.serving import ServeOptions, ServerHandle, start_in_thread
from keel.workspace import Workspace, connect
from tests.conftest import make_settings
from tests.serving.conftest import FEATURES, register_forest, training_data

NAMES = [f"f{i}" for i in range(FEATURES)]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, ServerHandle]]:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    home: Path = tmp_path_factory.mktemp("v2") / "home"
    ws = connect(settings=make_settings(home), principal="user:tester")
    register_forest(ws, seed=0, alias="champion")
    X, y = training_data(3)
    ws.models.log_model(LinearRegression().fit(X, X[:, 0]), name="price", sample=X[:20])
    ws.models.log_model(LogisticRegression().fit(X, y.astype(bool)), name="flag", sample=X[:20])
    handle = start_in_thread(
        ws.deployments.server(ServeOptions(models=["churn@champion", "price", "flag"]))
    )
    try:
        yield ws, handle
    finally:
        handle.stop()
        ws.close()


@pytest.fixture
def client(models: tuple[Workspace, ServerHandle]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=models[1].url, timeout=60) as http:
        yield http


def tensor(data: Any, shape: list[int], datatype: str = "FP32", name: str = "input") -> Any:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def infer(client: httpx.Client, body: Any, model: str = "churn") -> httpx.Response:
    return client.post(f"/v2/models/{model}/infer", content=json.dumps(body))


def kserve_body(X: Any, datatype: str, **request: Any) -> dict[str, Any]:
    """The JSON body the kserve SDK sends for one ``[N, F]`` tensor."""
    from kserve import InferInput, InferRequest

    tensor_in = InferInput("input", list(X.shape), datatype)
    tensor_in.set_data_from_numpy(X, binary_data=False)
    body, binary = InferRequest(model_name="churn", infer_inputs=[tensor_in], **request).to_rest()
    assert binary is None
    return dict(body)


def requests_served(client: httpx.Client, model: str) -> float:
    text = client.get("/metrics").text
    pattern = rf'^keel_requests_total\{{[^}}]*model="{model}"[^}}]*\}} (\S+)$'
    return sum(float(m) for m in re.findall(pattern, text, flags=re.MULTILINE))


ROWS = training_data(5)[0][:2]
_NP = {"FP64": np.float64, "INT64": np.int64, "INT16": np.int16}


# --- elements that are not values of the declared datatype -----------------------------------


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "INT64", "UINT8", "BOOL"])
def test_a_null_element_is_refused_naming_where_it_is(client: httpx.Client, datatype: str) -> None:
    fill: Any = True if datatype == "BOOL" else 1
    data = [fill] * (2 * FEATURES)
    data[FEATURES + 3] = None
    response = infer(client, {"inputs": [tensor(data, [2, FEATURES], datatype)]})
    # before: INT64/UINT8 were a 500 TypeError, BOOL predicted with null read as false,
    # FP32/FP64 said "NaN or infinite values are not accepted"
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert f"element [1, 3]: null is not a {datatype} value" in error, error


@pytest.mark.parametrize(
    ("datatype", "value", "fragment"),
    [
        ("UINT8", 300, "300 is outside the range of UINT8 (0 to 255)"),
        ("UINT8", -1, "-1 is outside the range of UINT8 (0 to 255)"),
        ("INT8", -1000, "-1000 is outside the range of INT8 (-128 to 127)"),
        ("UINT64", -1, "-1 is outside the range of UINT64"),
        ("INT64", 2**70, "is not a INT64 value (an integer"),
        ("INT32", 1.5, "1.5 is not a INT32 value (an integer"),
        ("FP16", 1e6, "1000000.0 is outside the range of FP16"),
        ("FP32", 1e39, "1e+39 is outside the range of FP32"),
    ],
)
def test_a_value_outside_its_datatype_is_a_400_saying_so(
    client: httpx.Client, datatype: str, value: Any, fragment: str
) -> None:
    data = [0] * FEATURES
    data[5] = value
    response = infer(client, {"inputs": [tensor(data, [1, FEATURES], datatype)]})
    # before: 500 OverflowError for the integers, "NaN or infinite" for FP16/FP32
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "element [0, 5]" in error and fragment in error, error


def test_fp64_beyond_the_models_float32_is_refused_not_predicted_as_infinity(
    client: httpx.Client,
) -> None:
    X = np.zeros((1, FEATURES))
    X[0, 2] = 1e39
    response = infer(client, kserve_body(X, "FP64"))
    # before: 200, the model predicted a row holding +inf
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "1e+39 is beyond the range of this model's float32 inputs" in error, error
    records = [dict(zip(NAMES, row, strict=True)) for row in X.tolist()]
    response = client.post("/predict/churn", json={"records": records})
    assert response.status_code == 400, response.text
    assert "records[0] feature 'f2': 1e+39 is beyond the range" in response.json()["error"]


def test_fp64_and_int_data_are_converted_to_the_models_fp32_when_exact(
    models: tuple[Workspace, ServerHandle], client: httpx.Client
) -> None:
    ws = models[0]
    X = np.round(ROWS * 1000)  # whole numbers, exact in float32
    expected = ws.models.load("churn@champion").predict_proba(X.astype(np.float32))
    for datatype, data in (("FP64", X), ("INT64", X.astype(np.int64)), ("INT16", X)):
        response = infer(client, kserve_body(data.astype(_NP[datatype]), datatype))
        assert response.status_code == 200, response.text
        got = np.asarray(response.json()["outputs"][1]["data"]).reshape(2, 2)
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_an_integer_float32_cannot_hold_exactly_is_refused(client: httpx.Client) -> None:
    X = np.zeros((1, FEATURES), dtype=np.int64)
    X[0, 7] = 2**24 + 1  # 16777217: float32 holds 16777216 or 16777218, not it
    response = infer(client, kserve_body(X, "INT64"))
    # before: 200, predicted (and logged) as 16777216
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "element [0, 7]: 16777217 cannot be held exactly" in error, error
    assert "it would become 16777216" in error and "send FP32 data" in error, error
    X[0, 7] = 2**24  # exact: served
    assert infer(client, kserve_body(X, "INT64")).status_code == 200


# --- nested data ---------------------------------------------------------------------------


def test_nested_data_follows_the_shape_or_is_refused(client: httpx.Client) -> None:
    flat = infer(client, {"inputs": [tensor(ROWS.ravel().tolist(), [2, FEATURES])]}).json()
    nested = infer(client, {"inputs": [tensor(ROWS.tolist(), [2, FEATURES])]}).json()
    assert nested["outputs"][1]["data"] == flat["outputs"][1]["data"]
    transposed = ROWS.T.tolist()  # 20 arrays of 2: column-major, same element count
    bad = {
        "transposed": (transposed, "an array at depth 1 holds 20 elements; shape [2, 20] needs 2"),
        "ragged": (
            [ROWS[0].tolist()[:10], ROWS[0].tolist()[10:] + ROWS[1].tolist()],
            "an array at depth 2 holds 10 elements; shape [2, 20] needs 20",
        ),
        "too deep": (
            [[[v] for v in row] for row in ROWS.tolist()],
            "nested deeper than shape [2, 20]",
        ),
        "mixed": ([ROWS[0].tolist(), *ROWS[1].tolist()], "at depth 1 holds 21 elements"),
    }
    for label, (data, fragment) in bad.items():
        response = infer(client, {"inputs": [tensor(data, [2, FEATURES])]})
        # before: 200 for all four (the transposed rows were predicted as rows)
        assert response.status_code == 400, (label, response.text)
        error = response.json()["error"]
        assert fragment in error and "or send it flat in row-major order" in error, error


def test_per_feature_tensors_equal_one_matrix(client: httpx.Client) -> None:
    matrix = infer(client, {"inputs": [tensor(ROWS.ravel().tolist(), [2, FEATURES])]}).json()
    columns = [tensor(ROWS[:, i].tolist(), [2], "FP64", name=n) for i, n in enumerate(NAMES)]
    per_feature = infer(client, {"inputs": columns}).json()
    assert per_feature["outputs"] == matrix["outputs"]
    missing = infer(client, {"inputs": columns[1:]})
    assert missing.status_code == 400 and "missing ['f0']" in missing.json()["error"]


# --- requested outputs ---------------------------------------------------------------------


def test_an_unknown_output_is_refused_before_the_model_runs(client: httpx.Client) -> None:
    before = requests_served(client, "churn")
    body = {
        "inputs": [tensor(ROWS.ravel().tolist(), [2, FEATURES])],
        "outputs": [{"name": "prediction"}, {"name": "scores"}],
    }
    response = infer(client, body)
    assert response.status_code == 400, response.text
    assert "Unknown outputs ['scores']" in response.json()["error"]
    # before: the rows were predicted (counted, and logged by a deployment) all the same
    assert requests_served(client, "churn") == before


def test_empty_outputs_mean_all_and_a_repeated_output_is_refused(client: httpx.Client) -> None:
    inputs = [tensor(ROWS.ravel().tolist(), [2, FEATURES])]
    everything = infer(client, {"inputs": inputs, "outputs": []})
    # before: 200 with "outputs": [] (kserve and tritonclient treat [] as "not specified")
    assert [o["name"] for o in everything.json()["outputs"]] == ["prediction", "probabilities"]
    twice = infer(client, {"inputs": inputs, "outputs": [{"name": "prediction"}] * 2})
    # before: 200 with the prediction tensor twice
    assert twice.status_code == 400, twice.text
    assert "'prediction' is requested twice" in twice.json()["error"]


# --- metadata and responses agree ----------------------------------------------------------


@pytest.mark.parametrize("model", ["churn", "price", "flag"])
def test_metadata_datatypes_are_the_responses(client: httpx.Client, model: str) -> None:
    meta = client.get(f"/v2/models/{model}").json()
    body = {"inputs": [tensor(ROWS.ravel().tolist(), [2, FEATURES])]}
    response = infer(client, body, model=model).json()
    described = {o["name"]: o["datatype"] for o in meta["outputs"]}
    answered = {o["name"]: o["datatype"] for o in response["outputs"]}
    # before: price answered FP32 where its metadata said FP64; flag answered BOOL where its
    # metadata said INT64
    assert answered == described
    for output in response["outputs"]:
        values = np.asarray(output["data"])
        kind = {"BOOL": "b", "INT64": "i", "FP64": "f"}[output["datatype"]]
        assert values.dtype.kind == kind, output


def test_the_kserve_sdk_reads_a_boolean_classifier(client: httpx.Client) -> None:
    from kserve import InferResponse

    body = kserve_body(ROWS.astype(np.float32), "FP32", request_id="req-7")
    response = infer(client, body, model="flag")
    answer = InferResponse.from_rest(response.json())
    assert answer.id == "req-7" and answer.model_name == "flag"
    prediction = answer.outputs[0].as_numpy()
    assert prediction.dtype == np.bool_ and prediction.shape == (2,)


# --- the body and its fields ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v2/models/churn/infer", "/predict/churn"])
def test_nan_and_infinity_literals_are_explained(client: httpx.Client, path: str) -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = '{"instances": [[1.0, LITERAL]], "inputs": [{"data": [LITERAL]}]}'
        body = body.replace("LITERAL", literal)
        response = client.post(path, content=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        # before: "unexpected character, expected a JSON value: line 1 column 21 (char 20)"
        assert f"{literal.lstrip('-')} is not a JSON number" in error, error
        assert "allow_nan=False" in error, error


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"parameters": 5}, "'parameters' must be an object"),
        ({"parameters": ["route_key", "u1"]}, "'parameters' must be an object"),
        ({"tensor_parameters": "binary"}, "input 'input': 'parameters' must be an object"),
        ({"outputs": [{"name": "prediction", "parameters": 1}]}, "outputs[0]: 'parameters'"),
        ({"id": "x" * 1025}, "'id' is 1025 characters long; at most 1024"),
    ],
)
def test_malformed_request_fields_are_refused(
    client: httpx.Client, body: dict[str, Any], fragment: str
) -> None:
    one = tensor(ROWS[0].tolist(), [1, FEATURES])
    if "tensor_parameters" in body:
        one["parameters"] = body.pop("tensor_parameters")
    response = infer(client, {"inputs": [one], **body})
    # before: 200 (the field was ignored, or the id of 1 KiB+ was echoed and logged)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_the_request_id_is_echoed(client: httpx.Client) -> None:
    body = kserve_body(ROWS.astype(np.float32), "FP32", request_id="é-42")
    answer = infer(client, body).json()
    assert answer["id"] == "é-42" and answer["model_name"] == "churn"
    assert answer["model_version"] == "1"


# --- /predict ------------------------------------------------------------------------------


def test_predict_refuses_a_body_with_two_layouts(client: httpx.Client) -> None:
    records = [dict(zip(NAMES, ROWS[0].tolist(), strict=True))]
    response = client.post(
        "/predict/churn", json={"records": records, "instances": [ROWS[1].tolist()]}
    )
    # before: 200, the instances were silently ignored
    assert response.status_code == 400, response.text
    assert "both 'records' and 'instances'" in response.json()["error"]


@pytest.mark.parametrize(
    ("layout", "fragment"),
    [
        ("records", "records[1] feature 'f3': true is not a number"),
        ("columns", "columns['f3'][1]: true is not a number"),
        ("instances", "instances[1][3]: true is not a number"),
    ],
)
def test_predict_names_the_row_and_feature_of_a_bad_value(
    client: httpx.Client, layout: str, fragment: str
) -> None:
    X: list[list[Any]] = ROWS.tolist()
    X[1][3] = True
    body: dict[str, Any] = {
        "records": {"records": [dict(zip(NAMES, row, strict=True)) for row in X]},
        "columns": {"columns": {n: [row[i] for row in X] for i, n in enumerate(NAMES)}},
        "instances": {"instances": X},
    }[layout]
    response = client.post("/predict/churn", json=body)
    assert response.status_code == 400, response.text
    # before: "records: element true is not a FP64 value" (no row, no feature)
    assert fragment in response.json()["error"]
    X[1][3] = None
    response = client.post("/predict/churn", json={"instances": X})
    # before: "instances: NaN or infinite values are not accepted."
    assert "instances[1][3]: null is not a number" in response.json()["error"]


def test_a_classifier_with_string_labels_is_served_as_bytes(tmp_path: Path) -> None:
    # before: loading it failed the example check (np.abs of the string labels), so a model
    # with labels such as "yes"/"no" could be registered but never loaded or served
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).normal(size=(200, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    model = LogisticRegression().fit(X, y)
    with connect(settings=make_settings(tmp_path / "home"), principal="user:t") as ws:
        ws.models.log_model(model, name="answers", sample=X[:20])
        assert ws.models.load("answers:1").predict(X[:4]).tolist() == model.predict(X[:4]).tolist()
        ws.models.set_alias("answers", "champion", 1)
        ws.deployments.deploy("answers@champion", environment="staging")
        handle = start_in_thread(
            ws.deployments.server(ServeOptions(deployments=["answers-staging"], analysis=None))
        )
        try:
            url = f"{handle.url}/v2/models/answers-staging"
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [4, 3],
                        "datatype": "FP64",
                        "data": X[:4].ravel().tolist(),
                    }
                ]
            }
            answer = httpx.post(f"{url}/infer", json=body, timeout=30).json()
            meta = httpx.get(url, timeout=30).json()
        finally:
            handle.stop()
    [prediction] = [o for o in answer["outputs"] if o["name"] == "prediction"]
    assert prediction["datatype"] == "BYTES" and prediction["data"] == model.predict(X[:4]).tolist()
    declared = {o["name"]: o["datatype"] for o in meta["outputs"]}
    assert declared["prediction"] == "BYTES"
