"""Fixtures of the training tests: bundled scikit-learn data (no download)."""

from __future__ import annotations

import pytest

from keel.training import TrainingData, load_builtin


@pytest.fixture(scope="session")
def breast_cancer() -> TrainingData:
    return load_builtin("breast_cancer", sensitive="mean radius")


@pytest.fixture(scope="session")
def diabetes() -> TrainingData:
    return load_builtin("diabetes")


@pytest.fixture(scope="session")
def wine() -> TrainingData:
    return load_builtin("wine")
