"""Loaded model versions behind a loader port, and adaptive micro-batching of predictions."""

# ruff: noqa: N803, N806  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from keel.errors import IntegrityError
from keel.serving._protocol import Signature

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from keel.governance import Context
    from keel.tracking import ModelRegistry

__all__ = ["Batcher", "ModelLoader", "RegistryLoader", "ServedVersion", "smoke_test"]


@dataclass(slots=True)
class ServedVersion:
    """One model version loaded for serving.

    Attributes:
        model: registered model name.
        version: version number.
        format: the format it runs in (``onnx`` where the version has it).
        kind: ``classifier`` or ``regressor``.
        predictor: an object with ``predict`` and (classifiers) ``predict_proba``.
        signature: the input features and dtype.
        classes: class labels of a classifier.
        example: the stored input example (rows), for the smoke prediction.
        dataset_version: the training dataset version, when known (for redaction).
    """

    model: str
    version: int
    format: str
    kind: str
    predictor: Any
    signature: Signature
    classes: tuple[Any, ...] | None = None
    example: list[list[Any]] = field(default_factory=list)
    dataset_version: str | None = None
    redact: frozenset[str] = frozenset()

    @property
    def platform(self) -> str:
        return "onnxruntime_onnx" if self.format == "onnx" else f"keel_{self.format}"

    def predict(self, X: NDArray[Any]) -> dict[str, NDArray[Any]]:
        """``prediction`` (and ``probabilities`` for classifiers) for each row of ``X``."""
        import numpy as np

        if self.kind == "classifier":
            proba = np.asarray(self.predictor.predict_proba(X))
            labels = np.asarray(self.classes) if self.classes is not None else None
            index = np.argmax(proba, axis=1)
            prediction = labels[index] if labels is not None else index
            return {"prediction": prediction, "probabilities": proba}
        return {"prediction": np.asarray(self.predictor.predict(X)).reshape(-1)}


class ModelLoader(Protocol):
    """Loads one version of a registered model for serving (verified, ready to predict)."""

    def load(self, model: str, version: int | str | None) -> ServedVersion: ...


class RegistryLoader:
    """Loads versions from the model registry: digest and signature verified, ONNX preferred.

    The registry's loader re-predicts the stored example and compares it with the stored
    predictions, so a version whose artifact or runtime changed never loads.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        ctx: Context,
        *,
        redaction: Callable[[str | None], frozenset[str]] | None = None,
    ) -> None:
        self._registry = registry
        self._ctx = ctx
        self._redaction = redaction

    def resolve(self, model: str, version: int | str | None) -> int:
        """The version number an alias (or None: the latest) points at."""
        return self._registry.version(self._ctx, model, version).version

    def load(self, model: str, version: int | str | None) -> ServedVersion:
        found = self._registry.version(self._ctx, model, version)
        self._registry.verify_signature(self._ctx, found)
        formats = found.tags.get("keel.formats", found.format).split(",")
        fmt = "onnx" if "onnx" in formats else found.format
        loaded = self._registry.load(self._ctx, model, found.version, format=fmt)
        package = loaded.package
        dtype = "float32" if fmt == "onnx" else "float64"
        classes = loaded.predictor.classes
        return ServedVersion(
            model=found.model,
            version=found.version,
            format=fmt,
            kind=loaded.predictor.kind,
            predictor=loaded.predictor,
            signature=Signature.from_stored(found.signature, dtype=dtype),
            classes=classes,
            example=list(package.get("example", {}).get("inputs", [])),
            dataset_version=package.get("dataset_version"),
            redact=(
                self._redaction(package.get("dataset_version"))
                if self._redaction is not None
                else frozenset()
            ),
        )


def smoke_test(served: ServedVersion) -> None:
    """Predict the stored input example through the serving path; raise if that fails."""
    import numpy as np

    if not served.example:
        raise IntegrityError(
            f"Model {served.model}:{served.version} has no stored input example, so it cannot "
            "pass a smoke prediction. Register it with ws.models.log_model(..., sample=X).",
            model=served.model,
            version=served.version,
        )
    X = np.asarray(served.example, dtype=served.signature.dtype)
    try:
        out = served.predict(X)
    except Exception as exc:  # any failure of the model itself fails the smoke test
        raise IntegrityError(
            f"Model {served.model}:{served.version} failed its smoke prediction: {exc}",
            model=served.model,
            version=served.version,
        ) from exc
    pred = out["prediction"]
    if len(pred) != len(X) or (pred.dtype.kind == "f" and not np.all(np.isfinite(pred))):
        raise IntegrityError(
            f"Model {served.model}:{served.version} returned {len(pred)} predictions (or "
            f"non-finite ones) for {len(X)} example rows in its smoke prediction.",
            model=served.model,
            version=served.version,
        )


class Batcher:
    """Adaptive micro-batching: concurrent requests for one version run as one batch.

    A request that arrives alone runs at once. While requests keep arriving together, the
    batcher waits up to ``max_wait`` seconds (or until ``max_batch`` rows) to collect them.
    """

    def __init__(
        self,
        predict: Callable[[NDArray[Any]], dict[str, NDArray[Any]]],
        *,
        max_batch: int = 64,
        max_wait: float = 0.0005,
    ) -> None:
        self._predict = predict
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._pending: list[tuple[NDArray[Any], asyncio.Future[dict[str, NDArray[Any]]]]] = []
        self._rows = 0
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._last_batch = 1
        self.batches = 0

    async def predict(self, X: NDArray[Any]) -> dict[str, NDArray[Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, NDArray[Any]]] = loop.create_future()
        self._pending.append((X, future))
        self._rows += len(X)
        if self._rows >= self._max_batch:
            self._flush()
        elif self._handle is None:
            if self._last_batch > 1 and self._max_wait > 0:
                self._handle = loop.call_later(self._max_wait, self._flush)
            else:
                self._handle = loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        import numpy as np

        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        pending, self._pending, self._rows = self._pending, [], 0
        if not pending:
            return
        self._last_batch = len(pending)
        self.batches += 1
        try:
            if len(pending) == 1:
                results = [self._predict(pending[0][0])]
            else:
                out = self._predict(np.concatenate([x for x, _ in pending]))
                results, start = [], 0
                for x, _ in pending:
                    results.append({k: v[start : start + len(x)] for k, v in out.items()})
                    start += len(x)
        except Exception as exc:  # the model's failure goes to every waiting request
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(pending, results, strict=True):
            if not future.done():
                future.set_result(result)
