"""MLflow registered models over Keel's ModelRegistry, and the JSON of models and versions.

Creating, reading, describing and tagging call the registry; what MLflow adds (renaming,
deleting a model or a tag) is written here through the Governor, authorized and audited.
Versions are in ``_versions``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete

from keel.errors import AlreadyExistsError, NotFoundError
from keel.governance import Context, Permission
from keel.server.mlflow._filters import (
    Clause,
    Grammar,
    matches,
    parse_filter,
    parse_order_by,
    sort_key,
)
from keel.server.mlflow._tracking import _page, _token
from keel.server.mlflow._wire import Args, MlflowError
from keel.store import MlflowRepository, RegistryRepository
from keel.store._schema import ModelTagRow, RegisteredModelRow
from keel.store._schema_mlflow import MlflowVersionRow
from keel.tracking import ModelVersion, RegisteredModel

if TYPE_CHECKING:
    from keel.server._deps import Services

__all__ = ["model_json", "version_json"]


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000)


def version_json(v: ModelVersion, link: MlflowVersionRow | None) -> dict[str, Any]:
    return {
        "name": v.model,
        "version": str(v.version),
        "creation_timestamp": _ms(v.created_at),
        "last_updated_timestamp": _ms(v.created_at),
        "user_id": v.creator,
        "current_stage": link.stage if link else "None",
        "description": v.description,
        "source": link.source if link else f"models:/{v.model}/{v.version}",
        "run_id": v.run_id or "",
        "status": "READY",
        "status_message": "",
        "tags": [{"key": k, "value": val} for k, val in v.tags.items()],
        "run_link": link.run_link if link else "",
        "aliases": list(v.aliases),
        "model_id": (link.logged_model_id or "") if link else "",
    }


def _links(s: Services, ctx: Context, versions: list[ModelVersion]) -> dict[str, MlflowVersionRow]:
    with s.governor.db.read() as session:
        links = MlflowRepository(session, ctx.project_id).versions([v.id for v in versions])
        for row in links.values():
            session.expunge(row)
        return links


def _versions_json(s: Services, ctx: Context, versions: list[ModelVersion]) -> list[dict[str, Any]]:
    links = _links(s, ctx, versions)
    return [version_json(v, links.get(v.id)) for v in versions]


def model_json(s: Services, ctx: Context, m: RegisteredModel) -> dict[str, Any]:
    versions = s.models.versions(ctx, m.name) if m.latest_version is not None else []
    latest: dict[str, dict[str, Any]] = {}
    for v in _versions_json(s, ctx, versions):
        latest[v["current_stage"]] = v  # versions come in ascending order
    return {
        "name": m.name,
        "creation_timestamp": _ms(m.created_at),
        "last_updated_timestamp": _ms(m.updated_at),
        "description": m.description,
        "latest_versions": list(latest.values()),
        "tags": [{"key": k, "value": v} for k, v in m.tags.items()],
        "aliases": [{"alias": k, "version": str(v)} for k, v in m.aliases.items()],
    }


def _version_no(a: Args) -> int:
    text = a.text("version", required=True)
    if not text.isdigit():
        raise MlflowError(f"Parameter 'version' must be an integer, got '{text}'.")
    return int(text)


# --- registered models ---------------------------------------------------------------------


def create_model(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name = a.text("name", required=True)
    try:
        made = s.models.create(ctx, name, description=a.text("description"))
    except AlreadyExistsError:
        raise MlflowError(
            f"Registered Model (name={name}) already exists.", error_code="RESOURCE_ALREADY_EXISTS"
        ) from None
    for key, value in a.key_values("tags").items():
        s.models.set_tag(ctx, name, key, value)
    return {"registered_model": model_json(s, ctx, s.models.get(ctx, made.name))}


def get_model(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    return {
        "registered_model": model_json(s, ctx, s.models.get(ctx, a.text("name", required=True)))
    }


def update_model(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name = a.text("name", required=True)
    updated = s.models.update(ctx, name, description=a.text("description"))
    return {"registered_model": model_json(s, ctx, updated)}


def rename_model(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    from keel.types import validate_name

    name = a.text("name", required=True)
    new_name = validate_name(a.text("new_name", required=True), what="model name")
    with s.governor.write(ctx, Permission.MODEL_WRITE, "model.rename", object_type="model") as work:
        repo = RegistryRepository(work.session, ctx.project_id)
        row = _model_row(repo, name)
        if repo.model(new_name) is not None:
            raise MlflowError(
                f"Registered Model (name={new_name}) already exists.",
                error_code="RESOURCE_ALREADY_EXISTS",
            )
        row.name = new_name
        work.object_id = row.id
        work.details = {"from": name, "to": new_name}
    return {"registered_model": model_json(s, ctx, s.models.get(ctx, new_name))}


def _model_row(repo: RegistryRepository, name: str) -> RegisteredModelRow:
    row = repo.model(name, lock=True)
    if row is None:
        raise NotFoundError(f"Registered Model with name={name} not found")
    return row


def delete_model(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name = a.text("name", required=True)
    with s.governor.write(ctx, Permission.MODEL_WRITE, "model.delete", object_type="model") as work:
        row = _model_row(RegistryRepository(work.session, ctx.project_id), name)
        work.object_id = row.id
        work.details = {"name": name}
        work.session.execute(delete(RegisteredModelRow).where(RegisteredModelRow.id == row.id))
    return {}


def set_model_tag(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    s.models.set_tag(
        ctx, a.text("name", required=True), a.text("key", required=True), a.text("value")
    )
    return {}


def delete_model_tag(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name, key = a.text("name", required=True), a.text("key", required=True)
    with s.governor.write(
        ctx, Permission.MODEL_WRITE, "model.delete_tag", object_type="model"
    ) as work:
        row = _model_row(RegistryRepository(work.session, ctx.project_id), name)
        work.session.execute(
            delete(ModelTagRow).where(ModelTagRow.model_id == row.id, ModelTagRow.key == key)
        )
        work.object_id, work.details = row.id, {"key": key}
    return {}


#: The ``mlflow.prompt.is_prompt`` tag marks MLflow prompts, which searches leave out unless
#: the filter asks for them (as an MLflow server does; its client adds ``!= 'true'`` itself).
PROMPT_TAG = "mlflow.prompt.is_prompt"
_MODELS = Grammar(
    "registered models",
    strings=frozenset({"name"}),
    lists=frozenset({"name"}),
    example="name LIKE 'churn%' AND tags.team = 'ml'",
)
_MODEL_ORDER = {
    "name": "name",
    "timestamp": "last_updated_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
    "creation_timestamp": "creation_timestamp",
}
MAX_MODELS = 1000


def prompt_filter(clauses: list[Clause]) -> tuple[list[Clause], bool]:
    """The clauses without the prompt tag's, and whether they ask for prompts."""
    wants = any(
        c.kind == "tag"
        and c.key == PROMPT_TAG
        and isinstance(c.value, str)
        and (
            (c.op == "=" and c.value.lower() == "true")
            or (c.op == "!=" and c.value.lower() == "false")
        )
        for c in clauses
    )
    if wants:
        return clauses, True
    return [c for c in clauses if not (c.kind == "tag" and c.key == PROMPT_TAG)], False


def _model_field(m: RegisteredModel, field: str) -> Any:
    if field == "name":
        return m.name
    return _ms(m.created_at if field == "creation_timestamp" else m.updated_at)


def search_models(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    """Registered models matching ``filter``, by ``order_by`` then name (MLflow's tie-breaker)."""
    max_results = a.integer("max_results", default=100) or 100
    if max_results > MAX_MODELS:
        raise MlflowError(
            "Invalid value for request parameter max_results. It must be at most "
            f"{MAX_MODELS}, but got value {max_results}"
        )
    clauses, prompts = prompt_filter(parse_filter(a.text("filter"), _MODELS))
    order = parse_order_by([str(o) for o in a.items("order_by")], _MODEL_ORDER, "registered models")
    if not any(field == "name" for field, _ in order):
        order.append(("name", True))

    def value_of(m: RegisteredModel) -> Any:
        return lambda kind, key: m.tags.get(key) if kind == "tag" else m.name

    found = [
        m
        for m in s.models.list(ctx)
        if (m.tags.get(PROMPT_TAG, "").lower() == "true") == prompts
        and matches(clauses, value_of(m))
    ]
    found.sort(key=sort_key(order, _model_field))
    offset = _page(a.text("page_token"))
    page = found[offset : offset + max_results]
    out: dict[str, Any] = {"registered_models": [model_json(s, ctx, m) for m in page]}
    if offset + max_results < len(found):
        out["next_page_token"] = _token(offset + max_results)
    return out
