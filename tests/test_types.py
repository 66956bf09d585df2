from __future__ import annotations

import time

import pytest

from keel.errors import InvalidInputError
from keel.types import RunStatus, new_id, validate_name


def test_ids_are_unique_opaque_and_sort_by_time() -> None:
    first = [new_id() for _ in range(1000)]
    time.sleep(0.002)
    later = new_id()
    assert len(set(first)) == 1000
    assert all(len(i) == 26 and i.isalnum() and i.isupper() for i in first)
    assert max(first) < later


@pytest.mark.parametrize("bad", ["", "-x", "a b", "a/b", "../x", "x" * 129, "é"])
def test_names_are_checked_with_the_rule_in_the_message(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="letters, digits"):
        validate_name(bad, what="model name")


def test_non_string_names_name_the_type() -> None:
    with pytest.raises(InvalidInputError, match="got int"):
        validate_name(3, what="model name")
    assert validate_name("churn-v2.1_x", what="model name") == "churn-v2.1_x"


def test_run_status_finality() -> None:
    assert not RunStatus.RUNNING.is_final
    assert all(s.is_final for s in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED))
