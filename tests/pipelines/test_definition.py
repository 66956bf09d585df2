"""Definitions: steps wired by name, checked when the pipeline is built, errors at file:line."""

from __future__ import annotations

import inspect
import itertools
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import keel
from keel.errors import InvalidInputError
from keel.pipelines import Pipeline, Step, descendants, find_cycle, step, topological_order

HERE = __file__


def _line(fn: object) -> int:
    return inspect.getsourcelines(fn)[1]  # type: ignore[arg-type]


def test_step_reads_inputs_params_and_outputs_from_the_signature() -> None:
    @keel.step
    def features(raw: list[int], labels: list[int], *, scale: float = 2.0, name: str = "x") -> int:
        return 0

    assert isinstance(features, Step)
    assert features.inputs == ("raw", "labels")
    assert set(features.params) == {"scale", "name"}
    assert features.outputs == ("features",)
    assert features(raw=[1], labels=[2]) == 0  # still a plain function
    assert features.file == HERE


def test_missing_input_names_the_step_its_file_and_line() -> None:
    @step
    def train(features: list[int]) -> int:
        return 0

    with pytest.raises(InvalidInputError) as caught:
        Pipeline("p", steps=[train])
    message = str(caught.value)
    assert "Step 'train' reads 'features', which no step produces" in message
    assert "pass it as a pipeline input" in message
    assert f"{HERE}:{train.line}" in message
    assert caught.value.details == {"file": HERE, "line": train.line}


def test_a_declared_pipeline_input_satisfies_a_step() -> None:
    @step
    def train(features: list[int]) -> int:
        return 0

    assert Pipeline("p", steps=[train], inputs=["features"]).order == ["train"]


def test_cycle_is_named_with_every_step_location() -> None:
    @step(outputs="a")
    def make_a(b: int) -> int:
        return b

    @step(outputs="b")
    def make_b(a: int) -> int:
        return a

    with pytest.raises(InvalidInputError, match="has a cycle") as caught:
        Pipeline("loop", steps=[make_a, make_b])
    message = str(caught.value)
    assert f"'make_a' ({HERE}:{make_a.line})" in message
    assert f"'make_b' ({HERE}:{make_b.line})" in message


def test_duplicate_outputs_point_at_the_second_producer() -> None:
    @step(outputs="features")
    def one() -> int:
        return 1

    @step(outputs="features")
    def two() -> int:
        return 2

    with pytest.raises(InvalidInputError, match="both produce 'features'") as caught:
        Pipeline("dup", steps=[one, two])
    assert caught.value.details["line"] == two.line


def test_duplicate_step_names_and_non_steps_point_at_the_pipeline_line() -> None:
    @step
    def same() -> int:
        return 1

    line = inspect.currentframe().f_lineno + 2  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError, match="two steps are named 'same'") as caught:
        Pipeline("p", steps=[same, same])
    assert caught.value.details == {"file": HERE, "line": line}
    with pytest.raises(InvalidInputError, match=r"Decorate the function with @keel\.step"):
        Pipeline("p", steps=[print])  # type: ignore[list-item]


def test_wrong_default_type_fails_at_decoration_time() -> None:
    def train(x: int, *, lr: float = "fast") -> int:  # type: ignore[assignment]
        return 0

    with pytest.raises(InvalidInputError, match="Parameter 'lr' of step 'train' must be float"):
        step(train)


def test_parameters_are_checked_when_built_and_when_run() -> None:
    @step
    def fit(*, lr: float = 0.1, depth: int = 3, kind: Literal["rf", "gb"] = "rf") -> int:
        return 0

    pipeline = Pipeline("p", steps=[fit], params={"lr": 1})  # an int widens to float
    assert pipeline.defaults == {"fit": {"lr": 1.0, "depth": 3, "kind": "rf"}}
    with pytest.raises(InvalidInputError, match="'depth' of step 'fit' must be int") as caught:
        Pipeline("p", steps=[fit], params={"fit.depth": "deep"})
    assert caught.value.details["line"] == fit.line
    with pytest.raises(InvalidInputError, match="no step has the parameter 'nope'"):
        Pipeline("p", steps=[fit], params={"nope": 1})
    with pytest.raises(InvalidInputError, match=r"must be Literal\['rf', 'gb'\], got 'svm'"):
        pipeline.resolve_params({"kind": "svm"}, base=pipeline.defaults)
    with pytest.raises(InvalidInputError, match="must be int"):
        pipeline.resolve_params({"depth": True}, base=pipeline.defaults)
    resolved = pipeline.resolve_params({"fit.kind": "gb"}, base=pipeline.defaults)
    assert resolved["fit"]["kind"] == "gb"


def test_star_args_and_bad_options_are_refused() -> None:
    def spread(*rows: int) -> int:
        return 0

    with pytest.raises(InvalidInputError, match="cannot be wired"):
        step(spread)
    with pytest.raises(InvalidInputError, match="retries is -1"):
        step(retries=-1, name="r")(lambda: 0)
    with pytest.raises(InvalidInputError, match="timeout is 0"):
        step(timeout=0, name="t")(lambda: 0)


def test_several_outputs_and_code_digest() -> None:
    @step(outputs=("train", "test"))
    def split(*, n: int = 4) -> tuple[list[int], list[int]]:
        return list(range(n)), []

    assert split.outputs == ("train", "test")
    assert split.code_digest.startswith("sha256:") and len(split.code_digest) == 71

    @step(outputs=("train", "test"), version="2")
    def split2(*, n: int = 4) -> tuple[list[int], list[int]]:
        return list(range(n)), []

    assert split2.code_digest != split.code_digest


@st.composite
def dags(draw: st.DrawFn) -> dict[str, set[str]]:
    size = draw(st.integers(min_value=1, max_value=12))
    names = [f"n{i}" for i in range(size)]
    edges: dict[str, set[str]] = {}
    for index, name in enumerate(names):
        earlier = names[:index]
        edges[name] = (
            set(draw(st.lists(st.sampled_from(earlier), unique=True))) if earlier else set()
        )
    return edges


@given(dags())
def test_topological_order_respects_every_edge(edges: dict[str, set[str]]) -> None:
    order = topological_order(edges)
    assert sorted(order) == sorted(edges)
    position = {name: i for i, name in enumerate(order)}
    for node, deps in edges.items():
        for dep in deps:
            assert position[dep] < position[node]
    assert find_cycle(edges) is None
    for node in edges:
        for below in descendants(edges, [node]):
            assert position[below] > position[node]


@given(dags(), st.data())
def test_adding_a_back_edge_makes_a_cycle_that_is_found(
    edges: dict[str, set[str]], data: st.DataObject
) -> None:
    candidates = [(n, d) for n, deps in edges.items() for d in deps]
    if not candidates:
        return
    node, dep = data.draw(st.sampled_from(candidates))
    edges[dep] = {*edges[dep], node}
    cycle = find_cycle(edges)
    assert cycle is not None and cycle[0] == cycle[-1]
    for a, b in itertools.pairwise(cycle):
        assert b in edges[a]
    with pytest.raises(ValueError, match="cycle"):
        topological_order(edges)
