"""An ONNX model cannot read files through "external data" tensors when Keel loads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from keel.errors import InvalidInputError
from keel.tracking._formats import load_predictor

SECRET = b"master-key-material-0123456789ab"  # 32 bytes: eight float32 values


def _reads_file(location: str, *, in_subgraph: bool = False) -> bytes:
    """A model whose output is the contents of ``location`` (relative external data)."""
    weights = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[8])
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "32")):
        weights.external_data.add(key=key, value=value)
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [8])
    if not in_subgraph:
        graph = helper.make_graph(
            [helper.make_node("Identity", ["w"], ["y"])], "g", [], [out], [weights]
        )
    else:  # the tensor hides in a Constant node inside an If branch
        branch_out = helper.make_tensor_value_info("b", TensorProto.FLOAT, [8])
        branch = helper.make_graph(
            [helper.make_node("Constant", [], ["b"], value=weights)], "branch", [], [branch_out]
        )
        cond = helper.make_tensor("c", TensorProto.BOOL, [], [True])
        graph = helper.make_graph(
            [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)],
            "g",
            [],
            [out],
            [cond],
        )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_onnxruntime_alone_would_leak_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The threat is real: without Keel's check the weights are the secret file's bytes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".keel").mkdir()
    (tmp_path / ".keel" / "master.key").write_bytes(SECRET)
    session = ort.InferenceSession(_reads_file(".keel/master.key", in_subgraph=True))
    leaked = session.run(None, {})[0]
    assert np.asarray(leaked, dtype=np.float32).tobytes() == SECRET


@pytest.mark.parametrize("in_subgraph", [False, True])
def test_keel_refuses_models_with_external_tensors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_subgraph: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".keel").mkdir()
    (tmp_path / ".keel" / "master.key").write_bytes(SECRET)
    data = _reads_file(".keel/master.key", in_subgraph=in_subgraph)
    with pytest.raises(InvalidInputError, match="external data") as caught:
        load_predictor("onnx", data, kind="regression")
    assert "inline" in str(caught.value)


def test_self_contained_models_still_load() -> None:
    weights = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.5, -2.0])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])], "g", [], [out], [weights]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    predictor = load_predictor("onnx", model.SerializeToString(), kind="regression")
    assert predictor.format == "onnx"
    assert onnx.ModelProto.FromString(model.SerializeToString()).graph.initializer[0].name == "w"


def test_garbage_is_refused_before_onnxruntime_sees_it() -> None:
    with pytest.raises(InvalidInputError, match="cannot be parsed"):
        load_predictor("onnx", b"\xff\x00not-a-model" * 10, kind="regression")
