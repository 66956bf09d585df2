"""``ws.models`` over HTTP: the registry, with model packages built and loaded on the client.

``log_model`` packages the model where the object is (safe formats, the sidecar with its input
example) and uploads the files; the server loads each format with its safe loader, checks the
example, and registers the version through the same gates, scans and signing as local mode.
``load`` downloads one stored format, checks its digest against the version (or the sidecar,
for a companion such as ONNX), and checks the stored example here before returning it.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from keel import errors
from keel.governance import Context
from keel.tracking import (
    AliasMove,
    LoadedModel,
    ModelRegistry,
    ModelVersion,
    RegisteredModel,
    parse_model_ref,
)
from keel.tracking._packaging import ModelPackage
from keel.workspace._http import HttpClient
from keel.workspace._http import base_path as _base
from keel.workspace._http import segment as _seg

__all__ = ["RemoteModelRegistry"]


class RemoteModelRegistry(ModelRegistry):
    """ModelRegistry over HTTP; model files stream through the server's staging area.

    Signatures are verified by the server before it hands out an artifact (``read_artifact``
    and ``load_sklearn`` go through it), so ``verify_signature`` stays server-side.
    """

    COMPOSED: ClassVar[frozenset[str]] = frozenset({"log_model", "log_sklearn"})
    SERVER_ONLY: ClassVar[frozenset[str]] = frozenset({"verify_signature"})

    def __init__(self, http: HttpClient) -> None:
        self._http = http

    def _path(self, ctx: Context, name: str) -> str:
        return f"{_base(ctx)}/models/{_seg(name)}"

    def create(self, ctx: Context, name: str, *, description: str = "") -> RegisteredModel:
        body = {"name": name, "description": description}
        path = f"{_base(ctx)}/models"
        return self._http.call("POST", path, json=body, into=RegisteredModel)

    def get(self, ctx: Context, name: str) -> RegisteredModel:
        return self._http.call("GET", self._path(ctx, name), into=RegisteredModel)

    def list(self, ctx: Context, *, name_like: str | None = None) -> builtins.list[RegisteredModel]:
        path = f"{_base(ctx)}/models"
        params = {"name_like": name_like}
        return self._http.call("GET", path, params=params, into=list[RegisteredModel])

    def update(
        self,
        ctx: Context,
        name: str,
        *,
        description: str,
        expected_row_version: int | None = None,
    ) -> RegisteredModel:
        body = {"description": description, "expected_row_version": expected_row_version}
        path = self._path(ctx, name)
        return self._http.call("PATCH", path, json=body, into=RegisteredModel)

    def set_tag(self, ctx: Context, name: str, key: str, value: str) -> None:
        body = {"key": key, "value": str(value)}
        self._http.call("POST", f"{self._path(ctx, name)}/tags", json=body)

    def register(
        self,
        ctx: Context,
        name: str,
        *,
        artifact: bytes | Path,
        format: str,
        run_id: str | None = None,
        signature: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        upload = self._http.upload(ctx.project_name, artifact)
        body = {
            "upload_id": upload,
            "format": format,
            "run_id": run_id,
            "signature": None if signature is None else dict(signature),
            "metrics": None if metrics is None else dict(metrics),
            "description": description,
            "tags": None if tags is None else {k: str(v) for k, v in tags.items()},
        }
        path = f"{self._path(ctx, name)}/versions"
        return self._http.call("POST", path, json=body, into=ModelVersion)

    def _version_path(self, ctx: Context, ref: str, version: int | str | None) -> str:
        name, selector = parse_model_ref(ref)
        if version is not None:
            selector = version
        if selector is None:
            return f"{self._path(ctx, name)}/latest"
        return f"{self._path(ctx, name)}/versions/{_seg(selector)}"

    def version(self, ctx: Context, ref: str, version: int | str | None = None) -> ModelVersion:
        path = self._version_path(ctx, ref, version)
        return self._http.call("GET", path, into=ModelVersion)

    def versions(self, ctx: Context, name: str) -> builtins.list[ModelVersion]:
        path = f"{self._path(ctx, name)}/versions"
        return self._http.call("GET", path, into=list[ModelVersion])

    def update_version(
        self,
        ctx: Context,
        name: str,
        version: int,
        *,
        description: str,
        expected_row_version: int | None = None,
    ) -> ModelVersion:
        body = {"description": description, "expected_row_version": expected_row_version}
        path = f"{self._path(ctx, name)}/versions/{int(version)}"
        return self._http.call("PATCH", path, json=body, into=ModelVersion)

    def read_artifact(self, ctx: Context, ref: str, version: int | str | None = None) -> bytes:
        found = self.version(ctx, ref, version)
        return self._http.download(
            f"{self._path(ctx, found.model)}/versions/{found.version}/artifact"
        )

    def load_sklearn(self, ctx: Context, ref: str, version: int | str | None = None) -> Any:
        from keel.tracking import load_skops

        found = self.version(ctx, ref, version)
        if found.format != "skops":
            raise errors.InvalidInputError(
                f"Model {found.model}:{found.version} is stored as '{found.format}', not skops."
            )
        return load_skops(self.read_artifact(ctx, found.model, found.version))

    def log_model(
        self,
        ctx: Context,
        model: Any,
        *,
        name: str,
        sample: Any,
        holdout: Any | None = None,
        run_id: str | None = None,
        onnx: bool | Literal["auto"] = "auto",
        feature_names: Sequence[str] | None = None,
        code_version: str | None = None,
        dataset_version: str | None = None,
        seed: int | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Package ``model`` here (safe formats and sidecar) and register it on the server."""
        from keel.tracking._packaging import build_package

        package = build_package(
            model,
            sample=sample,
            holdout=holdout,
            onnx=onnx,
            feature_names=feature_names,
            code_version=code_version,
            dataset_version=dataset_version,
            seed=seed,
        )
        return self.register_package(
            ctx,
            name,
            package,
            run_id=run_id,
            metrics=metrics,
            description=description,
            tags=tags,
        )

    def register_package(
        self,
        ctx: Context,
        name: str,
        package: ModelPackage,
        *,
        run_id: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
        verify: bool = True,
    ) -> ModelVersion:
        """Upload the package's files and register them (the server always verifies them)."""
        from keel.tracking._packaging import dump_sidecar

        project = ctx.project_name
        body = {
            "upload_id": self._http.upload(project, package.artifact),
            "format": package.format,
            "sidecar_upload_id": self._http.upload(project, dump_sidecar(package.sidecar)),
            "companions": {
                fmt: self._http.upload(project, data) for fmt, data in package.companions.items()
            },
            "run_id": run_id,
            "metrics": None if metrics is None else dict(metrics),
            "description": description,
            "tags": None if tags is None else {k: str(v) for k, v in tags.items()},
        }
        path = f"{self._path(ctx, name)}/packages"
        return self._http.call("POST", path, json=body, into=ModelVersion)

    def load(
        self,
        ctx: Context,
        ref: str,
        version: int | str | None = None,
        *,
        format: str | None = None,
        verify: bool = True,
    ) -> LoadedModel:
        """Download one stored format, check its digest and example, and load it here."""
        from keel.tracking._modelio import loaded_model
        from keel.tracking._packaging import check_format

        requested = check_format(format) if format else None  # pickle is refused before I/O
        found = self.version(ctx, ref, version)
        package = self.package(ctx, found.model, found.version)
        wanted = requested or found.format
        if wanted == found.format:
            expected = found.artifact_digest
        else:
            companion = package.get("companions", {}).get(wanted)
            if not isinstance(companion, dict):
                held = ", ".join([found.format, *package.get("companions", {})])
                raise errors.NotFoundError(
                    f"Model {found.model}:{found.version} is not stored as '{wanted}' "
                    f"(formats: {held}).",
                    model=found.model,
                    version=found.version,
                    format=wanted,
                )
            expected = str(companion["digest"])
        path = f"{self._path(ctx, found.model)}/versions/{found.version}/formats/{_seg(wanted)}"
        data = self._http.download(path)
        if f"sha256:{hashlib.sha256(data).hexdigest()}" != expected:
            raise errors.IntegrityError(
                f"The {wanted} file of model {found.model}:{found.version} does not match its "
                f"digest {expected}; it was changed in transit or in the store.",
                model=found.model,
                version=found.version,
            )
        return loaded_model(found, package, wanted, data, verify=verify)

    def package(self, ctx: Context, ref: str, version: int | str | None = None) -> dict[str, Any]:
        found = self.version(ctx, ref, version)
        path = f"{self._path(ctx, found.model)}/versions/{found.version}/package"
        data: dict[str, Any] = self._http.call("GET", path)
        return data

    def set_alias(
        self,
        ctx: Context,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str = "",
        expected_current: int | None = None,
    ) -> AliasMove:
        body = {"version": version, "reason": reason, "expected_current": expected_current}
        path = f"{self._path(ctx, name)}/aliases/{_seg(alias)}"
        return self._http.call("PUT", path, json=body, into=AliasMove)

    def delete_alias(self, ctx: Context, name: str, alias: str, *, reason: str = "") -> None:
        path = f"{self._path(ctx, name)}/aliases/{_seg(alias)}"
        self._http.call("DELETE", path, params={"reason": reason or None})

    def rollback(self, ctx: Context, name: str, alias: str, *, reason: str = "") -> AliasMove:
        path = f"{self._path(ctx, name)}/aliases/{_seg(alias)}/rollback"
        return self._http.call("POST", path, json={"reason": reason}, into=AliasMove)

    def alias_history(
        self, ctx: Context, name: str, alias: str | None = None
    ) -> builtins.list[AliasMove]:
        path = f"{self._path(ctx, name)}/history"
        return self._http.call("GET", path, params={"alias": alias}, into=list[AliasMove])
