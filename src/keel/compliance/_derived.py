"""Which column names the data subjects of a version, also of a version derived from another.

A dataset declares its subject column. A version derived from another by a transform (in
the same dataset or written to another one) carries the subjects' rows on, under a column
that the transform may have renamed, pseudonymized or destroyed. From the version it was
derived from (the transform's recorded input, or the parent of an append) the column is
followed through the transform:

* cleansing steps: ``rename`` follows it; ``drop_columns``, ``derive`` or ``clip`` of the
  column lose it;
* anonymization: ``pseudonymize`` keeps it, its values being keyed pseudonyms of the ids
  (found with the project's pseudonymization key: pseudonymized data is still personal data
  for whoever holds the key); ``mask``, ``generalize`` and ``suppress`` lose it;
* anything else (a Python function, an erasure or retention rewrite): kept if the version
  still has a column of that name.

A version of a dataset that declares a subject column uses that column when it has it. A
version whose subject column is lost cannot be searched: it is named, with the reason, so
that the gap shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keel.governance._compliance import subject_type_ok

__all__ = ["Resolved", "VersionFacts", "resolve_columns"]

#: The longest chain of derivations followed.
MAX_DEPTH = 200


@dataclass(frozen=True, slots=True)
class VersionFacts:
    """What resolving needs of a stored version."""

    id: str
    dataset: str
    version: int
    kind: str
    schema: Mapping[str, str]
    transform: Mapping[str, Any] | None
    parents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Resolved:
    """The subject column of a version (None: it cannot be searched, for ``reason``).

    ``encoding`` lists the pseudonymizations its values went through, in order (each the
    length of the pseudonym), so that the subject's id, encoded the same way, finds them.
    ``derived`` is True when the column (or its loss) came from the version it was derived
    from rather than from its dataset's declaration.
    """

    column: str | None
    encoding: tuple[int, ...] = ()
    reason: str = ""
    derived: bool = False


def _lengths(transform: Mapping[str, Any], column: str) -> tuple[int, ...]:
    """The pseudonym lengths an anonymization applied to ``column``, in order."""
    out: list[int] = []
    record = transform.get("record") or {}
    if column not in (record.get("pseudonymized") or ()):
        return ()
    for step in record.get("steps") or ():
        if step.get("kind") == "pseudonymize" and column in (step.get("columns") or ()):
            out.append(int(step.get("length") or 16))
    return tuple(out) or (16,)


def _through(
    transform: Mapping[str, Any], column: str, *, renames: bool = True
) -> tuple[str | None, tuple[int, ...], str]:
    """``column`` of the input as the output of ``transform`` has it: its name, the
    pseudonymizations added, or None and why it was lost (``renames=False``: the column of
    that name, wherever it came from, as the transform left it)."""
    kind = transform.get("kind")
    if kind == "steps":
        for step in transform.get("steps") or ():
            op = step.get("op")
            if op == "rename" and renames:
                mapping = step.get("mapping") or {}
                if column in mapping:
                    column = str(mapping[column])
            elif op == "drop_columns" and column in (step.get("columns") or ()):
                return None, (), f"its subject column {column!r} was dropped by a transform"
            elif op in ("derive", "clip") and step.get("column") == column:
                return None, (), f"its subject column {column!r} was rewritten by a {op} step"
        return column, (), ""
    if kind == "anonymization":
        record = transform.get("record") or {}
        for what, label in (
            ("suppressed_columns", "suppressed"),
            ("masked", "masked"),
            ("generalized", "generalized"),
        ):
            if column in (record.get(what) or ()):
                return None, (), f"its subject column {column!r} was {label} by an anonymization"
        return column, _lengths(transform, column), ""
    return column, (), ""


def resolve_columns(
    versions: Iterable[VersionFacts], declared: Mapping[str, str]
) -> dict[str, Resolved]:
    """The subject column of every version that has (or had) one; versions of undeclared
    datasets that derive from no searchable version are left out."""
    facts = {v.id: v for v in versions}
    done: dict[str, Resolved | None] = {}

    def source(fact: VersionFacts) -> str | None:
        if fact.transform is not None:
            found = fact.transform.get("input")
            return str(found) if isinstance(found, str) and found in facts else None
        return next((p for p in fact.parents if p in facts), None)

    def resolve(version_id: str) -> Resolved | None:
        # the chain of sources, resolved from its start (iteratively: chains can be long)
        chain = [version_id]
        while len(chain) < MAX_DEPTH:
            up = source(facts[chain[-1]])
            if up is None or up in done or up in chain:
                break
            chain.append(up)
        for current in reversed(chain):
            if current not in done:
                done[current] = _one(facts[current], source(facts[current]))
        return done[version_id]

    def _one(fact: VersionFacts, up: str | None) -> Resolved | None:
        parent = done.get(up) if up is not None else None
        inherited: Resolved | None = None
        if parent is not None and parent.column is not None:
            column, added, reason = (
                _through(fact.transform, parent.column)
                if fact.transform is not None
                else (parent.column, (), "")
            )
            if column is None:
                inherited = Resolved(None, reason=reason, derived=True)
            elif column not in fact.schema:
                inherited = Resolved(
                    None, reason=f"it has no column {column!r} (its subject column)", derived=True
                )
            else:
                inherited = Resolved(column, parent.encoding + added, derived=True)
        elif parent is not None:  # derived from a version that cannot be searched either
            inherited = Resolved(None, reason=parent.reason, derived=True)
        own = declared.get(fact.dataset)
        if own and own in fact.schema:
            if inherited is not None and inherited.column == own:
                return _checked(fact, inherited)
            if fact.transform is None:
                return _checked(fact, Resolved(own))
            # the declared column as the transform that made this version left it
            column, encoding, reason = _through(fact.transform, own, renames=False)
            if column is None:
                return Resolved(None, reason=reason, derived=True)
            return _checked(fact, Resolved(own, encoding))
        if inherited is not None and inherited.column is not None:
            return _checked(fact, inherited)
        if own:
            why = inherited.reason if inherited is not None else ""
            return Resolved(None, reason=why or f"it has no column {own!r} (the declared one)")
        return inherited

    out: dict[str, Resolved] = {}
    for version_id, fact in facts.items():
        if fact.kind != "table":
            continue
        found = resolve(version_id)
        if found is not None:
            out[version_id] = found
    return out


def _checked(fact: VersionFacts, found: Resolved) -> Resolved:
    dtype = fact.schema.get(found.column or "", "")
    if not subject_type_ok(dtype):
        return Resolved(
            None,
            reason=f"its subject column {found.column!r} holds {dtype[:40]}, not a single id",
            derived=found.derived,
        )
    return found
