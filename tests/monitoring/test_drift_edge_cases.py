"""Edge cases of the drift and quality numbers that decide alerts and retraining.

Each expected number comes from SciPy, scikit-learn or a count by hand.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats
from sklearn import metrics

from keel.data._checks import parse_suite
from keel.data._drift import reference_check
from keel.errors import InvalidInputError
from keel.monitoring import (
    bin_counts,
    compute_drift,
    profile_reference,
    quantile_edges,
)
from keel.monitoring._quality import assess_classification, infer_task
from keel.monitoring._report import assess_quality
from keel.monitoring._stats import PSI_FLOOR


def _psi_by_hand(reference: list[int], current: list[int]) -> float:
    r, c = np.asarray(reference, float), np.asarray(current, float)
    e = np.maximum(r / r.sum(), PSI_FLOOR)
    a = np.maximum(c / c.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


# --- reference and window values -------------------------------------------------------------


def test_nulls_count_once_in_the_reference_and_the_window() -> None:
    reference = pl.DataFrame({"x": [1.0, 2.0, None, 4.0, 5.0] * 100})  # 100 nulls of 500
    column = profile_reference(reference).columns["x"]
    assert (column.rows, column.nulls, column.valid) == (500, 100, 400)
    window = pl.DataFrame({"x": [1.0, None, 3.0, float("nan"), 5.0] * 20})  # 20 null, 20 NaN
    found = compute_drift(reference, window).features[0]
    assert found.current_nulls == 40
    assert found.stats["null_share"] == pytest.approx(0.4)
    assert found.stats["reference_null_share"] == pytest.approx(0.2)
    assert found.reference_rows == 400
    ints = profile_reference(pl.DataFrame({"n": pl.Series([1, None] * 50)})).columns["n"]
    assert (ints.nulls, ints.valid) == (50, 50)


def test_date_times_compare_in_seconds_whatever_their_unit() -> None:
    hours = pl.datetime_range(pl.datetime(2024, 1, 1), pl.datetime(2024, 2, 1), "1h", eager=True)
    reference = pl.DataFrame({"t": hours.cast(pl.Datetime("us"))})
    same = compute_drift(reference, pl.DataFrame({"t": hours.cast(pl.Datetime("ns"))}))
    found = same.features[0]
    assert (found.status, found.stats["psi"], found.stats["ks"]) == ("ok", 0.0, 0.0)
    days = pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 3, 1), "1d", eager=True)
    midnight = pl.DataFrame({"t": days.cast(pl.Datetime("ms"))})
    found = compute_drift(midnight, pl.DataFrame({"t": days})).features[0]
    assert (found.status, found.stats["psi"], found.stats["ks"]) == ("ok", 0.0, 0.0)
    # an hour later: Wasserstein is in seconds, as SciPy measures the epoch seconds
    later = pl.DataFrame({"t": (hours + timedelta(hours=1)).cast(pl.Datetime("ns"))})
    found = compute_drift(reference, later).features[0]
    seconds = hours.dt.epoch("s").to_numpy().astype(float)
    assert found.stats["wasserstein"] == pytest.approx(
        stats.wasserstein_distance(seconds, seconds + 3600.0)
    )
    assert found.stats["wasserstein"] == pytest.approx(3600.0)


def test_booleans_meet_zero_and_one() -> None:
    rng = np.random.default_rng(11)
    flags = rng.random(1000) < 0.3
    window = rng.random(600) < 0.5
    as_bools = compute_drift(pl.DataFrame({"b": flags}), pl.DataFrame({"b": window}))
    as_ints = compute_drift(pl.DataFrame({"b": flags}), pl.DataFrame({"b": window.astype(int)}))
    bools, ints = as_bools.features[0], as_ints.features[0]
    assert ints.stats["new_categories"] == 0.0
    table = [[int((~flags).sum()), int(flags.sum())], [int((~window).sum()), int(window.sum())]]
    expected = stats.chi2_contingency(table, correction=False)
    for found in (bools, ints):
        assert found.stats["chi2"] == pytest.approx(expected.statistic)
        assert found.stats["psi"] == pytest.approx(_psi_by_hand(table[0], table[1]))
    # a numeric reference of 0/1 against a boolean window: compared as numbers
    numbers = compute_drift(pl.DataFrame({"b": flags.astype(int)}), pl.DataFrame({"b": window}))
    found = numbers.features[0]
    assert found.kind == "numeric" and found.status == "warning"
    assert found.stats["psi"] == pytest.approx(_psi_by_hand(table[0], table[1]))  # 0.17
    ks = stats.ks_2samp(flags.astype(float), window.astype(float), method="asymp")
    assert found.stats["ks"] == pytest.approx(ks.statistic)
    assert found.stats["ks_pvalue"] == pytest.approx(ks.pvalue, rel=1e-6, abs=1e-300)


def test_a_whole_float_is_the_integer_category() -> None:
    rng = np.random.default_rng(12)
    codes = rng.integers(0, 3, 1000)
    window = rng.integers(0, 3, 800)
    found = compute_drift(
        pl.DataFrame({"c": codes.astype(float)}),
        pl.DataFrame({"c": window}),
        categorical=["c"],
    ).features[0]
    reference_counts = [int((codes == k).sum()) for k in range(3)]
    window_counts = [int((window == k).sum()) for k in range(3)]
    order = np.argsort(reference_counts)[::-1]  # the profile lists categories by count
    assert found.stats["new_categories"] == 0.0
    assert found.stats["psi"] == pytest.approx(
        _psi_by_hand([reference_counts[i] for i in order], [window_counts[i] for i in order])
    )
    text = compute_drift(
        pl.DataFrame({"c": ["1", "2"] * 100}), pl.DataFrame({"c": [1.0, 2.0, float("nan")] * 50})
    ).features[0]
    assert (text.stats["psi"], text.stats["new_categories"], text.current_nulls) == (0.0, 0.0, 50)


def test_new_categories_beyond_the_top_200_are_named_and_counted() -> None:
    rng = np.random.default_rng(13)
    names = [f"c{i:03d}" for i in range(500)]
    reference = rng.choice(names, 50_000)
    unseen = [f"new{i}" for i in range(50)]
    window = np.concatenate([rng.choice(names, 5000), rng.choice(unseen, 5000)])
    found = compute_drift(pl.DataFrame({"c": reference}), pl.DataFrame({"c": window})).features[0]
    assert found.stats["new_categories"] == 50.0
    assert found.message.startswith("New categories: new")
    assert found.status == "drift"
    # by hand: the reference's 200 most frequent, the rest as one "other", then the new ones
    ref_counts = (
        pl.Series("c", reference).value_counts().sort(["count", "c"], descending=[True, False])
    )
    top = ref_counts.get_column("c").head(200).to_list()
    tail_ref = 50_000 - int(ref_counts.get_column("count").head(200).sum())
    window_counts = dict(zip(*np.unique(window, return_counts=True), strict=True))
    ref_row = ref_counts.get_column("count").head(200).to_list() + [tail_ref] + [0] * 50
    tail_now = sum(int(v) for k, v in window_counts.items() if k not in top and k in names)
    now_row = [int(window_counts.get(k, 0)) for k in top] + [tail_now]
    now_row += [int(window_counts[k]) for k in unseen]
    expected = stats.chi2_contingency([ref_row, now_row], correction=False)
    assert found.stats["chi2"] == pytest.approx(expected.statistic)
    assert found.stats["psi"] == pytest.approx(_psi_by_hand(ref_row, now_row))


def test_a_spike_in_the_reference_gets_a_bin_of_its_own() -> None:
    rng = np.random.default_rng(14)
    spread = rng.uniform(0, 10, 5000)
    reference = np.concatenate([np.full(5000, 5.0), spread])
    moved = np.concatenate([np.full(5000, 5.2), rng.uniform(0, 10, 5000)])  # spike moves a bit
    profile = profile_reference(pl.DataFrame({"x": reference}))
    column = profile.columns["x"]
    ordered = np.sort(reference)
    assert quantile_edges(ordered, 10).tolist().count(5.0) == 1  # quantile edges collapse
    inside = [e for e in column.edges if 5.0 - 1e-5 < e < 5.0 + 1e-5]
    assert len(inside) == 2 and inside[0] < 5.0 < inside[1]  # the spike's own bin
    assert column.counts.tolist() == bin_counts(reference, column.edges).tolist()
    spike_bin = int(np.searchsorted(column.edges, 5.0, side="right"))
    assert column.counts[spike_bin] == 5000  # the spike alone
    found = compute_drift(profile, pl.DataFrame({"x": moved})).features[0]
    ref_counts = column.counts.tolist()
    now_counts = bin_counts(moved, column.edges).tolist()
    assert now_counts[spike_bin] == 0
    assert found.stats["psi"] == pytest.approx(_psi_by_hand(ref_counts, now_counts))
    assert found.stats["psi"] > 2.0 and found.status == "drift"
    same = compute_drift(profile, pl.DataFrame({"x": reference[::-1]})).features[0]
    assert same.stats["psi"] == 0.0 and same.status == "ok"


def test_ks_pvalue_counts_the_whole_reference() -> None:
    rng = np.random.default_rng(15)
    base = rng.normal(size=100_000)
    reference = np.repeat(base, 2)  # 200,000 values; its 100,000 order statistics are `base`
    window = rng.normal(0.03, 1.0, 5000)
    found = compute_drift(pl.DataFrame({"x": reference}), pl.DataFrame({"x": window})).features[0]
    expected = stats.ks_2samp(reference, window, method="asymp")
    assert found.stats["ks"] == pytest.approx(expected.statistic, abs=1e-12)
    assert found.stats["ks_pvalue"] == pytest.approx(expected.pvalue, rel=1e-6)


# --- small windows ---------------------------------------------------------------------------


def test_small_windows_of_the_reference_distribution_rarely_alert() -> None:
    rng = np.random.default_rng(16)
    reference = pl.DataFrame(
        {"x": rng.normal(size=20_000), "c": rng.choice(list("abcdefghij"), 20_000)}
    )
    profile = profile_reference(reference)
    statuses = []
    for _ in range(100):
        window = pl.DataFrame({"x": rng.normal(size=20), "c": rng.choice(list("abcdefghij"), 20)})
        statuses += [f.status for f in compute_drift(profile, window).features]
    # PSI of 20 values from the same distribution is near 1: without the test every window
    # drifted; with it, about the test's 5% do
    assert statuses.count("drift") / len(statuses) <= 0.08
    window = pl.DataFrame({"x": rng.normal(size=20), "c": rng.choice(list("abcdefghij"), 20)})
    quiet = compute_drift(profile, window).features[0]
    assert quiet.stats["psi"] is not None and quiet.stats["psi"] >= 0.2
    assert quiet.stats["chi2_pvalue"] is not None and quiet.stats["chi2_pvalue"] >= 0.05
    assert quiet.status == "ok" and "sampling noise" in quiet.message
    alone = compute_drift(profile, window, significance=None).features[0]
    assert alone.status == "drift"  # the distance alone decides when asked to
    shifted = pl.DataFrame({"x": rng.normal(3.0, 1.0, 20), "c": ["a"] * 20})
    assert {f.status for f in compute_drift(profile, shifted).features} == {"drift"}


def test_significance_must_be_a_p_value() -> None:
    reference = pl.DataFrame({"x": np.arange(100.0)})
    with pytest.raises(InvalidInputError, match="significance"):
        compute_drift(reference, reference, significance=1.5)


# --- quality ---------------------------------------------------------------------------------


def test_textual_booleans_and_numeric_text_are_the_same_class() -> None:
    found, _ = assess_classification(["True", "False", "True", "true"], [True, False, False, True])
    assert found["accuracy"] == pytest.approx(metrics.accuracy_score([1, 0, 1, 1], [1, 0, 0, 1]))
    found, _ = assess_classification(["1.0", "0.0", "2.0", "2"], [1, 0, 2, 1])
    assert found["accuracy"] == pytest.approx(metrics.accuracy_score([1, 0, 2, 2], [1, 0, 2, 1]))


def test_probabilities_against_labels_of_one_class() -> None:
    truth, scores = [0, 0, 0, 0], [0.9, 0.8, 0.1, 0.2]
    found, _ = assess_classification(truth, scores)
    predicted = [int(s >= 0.5) for s in scores]
    assert found["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))  # 0.5
    ones, _ = assess_classification([1, 1, 1, 1], scores)
    assert ones["accuracy"] == pytest.approx(metrics.accuracy_score([1, 1, 1, 1], predicted))


def test_the_greater_number_is_the_positive_class() -> None:
    rng = np.random.default_rng(17)
    truth = rng.choice([2, 10], 200)
    predicted = np.where(rng.random(200) < 0.7, truth, 12 - truth)
    predicted[:20] = 10  # unbalanced, so F1 of class 2 and of class 10 differ
    found, _ = assess_classification(truth.tolist(), predicted.tolist())
    expected = metrics.f1_score(truth, predicted, pos_label=10)
    assert expected != pytest.approx(metrics.f1_score(truth, predicted, pos_label=2))
    assert found["f1"] == pytest.approx(expected)


def test_pairs_without_a_prediction_are_left_out() -> None:
    truth = [1, 0, 1, 0, 1, 0]
    predicted = [1, 0, float("nan"), 0, 0, None]
    found, source = assess_classification(truth, predicted)
    kept_truth, kept_predicted = [1, 0, 0, 1], [1, 0, 0, 0]
    assert found["accuracy"] == pytest.approx(metrics.accuracy_score(kept_truth, kept_predicted))
    assert found["f1"] == pytest.approx(metrics.f1_score(kept_truth, kept_predicted))
    assert found["auc"] == pytest.approx(metrics.roc_auc_score(kept_truth, kept_predicted))
    assert source == "labels"


def test_a_missing_label_does_not_turn_measurements_into_classes() -> None:
    truth = [1.0, 2.0, 3.0, float("nan")] + [1.2] * 30
    predicted = [1.5, 2.0, 3.1, 4.0] + [1.0] * 30
    frame = pl.DataFrame({"_prediction": predicted, "label": truth})
    quality = assess_quality(frame, {}, task=None, min_labels=1)
    assert quality is not None and quality["task"] == "regression"
    kept = [(t, p) for t, p in zip(truth, predicted, strict=True) if not math.isnan(t)]
    y, y_hat = [t for t, _ in kept], [p for _, p in kept]
    assert quality["overall"]["rmse"] == pytest.approx(
        math.sqrt(metrics.mean_squared_error(y, y_hat))
    )
    assert quality["overall"]["mae"] == pytest.approx(metrics.mean_absolute_error(y, y_hat))
    assert infer_task([0, 1, None, float("nan"), 1]) == "classification"


# --- the dataset check distribution_shift ----------------------------------------------------


def _shift(
    current: pl.Series | list[object], reference: pl.Series | list[object], method: str = "psi"
) -> tuple[object, object, bool, str, dict[str, object]]:
    check = parse_suite([{"kind": "distribution_shift", "column": "x", "method": method}])
    frame = pl.DataFrame({"x": current})
    return reference_check(frame, pl.DataFrame({"x": reference}), check.checks[0])


@pytest.mark.parametrize("method", ["psi", "ks"])
def test_shift_check_without_values_fails_with_the_reason(method: str) -> None:
    values = np.random.default_rng(18).normal(size=500)
    nothing = pl.Series([None] * 50, dtype=pl.Float64)
    observed, _, passed, message, details = _shift(nothing, values, method)
    assert (observed, passed) == (None, False)
    assert "every value of x in this version is missing" in message
    assert details["rows"] == 0 and details["reference_rows"] == 500
    observed, _, passed, message, _ = _shift(values, [float("nan")] * 50, method)
    assert (observed, passed) == (None, False) and "in the reference" in message


def test_shift_check_compares_date_times_in_one_unit() -> None:
    hours = pl.datetime_range(pl.datetime(2024, 1, 1), pl.datetime(2024, 2, 1), "1h", eager=True)
    for method in ("psi", "ks"):
        observed, _, passed, _, _ = _shift(
            hours.cast(pl.Datetime("ns")), hours.cast(pl.Datetime("us")), method
        )
        assert (observed, passed) == (0.0, True)


def test_shift_check_names_categories_alike_and_leaves_missing_out() -> None:
    rng = np.random.default_rng(19)
    flags = rng.random(500) < 0.3
    assert _shift(flags.astype(int), flags)[0] == 0.0
    assert _shift(flags, flags.astype(int))[0] == 0.0
    codes = rng.integers(0, 3, 500)
    assert _shift(pl.Series(codes.astype(float)), pl.Series(codes.astype(str)))[0] == 0.0
    # a third of the values missing, the rest as in the reference: no shift of the values
    observed, _, passed, _, details = _shift(["a", "b", None] * 100, ["a", "b"] * 100)
    assert (observed, passed, details["categories"]) == (0.0, True, 2)


def test_categories_tied_in_count_are_kept_by_name() -> None:
    names = [f"k{i:03d}" for i in range(300)]
    reference = pl.DataFrame({"c": names * 5})  # every category 5 times: all tied
    column = profile_reference(reference).columns["c"]
    assert list(column.categories[:200]) == names[:200]  # the same top 200 on every run
    assert column.categories[200] == "__other__" and column.counts[200] == 500


def test_a_nan_prediction_is_not_counted_as_labelled() -> None:
    # before: the metrics left the NaN pair out but `labelled` and coverage counted it
    import polars as pl

    from keel.monitoring._report import assess_quality
    from keel.monitoring._windows import PREDICTION

    frame = pl.DataFrame(
        {"label": [1.5, 2.0, 3.0, 4.0], PREDICTION: [1.4, float("nan"), 3.1, None]}
    )
    found = assess_quality(frame, {}, task="regression", min_labels=1)
    assert found is not None
    assert found["labelled"] == 2


def test_a_tied_value_rounded_to_float32_by_the_server_is_not_drift() -> None:
    # before: the spike's bin was [value, next float), so 0.1 logged as float32
    # (0.10000000149) fell outside it and an unchanged feature showed PSI 12
    reference = np.repeat(np.array([0.0, 0.1, 0.2, 0.3, 0.4]), 2_000)
    window = reference.astype(np.float32).astype(np.float64)
    found = compute_drift(
        pl.DataFrame({"x": reference}), pl.DataFrame({"x": window}), significance=None
    ).features[0]
    assert found.stats["psi"] < 0.01 and found.status == "ok"
