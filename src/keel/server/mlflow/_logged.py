"""MLflow 3 logged models: a run's model directory, recorded before (and apart from) the registry.

MLflow 3 clients create a logged model, upload its files through the artifact proxy, then
finalize it; registering it makes a Keel model version (see ``_registry``). Logged models are
run outputs, so they take the run permissions.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from keel import clock
from keel.errors import NotFoundError
from keel.governance import Context, Permission
from keel.server.mlflow._filters import Clause, Grammar, matches, parse_filter, sort_key
from keel.server.mlflow._tracking import _page, _token, experiment_of
from keel.server.mlflow._wire import Args, MlflowError
from keel.store import MlflowRepository, RunRepository
from keel.store._schema_mlflow import LoggedModelFileRow, LoggedModelRow
from keel.tracking._validate import check_artifact_path, check_key

if TYPE_CHECKING:
    from keel.server._deps import Services

__all__ = ["model_files", "model_json", "read_model_file", "store_model_file"]

_STATUSES = {"LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"}


def _missing(model_id: str) -> NotFoundError:
    return NotFoundError(f"Logged model with ID '{model_id}' not found.", model_id=model_id)


def model_json(row: LoggedModelRow) -> dict[str, Any]:
    return {
        "info": {
            "model_id": row.id,
            "experiment_id": row.experiment_id,
            "name": row.name,
            "creation_timestamp_ms": row.created_ms,
            "last_updated_timestamp_ms": row.updated_ms,
            "artifact_uri": f"mlflow-artifacts:/{row.experiment_id}/models/{row.id}/artifacts",
            "status": row.status,
            "model_type": row.model_type,
            "source_run_id": row.source_run_id or "",
            "status_message": row.status_message,
            "tags": [{"key": k, "value": v} for k, v in row.tags.items()],
            "registrations": [],
        },
        "data": {"params": [{"key": k, "value": v} for k, v in row.params.items()], "metrics": []},
    }


def _row(work_session: Any, ctx: Context, model_id: str) -> LoggedModelRow:
    row = MlflowRepository(work_session, ctx.project_id).model(model_id)
    if row is None or row.lifecycle != "active":
        raise _missing(model_id)
    return row


def _checked(values: dict[str, str], what: str) -> dict[str, str]:
    for key in values:
        check_key(key, what=what)
    return values


def create_model(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    exp = experiment_of(s, ctx, a.text("experiment_id", required=True))
    run_id = a.opt_text("source_run_id")
    tags, params = _checked(a.key_values("tags"), "tag"), _checked(a.key_values("params"), "param")
    name = a.text("name") or f"model-{uuid.uuid4().hex[:8]}"
    with s.governor.write(
        ctx, Permission.RUN_WRITE, "logged_model.create", object_type="logged_model"
    ) as work:
        if run_id and RunRepository(work.session, ctx.project_id).get(run_id) is None:
            raise NotFoundError(f"Run with id={run_id} not found")
        now = clock.now_millis()
        row = MlflowRepository(work.session, ctx.project_id).add_model(
            LoggedModelRow(
                id=f"m-{uuid.uuid4().hex}",
                experiment_id=exp.id,
                name=name[:256],
                source_run_id=run_id,
                model_type=a.text("model_type")[:128],
                status="LOGGED_MODEL_PENDING",
                status_message="",
                creator=ctx.principal,
                lifecycle="active",
                created_ms=now,
                updated_ms=now,
                tags=tags,
                params=params,
            )
        )
        work.object_id = row.id
        work.details = {"experiment_id": exp.id, "name": row.name, "run_id": run_id}
        return {"model": model_json(row)}


def get_model(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    with s.governor.read(
        ctx, Permission.RUN_READ, "logged_model.read", object_type="logged_model"
    ) as session:
        return {"model": model_json(_row(session, ctx, a.text("model_id", required=True)))}


def _update(s: Services, ctx: Context, model_id: str, action: str, change: Any) -> dict[str, Any]:
    with s.governor.write(
        ctx, Permission.RUN_WRITE, action, object_type="logged_model", object_id=model_id
    ) as work:
        row = _row(work.session, ctx, model_id)
        work.details = change(row) or {}
        row.updated_ms = clock.now_millis()
        return {"model": model_json(row)}


def finalize_model(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    status = a.text("status", required=True)
    if status not in _STATUSES:
        raise MlflowError(f"Invalid value '{status}' for parameter 'status'.")

    def change(row: LoggedModelRow) -> dict[str, Any]:
        row.status = status
        return {"status": status}

    return _update(s, ctx, a.text("model_id", required=True), "logged_model.finalize", change)


def set_model_tags(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    tags = _checked(a.key_values("tags"), "tag")

    def change(row: LoggedModelRow) -> dict[str, Any]:
        row.tags = {**row.tags, **tags}
        return {"tags": sorted(tags)}

    return _update(s, ctx, a.text("model_id", required=True), "logged_model.set_tags", change)


def delete_model_tag(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    key = a.text("tag_key", required=True)

    def change(row: LoggedModelRow) -> dict[str, Any]:
        if key not in row.tags:
            raise NotFoundError(f"No tag with key '{key}' on logged model '{row.id}'.")
        row.tags = {k: v for k, v in row.tags.items() if k != key}
        return {"key": key}

    _update(s, ctx, a.text("model_id", required=True), "logged_model.delete_tag", change)
    return {}


def log_model_params(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    params = _checked(a.key_values("params"), "param")

    def change(row: LoggedModelRow) -> dict[str, Any]:
        row.params = {**row.params, **params}
        return {"params": len(params)}

    _update(s, ctx, a.text("model_id", required=True), "logged_model.log_params", change)
    return {}


def delete_model(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    def change(row: LoggedModelRow) -> dict[str, Any]:
        row.lifecycle = "deleted"
        return {}

    _update(s, ctx, a.text("model_id", required=True), "logged_model.delete", change)
    return {}


_LOGGED = Grammar(
    "logged models",
    strings=frozenset({"name", "model_id", "model_type", "status", "source_run_id"}),
    numbers=frozenset(
        {"creation_timestamp", "creation_time", "last_updated_timestamp", "last_updated_time"}
    ),
    entities=frozenset({"tag", "param", "metric"}),
    example="name = 'model' AND params.alpha = '0.5' AND status = 'READY'",
)
_ORDER_KEYS = {k: k for k in _LOGGED.strings | _LOGGED.numbers} | {
    "creation_time": "creation_timestamp",
    "last_updated_time": "last_updated_timestamp",
}
#: The proto's status names → the names filters use (MLflow's LoggedModelStatus).
_SHORT_STATUS = {
    "LOGGED_MODEL_PENDING": "PENDING",
    "LOGGED_MODEL_READY": "READY",
    "LOGGED_MODEL_UPLOAD_FAILED": "FAILED",
}
MAX_SCAN = 50_000  # logged models one filtered or ordered search may go through


def _field(row: LoggedModelRow, key: str) -> Any:
    if key in ("creation_timestamp", "creation_time"):
        return row.created_ms
    if key in ("last_updated_timestamp", "last_updated_time"):
        return row.updated_ms
    if key == "model_id":
        return row.id
    if key == "status":
        return _SHORT_STATUS.get(row.status, row.status)
    value = getattr(row, key)
    return value if value != "" else None


def _value_of(row: LoggedModelRow) -> Any:
    def value_of(kind: str, key: str) -> Any:
        if kind == "tag":
            return row.tags.get(key)
        if kind == "param":
            return row.params.get(key)
        if kind == "metric":
            return None  # Keel keeps no metrics on logged models
        return _field(row, key)

    return value_of


def _order(a: Args) -> list[tuple[str, bool]]:
    order: list[tuple[str, bool]] = []
    for item in a.objects("order_by"):
        field = str(item.get("field_name") or "").strip()
        ascending = item.get("ascending", True)
        if field.startswith("metrics."):
            continue  # no metrics here: every model would tie on it
        if field not in _ORDER_KEYS or not isinstance(ascending, bool):
            valid = ", ".join(sorted(_ORDER_KEYS))
            raise MlflowError(
                f"Invalid order_by {item!r:.200} for logged models: field_name is one of "
                f"{valid} or metrics.<key>, ascending a boolean."
            )
        order.append((_ORDER_KEYS[field], ascending))
    if not any(f == "creation_timestamp" for f, _ in order):
        order.append(("creation_timestamp", False))
    if not any(f == "model_id" for f, _ in order):
        order.append(("model_id", True))
    return order


def search_models(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    """Logged models matching ``filter``, ordered, then paged (MLflow's tie-breakers: newest
    first, then by id)."""
    ids = [experiment_of(s, ctx, str(e)).id for e in a.items("experiment_ids")]
    max_results = a.integer("max_results", default=100) or 100
    offset = _page(a.text("page_token"))
    clauses = [
        Clause(c.kind, c.key, c.op, c.value.removeprefix("LOGGED_MODEL_"))
        if c.key == "status" and c.kind == "attribute" and isinstance(c.value, str)
        else c
        for c in parse_filter(a.text("filter"), _LOGGED)
    ]
    order = _order(a)
    plain = not clauses and order == [("creation_timestamp", False), ("model_id", True)]
    with s.governor.read(
        ctx, Permission.RUN_READ, "logged_model.search", object_type="logged_model"
    ) as session:
        repo = MlflowRepository(session, ctx.project_id)
        if plain:  # the store's own order: page in the database
            rows = repo.models(ids or None, limit=max_results + 1, offset=offset)
            more, page = len(rows) > max_results, rows[:max_results]
        else:
            rows = repo.models(ids or None, limit=MAX_SCAN + 1, offset=0)
            if len(rows) > MAX_SCAN:
                raise MlflowError(
                    f"A filtered or ordered logged-model search goes through at most "
                    f"{MAX_SCAN:,} models; pass experiment_ids to narrow it."
                )
            found = [r for r in rows if matches(clauses, _value_of(r))]
            found.sort(key=sort_key(order, _field))
            page = found[offset : offset + max_results]
            more = offset + max_results < len(found)
        out: dict[str, Any] = {"models": [model_json(r) for r in page]}
    if more:
        out["next_page_token"] = _token(offset + max_results)
    return out


# --- files --------------------------------------------------------------------------------


def model_files(s: Services, ctx: Context, model_id: str) -> list[tuple[str, str, int]]:
    """(path, digest, size) of every file of a logged model."""
    with s.governor.read(
        ctx, Permission.RUN_READ, "logged_model.read", object_type="logged_model"
    ) as session:
        _row(session, ctx, model_id)
        rows = MlflowRepository(session, ctx.project_id).files(model_id)
        return [(r.path, r.digest, r.size) for r in rows]


def store_model_file(s: Services, ctx: Context, model_id: str, path: str, data: bytes) -> None:
    target = check_artifact_path(path)
    s.governor.check(
        ctx, Permission.RUN_WRITE, action="logged_model.upload", object_type="logged_model"
    )
    with s.governor.db.read() as session:
        _row(session, ctx, model_id)
    info = s.blobs.put_bytes(data, scope=ctx.project_id)
    with s.governor.write(
        ctx,
        Permission.RUN_WRITE,
        "logged_model.upload",
        object_type="logged_model",
        object_id=model_id,
    ) as work:
        _row(work.session, ctx, model_id)
        MlflowRepository(work.session, ctx.project_id).add_file(
            model_id, target, digest=info.digest, size=info.size
        )
        work.details = {"path": target, "digest": info.digest, "size": info.size}


def read_model_file(s: Services, ctx: Context, model_id: str, path: str) -> bytes:
    target = check_artifact_path(path)
    with s.governor.read(
        ctx, Permission.RUN_READ, "logged_model.read_artifact", object_type="logged_model"
    ) as session:
        _row(session, ctx, model_id)
        row: LoggedModelFileRow | None = MlflowRepository(session, ctx.project_id).file(
            model_id, target
        )
        if row is None:
            raise NotFoundError(f"Logged model '{model_id}' has no file '{target}'.")
        digest = row.digest
    return s.blobs.get_bytes(digest, scope=ctx.project_id)


def list_model_artifacts(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    from keel.server.mlflow._artifacts import children

    model_id = a.text("model_id", required=True)
    files = [(p, size) for p, _, size in model_files(s, ctx, model_id)]
    with s.governor.db.read() as session:
        exp = _row(session, ctx, model_id).experiment_id
    return {
        "root_uri": f"mlflow-artifacts:/{exp}/models/{model_id}/artifacts",
        "files": children(files, a.text("artifact_directory_path")),
    }
