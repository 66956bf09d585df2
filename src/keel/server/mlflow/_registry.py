"""MLflow registered models over Keel's ModelRegistry, and the JSON of models and versions.

Creating, reading, describing and tagging call the registry; what MLflow adds (renaming,
deleting a model or a tag) is written here through the Governor, authorized and audited.
Versions are in ``_versions``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete

from keel.errors import AlreadyExistsError, NotFoundError
from keel.governance import Context, Permission
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


def search_models(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    clauses = _clauses(a.text("filter"))
    found = [
        m
        for m in s.models.list(ctx)
        if all(_match({"name": m.name, **_tag_keys(m.tags)}, c) for c in clauses)
    ]
    reverse = any(str(o).strip().upper().endswith("DESC") for o in a.items("order_by"))
    found.sort(key=lambda m: m.name, reverse=reverse)
    return _paged(a, "registered_models", [model_json(s, ctx, m) for m in found])


def _paged(a: Args, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    from keel.server.mlflow._tracking import _page, _token

    max_results = a.integer("max_results", default=100) or 100
    offset = _page(a.text("page_token"))
    out: dict[str, Any] = {key: items[offset : offset + max_results]}
    if offset + max_results < len(items):
        out["next_page_token"] = _token(offset + max_results)
    return out


_CLAUSE = re.compile(
    r"^\s*(?P<key>name|run_id|source_path|source|version_number|tags?\.(?:`[^`]+`|[\w.\-/:]+))\s*"
    r"(?P<op>=|!=|LIKE|ILIKE|IN)\s*(?P<value>'(?:[^']|'')*'|\((?:\s*'[^']*'\s*,?)+\)|\d+)\s*$",
    re.IGNORECASE,
)


def _clauses(text: str) -> list[tuple[str, str, list[str]]]:
    if not text.strip():
        return []
    out = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(part)
        if match is None:
            raise MlflowError(
                f"Invalid filter '{text[:200]}': write clauses like name = 'x', name LIKE 'x%', "
                "run_id IN ('a', 'b') or tags.key = 'v', joined with AND."
            )
        raw = match["value"]
        values = re.findall(r"'((?:[^']|'')*)'", raw) if raw.startswith(("'", "(")) else [raw]
        key = match["key"]
        if key.lower().startswith("tag"):
            key = "tags." + key.split(".", 1)[1].strip("`")
        else:
            key = key.lower()
        out.append((key, match["op"].upper(), [v.replace("''", "'") for v in values]))
    return out


def _tag_keys(tags: dict[str, str]) -> dict[str, str]:
    return {f"tags.{k}": v for k, v in tags.items()}


def _match(fields: dict[str, str], clause: tuple[str, str, list[str]]) -> bool:
    key, op, values = clause
    actual = fields.get("source" if key == "source_path" else key)
    if actual is None:
        return op == "!="
    if op == "=":
        return actual == values[0]
    if op == "!=":
        return actual != values[0]
    if op == "IN":
        return actual in values
    pattern = "^" + re.escape(values[0]).replace("%", ".*").replace("_", ".") + "$"
    return re.match(pattern, actual, re.IGNORECASE if op == "ILIKE" else 0) is not None
