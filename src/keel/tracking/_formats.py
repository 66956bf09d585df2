"""Safe model formats: serialise a trained model, and load it back as a predictor.

One module per concern would be overkill here: each format is a pair of small functions.

========================  =====================  ==========================================
format                    models                 loaded by
========================  =====================  ==========================================
``skops``                 scikit-learn           skops, with Keel's reviewed trust list
``onnx``                  scikit-learn           onnxruntime, one thread (skl2onnx converts)
``xgboost-json``          XGBoost (sklearn API)  ``XGBClassifier/XGBRegressor.load_model``
``lightgbm-text``         LightGBM (sklearn API) ``lightgbm.Booster(model_str=...)``
========================  =====================  ==========================================

No format here runs code when it is loaded; pickle and joblib are refused by
:func:`keel.tracking._packaging.check_format`.
"""

# ruff: noqa: N803  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from keel.errors import InvalidInputError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "Flavor",
    "ModelKind",
    "Predictor",
    "detect_flavor",
    "load_predictor",
    "model_classes",
    "model_kind",
    "native_format",
    "refuse_external_data",
    "serialize_model",
    "to_onnx",
]

Flavor = Literal["sklearn", "xgboost", "lightgbm"]
ModelKind = Literal["classifier", "regressor"]

_NATIVE: dict[str, str] = {
    "sklearn": "skops",
    "xgboost": "xgboost-json",
    "lightgbm": "lightgbm-text",
}


def _module_of(model: Any) -> str:
    return type(model).__module__.split(".", 1)[0]


def detect_flavor(model: Any) -> Flavor:
    """Which library a fitted model comes from: ``sklearn``, ``xgboost`` or ``lightgbm``."""
    root = _module_of(model)
    if root == "xgboost":
        if not hasattr(model, "get_booster"):
            raise InvalidInputError(
                "Keel packages XGBoost models trained with its scikit-learn API "
                "(xgboost.XGBClassifier or XGBRegressor), not a raw Booster. Wrap the "
                "training in XGBClassifier/XGBRegressor.",
                model=type(model).__name__,
            )
        return "xgboost"
    if root == "lightgbm":
        if not hasattr(model, "booster_"):
            raise InvalidInputError(
                "Keel packages LightGBM models trained with its scikit-learn API "
                "(lightgbm.LGBMClassifier or LGBMRegressor), not a raw Booster.",
                model=type(model).__name__,
            )
        return "lightgbm"
    if hasattr(model, "fit") and hasattr(model, "predict"):
        return "sklearn"
    raise InvalidInputError(
        f"Cannot package a {type(model).__module__}.{type(model).__name__}: Keel packages "
        "fitted scikit-learn estimators, XGBoost and LightGBM models (sklearn API).",
        model=type(model).__name__,
    )


def native_format(model: Any) -> str:
    """The safe format a model is stored in by default (skops, xgboost-json, lightgbm-text)."""
    return _NATIVE[detect_flavor(model)]


def model_kind(model: Any) -> ModelKind:
    """``classifier`` when the model predicts classes (has ``predict_proba``), else regressor."""
    if getattr(model, "_estimator_type", None) == "classifier" or hasattr(model, "classes_"):
        return "classifier"
    return "regressor"


def model_classes(model: Any) -> list[Any] | None:
    """The class labels of a classifier as JSON-ready values (None for a regressor)."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return None
    return [c.item() if hasattr(c, "item") else c for c in classes]


def serialize_model(model: Any, fmt: str) -> bytes:
    """The bytes of ``model`` in the safe format ``fmt``."""
    flavor = detect_flavor(model)
    if fmt == "skops" and flavor == "sklearn":
        from keel.tracking._packaging import dump_skops

        return dump_skops(model)
    if fmt == "xgboost-json" and flavor == "xgboost":
        return bytes(model.get_booster().save_raw("json"))
    if fmt == "lightgbm-text" and flavor == "lightgbm":
        return str(model.booster_.model_to_string()).encode("utf-8")
    if fmt == "onnx" and flavor == "sklearn":
        raise InvalidInputError("ONNX bytes come from to_onnx(model, sample), not here.")
    raise InvalidInputError(
        f"A {flavor} model cannot be stored as '{fmt}'. Use '{_NATIVE[flavor]}'"
        + (" (or 'onnx')." if flavor == "sklearn" else "."),
        format=fmt,
        flavor=flavor,
    )


def to_onnx(model: Any, sample: NDArray[Any]) -> bytes:
    """Convert a scikit-learn model to ONNX with skl2onnx (float32 input, no ZipMap)."""
    import numpy as np

    try:
        from skl2onnx import to_onnx as convert  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependencyError(
            "skl2onnx", extra="ml", purpose="Converting scikit-learn models to ONNX"
        ) from exc
    options = {id(model): {"zipmap": False}} if model_kind(model) == "classifier" else None
    proto = convert(model, np.asarray(sample[:1], dtype=np.float32), options=options)
    return bytes(proto.SerializeToString())


@dataclass(frozen=True)
class Predictor:
    """A loaded model that predicts; the same interface for every safe format.

    Attributes:
        format: the stored format it was loaded from.
        kind: ``classifier`` or ``regressor``.
        classes: the class labels of a classifier, in probability-column order.
        model: the underlying object (estimator, booster or onnxruntime session).
    """

    format: str
    kind: ModelKind
    classes: tuple[Any, ...] | None
    model: Any

    def predict(self, X: Any) -> NDArray[Any]:
        """Predicted labels (classifier) or values (regressor), one per row of ``X``."""
        import numpy as np

        if self.kind == "classifier":
            proba = self.predict_proba(X)
            assert self.classes is not None
            return np.asarray(np.asarray(self.classes)[np.argmax(proba, axis=1)])
        if self.format == "onnx":
            return np.asarray(self._onnx(X)[0]).reshape(-1)
        if self.format == "lightgbm-text":
            return np.asarray(self.model.predict(_as_2d(X)), dtype=np.float64)
        return np.asarray(self.model.predict(_as_2d(X)))

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """Class probabilities, one column per class (classifiers only)."""
        import numpy as np

        if self.kind != "classifier":
            raise InvalidInputError(f"A regressor ({self.format}) has no class probabilities.")
        if self.format == "onnx":
            return np.asarray(self._onnx(X)[1], dtype=np.float64)
        if self.format == "lightgbm-text":
            raw = np.asarray(self.model.predict(_as_2d(X)), dtype=np.float64)
            return raw if raw.ndim == 2 else np.column_stack([1.0 - raw, raw])
        return np.asarray(self.model.predict_proba(_as_2d(X)), dtype=np.float64)

    def _onnx(self, X: Any) -> list[Any]:
        import numpy as np

        name = self.model.get_inputs()[0].name
        result: list[Any] = self.model.run(None, {name: np.asarray(_as_2d(X), np.float32)})
        return result


def _as_2d(X: Any) -> Any:
    import numpy as np

    array = np.asarray(X)
    return array.reshape(1, -1) if array.ndim == 1 else array


def load_predictor(
    fmt: str, data: bytes, *, kind: ModelKind, classes: list[Any] | None = None
) -> Predictor:
    """Rebuild a predictor from stored bytes; never unpickles."""
    labels = None if classes is None else tuple(classes)
    if fmt == "skops":
        from keel.tracking._packaging import load_skops

        return Predictor(fmt, kind, labels, load_skops(data))
    if fmt == "onnx":
        return Predictor(fmt, kind, labels, _onnx_session(data))
    if fmt == "xgboost-json":
        try:
            import xgboost
        except ImportError as exc:
            raise MissingDependencyError("xgboost", extra="ml", purpose="Loading") from exc
        model = xgboost.XGBClassifier() if kind == "classifier" else xgboost.XGBRegressor()
        model.load_model(bytearray(data))
        return Predictor(fmt, kind, labels, model)
    if fmt == "lightgbm-text":
        try:
            import lightgbm
        except ImportError as exc:
            raise MissingDependencyError("lightgbm", extra="ml", purpose="Loading") from exc
        return Predictor(fmt, kind, labels, lightgbm.Booster(model_str=data.decode("utf-8")))
    raise InvalidInputError(
        f"No loader for model format '{fmt}'. Loadable formats: skops, onnx, xgboost-json, "
        "lightgbm-text.",
        format=fmt,
    )


def _onnx_session(data: bytes) -> Any:
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependencyError(
            "onnxruntime", extra="ml", purpose="Serving ONNX models"
        ) from exc
    refuse_external_data(data)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def refuse_external_data(data: bytes) -> None:
    """Refuse an ONNX model whose tensors live outside it ("external data").

    onnxruntime follows a relative external-data path when it loads a model from bytes, so an
    uploaded model could read any file under the server's working directory (the store's
    master key among them) into its weights. Keel's packages are self-contained: every tensor,
    in every graph, subgraph, function and attribute, must be stored inline.
    """
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError(
            "onnx", extra="serving", purpose="Checking ONNX models before they are loaded"
        ) from exc
    try:
        model = onnx.ModelProto()
        model.ParseFromString(data)  # parsing never follows external-data paths
    except Exception as exc:  # protobuf raises its own DecodeError
        raise InvalidInputError(f"The ONNX model cannot be parsed: {exc}") from exc
    found = [name for name in _external_tensors(onnx, model) if name is not None]
    if found:
        shown = ", ".join(repr(n) for n in found[:5]) + (" ..." if len(found) > 5 else "")
        raise InvalidInputError(
            f"The ONNX model stores {len(found)} tensor(s) as external data ({shown}). Keel "
            "loads only self-contained models: save it with every tensor inline "
            "(onnx.save_model(model, path, save_as_external_data=False)).",
        )


def _external_tensors(onnx: Any, model: Any) -> Iterator[str | None]:
    """The names of every tensor stored outside the model (anywhere in it)."""
    external = onnx.TensorProto.EXTERNAL

    def tensor(t: Any) -> Iterator[str | None]:
        if t.data_location == external or len(t.external_data) > 0:
            yield t.name or "(unnamed)"

    def sparse(s: Any) -> Iterator[str | None]:
        yield from tensor(s.values)
        yield from tensor(s.indices)

    def nodes(items: Any) -> Iterator[str | None]:
        for node in items:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield from tensor(attr.t)
                for t in attr.tensors:
                    yield from tensor(t)
                if attr.HasField("sparse_tensor"):
                    yield from sparse(attr.sparse_tensor)
                for s in attr.sparse_tensors:
                    yield from sparse(s)
                if attr.HasField("g"):
                    yield from graph(attr.g)
                for g in attr.graphs:
                    yield from graph(g)

    def graph(g: Any) -> Iterator[str | None]:
        for t in g.initializer:
            yield from tensor(t)
        for s in g.sparse_initializer:
            yield from sparse(s)
        yield from nodes(g.node)

    yield from graph(model.graph)
    for function in model.functions:
        yield from nodes(function.node)
