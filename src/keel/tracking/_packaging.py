"""Model serialisation in safe formats only: never pickle in the control plane.

scikit-learn models are stored with skops, whose loader rebuilds objects from an explicit
schema and refuses types it does not trust. Keel keeps its own reviewed trust list: the types
below are scikit-learn's compiled tree structures, which skops flags only because they are
implemented in Cython; they hold arrays, not code.
"""

# ruff: noqa: N803, N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.errors import (
    IntegrityError,
    InvalidInputError,
    MissingDependencyError,
    PermissionDeniedError,
)

__all__ = [
    "PACKAGE_SCHEMA",
    "REVIEWED_SKOPS_TYPES",
    "SAFE_FORMATS",
    "ModelPackage",
    "build_package",
    "check_example",
    "check_format",
    "dump_sidecar",
    "dump_skops",
    "infer_signature",
    "load_skops",
    "parse_sidecar",
]

#: Formats a model version may be stored in.
SAFE_FORMATS = frozenset({"skops", "onnx", "xgboost-json", "lightgbm-text", "safetensors"})
_UNSAFE_FORMATS = frozenset({"pickle", "joblib", "cloudpickle", "dill", "pkl"})

#: skops types outside its default trust that Keel has reviewed and accepts.
REVIEWED_SKOPS_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


def check_format(fmt: str) -> str:
    """The format name if it is a safe one; pickle-family formats are refused.

    This is the one place an unsafe format is refused. A governance policy that allows a
    pickle (after a scan, loaded only in an isolated worker, DESIGN.md security rule 2) hooks
    in here; until such a policy is configured, the refusal is unconditional.
    """
    name = fmt.strip().lower()
    if name in _UNSAFE_FORMATS:
        raise PermissionDeniedError(
            f"Model format '{fmt}' can run arbitrary code when loaded, so Keel refuses it. "
            "Save scikit-learn models with skops (ws.models.log_sklearn), or convert to ONNX, "
            "XGBoost JSON or LightGBM text.",
            format=fmt,
        )
    if name not in SAFE_FORMATS:
        raise InvalidInputError(
            f"Unknown model format '{fmt}'. Use one of: {', '.join(sorted(SAFE_FORMATS))}.",
            format=fmt,
        )
    return name


def _skops() -> Any:
    try:
        import skops.io as sio
    except ImportError as exc:
        raise MissingDependencyError(
            "skops", extra="sklearn", purpose="Saving or loading scikit-learn models"
        ) from exc
    return sio


def dump_skops(model: Any) -> bytes:
    """Serialise a scikit-learn estimator with skops; refuse one skops cannot load safely."""
    sio = _skops()
    data: bytes = sio.dumps(model)
    _check_trust(sio, data)
    return data


def load_skops(data: bytes) -> Any:
    """Load a skops file, trusting only skops' defaults and Keel's reviewed types."""
    sio = _skops()
    untrusted = _check_trust(sio, data)
    return sio.loads(data, trusted=untrusted)


def _check_trust(sio: Any, data: bytes) -> list[str]:
    untrusted: list[str] = list(sio.get_untrusted_types(data=data))
    unknown = sorted(set(untrusted) - REVIEWED_SKOPS_TYPES)
    if unknown:
        raise PermissionDeniedError(
            "The model holds types outside Keel's reviewed skops trust list: "
            f"{', '.join(unknown)}. Review them; if they are data-only, add them to "
            "keel.tracking.REVIEWED_SKOPS_TYPES in a reviewed change.",
            types=unknown,
        )
    return untrusted


# --- packages: the model plus everything needed to trust and reproduce it ----------------

#: Version of the JSON sidecar stored beside every packaged model version.
PACKAGE_SCHEMA = "keel.model-package/1"
_EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class ModelPackage:
    """A model serialised in a safe format, ready for the registry.

    Attributes:
        format: the primary format (the version's artifact).
        artifact: the primary bytes.
        companions: further formats of the same model (``{"onnx": bytes}``), parity-checked.
        sidecar: the JSON-ready description stored beside the artifact (see docs/training.md).
    """

    format: str
    artifact: bytes
    companions: dict[str, bytes] = field(default_factory=dict)
    sidecar: dict[str, Any] = field(default_factory=dict)

    @property
    def signature(self) -> dict[str, Any]:
        signature: dict[str, Any] = self.sidecar["signature"]
        return signature


def infer_signature(
    sample: Any,
    predictions: Any,
    probabilities: Any | None = None,
    *,
    feature_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The input and output signature (names, dtypes, shapes) seen on a sample batch."""
    import numpy as np

    X = np.asarray(sample)
    if X.ndim != 2:
        raise InvalidInputError(
            f"The sample must be a 2-D batch (rows x features); got shape {X.shape}.",
            shape=list(X.shape),
        )
    names = list(feature_names) if feature_names is not None else []
    if names and len(names) != X.shape[1]:
        raise InvalidInputError(
            f"{len(names)} feature names for {X.shape[1]} columns; give one name per column.",
        )
    names = names or [f"f{i}" for i in range(X.shape[1])]
    pred = np.asarray(predictions)
    outputs: list[dict[str, Any]] = [
        {"name": "prediction", "dtype": str(pred.dtype), "shape": [-1]}
    ]
    if probabilities is not None:
        proba = np.asarray(probabilities)
        outputs.append(
            {"name": "probabilities", "dtype": str(proba.dtype), "shape": [-1, proba.shape[1]]}
        )
    return {
        "inputs": [{"name": name, "dtype": str(X.dtype)} for name in names],
        "input_shape": [-1, int(X.shape[1])],
        "outputs": outputs,
    }


def _outputs(predictor: Any, X: Any) -> dict[str, Any]:
    out = {"prediction": _jsonable(predictor.predict(X))}
    if predictor.kind == "classifier":
        out["probabilities"] = _jsonable(predictor.predict_proba(X))
    return out


def _jsonable(array: Any) -> Any:
    return array.tolist() if hasattr(array, "tolist") else array


def _environment_lock() -> dict[str, Any]:
    from keel.tracking._environment import capture_environment

    env = capture_environment()
    return {
        "python": platform.python_version(),
        "implementation": env["implementation"],
        "platform": env["platform"],
        "packages": env.get("packages", {}),
    }


def build_package(
    model: Any,
    *,
    sample: Any,
    holdout: Any | None = None,
    onnx: bool | Literal["auto"] = "auto",
    parity_atol: float = 1e-4,
    parity_rtol: float = 1e-4,
    feature_names: Sequence[str] | None = None,
    code_version: str | None = None,
    dataset_version: str | None = None,
    seed: int | None = None,
    extra: dict[str, Any] | None = None,
) -> ModelPackage:
    """Serialise ``model`` in its safe native format and describe it in a sidecar.

    Args:
        model: a fitted scikit-learn estimator, or an XGBoost / LightGBM sklearn-API model.
        sample: a 2-D batch of inputs; its first rows become the stored input example.
        holdout: the held-out batch the ONNX parity is checked on (default: ``sample``).
        onnx: convert a scikit-learn model to ONNX too (``"auto"``: when skl2onnx can).
        parity_atol: absolute part of the ONNX parity threshold.
        parity_rtol: relative part (times the largest reference value).
        feature_names: input names for the signature (default ``f0, f1, ...``).
        code_version: the git commit of the training code.
        dataset_version: the dataset version the model was trained on.
        seed: the random seed of the training.
        extra: more JSON-ready facts to keep in the sidecar.
    """
    import numpy as np

    from keel.tracking._formats import (
        detect_flavor,
        load_predictor,
        model_classes,
        model_kind,
        native_format,
        serialize_model,
        to_onnx,
    )

    flavor = detect_flavor(model)
    fmt = native_format(model)
    kind = model_kind(model)
    classes = model_classes(model)
    X = np.asarray(sample)
    example = X[:_EXAMPLE_ROWS]
    artifact = serialize_model(model, fmt)
    native = load_predictor(fmt, artifact, kind=kind, classes=classes)
    predictions = {fmt: _outputs(native, example)}
    proba = native.predict_proba(example) if kind == "classifier" else None
    sidecar: dict[str, Any] = {
        "schema": PACKAGE_SCHEMA,
        "format": fmt,
        "flavor": flavor,
        "estimator": f"{type(model).__module__}.{type(model).__qualname__}",
        "kind": kind,
        "classes": classes,
        "signature": infer_signature(
            example, native.predict(example), proba, feature_names=feature_names
        ),
        "example": {"inputs": _jsonable(example), "predictions": predictions},
        "parity": {},
        "environment": _environment_lock(),
        "code_version": code_version,
        "dataset_version": dataset_version,
        "seed": seed,
        "extra": dict(extra or {}),
    }
    companions: dict[str, bytes] = {}
    if onnx and flavor == "sklearn":
        batch = X if holdout is None else np.asarray(holdout)
        try:
            onnx_bytes = to_onnx(model, batch)
        except (RuntimeError, NameError, TypeError, ValueError, KeyError) as exc:
            if onnx is True:
                raise InvalidInputError(
                    f"skl2onnx cannot convert {sidecar['estimator']}: {exc}. Register it "
                    "without ONNX (onnx=False); it is still stored safely with skops.",
                ) from exc
            sidecar["parity"]["onnx"] = {"converted": False, "error": str(exc)[:500]}
        else:
            converted = load_predictor("onnx", onnx_bytes, kind=kind, classes=classes)
            parity = _parity(native, converted, batch, parity_atol, parity_rtol)
            sidecar["parity"]["onnx"] = parity
            if parity["passed"]:
                companions["onnx"] = onnx_bytes
                predictions["onnx"] = _outputs(converted, example)
            elif onnx is True:
                raise IntegrityError(
                    f"The ONNX conversion of {sidecar['estimator']} differs from the original "
                    f"by {parity['max_abs_diff']:.3g} on {parity['rows']} held-out rows, more "
                    f"than the threshold {parity['threshold']:.3g}. Register without ONNX or "
                    "raise parity_atol/parity_rtol after reviewing the difference.",
                    **parity,
                )
    return ModelPackage(format=fmt, artifact=artifact, companions=companions, sidecar=sidecar)


def _parity(native: Any, converted: Any, batch: Any, atol: float, rtol: float) -> dict[str, Any]:
    import numpy as np

    if native.kind == "classifier":
        ref, got = native.predict_proba(batch), converted.predict_proba(batch)
    else:
        ref = np.asarray(native.predict(batch), dtype=np.float64)
        got = np.asarray(converted.predict(batch), dtype=np.float64)
    diff = float(np.max(np.abs(ref - got))) if len(ref) else 0.0
    threshold = atol + rtol * float(np.max(np.abs(ref))) if len(ref) else atol
    return {
        "converted": True,
        "rows": len(ref),
        "compared": "probabilities" if native.kind == "classifier" else "prediction",
        "max_abs_diff": diff,
        "threshold": threshold,
        "passed": diff <= threshold,
    }


def check_example(predictor: Any, sidecar: dict[str, Any], *, tolerance: float = 1e-9) -> float:
    """Predict the stored example again and compare; return the largest difference.

    Raises:
        IntegrityError: if the loaded model no longer reproduces its stored predictions.
    """
    import numpy as np

    stored = sidecar["example"]["predictions"].get(predictor.format)
    if stored is None:
        raise IntegrityError(
            f"The package holds no example predictions for format '{predictor.format}'.",
            format=predictor.format,
        )
    got = _outputs(predictor, np.asarray(sidecar["example"]["inputs"]))
    worst = 0.0
    for key, expected in stored.items():
        want, have = np.asarray(expected), np.asarray(got[key])
        if want.dtype.kind in "fc" or have.dtype.kind in "fc":
            diff = float(np.max(np.abs(want.astype(float) - have.astype(float)), initial=0.0))
        else:
            diff = 0.0 if np.array_equal(want, have) else float("inf")
        worst = max(worst, diff)
        scale = float(np.max(np.abs(want), initial=0.0)) if want.dtype.kind in "iufc" else 0.0
        if diff > tolerance * max(1.0, scale):  # (string labels: equal or not, no scale)
            raise IntegrityError(
                f"The loaded {predictor.format} model does not reproduce its stored example "
                f"'{key}' (largest difference {diff:.3g}). The artifact or the runtime "
                "changed; compare the environment lock in the package with this one.",
                format=predictor.format,
                output=key,
                difference=diff,
            )
    return worst


def dump_sidecar(sidecar: dict[str, Any]) -> bytes:
    """The sidecar as canonical JSON bytes (sorted keys)."""
    return json.dumps(sidecar, sort_keys=True, separators=(",", ":")).encode("utf-8")


def parse_sidecar(data: bytes) -> dict[str, Any]:
    """Read a stored sidecar back; refuse one that is not a Keel model package."""
    try:
        sidecar = json.loads(data)
    except ValueError as exc:
        raise IntegrityError(f"The model package sidecar is not valid JSON: {exc}.") from exc
    if not isinstance(sidecar, dict) or sidecar.get("schema") != PACKAGE_SCHEMA:
        raise IntegrityError(
            f"The model package sidecar is not a {PACKAGE_SCHEMA} document.",
        )
    return sidecar
