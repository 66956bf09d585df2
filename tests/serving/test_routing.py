"""Property tests of the pure routing core and the canary analysis."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keel.errors import InvalidInputError
from keel.serving import AnalysisConfig, DeploymentState, VariantSample, analyse, psi, route

steps = st.sampled_from(
    [(5.0, 25.0, 50.0, 100.0), (10.0, 100.0), (50.0, 100.0), (1.0, 20.0, 100.0)]
)


@given(steps=steps, step=st.integers(0, 3), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_canary_weights_converge_to_the_split(
    steps: tuple[float, ...], step: int, seed: int
) -> None:
    step = min(step, len(steps) - 1)
    state = DeploymentState(
        "canary", primary=1, candidate=2, steps=steps, step=step, phase="rolling"
    )
    rng = random.Random(seed)
    n = 4000
    hits = sum(route(state, None, rng.random()).variant == "candidate" for _ in range(n))
    assert abs(hits / n - steps[step] / 100.0) < 0.035


@given(
    key=st.text(min_size=1, max_size=40),
    draws=st.lists(st.floats(0, 0.999999), min_size=2, max_size=20),
)
def test_sticky_keys_stay_on_one_variant(key: str, draws: list[float]) -> None:
    state = DeploymentState("canary", primary=1, candidate=2, step=1, phase="rolling")
    assert len({route(state, key, d).version for d in draws}) == 1


@given(key=st.one_of(st.none(), st.text(max_size=20)), draw=st.floats(0, 0.999999))
def test_shadow_never_changes_the_response(key: str | None, draw: float) -> None:
    shadow = DeploymentState("shadow", primary=1, candidate=2, phase="rolling")
    stable = DeploymentState("shadow", primary=1)
    assert route(shadow, key, draw).version == route(stable, key, draw).version == 1
    assert route(shadow, key, draw).mirror_to == 2
    assert route(stable, key, draw).mirror_to is None


def test_transitions_blue_green_and_canary() -> None:
    state = DeploymentState("blue-green", primary=1)
    switched = state.start(2, "blue-green", (100.0,))
    assert (switched.primary, switched.previous) == (2, 1)
    assert switched.rollback().primary == 1
    canary = state.start(2, "canary", (10.0, 100.0))
    assert canary.canary_weight == 0.1
    assert canary.advance().canary_weight == 1.0
    assert canary.advance().advance().primary == 2
    assert canary.rollback().candidate is None and canary.rollback().primary == 1
    with pytest.raises(InvalidInputError, match="end at 100"):
        DeploymentState("canary", primary=1, steps=(5.0, 50.0))


def _sample(n: int, errors: int, latency: float, shift: float = 0.0) -> VariantSample:
    rng = random.Random(n + errors)
    return VariantSample(
        n,
        errors,
        [latency + rng.random() for _ in range(n)],
        [min(1.0, max(0.0, rng.random() * 0.5 + shift)) for _ in range(n)],
    )


def test_analysis_holds_until_minimum_samples() -> None:
    d = analyse(_sample(50, 0, 1.0), _sample(10, 0, 1.0), AnalysisConfig(min_requests=100))
    assert d.action == "hold" and "Not enough samples" in d.reasons[0]


def test_analysis_promotes_a_healthy_canary() -> None:
    d = analyse(_sample(500, 5, 1.0), _sample(500, 5, 1.0), AnalysisConfig(min_requests=100))
    assert d.action == "promote"


def test_analysis_rolls_back_on_errors_latency_and_shift() -> None:
    config = AnalysisConfig(min_requests=100)
    errors = analyse(_sample(500, 2, 1.0), _sample(500, 60, 1.0), config)
    assert errors.action == "rollback" and "Error rate" in errors.reasons[0]
    slow = analyse(_sample(500, 0, 1.0), _sample(500, 0, 5.0), config)
    assert slow.action == "rollback" and "Latency" in slow.reasons[0]
    shifted = analyse(_sample(500, 0, 1.0), _sample(500, 0, 1.0, shift=0.5), config)
    assert shifted.action == "rollback" and "PSI" in shifted.reasons[0]


def test_psi_is_zero_for_equal_samples_and_grows_with_shift() -> None:
    values = [i / 100 for i in range(100)]
    assert psi(values, values) == pytest.approx(0.0, abs=1e-9)
    assert psi(values, [v + 0.3 for v in values]) > psi(values, [v + 0.1 for v in values]) > 0


def test_mann_whitney_matches_scipy() -> None:
    import numpy as np
    from scipy.stats import mannwhitneyu

    from keel.serving._analysis import mann_whitney_greater

    rng = np.random.default_rng(3)
    for shift in (0.0, 0.2, 1.0):
        a = np.round(rng.normal(shift, size=80) * 4)  # ties on purpose
        b = np.round(rng.normal(size=120) * 4)
        expected = mannwhitneyu(a, b, alternative="greater", method="asymptotic").pvalue
        assert mann_whitney_greater(a, b) == pytest.approx(expected, rel=1e-9)


def _labelled(sample: VariantSample, labelled: int, correct: int) -> VariantSample:
    return VariantSample(
        sample.requests, sample.errors, sample.latencies_ms, sample.predictions, labelled, correct
    )


def test_a_shift_is_explained_only_by_labels_showing_the_canary_at_least_as_accurate() -> None:
    config = AnalysisConfig(min_requests=100, min_labels=50)
    baseline = _labelled(_sample(500, 0, 1.0), 500, 330)
    shifted = _sample(500, 0, 1.0, shift=0.5)

    better = analyse(baseline, _labelled(shifted, 300, 275), config)
    assert better.action == "promote", better.reasons
    assert better.stats["psi"] > config.max_psi and better.stats["psi_explained_by_accuracy"]
    assert "predictions shifted" in better.reasons[0] and "91.67%" in better.reasons[0]

    # Slightly worse (not significantly): the labels do not vouch for the shift.
    worse = analyse(baseline, _labelled(shifted, 300, 195), config)
    assert worse.action == "rollback" and worse.reasons == (
        f"Prediction distribution shifted: PSI {worse.stats['psi']:.3f} > 0.25 against the "
        "baseline.",
    )
    assert worse.stats["psi_explained_by_accuracy"] is False

    # Too few labels on the canary: the shift alone decides, as before.
    unlabelled = analyse(baseline, _labelled(shifted, 49, 49), config)
    assert unlabelled.action == "rollback" and "PSI" in unlabelled.reasons[0]
    assert "accuracy" not in unlabelled.stats

    # Significantly worse: both reasons, accuracy included.
    broken = analyse(baseline, _labelled(shifted, 300, 120), config)
    assert broken.action == "rollback" and len(broken.reasons) == 2
    assert "Accuracy 40.00% vs baseline 66.00% is lower" in broken.reasons[0]
