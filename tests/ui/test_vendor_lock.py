"""The vendored front-end files are exactly those the lock file records, and nothing else."""

from __future__ import annotations

import hashlib
import json
import re
from importlib.resources import files
from pathlib import Path

VENDOR = Path(str(files("keel.ui") / "static" / "vendor"))


def _lock() -> dict[str, object]:
    return json.loads((VENDOR / "LOCK.json").read_text())  # type: ignore[no-any-return]


def test_every_shipped_file_matches_its_locked_digest() -> None:
    recorded = set()
    for package in _lock()["packages"]:  # type: ignore[attr-defined]
        assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", package["integrity"])
        assert package["tarball"] == (
            f"https://registry.npmjs.org/{package['name']}/-/{package['name']}-"
            f"{package['version']}.tgz"
        )
        names = {Path(f["path"]).name for f in package["files"]}
        assert "LICENSE" in names, f"{package['name']} ships without its licence"
        for entry in package["files"]:
            data = (VENDOR / entry["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
            recorded.add(entry["path"])
    shipped = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - {
        "LOCK.json"
    }
    assert shipped == recorded, "a vendored file is not in LOCK.json (or one is missing)"


def test_the_pages_load_the_locked_versions() -> None:
    versions = {p["name"]: p["version"] for p in _lock()["packages"]}  # type: ignore[attr-defined]
    assert versions == {"htmx.org": "2.0.11", "uplot": "1.6.32"}
    htmx = (VENDOR / "htmx" / "htmx.min.js").read_text()
    assert 'version:"2.0.11"' in htmx.replace(" ", "")
