"""The V2 server against the real tritonclient and kserve clients, and bad input."""

# ruff: noqa: N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

from keel.serving import ServerHandle
from keel.workspace import Workspace
from tests.serving.conftest import FEATURES, register_forest, training_data


def test_tritonclient_json_inference_matches_the_registry_model(
    served_ws: Workspace, server: ServerHandle
) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("churn")
    meta = client.get_model_metadata("churn")
    assert meta["inputs"][0]["shape"] == [-1, FEATURES]
    X = training_data(5)[0][:3].astype(np.float32)
    tensor = triton.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=False)
    outputs = [
        triton.InferRequestedOutput("prediction", binary_data=False),
        triton.InferRequestedOutput("probabilities", binary_data=False),
    ]
    result = client.infer("churn", [tensor], outputs=outputs)
    expected = served_ws.models.load("churn@champion").predict_proba(X)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-5)
    assert list(result.as_numpy("prediction")) == list(np.argmax(expected, axis=1))


def test_tritonclient_binary_tensors_are_refused_with_400(server: ServerHandle) -> None:
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    tensor = triton.InferInput("input", [1, FEATURES], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, FEATURES), np.float32), binary_data=True)
    with pytest.raises(InferenceServerException, match="binary tensor data extension"):
        client.infer("churn", [tensor])


def test_kserve_rest_client_v2(server: ServerHandle) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def go() -> object:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0))
        try:
            assert await client.is_server_live(server.url)
            assert await client.is_model_ready(server.url, "churn")
            X = training_data(6)[0][:2].astype(np.float32)
            tensor = InferInput("input", list(X.shape), "FP32")
            tensor.set_data_from_numpy(X, binary_data=False)
            request = InferRequest(model_name="churn", infer_inputs=[tensor], request_id="r-1")
            return await client.infer(server.url, request, model_name="churn")
        finally:
            await client.close()

    response = asyncio.run(go())
    names = [o.name for o in response.outputs]  # type: ignore[attr-defined]
    assert names == ["prediction", "probabilities"]
    assert response.outputs[1].shape == [2, 2]  # type: ignore[attr-defined]


def test_predict_records_and_columns_agree(server: ServerHandle) -> None:
    X = training_data(7)[0][:4]
    names = [f"f{i}" for i in range(FEATURES)]
    records = [dict(zip(names, row.tolist(), strict=True)) for row in X]
    columns = {n: X[:, i].tolist() for i, n in enumerate(names)}
    with httpx.Client(base_url=server.url) as client:
        a = client.post("/predict", json={"records": records}).json()
        b = client.post("/predict", json={"columns": columns}).json()
    assert a["predictions"] == b["predictions"] and len(a["predictions"]) == 4
    assert len(set(a["prediction_ids"])) == 4
    assert a["version"] == 1


ROW = [0.0] * FEATURES


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v2/models/churn/infer", b"{not json", 400, "not valid JSON"),
        ("/v2/models/churn/infer", b"", 400, "empty"),
        ("/v2/models/churn/infer", json.dumps({"inputs": []}).encode(), 400, "non-empty"),
        (
            "/v2/models/churn/infer",
            json.dumps(
                {
                    "inputs": [
                        {"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
                    ]
                }
            ).encode(),
            400,
            "[-1, 20]",
        ),
        (
            "/v2/models/churn/infer",
            json.dumps(
                {
                    "inputs": [
                        {"name": "input", "shape": [1, 20], "datatype": "FP32", "data": ROW[:19]}
                    ]
                }
            ).encode(),
            400,
            "needs 20 elements",
        ),
        (
            "/v2/models/churn/infer",
            json.dumps(
                {
                    "inputs": [
                        {"name": "input", "shape": [1, 20], "datatype": "BYTES", "data": ["a"] * 20}
                    ]
                }
            ).encode(),
            400,
            "datatype",
        ),
        (
            "/v2/models/churn/infer",
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "input",
                            "shape": [1, 20],
                            "datatype": "FP32",
                            "data": ["x", *ROW[1:]],
                        }
                    ]
                }
            ).encode(),
            400,
            "is not a FP32 value",
        ),
        ("/v2/models/nope/infer", b"{}", 404, "Unknown model 'nope'"),
        ("/v2/models/churn/versions/9/infer", b"{}", 404, "Version 9"),
        ("/v2/models/churn/infer", b"[" * 5000 + b"]" * 5000, 400, "nests deeper"),
        ("/v2/models/churn/infer", b"[" * 40 + b"]" * 40, 400, "nests deeper"),
        ("/predict", json.dumps({"records": [{"f0": 1}]}).encode(), 400, "missing features"),
        ("/v2/models/churn/infer", b"x" * (9 * 1024 * 1024), 413, "larger than the limit"),
    ],
)
def test_bad_requests_get_a_clear_4xx(
    server: ServerHandle, path: str, body: bytes, status: int, fragment: str
) -> None:
    response = httpx.post(server.url + path, content=body, timeout=30)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


def test_metadata_of_a_version_and_health(server: ServerHandle) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").status_code == 200
        meta = client.get("/v2/models/churn/versions/1").json()
        assert meta["platform"] == "onnxruntime_onnx"
        assert meta["versions"] == ["1"]
        assert client.get("/v2/models/churn/versions/1/ready").json()["ready"] is True
        assert client.get("/v2/models/churn/infer").status_code == 405


def test_concurrent_requests_are_micro_batched_and_two_models_share_a_process(
    served_ws: Workspace,
) -> None:
    from sklearn.linear_model import LinearRegression

    from keel.serving import ServeOptions, start_in_thread

    register_forest(served_ws, seed=2)
    served_ws.models.log_model(
        LinearRegression().fit(*training_data(4)),
        name="price",
        sample=training_data(4)[0][:20],
    )
    app = served_ws.deployments.server(
        ServeOptions(models=["churn@champion", "price"], max_wait=0.002)
    )
    handle = start_in_thread(app)
    rows = training_data(8)[0][:64].astype(np.float32)

    async def burst() -> list[dict[str, object]]:
        async with httpx.AsyncClient(base_url=handle.url) as client:
            calls = [
                client.post(
                    "/v2/models/churn/infer",
                    json={
                        "inputs": [
                            {
                                "name": "input",
                                "shape": [1, FEATURES],
                                "datatype": "FP32",
                                "data": row.tolist(),
                            }
                        ]
                    },
                )
                for row in rows
            ]
            return [r.json() for r in await asyncio.gather(*calls)]

    try:
        answers = asyncio.run(burst())
        price = httpx.post(f"{handle.url}/predict/price", json={"instances": [ROW]}).json()
    finally:
        handle.stop()
    batcher = app.host.endpoints["churn"].versions[1][1]
    assert len(answers) == 64
    assert batcher.batches < 64  # several requests shared one model call
    expected = served_ws.models.load("churn@champion").predict(rows)
    got = [a["outputs"][0]["data"][0] for a in answers]  # type: ignore[index]
    assert got == expected.tolist()
    assert price["model"] == "price" and isinstance(price["predictions"][0], float)
