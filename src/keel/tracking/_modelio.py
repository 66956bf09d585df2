"""Register a packaged model with its sidecar and companions, and load any version back.

A packaged model version is three kinds of blob, all content-addressed and encrypted:

* the version's artifact, in its native safe format (skops, xgboost-json, lightgbm-text);
* companions: the same model in other formats (ONNX for scikit-learn), parity-checked;
* the sidecar, a JSON document (``keel.model-package/1``) with the signature, the input
  example and its predictions per format, the parity record, the environment lock, the code
  version, the dataset version and the seed.

The version's tag ``keel.package`` holds the sidecar's digest, and a few tags repeat the facts
people search by (``keel.seed``, ``keel.dataset_version``, ``keel.code_version``,
``keel.formats``).
"""

# ruff: noqa: N803  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from keel.errors import InvalidInputError, KeelError, NotFoundError
from keel.governance import Context
from keel.tracking._formats import Predictor, load_predictor, model_kind
from keel.tracking._model import ModelVersion
from keel.tracking._packaging import (
    PACKAGE_SCHEMA,
    ModelPackage,
    build_package,
    check_example,
    check_format,
    dump_sidecar,
    load_skops,
    parse_sidecar,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from keel.blobs import BlobStore
    from keel.tracking._registry import ModelRegistry

__all__ = [
    "SIDECAR_TAG",
    "LoadedModel",
    "check_package",
    "load_model",
    "loaded_model",
    "log_model",
    "read_package",
    "register_package",
]

#: The model-version tag that holds the digest of the package sidecar.
SIDECAR_TAG = "keel.package"


@dataclass(frozen=True)
class LoadedModel:
    """A registry version loaded for prediction, with its package description.

    Attributes:
        version: the model version it was loaded from.
        predictor: the loaded model (``predict`` and, for classifiers, ``predict_proba``).
        package: the sidecar (signature, example, environment lock, provenance); empty for
            versions registered without one.
    """

    version: ModelVersion
    predictor: Predictor
    package: dict[str, Any]

    @property
    def format(self) -> str:
        return self.predictor.format

    @property
    def signature(self) -> dict[str, Any] | None:
        return self.version.signature

    def predict(self, X: Any) -> NDArray[Any]:
        return self.predictor.predict(X)

    def predict_proba(self, X: Any) -> NDArray[Any]:
        return self.predictor.predict_proba(X)


def log_model(
    registry: ModelRegistry,
    blobs: BlobStore,
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
    """Package ``model`` in safe formats and register it as the next version of ``name``."""
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
    return register_package(
        registry,
        blobs,
        ctx,
        package,
        name=name,
        run_id=run_id,
        metrics=metrics,
        description=description,
        tags=tags,
    )


def register_package(
    registry: ModelRegistry,
    blobs: BlobStore,
    ctx: Context,
    package: ModelPackage,
    *,
    name: str,
    run_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    verify: bool = False,
) -> ModelVersion:
    """Store a built package (its companions and sidecar) and register its artifact.

    With ``verify`` (for packages built elsewhere, e.g. uploaded by a remote client), every
    format must load with a safe loader and reproduce the stored example first.
    """
    sidecar_in = package.sidecar
    if verify:
        check_package(package)
    companions: dict[str, dict[str, Any]] = {}
    for fmt, data in package.companions.items():
        info = blobs.put_bytes(data, scope=ctx.project_id)
        companions[fmt] = {"digest": info.digest, "size": info.size}
    sidecar = {**sidecar_in, "companions": companions}
    stored = blobs.put_bytes(dump_sidecar(sidecar), scope=ctx.project_id)
    version_tags: dict[str, str] = {
        SIDECAR_TAG: stored.digest,
        "keel.flavor": str(sidecar["flavor"]),
        "keel.formats": ",".join([package.format, *companions]),
    }
    for key in ("seed", "dataset_version", "code_version"):
        if sidecar.get(key) is not None:
            version_tags[f"keel.{key}"] = str(sidecar[key])
    onnx_parity = (sidecar.get("parity") or {}).get("onnx")
    if onnx_parity and onnx_parity.get("converted"):
        version_tags["keel.onnx.max_abs_diff"] = f"{onnx_parity['max_abs_diff']:.3g}"
    version_tags.update(tags or {})
    return registry.register(
        ctx,
        name,
        artifact=package.artifact,
        format=package.format,
        run_id=run_id,
        signature=package.signature,
        metrics=metrics,
        description=description,
        tags=version_tags,
    )


def check_package(package: ModelPackage) -> None:
    """Refuse a package whose formats do not load safely or do not reproduce its example."""
    sidecar = package.sidecar
    if sidecar.get("schema") != PACKAGE_SCHEMA or sidecar.get("format") != package.format:
        raise InvalidInputError(
            f"The package description is not a {PACKAGE_SCHEMA} document for format "
            f"'{package.format}'. Build packages with ws.models.log_model.",
        )
    kind = sidecar.get("kind")
    if kind not in ("classifier", "regressor") or not isinstance(sidecar.get("signature"), dict):
        raise InvalidInputError("The package description names no model kind or signature.")
    for fmt, data in [(package.format, package.artifact), *package.companions.items()]:
        predictor = load_predictor(
            check_format(fmt), data, kind=kind, classes=sidecar.get("classes")
        )
        try:
            check_example(predictor, sidecar, tolerance=1e-9 if fmt != "onnx" else 1e-6)
        except KeelError:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"The package's stored example for format '{fmt}' is malformed "
                f"({type(exc).__name__}: {str(exc)[:200]}). Build packages with "
                "ws.models.log_model.",
            ) from exc


def read_package(
    registry: ModelRegistry, blobs: BlobStore, ctx: Context, version: ModelVersion
) -> dict[str, Any]:
    """The sidecar of ``version`` (empty when it was registered without one)."""
    digest = version.tags.get(SIDECAR_TAG)
    if digest is None:
        return {}
    return parse_sidecar(blobs.get_bytes(digest, scope=ctx.project_id))


def load_model(
    registry: ModelRegistry,
    blobs: BlobStore,
    ctx: Context,
    ref: str,
    version: int | str | None = None,
    *,
    format: str | None = None,
    verify: bool = True,
) -> LoadedModel:
    """Load ``ref`` (``name@alias``, ``name:N``) in its stored format or in ``format``.

    With ``verify`` (the default), the loaded model predicts the stored input example again and
    must reproduce the stored predictions, or IntegrityError is raised.
    """
    requested = check_format(format) if format else None  # pickle is refused before any I/O
    found = registry.version(ctx, ref, version)
    package = read_package(registry, blobs, ctx, found)
    wanted = requested or found.format
    if wanted == found.format:
        data = registry.read_artifact(ctx, ref, version)
    else:
        companion = package.get("companions", {}).get(wanted)
        if companion is None:
            held = ", ".join([found.format, *package.get("companions", {})])
            raise NotFoundError(
                f"Model {found.model}:{found.version} is not stored as '{wanted}' "
                f"(formats: {held}).",
                model=found.model,
                version=found.version,
                format=wanted,
            )
        registry.verify_signature(ctx, found)  # the version's signature, as for its artifact
        data = blobs.get_bytes(companion["digest"], scope=ctx.project_id)
    return loaded_model(found, package, wanted, data, verify=verify)


def loaded_model(
    found: ModelVersion, package: dict[str, Any], wanted: str, data: bytes, *, verify: bool
) -> LoadedModel:
    """The predictor of ``data`` (format ``wanted`` of ``found``), checked on its example."""
    if package:
        predictor = load_predictor(
            wanted, data, kind=package["kind"], classes=package.get("classes")
        )
        if verify:
            check_example(predictor, package, tolerance=1e-9 if wanted != "onnx" else 1e-6)
    elif wanted == "skops":
        estimator = load_skops(data)
        classes = getattr(estimator, "classes_", None)
        labels = None if classes is None else tuple(c.item() for c in classes)
        predictor = Predictor("skops", model_kind(estimator), labels, estimator)
    else:
        raise InvalidInputError(
            f"Model {found.model}:{found.version} ({found.format}) was registered without a "
            "package description, so Keel cannot tell how to load it. Register it with "
            "ws.models.log_model(model, name=..., sample=X).",
            model=found.model,
            version=found.version,
        )
    return LoadedModel(version=found, predictor=predictor, package=package)
