"""The quickstart's data: NannyML's car-loan files as dataset versions, features, the gate.

The reference period (50,000 loans with their repayment label) trains the first champion. The
analysis period (50,000 later loans) is the production traffic: it drifts from row 25,000 on
(``car_value`` and ``loan_length`` move, the model's accuracy drops), and its labels arrive
later, in a separate file, keyed by loan id.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from keel.workspace import Workspace

__all__ = [
    "DATASET",
    "FEATURES",
    "FEATURE_STEPS",
    "LABELS",
    "PRODUCTION",
    "SUITE",
    "labelled_period",
    "prepare_data",
    "production_frame",
    "publish_labelled",
    "quickstart_data_dir",
]

DATASET = "car-loans"
PRODUCTION = "car-loans-production"
LABELS = "car-loans-production-labels"
FEATURES = [
    "car_value",
    "salary_band",
    "debt_to_income_ratio",
    "loan_length",
    "prev_car_repaid",
    "downpayment_pct",
    "driver_tenure",
]
#: Model features derived from the raw columns, as declarative (SQL-expression) steps.
FEATURE_STEPS: list[dict[str, Any]] = [
    {"op": "drop_columns", "columns": ["y_pred_proba", "y_pred"]},
    {
        "op": "derive",
        "column": "salary_band",
        "expr": "CASE salary_range WHEN '0 - 20K €' THEN 0 WHEN '20K - 40K €' THEN 1 "
        "WHEN '40K - 60K €' THEN 2 ELSE 3 END",
    },
    {
        "op": "derive",
        "column": "downpayment_pct",
        "expr": "CAST(REPLACE(size_of_downpayment, '%', '') AS DOUBLE) / 100",
    },
    {
        "op": "derive",
        "column": "prev_car_repaid",
        "expr": "CAST(repaid_loan_on_prev_car AS INTEGER)",
    },
    {"op": "cast", "column": "repaid", "dtype": "int64"},
]
#: The same features for production rows (their labels arrive later, in another file).
PRODUCTION_STEPS = [s for s in FEATURE_STEPS if s.get("column") != "repaid"]
#: The gate: errors block publishing, warnings are recorded.
SUITE: list[dict[str, Any]] = [
    {"kind": "row_count", "min": 10_000},
    *({"kind": "not_null", "column": c} for c in [*FEATURES, "repaid"]),
    {"kind": "unique", "column": "id"},
    {"kind": "range", "column": "debt_to_income_ratio", "min": 0, "max": 1},
    {"kind": "range", "column": "downpayment_pct", "min": 0, "max": 1},
    {"kind": "allowed_values", "column": "repaid", "values": [0, 1]},
    {"kind": "range", "column": "car_value", "min": 0, "max": 100_000, "level": "warning"},
]


def quickstart_data_dir() -> Path:
    """The folder of NannyML's bundled data files, found without importing nannyml."""
    import importlib.util

    from keel.errors import MissingDependencyError

    spec = importlib.util.find_spec("nannyml")
    if spec is None or spec.origin is None:
        raise MissingDependencyError(
            "nannyml", extra="quickstart", purpose="keel quickstart (its car-loan data files)"
        )
    folder = Path(spec.origin).parent / "datasets" / "data"
    if not (folder / "synthetic_car_loan_reference.csv").is_file():
        raise MissingDependencyError(
            "nannyml", extra="quickstart", purpose="keel quickstart (its car-loan data files)"
        )
    return folder


def prepare_data(ws: Workspace, step: Any) -> dict[str, Any]:
    """Ingest, classify, derive features, validate through the gate, publish."""
    folder = quickstart_data_dir()
    step("Ingesting the car-loan data as dataset versions")
    raw = ws.datasets.ingest(DATASET, folder / "synthetic_car_loan_reference.csv")
    production = ws.datasets.ingest(PRODUCTION, folder / "synthetic_car_loan_analysis.csv")
    labels = ws.datasets.ingest(LABELS, folder / "synthetic_car_loan_analysis_target.csv")
    step("Classifying columns and deriving features")
    classified = ws.datasets.classify(DATASET, raw.version)
    ws.datasets.classify(PRODUCTION, production.version)
    features = ws.datasets.transform(DATASET, FEATURE_STEPS, version=raw.version)
    derived = ws.datasets.transform(PRODUCTION, PRODUCTION_STEPS, version=production.version)
    step("Validating through the gate and publishing")
    report = ws.datasets.validate(DATASET, SUITE, version=features.version)
    published = ws.datasets.publish(DATASET, features.version)
    return {
        "raw": raw,
        "features": published,
        "report": report,
        "sensitivity": classified.sensitivity,
        "production": production,
        "production_features": derived,
        "labels": labels,
    }


def production_frame(ws: Workspace, derived: Any) -> pl.DataFrame:
    """The production loans with their model features, in time order."""
    frame: pl.DataFrame = ws.datasets.read(PRODUCTION, derived.version)
    return frame.sort("timestamp")


def labelled_period(ws: Workspace, production: pl.DataFrame, labels: Any) -> pl.DataFrame:
    """Production loans joined with their late repayment labels, shaped like ``car-loans``."""
    import polars as pl

    truth = ws.datasets.read(LABELS, labels.version).select(
        pl.col("id"), pl.col("repaid").cast(pl.Int64)
    )
    columns = [name for name, _ in ws.datasets.version(DATASET, "published").schema]
    return production.join(truth, on="id", how="inner").select(columns)


def publish_labelled(ws: Workspace, rows: pl.DataFrame) -> tuple[Any, Any]:
    """Append the labelled production period to ``car-loans``; validate; publish (the gate)."""
    appended = ws.datasets.ingest(DATASET, rows, mode="append")
    report = ws.datasets.validate(DATASET, SUITE, version=appended.version)
    return ws.datasets.publish(DATASET, appended.version), report
