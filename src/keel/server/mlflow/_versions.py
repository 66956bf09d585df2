"""MLflow model versions: create (from a logged model or run artifacts), read, tag, stage, delete.

One MLflow version is one Keel model version: creation reads the model directory the client
uploaded, finds its model file and registers it through ``ModelRegistry.register`` — so the
registration gate, signing and lineage apply. A safe format (skops, ONNX, LightGBM text,
safetensors) becomes a Keel version; a pickle goes to the supply-chain scan and quarantine and
is refused (Keel never loads pickles).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete

from keel.errors import NotFoundError, PermissionDeniedError
from keel.governance import Context, Permission
from keel.server.mlflow._artifacts import Owner, all_files, parse_uri_path, read_file
from keel.server.mlflow._filters import Grammar, matches, parse_filter, parse_order_by, sort_key
from keel.server.mlflow._registry import (
    PROMPT_TAG,
    _links,
    _model_row,
    _version_no,
    _versions_json,
    prompt_filter,
    version_json,
)
from keel.server.mlflow._tracking import _page, _token
from keel.server.mlflow._wire import Args, MlflowError
from keel.store import DeploymentRepository, MlflowRepository, RegistryRepository
from keel.store._schema import ModelVersionRow, ModelVersionTagRow, RegisteredModelRow
from keel.store._schema_mlflow import MlflowVersionRow
from keel.tracking import ModelVersion

if TYPE_CHECKING:
    from keel.server._deps import Services

__all__ = ["SAFE_SUFFIXES", "create_version"]

#: Model file suffixes Keel registers, and the safe format each is stored as.
SAFE_SUFFIXES = {
    ".skops": "skops",
    ".onnx": "onnx",
    ".lgb": "lightgbm-text",
    ".safetensors": "safetensors",
}
_PICKLES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill")
_STAGES = {s.lower(): s for s in ("None", "Staging", "Production", "Archived")}
_ALIAS = re.compile(r"[\w\-]+")
_VERSION_ALIAS = re.compile(r"[vV]\d+")


# --- versions ------------------------------------------------------------------------------


def _owner_of(s: Services, ctx: Context, source: str, model_id: str) -> tuple[Owner, str]:
    """Where a version's files are, and the URI clients download it from."""
    if model_id or source.startswith("models:/m-"):
        mid = model_id or source.removeprefix("models:/").split("/")[0]
        from keel.server.mlflow._logged import get_model as get_logged

        exp = get_logged(s, ctx, Args({"model_id": mid}))["model"]["info"]["experiment_id"]
        return ("model", exp, mid, ""), f"mlflow-artifacts:/{exp}/models/{mid}/artifacts"
    if source.startswith("mlflow-artifacts:"):
        rest = source.removeprefix("mlflow-artifacts:").lstrip("/")
        return parse_uri_path(rest), f"mlflow-artifacts:/{rest}"
    if source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        exp = s.runs.get(ctx, run_id).experiment_id
        uri = f"mlflow-artifacts:/{exp}/{run_id}/artifacts/{path}".rstrip("/")
        return ("run", exp, run_id, path.strip("/")), uri
    raise MlflowError(
        f"Unsupported model source '{source[:200]}': register a logged model (models:/m-…), a "
        "run's artifacts (runs:/<run>/<path>) or a mlflow-artifacts:/ URI this server assigned."
    )


def create_version(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name, source = a.text("name", required=True), a.text("source")
    s.models.get(ctx, name)  # MLflow registers versions of existing models only (404 if not)
    owner, download_uri = _owner_of(s, ctx, source, a.text("model_id"))
    files = dict(all_files(s, ctx, owner))
    safe = sorted(p for p in files if Path(p).suffix in SAFE_SUFFIXES)
    run_id = a.opt_text("run_id") or (owner[2] if owner[0] == "run" else None)
    if owner[0] == "model" and run_id is None:
        from keel.server.mlflow._logged import get_model as get_logged

        run_id = (
            get_logged(s, ctx, Args({"model_id": owner[2]}))["model"]["info"]["source_run_id"]
            or None
        )
    if not safe:
        _refuse(s, ctx, name, owner, sorted(p for p in files if p.endswith(_PICKLES)), source)
    chosen = safe[0]
    data = read_file(
        s, ctx, (owner[0], owner[1], owner[2], "/".join(x for x in (owner[3], chosen) if x))
    )
    version = s.models.register(
        ctx,
        name,
        artifact=data,
        format=SAFE_SUFFIXES[Path(chosen).suffix],
        run_id=run_id,
        description=a.text("description"),
        tags=a.key_values("tags"),
    )
    link = MlflowVersionRow(
        version_id=version.id,
        source=source or download_uri,
        download_uri=download_uri,
        logged_model_id=owner[2] if owner[0] == "model" else None,
        run_link=a.text("run_link"),
        stage="None",
    )
    with s.governor.write(
        ctx,
        Permission.MODEL_WRITE,
        "model.link_source",
        object_type="model_version",
        object_id=version.id,
    ) as work:
        MlflowRepository(work.session, ctx.project_id).put_version(link)
        work.details = {"source": link.source[:500], "file": chosen}
    return {"model_version": version_json(version, link)}


def _refuse(
    s: Services, ctx: Context, name: str, owner: Owner, pickles: list[str], source: str
) -> None:
    if not pickles:
        raise MlflowError(
            f"No model file in '{source[:200]}': Keel registers skops, ONNX, LightGBM text and "
            "safetensors files. Log the model with mlflow.sklearn.log_model(..., "
            "serialization_format='skops') or as ONNX."
        )
    if s.supplychain is None:
        raise PermissionDeniedError("Pickled models are refused: supply-chain scanning is off.")
    data = read_file(
        s, ctx, (owner[0], owner[1], owner[2], "/".join(x for x in (owner[3], pickles[0]) if x))
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(pickles[0]).name
        path.write_bytes(data)
        held = s.supplychain.scan(ctx, path, name=name)
    raise PermissionDeniedError(
        f"The model arrives as a pickle ('{pickles[0]}'), which Keel never loads in the control "
        f"plane. The supply-chain scan recorded it as {held.status} (verdict {held.verdict}, id "
        f"{held.id}); a pickle does not become a model version. Log the model in a safe format: "
        "mlflow.sklearn.log_model(..., serialization_format='skops') (MLflow 3) or ONNX.",
        quarantine_id=held.id,
    )


def _find(s: Services, ctx: Context, a: Args) -> ModelVersion:
    return s.models.version(ctx, a.text("name", required=True), _version_no(a))


def get_version(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    return {"model_version": _versions_json(s, ctx, [_find(s, ctx, a)])[0]}


def get_by_alias(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    """The version an alias points at; ``latest`` (MLflow's reserved alias) is the highest."""
    name, alias = a.text("name", required=True), a.text("alias", required=True)
    try:
        found = s.models.version(ctx, name, alias)
    except NotFoundError as exc:
        if "alias" not in exc.details or alias.lower() != "latest":
            raise
        found = s.models.version(ctx, name)  # no alias of that name was set in Keel
    return {"model_version": _versions_json(s, ctx, [found])[0]}


def update_version(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name, number = a.text("name", required=True), _version_no(a)
    found = s.models.update_version(ctx, name, number, description=a.text("description"))
    return {"model_version": _versions_json(s, ctx, [found])[0]}


def download_uri(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    version = _find(s, ctx, a)
    link = _links(s, ctx, [version]).get(version.id)
    if link is None or not link.download_uri:
        raise NotFoundError(
            f"Model version {version.model}:{version.version} was not registered through the "
            "MLflow API, so it has no MLflow artifact location; read it with "
            f"`keel models show {version.model}`."
        )
    return {"artifact_uri": link.download_uri}


def _alias(a: Args) -> str:
    """The ``alias`` argument, checked as MLflow checks alias names."""
    alias = a.text("alias", required=True)
    if not _ALIAS.fullmatch(alias) or len(alias) > 255:
        raise MlflowError(
            f"Invalid alias name: '{alias[:100]}'. Alias names may only contain letters, "
            "digits, '_' and '-', at most 255 characters."
        )
    return alias


def set_alias(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    alias = _alias(a)
    if alias.lower() == "latest" or _VERSION_ALIAS.fullmatch(alias):
        reserved = "'latest'" if alias.lower() == "latest" else f"'{alias}' (a version alias)"
        raise MlflowError(
            f"The alias name {reserved} is reserved: MLflow resolves it itself "
            f"(models:/<name>@latest, models:/<name>@v3). Choose another name, e.g. 'champion'."
        )
    s.models.set_alias(ctx, a.text("name", required=True), alias, _version_no(a))
    return {}


def delete_alias(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    """Remove an alias; one that is not set is already gone (as on an MLflow server)."""
    try:
        s.models.delete_alias(ctx, a.text("name", required=True), _alias(a))
    except NotFoundError as exc:
        if "alias" not in exc.details:
            raise  # the model itself does not exist
    return {}


def _version_write(s: Services, ctx: Context, a: Args, action: str, permission: Permission) -> Any:
    return s.governor.write(ctx, permission, action, object_type="model_version")


def _version_row(
    repo: RegistryRepository, name: str, number: int
) -> tuple[RegisteredModelRow, ModelVersionRow]:
    model = _model_row(repo, name)
    row = repo.version(model.id, number)
    if row is None:
        raise NotFoundError(f"Model Version (name={name}, version={number}) not found")
    return model, row


def set_version_tag(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    from keel.tracking._validate import check_key

    key = check_key(a.text("key", required=True), what="tag")
    with _version_write(s, ctx, a, "model.set_version_tag", Permission.MODEL_WRITE) as work:
        _, row = _version_row(
            RegistryRepository(work.session, ctx.project_id),
            a.text("name", required=True),
            _version_no(a),
        )
        RegistryRepository(work.session, ctx.project_id).set_version_tag(
            row.id, key, a.text("value")
        )
        work.object_id, work.details = row.id, {"key": key}
    return {}


def delete_version_tag(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    key = a.text("key", required=True)
    with _version_write(s, ctx, a, "model.delete_version_tag", Permission.MODEL_WRITE) as work:
        _, row = _version_row(
            RegistryRepository(work.session, ctx.project_id),
            a.text("name", required=True),
            _version_no(a),
        )
        work.session.execute(
            delete(ModelVersionTagRow).where(
                ModelVersionTagRow.version_id == row.id, ModelVersionTagRow.key == key
            )
        )
        work.object_id, work.details = row.id, {"key": key}
    return {}


def delete_version(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name, number = a.text("name", required=True), _version_no(a)
    with _version_write(s, ctx, a, "model.delete_version", Permission.MODEL_WRITE) as work:
        repo = RegistryRepository(work.session, ctx.project_id)
        model, row = _version_row(repo, name, number)
        serving = [
            d.name
            for d in DeploymentRepository(work.session, ctx.project_id).list()
            if d.model == name
            and number in {d.state.get(k) for k in ("primary", "candidate", "previous")}
        ]
        if serving:
            raise MlflowError(
                f"Version {number} of '{name}' is deployed ({', '.join(sorted(serving))}: it "
                "serves, rolls out, or is what a rollback returns to); move the deployment to "
                "another version first (`keel deploy`), then delete it.",
                error_code="INVALID_STATE",
            )
        for alias, held in repo.aliases(model.id).items():
            if held == number:
                repo.move_alias(
                    model.id,
                    alias,
                    None,
                    principal=ctx.principal,
                    kind="delete",
                    reason=f"version {number} deleted",
                )
        work.object_id, work.details = row.id, {"model": name, "version": number}
        work.session.execute(delete(ModelVersionRow).where(ModelVersionRow.id == row.id))
    return {}


def transition_stage(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name, number = a.text("name", required=True), _version_no(a)
    stage = _STAGES.get(a.text("stage", required=True).lower())
    if stage is None:
        raise MlflowError(
            f"Invalid Model Version stage: {a.text('stage')}. Value must be one of None, "
            "Staging, Production, Archived."
        )
    archive = a.flag("archive_existing_versions")
    if archive and stage not in ("Staging", "Production"):
        raise MlflowError(
            f"archive_existing_versions applies to a move into Staging or Production, not into "
            f"{stage}: pass archive_existing_versions=False."
        )
    with _version_write(s, ctx, a, "model.transition_stage", Permission.MODEL_PROMOTE) as work:
        repo = RegistryRepository(work.session, ctx.project_id)
        model, row = _version_row(repo, name, number)
        mine = MlflowRepository(work.session, ctx.project_id)
        others = [v for v in repo.versions(model.id) if v.version != number]
        links = mine.versions([row.id, *(v.id for v in others)])
        for version in (row, *others):
            link = links.get(version.id) or MlflowVersionRow(
                version_id=version.id,
                source=f"models:/{name}/{version.version}",
                download_uri="",
                run_link="",
                stage="None",
            )
            if version is row:
                link.stage = stage
            elif archive and stage in ("Staging", "Production") and link.stage == stage:
                link.stage = "Archived"
            else:
                continue
            mine.put_version(link)
        work.object_id, work.details = row.id, {"stage": stage, "archive_existing": archive}
    return {"model_version": _versions_json(s, ctx, [_find(s, ctx, a)])[0]}


def latest_versions(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    name = a.text("name", required=True)
    s.models.get(ctx, name)
    stages = {str(x).lower() for x in a.items("stages")}
    latest: dict[str, dict[str, Any]] = {}
    for v in _versions_json(s, ctx, s.models.versions(ctx, name)):
        latest[v["current_stage"]] = v
    return {"model_versions": [v for st, v in latest.items() if not stages or st.lower() in stages]}


_VERSIONS = Grammar(
    "model versions",
    strings=frozenset({"name", "run_id", "source_path"}),
    numbers=frozenset({"version_number"}),
    lists=frozenset({"name", "run_id"}),
    example="name = 'churn' AND version_number > 3 AND tags.validated = 'yes'",
)
_VERSION_ORDER = {
    k: k for k in ("name", "version_number", "creation_timestamp", "last_updated_timestamp")
}
_VERSION_FIELDS = {
    "name": "name",
    "run_id": "run_id",
    "source_path": "source",
    "version_number": "version",
    "creation_timestamp": "creation_timestamp",
    "last_updated_timestamp": "last_updated_timestamp",
}
MAX_VERSIONS = 200_000


def _version_field(v: dict[str, Any], field: str) -> Any:
    value = v[_VERSION_FIELDS[field]]
    return int(value) if field == "version_number" else (value if value != "" else None)


def search_versions(s: Services, ctx: Context, a: Args) -> dict[str, Any]:
    """Versions matching ``filter``, newest update first unless ``order_by`` says otherwise."""
    max_results = a.integer("max_results", default=10_000)
    if max_results is None or not 1 <= max_results <= MAX_VERSIONS:
        raise MlflowError(
            "Invalid value for request parameter max_results. It must be a positive integer "
            f"of at most {MAX_VERSIONS}, but got value {max_results}"
        )
    clauses, prompts = prompt_filter(parse_filter(a.text("filter"), _VERSIONS))
    wanted = [str(o) for o in a.items("order_by")]
    order = parse_order_by(
        wanted or ["last_updated_timestamp DESC", "name ASC", "version_number DESC"],
        _VERSION_ORDER,
        "model versions",
    )
    order += [
        (f, up) for f, up in (("name", True), ("version_number", False)) if f not in dict(order)
    ]
    names = {
        value
        for c in clauses
        if c.kind == "attribute" and c.key == "name" and c.op in ("=", "IN")
        for value in (c.value if isinstance(c.value, tuple) else (c.value,))
    }
    models = [
        m
        for m in s.models.list(ctx)
        if (m.tags.get(PROMPT_TAG, "").lower() == "true") == prompts
        and (not names or m.name in names)
    ]
    found = []
    for m in models:
        for v in _versions_json(s, ctx, s.models.versions(ctx, m.name)):
            tags = {t["key"]: t["value"] for t in v["tags"]}
            value_of = _version_value(v, tags)
            if matches(clauses, value_of):
                found.append(v)
    found.sort(key=sort_key(order, _version_field))
    offset = _page(a.text("page_token"))
    out: dict[str, Any] = {"model_versions": found[offset : offset + max_results]}
    if offset + max_results < len(found):
        out["next_page_token"] = _token(offset + max_results)
    return out


def _version_value(v: dict[str, Any], tags: dict[str, str]) -> Any:
    def value_of(kind: str, key: str) -> Any:
        return tags.get(key) if kind == "tag" else _version_field(v, key)

    return value_of
