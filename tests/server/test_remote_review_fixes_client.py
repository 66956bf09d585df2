"""Review fixes of the remote client: path segments that would reach another route, redirects
answered as JSON, and the one empty frame of a zero-row version.

Each parity test runs the same calls on a local workspace and on ``keel.connect(url, ...)``
against a live server: what a caller sees must not depend on which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import keel
from keel.errors import ConfigurationError, InvalidInputError, KeelError, NotFoundError
from keel.workspace import Workspace
from keel.workspace._http import HttpClient, InvalidSegmentError, segment
from tests.conftest import make_settings
from tests.server._live import LiveServer, live_server

_IMPOSSIBLE = ["", ".", "..", "a/b"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server for the module (starting one per test would dominate the run time)."""
    with live_server(tmp_path_factory.mktemp("remote") / "home") as running:
        yield running


@pytest.fixture(params=["local", "remote"])
def either(
    request: pytest.FixtureRequest, tmp_path: Path, server: LiveServer
) -> Iterator[Workspace]:
    if request.param == "local":
        workspace = keel.connect(settings=make_settings(tmp_path / "home"), principal="user:t")
    else:
        project = f"p{abs(hash(request.node.name)) % 10**8}"
        server.context_in(project)
        token = server.token_for("admin", project=project, name="user:t")
        workspace = keel.connect(server.url, token=token, project=project)
    try:
        yield workspace
    finally:
        workspace.close()


def _seeded(ws: Workspace) -> None:
    """``loans`` plus datasets named like the routes a dot segment would reach instead."""
    ws.datasets.ingest("loans", pl.DataFrame({"id": [1, 2, 3]}))
    ws.datasets.ingest("versions", pl.DataFrame({"x": [1]}))
    ws.datasets.ingest("reports", pl.DataFrame({"x": [1]}))


_LOOKUPS: dict[str, Callable[[Workspace, str], Any]] = {
    "get": lambda ws, v: ws.datasets.get(v),
    "version": lambda ws, v: ws.datasets.version("loans", v),
    "version of a bad name": lambda ws, v: ws.datasets.version(v, 1),
    "versions": lambda ws, v: ws.datasets.versions(v),
    "reports": lambda ws, v: ws.datasets.reports(v),
    "read": lambda ws, v: ws.datasets.read("loans", v),
    "tag of a bad dataset": lambda ws, v: ws.datasets.tag(v, "t", 1),
    "model": lambda ws, v: ws.models.get(v),
    "run": lambda ws, v: ws.runs.get(v),
}


@pytest.mark.parametrize("value", _IMPOSSIBLE)
def test_an_impossible_name_or_ref_is_not_found_as_locally(either: Workspace, value: str) -> None:
    _seeded(either)
    outcomes: dict[str, str] = {}
    for call, lookup in _LOOKUPS.items():
        try:
            outcomes[call] = f"returned {type(lookup(either, value)).__name__}"
        except NotFoundError as exc:
            outcomes[call] = "not found" if repr(value) in str(exc) else f"other: {exc}"
        except Exception as exc:  # the defect: raw crashes from another route
            outcomes[call] = f"{type(exc).__name__}: {str(exc)[:80]}"
    assert outcomes == dict.fromkeys(_LOOKUPS, "not found")
    # nothing was created or retagged on the way
    assert sorted(d.name for d in either.datasets.list()) == ["loans", "reports", "versions"]
    assert either.datasets.version("loans").tags == ["latest"]


@pytest.mark.parametrize("value", _IMPOSSIBLE)
def test_an_impossible_new_name_or_tag_is_invalid_input_as_locally(
    either: Workspace, value: str
) -> None:
    _seeded(either)
    with pytest.raises(InvalidInputError, match=r"Invalid .*name") as bad_name:
        either.datasets.ingest(value, pl.DataFrame({"id": [1]}))
    assert repr(value) in str(bad_name.value)
    with pytest.raises(InvalidInputError, match=r"Invalid .*tag") as bad_tag:
        either.datasets.tag("loans", value, 1)
    assert repr(value) in str(bad_tag.value)
    assert sorted(d.name for d in either.datasets.list()) == ["loans", "reports", "versions"]
    assert either.datasets.version("loans").tags == ["latest"]
    assert either.datasets.get("loans").latest == 1


def test_a_server_error_keeps_its_exact_class(server: LiveServer) -> None:
    """The segment error (both classes at once) never stands for a server's error code."""
    with keel.connect(server.url, token=server.token_for("admin", name="user:t")) as ws:
        with pytest.raises(KeelError) as invalid:
            ws.datasets.ingest("-starts-with-a-dash", pl.DataFrame({"id": [1]}))
        assert type(invalid.value) is InvalidInputError
        with pytest.raises(KeelError) as missing:
            ws.datasets.get("no-such-dataset")
        assert type(missing.value) is NotFoundError


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "/", "a/", "../x"])
def test_segment_refuses_what_would_not_stay_one_segment(value: str) -> None:
    with pytest.raises(InvalidSegmentError) as raised:
        segment(value)
    assert isinstance(raised.value, InvalidInputError)
    assert isinstance(raised.value, NotFoundError)
    assert raised.value.details["value"] == value
    assert "Nothing was sent" in str(raised.value)


def test_segment_keeps_every_other_value_as_one_encoded_segment() -> None:
    assert segment("loans") == "loans"
    assert segment(3) == "3"
    assert segment(".hidden") == ".hidden"
    assert segment("...") == "..."
    assert segment("user:a@b+c") == "user%3Aa%40b%2Bc"
    assert segment("a b?c#d%e") == "a%20b%3Fc%23d%25e"


def test_a_redirect_is_a_clear_error_not_a_json_crash(server: LiveServer) -> None:
    """The server redirects ``/datasets/`` to ``/datasets``; no call may parse that as JSON."""
    http = HttpClient(server.url, server.admin_token)
    try:
        path = "/api/v1/projects/default/datasets/"
        with pytest.raises(ConfigurationError, match="redirect") as called:
            http.call("GET", path)
        assert called.value.details["status"] in (301, 302, 307, 308)
        assert called.value.details["location"].endswith("/api/v1/projects/default/datasets")
        with pytest.raises(ConfigurationError, match="redirect"):
            http.download(path)
        with pytest.raises(ConfigurationError, match="redirect"):
            http.download_to(path, _Sink())
        with pytest.raises(ConfigurationError, match="redirect"):
            list(http.lines(path))
    finally:
        http.close()


class _Sink:
    """A binary target that must receive nothing."""

    def write(self, data: bytes) -> int:
        raise AssertionError(f"a redirect's body was written: {data[:80]!r}")


def test_a_zero_row_version_is_read_as_one_empty_frame_with_its_schema(
    either: Workspace,
) -> None:
    schema = {"id": pl.Int64, "g": pl.String}
    either.datasets.ingest("e", pl.DataFrame(schema=schema))
    frames = list(either.datasets.iter_frames("e"))
    assert [f.shape for f in frames] == [(0, 2)]
    assert dict(frames[0].schema) == schema
    (only,) = list(either.datasets.iter_frames("e", columns=["g"]))
    assert dict(only.schema) == {"g": pl.String}
    # a version with rows still yields only its row groups, no extra empty frame
    either.datasets.ingest("full", pl.DataFrame({"id": list(range(10))}), part_rows=4)
    assert [f.height for f in either.datasets.iter_frames("full")] == [4, 4, 2]


def test_row_groups_stopped_early_close_the_file_and_remove_the_folder() -> None:
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from keel.workspace._remote_files import row_groups

    folder = tempfile.TemporaryDirectory()
    target = Path(folder.name) / "part.parquet"
    pq.write_table(pa.table({"a": list(range(10))}), target, row_group_size=4)
    frames = row_groups(folder, target)
    assert next(frames)["a"].to_list() == [0, 1, 2, 3]
    frames.close()  # what a caller that stops reading does (or garbage collection)
    assert not Path(folder.name).exists()
