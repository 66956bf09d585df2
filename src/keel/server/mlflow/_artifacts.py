"""The MLflow artifact proxy: ``mlflow-artifacts:/`` URIs assigned by the server, bytes in Keel.

A URI names its owner, never a storage location: ``<experiment>/<run>/artifacts/<path>`` is an
artifact of a run (Keel's run artifacts), ``<experiment>/models/<model>/artifacts/<path>`` a file
of a logged model. The path is checked (no ``..``, no absolute parts) after full decoding, and
the bytes go to the project's encrypted, content-addressed blob store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from keel.errors import InvalidInputError, NotFoundError
from keel.server.mlflow._http import authenticate, error_response, json_response
from keel.server.mlflow._logged import model_files, read_model_file, store_model_file
from keel.server.mlflow._wire import Args
from keel.tracking._validate import check_artifact_path

if TYPE_CHECKING:
    from keel.governance import Context
    from keel.server._deps import Services

__all__ = [
    "ARTIFACTS_PREFIX",
    "Endpoint",
    "Owner",
    "artifact_endpoints",
    "children",
    "list_run_artifacts",
    "parse_uri_path",
]

ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts"

#: An endpoint of the proxy: request in, response out.
Endpoint = Callable[[Request], Awaitable[Response]]

#: (kind, experiment id, run or model id, path inside its artifacts)
Owner = tuple[str, str, str, str]


def parse_uri_path(path: str) -> Owner:
    """Who owns an artifact path of the proxy, and the path inside the owner's artifacts."""
    parts = path.strip("/").split("/")
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        return "model", parts[0], parts[2], "/".join(parts[4:])
    if len(parts) >= 3 and parts[2] == "artifacts":
        return "run", parts[0], parts[1], "/".join(parts[3:])
    raise NotFoundError(
        f"No artifact location '{path[:200]}': artifact URIs are assigned by the server, of the "
        "form mlflow-artifacts:/<experiment>/<run>/artifacts/<path>.",
    )


def children(files: list[tuple[str, int]], directory: str) -> list[dict[str, Any]]:
    """The entries directly inside ``directory`` (names relative to it), directories first."""
    prefix = directory.strip("/")
    prefix = prefix + "/" if prefix else ""
    dirs: set[str] = set()
    out: list[dict[str, Any]] = []
    for path, size in files:
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        head, sep, _ = rest.partition("/")
        if sep:
            dirs.add(head)
        elif rest:
            out.append({"path": rest, "is_dir": False, "file_size": size})
    return [{"path": d, "is_dir": True} for d in sorted(dirs)] + sorted(
        out, key=lambda f: f["path"]
    )


def _check_run(s: Services, ctx: Context, experiment_id: str, run_id: str) -> None:
    run = s.runs.get(ctx, run_id)
    if experiment_id not in (run.experiment_id, "0"):
        raise NotFoundError(f"Run '{run_id}' is not in experiment '{experiment_id}'.")


def _owner_files(s: Services, ctx: Context, owner: Owner) -> list[tuple[str, int]]:
    kind, exp, owner_id, _ = owner
    if kind == "run":
        _check_run(s, ctx, exp, owner_id)
        return [(a.path, a.size) for a in s.runs.artifacts(ctx, owner_id)]
    return [(p, size) for p, _, size in model_files(s, ctx, owner_id)]


def read_file(s: Services, ctx: Context, owner: Owner) -> bytes:
    kind, exp, owner_id, rel = owner
    if kind == "run":
        _check_run(s, ctx, exp, owner_id)
        return s.runs.read_artifact(ctx, owner_id, rel)
    return read_model_file(s, ctx, owner_id, rel)


def list_files(s: Services, ctx: Context, owner: Owner) -> list[dict[str, Any]]:
    return children(_owner_files(s, ctx, owner), owner[3])


def all_files(s: Services, ctx: Context, owner: Owner) -> list[tuple[str, int]]:
    """Every file under the owner's ``path`` (recursively), paths relative to it."""
    prefix = owner[3].strip("/")
    prefix = prefix + "/" if prefix else ""
    return [(p[len(prefix) :], n) for p, n in _owner_files(s, ctx, owner) if p.startswith(prefix)]


def _upload(s: Services, ctx: Context, owner: Owner, data: bytes) -> None:
    kind, exp, owner_id, rel = owner
    check_artifact_path(rel)
    if kind == "run":
        _check_run(s, ctx, exp, owner_id)
        s.runs.log_bytes(ctx, owner_id, data, name=rel)
    else:
        store_model_file(s, ctx, owner_id, rel, data)


def list_run_artifacts(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    """``GET /api/2.0/mlflow/artifacts/list``: a run's artifacts under ``path``."""
    run_id = a.text("run_id") or a.text("run_uuid", required=True)
    run = s.runs.get(ctx, run_id)
    files = [(f.path, f.size) for f in s.runs.artifacts(ctx, run_id)]
    return {
        "root_uri": f"mlflow-artifacts:/{run.experiment_id}/{run_id}/artifacts",
        "files": [
            {**f, "path": "/".join(p for p in (a.text("path").strip("/"), f["path"]) if p)}
            for f in children(files, a.text("path"))
        ],
    }


def artifact_endpoints() -> list[tuple[str, str, Endpoint]]:
    """``(method, path, endpoint)`` of upload (PUT), download (GET) and list (GET with
    ``path``) under the proxy prefix."""

    def services(request: Request) -> Services:
        found: Services = request.app.state.services
        return found

    async def upload(request: Request) -> Response:
        try:
            owner = parse_uri_path(request.path_params["path"])
            data = await request.body()

            def work() -> None:
                s = services(request)
                _upload(s, authenticate(request, s), owner, data)

            await run_in_threadpool(work)
        except Exception as exc:
            return error_response(request, exc)
        return json_response({})

    async def download(request: Request) -> Response:
        try:
            owner = parse_uri_path(request.path_params["path"])

            def work() -> bytes:
                s = services(request)
                return read_file(s, authenticate(request, s), owner)

            data = await run_in_threadpool(work)
        except Exception as exc:
            return error_response(request, exc)
        return Response(data, media_type="application/octet-stream")

    async def listing(request: Request) -> Response:
        try:
            path = request.query_params.get("path", "")
            if not path.strip("/"):
                raise InvalidInputError("List a run's or a logged model's artifacts, not the root.")
            owner = parse_uri_path(path)

            def work() -> list[dict[str, Any]]:
                s = services(request)
                return list_files(s, authenticate(request, s), owner)

            files = await run_in_threadpool(work)
        except Exception as exc:
            return error_response(request, exc)
        return json_response({"files": files})

    where = f"{ARTIFACTS_PREFIX}/artifacts"
    return [
        ("GET", where, listing),
        ("PUT", f"{where}/{{path:path}}", upload),
        ("GET", f"{where}/{{path:path}}", download),
    ]
