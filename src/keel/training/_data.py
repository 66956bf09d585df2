"""Training data: features, target, an optional sensitive attribute, and where they came from.

Every :class:`TrainingData` knows its source (:class:`DataRef`) and the digest of its content,
so a run can record exactly what it trained on and ``keel runs reproduce`` can load the same
data again and notice when it changed.
"""

# ruff: noqa: N803  (X is the feature matrix, as in scikit-learn)

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from keel.errors import InvalidInputError, MissingDependencyError, NotFoundError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "BUILTIN_DATASETS",
    "DataRef",
    "Splits",
    "TrainingData",
    "data_digest",
    "load_builtin",
    "load_dataset",
    "load_file",
    "split_data",
]

SourceKind = Literal["builtin", "file", "dataset_version", "inline"]

#: Datasets bundled with scikit-learn (no download), by the name Keel records.
BUILTIN_DATASETS = ("breast_cancer", "diabetes", "iris", "wine")
_MAX_SLICE_VALUES = 10


@dataclass(frozen=True)
class DataRef:
    """Where training data came from, and the digest of what was read.

    Attributes:
        kind: ``builtin`` (bundled with scikit-learn), ``file`` (CSV/Parquet), ``dataset_version``
            (a Keel dataset version) or ``inline`` (arrays given in code; snapshotted in the run).
        ref: the dataset name, file path or dataset version id.
        digest: ``sha256:`` of the features, target and names as read.
        target: the target column (files and frames).
        sensitive: the declared sensitive attribute, if any.
    """

    kind: SourceKind
    ref: str
    digest: str
    target: str | None = None
    sensitive: str | None = None
    dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref": self.ref,
            "digest": self.digest,
            "target": self.target,
            "sensitive": self.sensitive,
            "dataset": self.dataset,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataRef:
        kind = data.get("kind")
        if kind not in ("builtin", "file", "dataset_version", "inline"):
            raise InvalidInputError(f"Unknown data source kind {kind!r} in a recorded run.")
        return cls(
            kind=kind,
            ref=str(data["ref"]),
            digest=str(data["digest"]),
            target=data.get("target"),
            sensitive=data.get("sensitive"),
            dataset=data.get("dataset"),
        )


@dataclass(frozen=True)
class TrainingData:
    """Features ``X`` (rows x columns, float), target ``y``, and the declared sensitive slices.

    Attributes:
        X: the feature matrix.
        y: the target.
        feature_names: one name per column of ``X``.
        source: where the data came from (recorded with every run).
        sensitive: the group of each row for the declared sensitive attribute, or None.
    """

    X: NDArray[Any]
    y: NDArray[Any]
    feature_names: tuple[str, ...]
    source: DataRef
    sensitive: NDArray[Any] | None = field(default=None, repr=False)

    @property
    def dataset_version(self) -> str | None:
        """The dataset version id, when the data came from one."""
        return self.source.ref if self.source.kind == "dataset_version" else None

    @classmethod
    def from_arrays(
        cls,
        X: Any,
        y: Any,
        *,
        feature_names: Sequence[str] | None = None,
        sensitive: Any | None = None,
        sensitive_name: str = "group",
    ) -> TrainingData:
        """Data given in code; a run snapshots it so it can be reproduced."""
        import numpy as np

        features = np.asarray(X, dtype=np.float64)
        target = np.asarray(y)
        names = _names(features, feature_names)
        groups = None if sensitive is None else np.asarray(sensitive).astype(str)
        digest = data_digest(features, target, names)
        ref = DataRef(
            "inline", "arrays", digest, sensitive=None if groups is None else sensitive_name
        )
        return cls(features, target, names, ref, groups)

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        *,
        target: str,
        sensitive: str | None = None,
        features: Sequence[str] | None = None,
        dataset_version: Any | None = None,
        kind: SourceKind | None = None,
        ref: str | None = None,
        dataset: str | None = None,
    ) -> TrainingData:
        """Data from a pandas or Polars frame, e.g. a dataset version read into memory.

        Args:
            frame: the table.
            target: the target column.
            sensitive: a column to slice the held-out metrics by (kept out of the features
                unless listed in ``features``); a numeric column with more than 10 values is
                split at its median into ``low`` and ``high``.
            features: the feature columns (default: every other numeric column).
            dataset_version: the Keel dataset version (object with ``id``, or its id).
            kind: override the recorded source kind.
            ref: override the recorded source reference.
            dataset: ``name:version`` of the dataset version, to read it again later.
        """
        import numpy as np

        columns = [str(c) for c in frame.columns]
        for name in [target, *([sensitive] if sensitive else []), *(features or [])]:
            if name not in columns:
                raise InvalidInputError(
                    f"Column '{name}' is not in the data (columns: {', '.join(columns[:20])}).",
                    column=name,
                )
        chosen = (
            list(features) if features else [c for c in columns if c not in (target, sensitive)]
        )
        try:
            matrix = np.column_stack([_column(frame, c).astype(np.float64) for c in chosen])
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"Feature columns must be numeric ({exc}). Encode text columns first, or list "
                "the numeric features with features=[...].",
            ) from exc
        labels = _column(frame, target)
        groups = None if sensitive is None else slice_groups(_column(frame, sensitive))
        names = tuple(chosen)
        version_id = None
        if dataset_version is not None:
            version_id = str(getattr(dataset_version, "id", dataset_version))
        source_kind: SourceKind = kind or ("dataset_version" if version_id else "inline")
        digest = data_digest(matrix, labels, names)
        source = DataRef(
            source_kind,
            ref or version_id or "frame",
            digest,
            target=target,
            sensitive=sensitive,
            dataset=dataset,
        )
        return cls(matrix, labels, names, source, groups)


def _column(frame: Any, name: str) -> NDArray[Any]:
    import numpy as np

    column = frame[name]
    return np.asarray(column.to_numpy() if hasattr(column, "to_numpy") else column)


def _names(X: NDArray[Any], names: Sequence[str] | None) -> tuple[str, ...]:
    if X.ndim != 2:
        raise InvalidInputError(f"X must be 2-D (rows x features); got shape {X.shape}.")
    if names is None:
        return tuple(f"f{i}" for i in range(X.shape[1]))
    if len(names) != X.shape[1]:
        raise InvalidInputError(f"{len(names)} feature names for {X.shape[1]} columns.")
    return tuple(str(n) for n in names)


def slice_groups(values: Any) -> NDArray[Any]:
    """The group of each row: the value itself, or ``low``/``high`` around the median."""
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind in "fiu" and len(np.unique(array)) > _MAX_SLICE_VALUES:
        median = float(np.median(array))
        return np.where(array > median, "high", "low")
    return array.astype(str)


def data_digest(X: NDArray[Any], y: NDArray[Any], names: Sequence[str]) -> str:
    """``sha256:`` of the features, target and column names (what a run trained on)."""
    import numpy as np

    h = hashlib.sha256()
    h.update("\x1f".join(names).encode())
    h.update(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    target = np.asarray(y)
    if target.dtype.kind in "OUS":
        h.update("\x1f".join(map(str, target.tolist())).encode())
    else:
        h.update(np.ascontiguousarray(target).tobytes())
    return f"sha256:{h.hexdigest()}"


def load_builtin(name: str, *, sensitive: str | None = None) -> TrainingData:
    """A dataset bundled with scikit-learn: breast_cancer, diabetes, iris or wine.

    Args:
        name: the dataset.
        sensitive: a feature to slice held-out metrics by (for example ``"mean radius"``).
    """
    if name not in BUILTIN_DATASETS:
        raise InvalidInputError(
            f"Unknown built-in dataset '{name}'; use one of {', '.join(BUILTIN_DATASETS)}.",
            name=name,
        )
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise MissingDependencyError(
            "scikit-learn", extra="sklearn", purpose="Built-in datasets"
        ) from exc
    bunch = getattr(datasets, f"load_{name}")()
    names = tuple(str(n) for n in bunch.feature_names)
    groups = None
    if sensitive is not None:
        if sensitive not in names:
            raise InvalidInputError(
                f"'{sensitive}' is not a feature of {name} (features: {', '.join(names[:12])}…).",
                column=sensitive,
            )
        groups = slice_groups(bunch.data[:, names.index(sensitive)])
    digest = data_digest(bunch.data, bunch.target, names)
    source = DataRef("builtin", name, digest, target="target", sensitive=sensitive)
    return TrainingData(bunch.data.astype("float64"), bunch.target, names, source, groups)


def load_file(
    path: str | Path,
    *,
    target: str,
    sensitive: str | None = None,
    features: Sequence[str] | None = None,
) -> TrainingData:
    """A CSV or Parquet file (read with Polars), recorded by path and content digest."""
    file = Path(path)
    if not file.is_file():
        raise NotFoundError(f"Training data file {file} does not exist.", path=str(file))
    try:
        import polars as pl
    except ImportError as exc:
        raise MissingDependencyError("polars", extra="data", purpose="Reading data files") from exc
    if file.suffix.lower() in (".parquet", ".pq"):
        frame = pl.read_parquet(file)
    elif file.suffix.lower() in (".csv", ".txt"):
        frame = pl.read_csv(file)
    else:
        raise InvalidInputError(
            f"Cannot read training data from {file.name}: use a .csv or .parquet file.",
            path=str(file),
        )
    return TrainingData.from_frame(
        frame,
        target=target,
        sensitive=sensitive,
        features=features,
        kind="file",
        ref=str(file.resolve()),
    )


@dataclass(frozen=True)
class Splits:
    """Row indices of the train, validation and test splits (fixed by the seed)."""

    train: NDArray[Any]
    valid: NDArray[Any]
    test: NDArray[Any]

    def items(self) -> list[tuple[str, NDArray[Any]]]:
        return [
            (n, idx)
            for n, idx in (("train", self.train), ("valid", self.valid), ("test", self.test))
            if len(idx)
        ]


def split_data(
    data: TrainingData,
    *,
    test_size: float = 0.2,
    valid_size: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
) -> Splits:
    """Split rows into train, validation and test (stratified by ``y`` when it is a class).

    ``valid_size`` is a fraction of all rows; 0 means no validation split.
    """
    import numpy as np
    from sklearn.model_selection import train_test_split

    for name, value in (("test_size", test_size), ("valid_size", valid_size)):
        if not 0 <= value < 1:
            raise InvalidInputError(f"{name} must be in [0, 1); got {value!r}.", field=name)
    if test_size + valid_size >= 0.9:
        raise InvalidInputError("test_size + valid_size leaves under 10% of rows to train on.")
    rows = np.arange(len(data.y))
    labels = data.y if stratify and _is_class_target(data.y) else None
    rest, test = (
        (rows, rows[:0])
        if test_size == 0
        else train_test_split(rows, test_size=test_size, random_state=seed, stratify=labels)
    )
    if valid_size == 0:
        return Splits(np.sort(rest), rows[:0], np.sort(test))
    inner = None if labels is None else labels[rest]
    train, valid = train_test_split(
        rest, test_size=valid_size / (1 - test_size), random_state=seed, stratify=inner
    )
    return Splits(np.sort(train), np.sort(valid), np.sort(test))


def _is_class_target(y: NDArray[Any]) -> bool:
    import numpy as np

    if y.dtype.kind in "OUSb":
        return True
    return bool(y.dtype.kind in "iu" and len(np.unique(y)) <= max(20, len(y) // 50))


class DatasetsPort(Protocol):
    """What :func:`load_dataset` needs from ``ws.datasets``."""

    def versions(self, name: str) -> list[Any]: ...

    def version(
        self, name: str, version: Any = None, *, require_published: bool = False
    ) -> Any: ...

    def read(
        self,
        name: str,
        version: Any = None,
        *,
        format: str = "polars",
        require_published: bool = False,
    ) -> Any: ...


def load_dataset(
    datasets: DatasetsPort,
    name: str,
    version: int | str | None = None,
    *,
    target: str,
    sensitive: str | None = None,
    features: Sequence[str] | None = None,
    require_published: bool = True,
) -> TrainingData:
    """A Keel dataset version (default: the newest), recorded by its version id.

    Args:
        datasets: ``ws.datasets``.
        name: the dataset.
        version: a version number or tag; None for the newest (published, by default).
        target: the target column.
        sensitive: a column to slice held-out metrics by.
        features: the feature columns (default: every other column).
        require_published: refuse a version that has not passed the publish gate.
    """
    if version is None and require_published:
        published = [v for v in datasets.versions(name) if v.published]
        if not published:
            raise NotFoundError(
                f"Dataset '{name}' has no published version yet. Validate and publish one "
                "(`keel datasets publish`), or pass require_published=False.",
                dataset=name,
            )
        version = max(v.version for v in published)
    found = datasets.version(name, version, require_published=require_published)
    frame = datasets.read(name, found.version, require_published=require_published)
    return TrainingData.from_frame(
        frame,
        target=target,
        sensitive=sensitive,
        features=features,
        dataset_version=found.id,
        dataset=f"{found.dataset}:{found.version}",
    )
