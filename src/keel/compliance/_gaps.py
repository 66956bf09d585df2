"""What a subject's erasure or export did not reach, and what it broke, as report notes.

A compliance officer signs these reports off: anything the search could not look at, or
held the subject's data and was left as it was, is named, never passed over in silence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from keel.store import LineageRepository, MonitorRepository

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keel.compliance._scan import LoggedRows
    from keel.compliance._subjects import Coverage
    from keel.governance import Context

__all__ = ["MATCHING", "coverage_notes", "prediction_note", "use_notes"]

_SHOWN = 50
#: How ids are matched, said in every report: what it does not find is not erased.
MATCHING = (
    "only the subject column is matched, exactly as text: the id written inside other "
    "columns (free text), or spelled otherwise (case, spaces, leading zeros), is not found"
)


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def coverage_notes(coverage: Coverage, held: Iterable[str], *, verb: str) -> list[str]:
    """Notes on versions the index cannot search: first those derived from versions that
    ``held`` the subject (their rows may still be the subject's), then the others."""
    derived = coverage.derived_from(held)
    mine = [u.label for u in coverage.unsearchable if u.id in derived]
    others = [u.label for u in coverage.unsearchable if u.id not in derived]
    notes = []
    if mine:
        notes.append(
            "derived from versions that held the subject, but the subject's rows cannot be "
            f"told apart in them, so they were NOT {verb} (check them by hand, or erase the "
            f"whole version): {_listed(mine)}"
        )
    if others:
        notes.append(f"versions not searched (their subject column was lost): {_listed(others)}")
    return notes


def use_notes(
    session: Session, ctx: Context, erased: Mapping[str, str], replaced: Mapping[str, str]
) -> list[str]:
    """Notes on what used the erased versions (``version id -> dataset:N``): monitors whose
    reference they were, runs that read them (``replaced``: id -> the replacement's label)."""
    notes = []
    monitors = [
        f"{m.name} ({m.reference}"
        + (
            f"; its replacement is {replaced[m.reference_version_id]}"
            if m.reference_version_id in replaced
            else ""
        )
        + ")"
        for m in MonitorRepository(session, ctx.project_id).list()
        if m.reference_version_id in erased
    ]
    if monitors:
        notes.append(
            "monitors whose reference version was erased: their runs fail until they are "
            "given another reference (`keel monitors create NAME --reference DATASET:VERSION "
            f"--replace` with their other options): {_listed(monitors)}"
        )
    nodes = [("dataset_version", v) for v in sorted(erased)]
    runs = sorted(
        {
            f"{e.dst_id} (read {erased[e.src_id]})"
            for e in LineageRepository(session, ctx.project_id).edges_touching(
                nodes, direction="down"
            )
            if e.dst_type == "run" and e.src_id in erased
        }
    )
    if runs:
        notes.append(
            "runs that read erased versions cannot be reproduced on the same data (a re-run "
            f"reads the replacement, or nothing): {_listed(runs)}"
        )
    return notes


def prediction_note(found: LoggedRows, fields: Iterable[str], *, verb: str) -> str | None:
    """The note on prediction logs (searched, never changed by an erasure)."""
    names = sorted(set(fields))
    if not found.batches:
        return None
    where = ", ".join(f"{d}: {n}" for d, n in sorted(found.per_deployment.items()))
    lost = f"; {found.unreadable} batch(es) could not be read" if found.unreadable else ""
    if verb == "exported":
        return (
            f"prediction logs searched for inputs named {', '.join(names) or '(none)'}: "
            f"{found.total} logged prediction(s) hold the subject ({where or 'none'}), "
            f"exported with their ground-truth labels{lost}; inputs under other names are "
            "not matched"
        )
    if not found.total:
        return (
            f"prediction logs searched for inputs named {', '.join(names) or '(none)'}: none "
            f"holds the subject{lost}; inputs under other names are not matched"
        )
    return (
        f"prediction logs: {found.total} logged prediction(s) hold the subject in their "
        f"inputs ({where}); they were NOT erased (Keel does not rewrite prediction logs), "
        f"nor were their ground-truth labels{lost}"
    )
