"""Model serialisation in safe formats only: never pickle in the control plane.

scikit-learn models are stored with skops, whose loader rebuilds objects from an explicit
schema and refuses types it does not trust. Keel keeps its own reviewed trust list: the types
below are scikit-learn's compiled tree structures, which skops flags only because they are
implemented in Cython; they hold arrays, not code.
"""

from __future__ import annotations

from typing import Any

from keel.errors import InvalidInputError, MissingDependencyError, PermissionDeniedError

__all__ = [
    "REVIEWED_SKOPS_TYPES",
    "SAFE_FORMATS",
    "check_format",
    "dump_skops",
    "load_skops",
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
    """The format name if it is a safe one; pickle-family formats are refused."""
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
