"""Remote datasets behave as local ones, and the OpenAPI document says what the server answers.

Regressions of a review: a remote pandas read lost nullable integers, upload-ingest errors
named the server's staging path, a remote per-part function transform was recorded as one
whole-version call, and the OpenAPI document described 422 answers and no security.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import keel
from keel.errors import InvalidInputError, KeelError
from keel.workspace import Workspace
from tests.conftest import make_settings
from tests.server._live import LiveServer, live_server

BASE = "/api/v1/projects/{project}/datasets/{dataset}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path / "home") as running:
        yield running


@pytest.fixture
def remote(server: LiveServer) -> Iterator[Workspace]:
    workspace = keel.connect(server.url, token=server.token_for("admin", name="user:t"))
    try:
        yield workspace
    finally:
        workspace.close()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Workspace]:
    workspace = keel.connect(settings=make_settings(tmp_path / "local"), principal="user:t")
    try:
        yield workspace
    finally:
        workspace.close()


# --- 1. pandas reads -------------------------------------------------------------------------


def test_a_remote_pandas_read_keeps_nullable_integers_and_booleans_exact(
    remote: Workspace, local: Workspace
) -> None:
    frame = pl.DataFrame({"id": [2**60 + 1, None], "ok": [True, None]})
    for workspace in (local, remote):
        workspace.datasets.ingest("ids", frame)
    read = remote.datasets.read("ids", format="pandas")
    assert str(read["id"].dtype) == "Int64" and str(read["ok"].dtype) == "boolean"
    assert int(read["id"][0]) == 2**60 + 1 and read["id"].isna().tolist() == [False, True]
    assert read.dtypes.to_dict() == local.datasets.read("ids", format="pandas").dtypes.to_dict()


# --- 2. upload-ingest errors ---------------------------------------------------------------


def _evil_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    return path


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """A bad file of each kind, and what its error says (with the client's path)."""
    (folder / "bad.parquet").write_bytes(b"these bytes are not Parquet")
    (folder / "bad.json").write_text("{{{", encoding="utf-8")
    (folder / "empty.csv").write_text("", encoding="utf-8")
    (folder / "bad.zip").write_bytes(b"not a zip")
    return {
        "parquet": (folder / "bad.parquet", "is not a readable Parquet file"),
        "json": (folder / "bad.json", "is not a JSON array of objects"),
        "csv": (folder / "empty.csv", "is empty"),
        "zip": (folder / "bad.zip", "is not a zip or tar archive"),
        "tar": (_evil_tar(folder / "evil.tar"), "climbs out of the archive"),
    }


def _text(exc: KeelError) -> str:
    return str(exc) + json.dumps(exc.details, default=str)


def test_upload_ingest_errors_name_the_clients_file_never_the_servers_staging_path(
    server: LiveServer, remote: Workspace, tmp_path: Path
) -> None:
    home = str(server.settings.home.resolve())
    for kind, (path, says) in _bad_files(tmp_path).items():
        with pytest.raises(InvalidInputError) as caught:
            remote.datasets.ingest(kind, path)
        assert says in str(caught.value), kind
        assert str(path) in str(caught.value), kind
        assert home not in _text(caught.value) and "uploads" not in _text(caught.value), kind
        shown = {k: v for k, v in caught.value.details.items() if k in ("url", "path")}
        assert shown and set(shown.values()) == {str(path)}, kind

    # a client that describes nothing sees its upload called "upload"
    client = server.client(server.token_for("admin", name="user:t"))
    staged = client.post(
        "/api/v1/projects/default/uploads",
        content=b"not parquet",
        headers={"content-type": "application/octet-stream"},
    ).json()["upload_id"]
    answer = client.post(
        "/api/v1/projects/default/datasets/raw/ingest",
        json={"upload_id": staged, "kind": "parquet"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["message"].startswith("'upload' is not a readable Parquet file")
    assert error["details"]["url"] == "upload" and home not in answer.text


def test_an_uploaded_versions_source_is_the_clients_as_locally(
    server: LiveServer, remote: Workspace, local: Workspace, tmp_path: Path
) -> None:
    csv = tmp_path / "loans.csv"
    csv.write_text("id;amount\n1;2.5\n2;3.5\n", encoding="utf-8")
    made = {
        "remote": remote.datasets.ingest("loans", csv, delimiter=";"),
        "local": local.datasets.ingest("loans", csv, delimiter=";"),
    }
    assert made["remote"].source == made["local"].source
    assert made["remote"].source is not None and made["remote"].source["url"] == str(csv)
    framed = remote.datasets.ingest("framed", pl.DataFrame({"a": [1]}))
    home = str(server.settings.home.resolve())
    for version in (made["remote"], framed):
        assert home not in json.dumps(version.source) and "uploads" not in json.dumps(
            version.source
        )


# --- 3. per-part function transforms --------------------------------------------------------


def test_a_remote_per_part_function_keeps_parts_and_records_per_part_as_locally(
    remote: Workspace, local: Workspace
) -> None:
    frame = pl.DataFrame({"id": list(range(100)), "grade": ["A", "B"] * 50})

    def doubled(part: pl.DataFrame) -> pl.DataFrame:
        return part.select(pl.col("id") * 2)

    made = {}
    for where, workspace in (("local", local), ("remote", remote)):
        workspace.datasets.ingest("loans", frame, part_rows=30)
        made[where] = workspace.datasets.transform("loans", function=doubled, per_part=True)
    for version in made.values():
        assert version.transform is not None
        assert version.transform["per_part"] is True
        assert version.transform["removed_columns"] == ["grade"]
        assert [p.rows for p in version.parts] == [30, 30, 30, 10]
    assert [p.digest for p in made["remote"].parts] == [p.digest for p in made["local"].parts]
    assert remote.datasets.read("loans", 2)["id"].to_list() == [i * 2 for i in range(100)]

    whole = remote.datasets.transform("loans", function=doubled, version=1)
    assert whole.transform is not None and whole.transform["per_part"] is False
    assert [p.rows for p in whole.parts] == [100]


def test_a_remote_per_part_function_whose_parts_disagree_fails_as_locally(
    remote: Workspace, local: Workspace
) -> None:
    def changing(part: pl.DataFrame) -> pl.DataFrame:
        # the third part's ids become text that no integer cast accepts
        if part["id"][0] == 60:
            return part.with_columns(pl.lit("sixty").alias("id"))
        return part

    messages = []
    for workspace in (local, remote):
        workspace.datasets.ingest("loans", pl.DataFrame({"id": list(range(100))}), part_rows=30)
        with pytest.raises(InvalidInputError) as caught:
            workspace.datasets.transform("loans", function=changing, per_part=True)
        messages.append(str(caught.value))
        assert [v.version for v in workspace.datasets.versions("loans")] == [1]
    assert messages[0] == messages[1] and "loans" in messages[1]


# --- 4. the OpenAPI document -----------------------------------------------------------------


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = doc["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_the_openapi_document_describes_errors_security_and_dataset_payloads(
    server: LiveServer,
) -> None:
    import jsonschema

    client = server.client()
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    text = json.dumps(paths)
    assert '"422"' not in text and "HTTPValidationError" not in json.dumps(doc)
    assert doc["components"]["securitySchemes"]["bearer"]["type"] == "http"
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "security" not in paths["/healthz"]["get"]

    dataset_ops = [
        (path, method, op)
        for path, ops in paths.items()
        if "/datasets" in path or "/validation-reports/" in path
        for method, op in ops.items()
    ]
    assert len(dataset_ops) == 19
    for path, method, op in dataset_ops:
        assert op["security"] == [{"bearer": []}], (method, path)
        wanted = {"400", "401", "403", "404"} | ({"409"} if method != "get" else set())
        assert wanted <= set(op["responses"]), (method, path)
        for status in wanted:
            schema = op["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}

    data = paths[f"{BASE}/versions/{{ref}}/data"]["get"]["responses"]["200"]["content"]
    assert set(data) == {"application/vnd.apache.parquet", "text/csv"}
    upload = paths["/api/v1/projects/{project}/uploads"]["post"]["requestBody"]
    assert upload["required"] is True and "application/octet-stream" in upload["content"]
    rejects = paths[f"{BASE}/versions/{{ref}}/rejects"]["get"]["responses"]["200"]
    items = _resolve(doc, rejects["content"]["application/json"]["schema"]["items"])
    assert set(items["properties"]) == {"line", "reason", "text"}
    report = paths["/api/v1/projects/{project}/validation-reports/{report_id}"]["get"]
    html = _resolve(doc, report["responses"]["200"]["content"]["application/json"]["schema"])
    assert set(html["properties"]) == {"id", "html"}

    # the documented error body is the one the server sends
    error_schema = doc["components"]["schemas"]["Error"]
    admin = server.client(server.token_for("admin", name="user:t"))
    answers = {
        400: admin.post("/api/v1/projects/default/datasets/x/ingest", json={"kind": "nope"}),
        401: client.get("/api/v1/projects/default/datasets"),
        404: admin.get("/api/v1/projects/default/datasets/missing/versions/1"),
    }
    for status, answer in answers.items():
        assert answer.status_code == status
        jsonschema.validate(answer.json(), error_schema)

    # and the whole document is valid OpenAPI 3.1 (schemathesis ships the meta-schema)
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    assert doc["openapi"].startswith("3.1")
    jsonschema.Draft202012Validator(OPENAPI_31).validate(doc)


def test_a_json_upload_takes_a_declared_schema_as_locally(
    remote: Workspace, local: Workspace, tmp_path: Path
) -> None:
    data = tmp_path / "prices.ndjson"
    data.write_text('{"a": 1}\n{"a": 10.75}\n', encoding="utf-8")
    for ws in (local, remote):
        version = ws.datasets.ingest("j", data, schema={"a": "float64"})
        assert version.schema == [("a", "Float64")]
        assert ws.datasets.read("j")["a"].to_list() == [1.0, 10.75]


def test_quote_char_none_reaches_the_server_for_a_file_that_quotes_nothing(
    remote: Workspace, tmp_path: Path
) -> None:
    csv = tmp_path / "screens.csv"
    csv.write_text('id,size\n1,5" screen\n2,7" screen\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="quote_char=None"):
        remote.datasets.ingest("screens", csv)
    made = remote.datasets.ingest("screens", csv, quote_char=None)
    assert made.row_count == 2
    rows = remote.datasets.read("screens").to_dicts()
    assert [r["size"] for r in rows] == ['5" screen', '7" screen']
