"""The gate holds for a version's latest report, and pandas read-back keeps nullable integers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from keel.errors import ConflictError, NotFoundError, PermissionDeniedError
from keel.workspace import Workspace, connect
from tests.conftest import make_settings


def test_a_published_version_whose_new_report_fails_is_withdrawn(local_ws: Workspace) -> None:
    local_ws.datasets.ingest("d", pl.DataFrame({"a": [1, 2, -3]}))
    assert local_ws.datasets.validate("d", [{"kind": "row_count", "min": 1}]).passed
    assert local_ws.datasets.publish("d").published
    assert local_ws.datasets.read("d", "published")["a"].to_list() == [1, 2, -3]

    failed = local_ws.datasets.validate("d", [{"kind": "range", "column": "a", "min": 0}])
    assert not failed.passed
    with pytest.raises(NotFoundError, match="no tag 'published'"):
        local_ws.datasets.read("d", "published")
    with pytest.raises(ConflictError, match="latest validation failed"):
        local_ws.datasets.version("d", 1, require_published=True)
    assert not local_ws.datasets.version("d", 1).published
    events = local_ws.audit.events(action="dataset.validate", outcome="success")
    assert [e.details.get("unpublished") for e in events] == [False, True]

    # passing again and publishing puts it back
    assert local_ws.datasets.validate("d", [{"kind": "row_count", "min": 1}]).passed
    assert local_ws.datasets.publish("d").version == 1
    assert local_ws.datasets.read("d", "published").height == 3


def test_a_failing_report_on_another_version_leaves_the_published_one(
    local_ws: Workspace,
) -> None:
    local_ws.datasets.ingest("d", pl.DataFrame({"a": [1, 2]}))
    local_ws.datasets.validate("d", [{"kind": "row_count", "min": 1}])
    local_ws.datasets.publish("d")
    local_ws.datasets.ingest("d", pl.DataFrame({"a": [-1]}), mode="append")
    assert not local_ws.datasets.validate("d", [{"kind": "range", "column": "a", "min": 0}]).passed
    assert local_ws.datasets.version("d", "published").version == 1


def test_pandas_read_back_keeps_nullable_integers_and_booleans_exact(
    local_ws: Workspace,
) -> None:
    frame = pd.DataFrame(
        {
            "id": pd.array([9007199254740993, None, 3], dtype="Int64"),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "full": [1, 2, 3],
            "x": [0.5, None, 1.5],
        }
    )
    local_ws.datasets.ingest("p", frame)
    back = local_ws.datasets.read("p", format="pandas")
    assert str(back.dtypes["id"]) == "Int64"
    assert int(back["id"][0]) == 9007199254740993 and back["id"].isna().tolist() == [
        False,
        True,
        False,
    ]
    assert str(back.dtypes["flag"]) == "boolean"
    assert back["flag"].tolist()[0] is True and back["flag"].isna().sum() == 1
    assert str(back.dtypes["full"]) == "int64"  # no nulls: NumPy's dtype, as before
    assert str(back.dtypes["x"]) == "float64"


def test_only_who_may_publish_withdraws_a_published_version(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    with connect(settings=settings, principal="user:owner") as owner:
        owner.datasets.ingest("sales", pl.DataFrame({"amount": [1.0, 2.0]}))
        owner.datasets.validate("sales", [{"kind": "not_null", "column": "amount"}])
        owner.datasets.publish("sales")
        owner.projects.grant("user:carol", "contributor")
        with connect(settings=settings, principal="user:carol") as carol:
            with pytest.raises(PermissionDeniedError):
                carol.datasets.publish("sales")
            made_to_fail = [{"kind": "row_count", "min": 10**9}]
            assert not carol.datasets.validate("sales", made_to_fail, version="published").passed
        # still published: the failing report is stored and audited, the tag stays
        assert owner.datasets.read("sales", "published").height == 2
        event = owner.audit.events(action="dataset.validate", outcome="success")[-1]
        assert event.details["published_failed"] is True
        assert event.details["unpublished"] is False
        # the owner, who may publish, withdraws it with a failing validation
        owner.datasets.validate("sales", made_to_fail, version="published")
        with pytest.raises(NotFoundError, match="withdrawn when a validation of it failed"):
            owner.datasets.read("sales", "published")
