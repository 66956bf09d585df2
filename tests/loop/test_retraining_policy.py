"""The retraining policy's ``recent`` option: judge challenger and champion where the drift is."""

from __future__ import annotations

import numpy as np
import pytest

from keel.errors import InvalidInputError
from keel.training import RetrainingPolicy, decide
from keel.training._retrain import _judged_rows


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, True, "half"])
def test_recent_must_be_a_fraction(bad: object) -> None:
    with pytest.raises(InvalidInputError, match=r"newest fraction of the rows"):
        RetrainingPolicy("m", trigger="alert:x", recent=bad)  # type: ignore[arg-type]


def test_only_held_out_rows_among_the_newest_are_judged() -> None:
    held_out = np.array([3, 10, 55, 60, 61, 70, 80, 90, 95, 96, 97, 98, 99])
    everything = _judged_rows(RetrainingPolicy("m", trigger="t"), held_out, 100)
    assert everything.tolist() == held_out.tolist()
    newest = _judged_rows(RetrainingPolicy("m", trigger="t", recent=0.4), held_out, 100)
    assert newest.tolist() == [60, 61, 70, 80, 90, 95, 96, 97, 98, 99]
    with pytest.raises(InvalidInputError, match=r"Only 5 held-out rows .* newest 5%"):
        _judged_rows(RetrainingPolicy("m", trigger="t", recent=0.05), held_out, 100)


def test_the_decision_says_where_it_judged() -> None:
    policy = RetrainingPolicy("m", trigger="t", metric="auc", recent=0.4)
    decision = decide(policy, challenger=0.95, champion=0.94)
    assert decision.register
    assert decision.reason.endswith("(held-out rows of the newest 40% of the data)")
