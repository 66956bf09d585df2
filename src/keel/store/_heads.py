"""The head revisions of the migration scripts shipped with Keel (no Alembic, no SQLAlchemy).

Several migrations may branch from the same parent (capabilities are independent), so the store
is current when it holds every *head*. The heads are read from the scripts themselves with a
cheap scan; a test checks the scan against Alembic's own view.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

__all__ = ["MIGRATIONS", "required_heads"]

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"^revision\s*(?::\s*str\s*)?=\s*['\"](\w+)['\"]", re.MULTILINE)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]+)?=\s*(.+)$", re.MULTILINE)


@functools.lru_cache(maxsize=1)
def required_heads() -> frozenset[str]:
    """The head revisions of the migration scripts shipped with this Keel."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        found = _REVISION.search(source)
        if found is None:
            continue
        revisions.add(found.group(1))
        down = _DOWN.search(source)
        if down is not None:
            parents.update(re.findall(r"['\"](\w+)['\"]", down.group(1)))
    return frozenset(revisions - parents)
