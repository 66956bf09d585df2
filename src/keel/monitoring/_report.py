"""Parts of a monitor report: quality from late labels per model version, server counters."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from keel.errors import KeelError
from keel.monitoring._quality import (
    assess_classification,
    decode_json,
    infer_task,
    parse_prometheus,
    regression_quality,
)
from keel.monitoring._windows import PREDICTION, SCORE, SCORES

if TYPE_CHECKING:
    import polars as pl

__all__ = ["assess_quality", "scrape_counters"]

_MAX_METRICS = 8 * 1024 * 1024


def _labels(frame: pl.DataFrame, stored: Mapping[str, str]) -> list[Any]:
    if "label" in frame.columns:
        return frame.get_column("label").to_list()
    if "prediction_id" not in frame.columns:
        return [None] * frame.height
    out: list[Any] = []
    for pid in frame.get_column("prediction_id").to_list():
        text = stored.get(str(pid)) if pid is not None else None
        out.append(json.loads(text) if text is not None else None)
    return out


def _predictions(frame: pl.DataFrame) -> list[Any]:
    if PREDICTION not in frame.columns:
        return [None] * frame.height
    values = frame.get_column(PREDICTION).to_list()
    if frame.get_column(PREDICTION).dtype.is_numeric():
        return values
    return [v if not isinstance(v, str) else _maybe_json(v) for v in values]


def _scores(frame: pl.DataFrame) -> list[Any]:
    """Per row: the logged positive-class probability, the class probabilities, or None."""
    out: list[Any] = [None] * frame.height
    if SCORE in frame.columns:
        out = [
            v if isinstance(v, float) and math.isfinite(v) else None
            for v in frame.get_column(SCORE).to_list()
        ]
    if SCORES in frame.columns:
        for i, text in enumerate(frame.get_column(SCORES).to_list()):
            if out[i] is None and isinstance(text, str):
                decoded = decode_json([text])[0]
                out[i] = decoded if isinstance(decoded, dict) and decoded else None
    return out


def _maybe_json(text: str) -> Any:
    decoded = decode_json([text])[0]
    return decoded if isinstance(decoded, int | float | str | bool) else text


def assess_quality(
    frame: pl.DataFrame,
    stored: Mapping[str, str],
    *,
    task: str | None,
    min_labels: int,
) -> dict[str, Any] | None:
    """Quality of the window's predictions that have a label, overall and per model version.

    Returns None when the window has no predictions to judge. ``status`` is ``ok``,
    ``no_labels`` (none arrived yet) or ``insufficient_labels`` (fewer than ``min_labels``:
    the metrics are shown but not to be trusted). For classification, ``auc_from`` (overall
    and per version) says whether the AUC was computed from logged ``scores`` or from the
    predicted ``labels`` (then ``auc_note`` says why).
    """
    if frame.height == 0 or PREDICTION not in frame.columns:
        return None
    truth = _labels(frame, stored)
    predicted = _predictions(frame)
    scores = _scores(frame)
    versions = (
        frame.get_column("version").to_list() if "version" in frame.columns else [None] * len(truth)
    )
    pairs = [
        (t, p, v, sc)
        for t, p, v, sc in zip(truth, predicted, versions, scores, strict=True)
        if not _missing(t) and not _missing(p)
    ]
    labelled = len(pairs)
    out: dict[str, Any] = {
        "rows": frame.height,
        "labelled": labelled,
        "coverage": labelled / frame.height,
        "task": task,
        "overall": {},
        "versions": [],
    }
    if labelled == 0:
        out["status"] = "no_labels"
        out["message"] = (
            "No label has arrived for the window's predictions yet; ingest them with "
            "`keel monitors labels ingest FILE` (prediction_id, label)."
        )
        return out
    chosen = task or infer_task([t for t, _, _, _ in pairs])
    out["task"] = chosen
    measure = _classification if chosen == "classification" else _regression
    out["overall"], source = measure([(t, p, sc) for t, p, _, sc in pairs])
    if source is not None:
        out["auc_from"] = source
    if source == "labels":
        out["auc_note"] = (
            "AUC is computed from the predicted labels (a 0/1 ranking), because not every "
            "labelled prediction has a logged score; classifiers served by this Keel version "
            "log their probabilities."
        )
    by_version: dict[Any, list[tuple[Any, Any, Any]]] = {}
    for t, p, v, sc in pairs:
        by_version.setdefault(v, []).append((t, p, sc))
    rows_per_version: dict[Any, int] = {}
    for v in versions:
        rows_per_version[v] = rows_per_version.get(v, 0) + 1
    for version in sorted(by_version, key=lambda v: (v is None, str(v))):
        items = by_version[version]
        metrics, source = measure(items)
        out["versions"].append(
            {
                "version": version,
                "labelled": len(items),
                "coverage": len(items) / rows_per_version[version],
                **metrics,
                **({"auc_from": source} if source is not None else {}),
            }
        )
    if labelled < min_labels:
        out["status"] = "insufficient_labels"
        out["message"] = f"{labelled} labelled predictions; at least {min_labels} are needed."
    else:
        out["status"] = "ok"
    return out


def _classification(items: list[tuple[Any, Any, Any]]) -> tuple[dict[str, float], str | None]:
    return assess_classification(
        [t for t, _, _ in items], [p for _, p, _ in items], scores=[sc for _, _, sc in items]
    )


def _regression(items: list[tuple[Any, Any, Any]]) -> tuple[dict[str, float], str | None]:
    return regression_quality([t for t, _, _ in items], [p for _, p, _ in items]), None


def scrape_counters(
    url: str, *, allow_private: bool, endpoint: str | None
) -> tuple[dict[tuple[str, str], dict[str, float]], str | None]:
    """Read request and error counters from a model server's ``/metrics`` (egress-checked)."""
    from keel.monitoring._egress import http_request, parse_url

    try:
        target = parse_url(url, allow_private=allow_private)
        status, body = http_request(
            target, None, {"Accept": "text/plain"}, timeout=5.0, method="GET", limit=_MAX_METRICS
        )
    except (KeelError, OSError) as exc:
        return {}, f"Server metrics at {url[:100]} could not be read: {str(exc)[:200]}"
    if status != 200:
        return {}, f"Server metrics at {url[:100]} answered HTTP {status}."
    return parse_prometheus(body.decode("utf-8", "replace"), endpoint=endpoint), None


def _missing(value: Any) -> bool:
    """No label or prediction: None, or a float NaN (the quality metrics leave those out)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
