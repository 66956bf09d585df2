"""Dataset API edges a reviewer found: unknown source options, all-digit tags, and who may link
a version to what used it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from keel.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from keel.workspace import Workspace, connect
from tests.conftest import make_settings


def test_an_unknown_source_option_names_the_options_there_are(
    local_ws: Workspace, tmp_path: Path
) -> None:
    data = tmp_path / "a.csv"
    data.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"no option 'nosuch'.*delimiter, header"):
        local_ws.datasets.ingest("a", data, nosuch=1)
    with pytest.raises(InvalidInputError, match="The folder source takes no option 'delimiter'"):
        local_ws.datasets.ingest("f", tmp_path, kind="folder", delimiter=";")
    assert local_ws.datasets.ingest("a", data, delimiter=",").row_count == 1


def test_an_all_digit_tag_is_refused_since_it_could_never_be_asked_for(
    local_ws: Workspace,
) -> None:
    local_ws.datasets.ingest("d", pl.DataFrame({"a": [1]}))
    with pytest.raises(InvalidInputError, match="cannot be all digits"):
        local_ws.datasets.tag("d", "2024", 1)
    assert local_ws.datasets.tag("d", "v2024", 1).version == 1
    assert local_ws.datasets.version("d", "v2024").version == 1


def test_record_use_links_only_existing_runs_with_known_relations(local_ws: Workspace) -> None:
    local_ws.datasets.ingest("d", pl.DataFrame({"a": [1]}))
    run = local_ws.runs.start(experiment="e")
    run.end()
    local_ws.datasets.record_use("d", 1, f"run:{run.id}", relation="trained_on")
    edges = local_ws.lineage.graph(f"run:{run.id}", direction="up").upstream
    into_run = [(e.relation, e.upstream.type) for e in edges if e.downstream.id == run.id]
    assert into_run == [("trained_on", "dataset_version")]
    with pytest.raises(NotFoundError, match="no run '01ZZZZZZZZZZZZZZZZZZZZZZZZ'"):
        local_ws.datasets.record_use("d", 1, "run:01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    with pytest.raises(InvalidInputError, match="is a run"):
        local_ws.datasets.record_use("d", 1, "deployment:nonexistent")
    with pytest.raises(InvalidInputError, match="used_by, trained_on, evaluated_on"):
        local_ws.datasets.record_use("d", 1, f"run:{run.id}", relation="gated")


def test_a_read_only_role_cannot_write_uses(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    with connect(settings=settings, principal="user:owner") as owner:
        owner.datasets.ingest("d", pl.DataFrame({"a": [1]}))
        run = owner.runs.start(experiment="e")
        run.end()
        owner.projects.grant("user:viewer", "viewer")
        owner.projects.grant("user:auditor", "auditor")
        for who in ("user:viewer", "user:auditor"):
            with connect(settings=settings, principal=who) as other:
                assert other.datasets.version("d", 1).version == 1  # reading is allowed
                with pytest.raises(PermissionDeniedError, match=r"run\.write"):
                    other.datasets.record_use("d", 1, f"run:{run.id}")
        assert owner.lineage.graph(f"run:{run.id}").upstream == []
