"""Fixtures shared by the data tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp folder of this test alone, where archives are unpacked (modules that unpack
    archives use it for every test: ``pytestmark = pytest.mark.usefixtures("private_temp")``)."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp
