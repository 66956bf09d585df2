"""The model registry: models, immutable versions, and aliases whose every move is kept."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from keel.errors import AlreadyExistsError, ConflictError, InvalidInputError, NotFoundError
from keel.governance import (
    Context,
    Governor,
    Permission,
    PolicyService,
    model_context,
    model_subject,
    version_payload,
)
from keel.lineage import LineageService, Node
from keel.store import RegistryRepository, RunRepository
from keel.store._schema import ModelVersionRow, RegisteredModelRow
from keel.tracking._model import AliasMove, ModelVersion, RegisteredModel
from keel.tracking._packaging import check_format, dump_skops, load_skops
from keel.tracking._validate import MAX_TAG_VALUE, check_key
from keel.types import validate_name

if TYPE_CHECKING:
    from keel.blobs import BlobStore
    from keel.governance import ModelSigner, SignatureInfo
    from keel.tracking._modelio import LoadedModel
    from keel.tracking._packaging import ModelPackage

__all__ = ["ModelRegistry", "parse_model_ref"]

_REF = re.compile(r"^(?P<name>[^@:/]+)(?:@(?P<alias>[^@:/]+)|[:/](?P<version>\d+))?$")


def parse_model_ref(ref: str) -> tuple[str, str | int | None]:
    """Split ``name``, ``name@alias``, ``name:3`` or ``name/3`` into (name, alias-or-version)."""
    match = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if match is None:
        raise InvalidInputError(
            f"Invalid model reference {ref!r:.80}: write NAME, NAME@ALIAS or NAME:VERSION "
            "(for example churn@champion or churn:3)."
        )
    if match["alias"]:
        return match["name"], match["alias"]
    if match["version"]:
        return match["name"], int(match["version"])
    return match["name"], None


def _model_missing(name: str) -> NotFoundError:
    return NotFoundError(
        f"Registered model '{name}' does not exist in this project. List models with "
        "`keel models list`.",
        model=name,
    )


class ModelRegistry:
    """Registers model versions in safe formats and moves aliases atomically."""

    def __init__(
        self,
        governor: Governor,
        blobs: BlobStore,
        *,
        policies: PolicyService | None = None,
        signer: ModelSigner | None = None,
        region: str | None = None,
    ) -> None:
        self._gov = governor
        self._blobs = blobs
        # Gates model.register and alias.promote always consult the project's policies.
        self._policies = policies if policies is not None else PolicyService(governor)
        self._signer = signer  # signs at registration, verifies before load (None: off)
        self._region = region

    # --- models -------------------------------------------------------------------------

    def create(self, ctx: Context, name: str, *, description: str = "") -> RegisteredModel:
        validate_name(name, what="model name")
        with self._gov.write(
            ctx, Permission.MODEL_WRITE, "model.create", object_type="model"
        ) as work:
            repo = RegistryRepository(work.session, ctx.project_id)
            if repo.model(name) is not None:
                raise AlreadyExistsError(
                    f"A registered model named '{name}' already exists; register a new version "
                    "of it instead, or choose another name.",
                    model=name,
                )
            row = repo.create_model(name, description=description)
            work.object_id = row.id
            work.details = {"name": name}
            return self._model(repo, row)

    def get(self, ctx: Context, name: str) -> RegisteredModel:
        with self._read(ctx, "model.read") as session:
            repo = RegistryRepository(session, ctx.project_id)
            return self._model(repo, self._model_row(repo, name))

    def list(self, ctx: Context, *, name_like: str | None = None) -> list[RegisteredModel]:
        with self._read(ctx, "model.list") as session:
            repo = RegistryRepository(session, ctx.project_id)
            return [self._model(repo, row) for row in repo.models(name_like=name_like)]

    def update(
        self,
        ctx: Context,
        name: str,
        *,
        description: str,
        expected_row_version: int | None = None,
    ) -> RegisteredModel:
        """Change the description; with ``expected_row_version``, refuse a stale update."""
        with self._gov.write(
            ctx, Permission.MODEL_WRITE, "model.update", object_type="model"
        ) as work:
            repo = RegistryRepository(work.session, ctx.project_id)
            row = self._model_row(repo, name, lock=True)
            _check_fresh(row.row_version, expected_row_version, f"model '{name}'")
            row.description = description
            work.session.flush()
            work.object_id = row.id
            return self._model(repo, row)

    def set_tag(self, ctx: Context, name: str, key: str, value: str) -> None:
        check_key(key, what="tag")
        with self._gov.write(
            ctx, Permission.MODEL_WRITE, "model.set_tag", object_type="model"
        ) as work:
            repo = RegistryRepository(work.session, ctx.project_id)
            row = self._model_row(repo, name)
            text = str(value)
            if len(text) > MAX_TAG_VALUE:
                raise InvalidInputError(
                    f"Tag '{key}' is {len(text)} characters; the limit is {MAX_TAG_VALUE}."
                )
            repo.set_model_tag(row.id, key, text)
            work.object_id = row.id
            work.details = {"key": key}

    # --- versions -----------------------------------------------------------------------

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
        """Store ``artifact`` and register it as the next version of ``name`` (created if new)."""
        validate_name(name, what="model name")
        fmt = check_format(format)
        # Authorize before a single byte is stored (a denied caller leaves nothing behind).
        self._gov.check(ctx, Permission.MODEL_WRITE, action="model.register", object_type="model")
        if isinstance(artifact, bytes):
            info = self._blobs.put_bytes(artifact, scope=ctx.project_id)
        else:
            info = self._blobs.put_file(artifact, scope=ctx.project_id)
        self._gate(
            ctx,
            "model.register",
            model_subject(name),
            model_context(
                name=name,
                version=None,
                fmt=fmt,
                digest=info.digest,
                metrics=metrics,
                tags=tags,
                signature=signature,
                run_id=run_id,
                region=self._region,
            ),
            Permission.MODEL_WRITE,
        )
        self._ensure_model(ctx, name)
        with self._gov.write(
            ctx, Permission.MODEL_WRITE, "model.register", object_type="model_version"
        ) as work:
            repo = RegistryRepository(work.session, ctx.project_id)
            if (
                run_id is not None
                and RunRepository(work.session, ctx.project_id).get(run_id) is None
            ):
                raise NotFoundError(
                    f"Run '{run_id}' does not exist in this project, so it cannot be the "
                    "source of a model version.",
                    run_id=run_id,
                )
            model = self._model_row(repo, name, lock=True)  # serialises version numbers
            row = repo.add_version(
                ModelVersionRow(
                    model_id=model.id,
                    version=repo.next_version(model),
                    run_id=run_id,
                    artifact_digest=info.digest,
                    artifact_size=info.size,
                    format=fmt,
                    signature=dict(signature) if signature else None,
                    metrics=dict(metrics) if metrics else None,
                    description=description,
                    creator=ctx.principal,
                    status="READY",
                )
            )
            for key, value in (tags or {}).items():
                repo.set_version_tag(row.id, check_key(key, what="tag"), str(value))
            if self._signer is not None:
                payload = _payload(ctx, name, row.version, row.id, info.digest, fmt)
                self._signer.sign_version(work.session, ctx.project_id, payload, row.id)
            if run_id is not None:
                LineageService.link(
                    work.session,
                    ctx,
                    Node("run", run_id),
                    Node("model_version", row.id),
                    "produced",
                )
            model.updated_at = row.created_at
            work.object_id = row.id
            work.details = {
                "model": name,
                "version": row.version,
                "digest": info.digest,
                "format": fmt,
                "run_id": run_id,
            }
            return self._version(repo, model, row)

    def _ensure_model(self, ctx: Context, name: str) -> None:
        """Create the registered model if it is new, tolerating a concurrent creator."""
        with self._gov.db.read() as session:
            if RegistryRepository(session, ctx.project_id).model(name) is not None:
                return
        try:
            with self._gov.write(
                ctx, Permission.MODEL_WRITE, "model.create", object_type="model"
            ) as work:
                repo = RegistryRepository(work.session, ctx.project_id)
                existing = repo.model(name)
                row = existing or repo.create_model(name)
                work.object_id = row.id
                work.details = {"name": name, "created": existing is None}
        except (ConflictError, AlreadyExistsError):
            pass  # another process created it first; the version write below finds it

    def log_sklearn(
        self,
        ctx: Context,
        model: Any,
        *,
        name: str,
        run_id: str | None = None,
        signature: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Serialise a scikit-learn estimator with skops and register it."""
        return self.register(
            ctx,
            name,
            artifact=dump_skops(model),
            format="skops",
            run_id=run_id,
            signature=signature,
            metrics=metrics,
            description=description,
        )

    def version(self, ctx: Context, ref: str, version: int | str | None = None) -> ModelVersion:
        """A version by ``name@alias``, ``name:N``, or name plus version/alias (latest if none)."""
        name, selector = parse_model_ref(ref)
        if version is not None:
            selector = version
        with self._read(ctx, "model.read") as session:
            repo = RegistryRepository(session, ctx.project_id)
            model = self._model_row(repo, name)
            return self._version(repo, model, self._version_row(repo, model, selector))

    def versions(self, ctx: Context, name: str) -> builtins.list[ModelVersion]:
        with self._read(ctx, "model.read") as session:
            repo = RegistryRepository(session, ctx.project_id)
            model = self._model_row(repo, name)
            return [self._version(repo, model, row) for row in repo.versions(model.id)]

    def update_version(
        self,
        ctx: Context,
        name: str,
        version: int,
        *,
        description: str,
        expected_row_version: int | None = None,
    ) -> ModelVersion:
        with self._gov.write(
            ctx, Permission.MODEL_WRITE, "model.update_version", object_type="model_version"
        ) as work:
            repo = RegistryRepository(work.session, ctx.project_id)
            model = self._model_row(repo, name)
            row = self._version_row(repo, model, version)
            _check_fresh(row.row_version, expected_row_version, f"version {name}:{version}")
            row.description = description
            work.session.flush()
            work.object_id = row.id
            return self._version(repo, model, row)

    def read_artifact(self, ctx: Context, ref: str, version: int | str | None = None) -> bytes:
        """The stored model file, verified against the version's digest."""
        found = self.version(ctx, ref, version)
        self.verify_signature(ctx, found)
        return self._blobs.get_bytes(found.artifact_digest, scope=ctx.project_id)

    def load_sklearn(self, ctx: Context, ref: str, version: int | str | None = None) -> Any:
        """Load a skops-format version as a scikit-learn estimator."""
        found = self.version(ctx, ref, version)
        if found.format != "skops":
            raise InvalidInputError(
                f"Model {found.model}:{found.version} is stored as '{found.format}', not skops."
            )
        self.verify_signature(ctx, found)
        return load_skops(self._blobs.get_bytes(found.artifact_digest, scope=ctx.project_id))

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
        """Package a model in safe formats with its sidecar and register it (see _modelio)."""
        from keel.tracking._modelio import log_model

        self._gov.check(
            ctx, Permission.MODEL_WRITE, action="model.register", object_type="model_version"
        )
        return log_model(
            self,
            self._blobs,
            ctx,
            model,
            name=name,
            sample=sample,
            holdout=holdout,
            run_id=run_id,
            onnx=onnx,
            feature_names=feature_names,
            code_version=code_version,
            dataset_version=dataset_version,
            seed=seed,
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
        """Register a package built elsewhere (``build_package``); with ``verify``, each of its
        formats must load safely and reproduce its stored example before anything is stored."""
        from keel.tracking._modelio import register_package

        self._gov.check(
            ctx, Permission.MODEL_WRITE, action="model.register", object_type="model_version"
        )
        return register_package(
            self,
            self._blobs,
            ctx,
            package,
            name=name,
            run_id=run_id,
            metrics=metrics,
            description=description,
            tags=tags,
            verify=verify,
        )

    def load(
        self,
        ctx: Context,
        ref: str,
        version: int | str | None = None,
        *,
        format: str | None = None,
        verify: bool = True,
    ) -> LoadedModel:
        """Load any safe-format version for prediction, checked against its stored example."""
        from keel.tracking._modelio import load_model

        return load_model(self, self._blobs, ctx, ref, version, format=format, verify=verify)

    def package(self, ctx: Context, ref: str, version: int | str | None = None) -> dict[str, Any]:
        """The package sidecar of a version (signature, example, environment lock, provenance)."""
        from keel.tracking._modelio import read_package

        return read_package(self, self._blobs, ctx, self.version(ctx, ref, version))

    # --- aliases ------------------------------------------------------------------------

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
        """Point ``alias`` at ``version`` atomically; the move is kept in the history.

        With ``expected_current``, the move happens only if the alias still points there
        (compare-and-set), so two promoters cannot overwrite each other unknowingly.
        """
        validate_name(alias, what="alias")
        if alias.isdigit():
            raise InvalidInputError(
                f"Alias '{alias}' is a number; aliases must not look like versions."
            )

        def promotion() -> dict[str, Any]:
            held = self.version(ctx, name, version)
            return model_context(
                name=name,
                version=version,
                fmt=held.format,
                digest=held.artifact_digest,
                metrics=held.metrics,
                tags=held.tags,
                signature=held.signature,
                run_id=held.run_id,
                region=self._region,
                alias=alias,
            )

        self._gate(
            ctx,
            "alias.promote",
            model_subject(name, version, alias),
            promotion,
            Permission.MODEL_PROMOTE,
        )
        with self._gov.write(
            ctx, Permission.MODEL_PROMOTE, "model.set_alias", object_type="model"
        ) as work:
            repo = RegistryRepository(work.session, ctx.project_id)
            model = self._model_row(repo, name, lock=True)
            self._version_row(repo, model, version)
            current = repo.alias(model.id, alias)
            holder = None if current is None else current.version
            if expected_current is not None and holder != expected_current:
                raise ConflictError(
                    f"Alias '{alias}' of '{name}' now points at {holder}, not "
                    f"{expected_current}; someone moved it meanwhile. Check "
                    f"`keel models show {name}` and retry.",
                    model=name,
                    alias=alias,
                )
            repo.move_alias(
                model.id, alias, version, principal=ctx.principal, kind="set", reason=reason
            )
            work.object_id = model.id
            work.details = {"alias": alias, "from": holder, "to": version, "reason": reason}
            return self._move(repo.history(model.id, alias)[-1])

    def delete_alias(self, ctx: Context, name: str, alias: str, *, reason: str = "") -> None:
        with self._gov.write(
            ctx, Permission.MODEL_PROMOTE, "model.delete_alias", object_type="model"
        ) as work:
            repo = RegistryRepository(work.session, ctx.project_id)
            model = self._model_row(repo, name, lock=True)
            if repo.alias(model.id, alias) is None:
                raise NotFoundError(f"Model '{name}' has no alias '{alias}'.", alias=alias)
            previous = repo.move_alias(
                model.id, alias, None, principal=ctx.principal, kind="delete", reason=reason
            )
            work.object_id = model.id
            work.details = {"alias": alias, "from": previous}

    def rollback(self, ctx: Context, name: str, alias: str, *, reason: str = "") -> AliasMove:
        """Return ``alias`` to the version that held it before its latest (un-undone) move.

        Repeated rollbacks walk further back through the history, like an undo stack.
        """
        with self._gov.write(
            ctx, Permission.MODEL_PROMOTE, "model.rollback", object_type="model"
        ) as work:
            repo = RegistryRepository(work.session, ctx.project_id)
            model = self._model_row(repo, name, lock=True)
            current = repo.alias(model.id, alias)
            last = repo.last_undoable_move(model.id, alias)
            if current is None or last is None or last.to_version != current.version:
                raise ConflictError(
                    f"Alias '{alias}' of '{name}' has no move to roll back. See its history "
                    f"with `keel models show {name}`.",
                    model=name,
                    alias=alias,
                )
            if last.from_version is None:
                raise ConflictError(
                    f"Alias '{alias}' of '{name}' had no holder before version "
                    f"{current.version}; there is nothing to roll back to. Delete the alias "
                    "or point it at another version instead.",
                    model=name,
                    alias=alias,
                )
            target = last.from_version
            last.undone = True
            repo.move_alias(
                model.id, alias, target, principal=ctx.principal, kind="rollback", reason=reason
            )
            work.object_id = model.id
            work.details = {"alias": alias, "from": current.version, "to": target, "reason": reason}
            return self._move(repo.history(model.id, alias)[-1])

    def alias_history(
        self, ctx: Context, name: str, alias: str | None = None
    ) -> builtins.list[AliasMove]:
        with self._read(ctx, "model.read") as session:
            repo = RegistryRepository(session, ctx.project_id)
            model = self._model_row(repo, name)
            return [self._move(row) for row in repo.history(model.id, alias)]

    # --- helpers ------------------------------------------------------------------------

    def verify_signature(self, ctx: Context, found: ModelVersion) -> SignatureInfo | None:
        """Raise IntegrityError unless ``found`` carries a valid trusted signature."""
        if self._signer is None:
            return None
        payload = _payload(
            ctx, found.model, found.version, found.id, found.artifact_digest, found.format
        )
        what = f"{found.model}:{found.version}"
        with self._read(ctx, "model.verify") as session:
            return self._signer.verify_version(
                session, ctx.project_id, payload, found.id, what=what
            )

    def _gate(
        self,
        ctx: Context,
        gate: str,
        subject: str,
        context: dict[str, Any] | Callable[[], dict[str, Any]],
        permission: Permission,
    ) -> None:
        self._policies.gate(ctx, gate, subject=subject, context=context, permission=permission)

    def _read(self, ctx: Context, action: str) -> Any:
        return self._gov.read(ctx, Permission.MODEL_READ, action, object_type="model")

    @staticmethod
    def _model_row(
        repo: RegistryRepository, name: str, *, lock: bool = False
    ) -> RegisteredModelRow:
        row = repo.model(name, lock=lock)
        if row is None:
            raise _model_missing(name)
        return row

    @staticmethod
    def _version_row(
        repo: RegistryRepository, model: RegisteredModelRow, selector: int | str | None
    ) -> ModelVersionRow:
        if selector is None:
            row = repo.latest_version(model.id)
            if row is None:
                raise NotFoundError(f"Model '{model.name}' has no versions yet.", model=model.name)
            return row
        if isinstance(selector, str) and not selector.isdigit():
            alias = repo.alias(model.id, selector)
            if alias is None:
                known = ", ".join(repo.aliases(model.id)) or "none"
                raise NotFoundError(
                    f"Model '{model.name}' has no alias '{selector}' (aliases: {known}).",
                    model=model.name,
                    alias=selector,
                )
            selector = alias.version
        row = repo.version(model.id, int(selector))
        if row is None:
            raise NotFoundError(
                f"Model '{model.name}' has no version {selector}. List versions with "
                f"`keel models show {model.name}`.",
                model=model.name,
                version=selector,
            )
        return row

    @staticmethod
    def _model(repo: RegistryRepository, row: RegisteredModelRow) -> RegisteredModel:
        latest = repo.latest_version(row.id)
        return RegisteredModel(
            id=row.id,
            name=row.name,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
            row_version=row.row_version,
            aliases=repo.aliases(row.id),
            tags=repo.model_tags(row.id),
            latest_version=None if latest is None else latest.version,
        )

    @staticmethod
    def _version(
        repo: RegistryRepository, model: RegisteredModelRow, row: ModelVersionRow
    ) -> ModelVersion:
        aliases = tuple(a for a, v in repo.aliases(model.id).items() if v == row.version)
        return ModelVersion(
            id=row.id,
            model=model.name,
            version=row.version,
            run_id=row.run_id,
            artifact_digest=row.artifact_digest,
            artifact_size=row.artifact_size,
            format=row.format,
            signature=row.signature,
            metrics=row.metrics,
            description=row.description,
            creator=row.creator,
            status=row.status,
            created_at=row.created_at,
            row_version=row.row_version,
            aliases=aliases,
            tags=repo.version_tags(row.id),
        )

    @staticmethod
    def _move(row: Any) -> AliasMove:
        return AliasMove(
            alias=row.alias,
            kind=row.kind,
            from_version=row.from_version,
            to_version=row.to_version,
            principal=row.principal,
            reason=row.reason,
            undone=row.undone,
            moved_at=row.moved_at,
        )


def _payload(ctx: Context, name: str, version: int, version_id: str, digest: str, fmt: str) -> str:
    return version_payload(
        project_id=ctx.project_id,
        model=name,
        version=version,
        version_id=version_id,
        digest=digest,
        fmt=fmt,
    )


def _check_fresh(current: int, expected: int | None, what: str) -> None:
    if expected is not None and current != expected:
        raise ConflictError(
            f"The {what} changed since you read it (row version {current}, you had "
            f"{expected}). Read it again and reapply your change.",
            current=current,
            expected=expected,
        )
