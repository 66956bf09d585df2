"""The project file ``keel.yaml``: schema, references and cycles checked at once, with lines.

``load_project`` reads the file, checks it against the JSON Schema that ships in
``keel/cicd/schemas/keel.schema.json``, then checks what a schema cannot: references to things
that are not declared, cycles, duplicate keys, paths outside the project folder, crons the
scheduler cannot parse, policy files that do not exist or do not parse, and ranges that cannot
hold. Every problem is reported in one go, each with its file, line and a fix; a file with any
problem yields no resources.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keel.cicd._issues import Issue, explain, path_text, suggest
from keel.cicd._lines import LocatedDocument, parse_located
from keel.cicd._resources import desired_resources
from keel.cicd._semantics import semantic_issues
from keel.errors import InvalidInputError

__all__ = [
    "BUILTIN_ENVIRONMENTS",
    "Issue",
    "ProjectFile",
    "load_project",
    "project_schema",
    "validate_text",
]

#: Environments every project has; ``environments:`` may refine them or add others.
BUILTIN_ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "dev": {"alias": "dev"},
    "staging": {"alias": "staging", "promote_from": "dev"},
    "production": {"alias": "production", "promote_from": "staging"},
}


@dataclass(frozen=True, slots=True)
class ProjectFile:
    """A valid project file: its parsed data and the resources it declares."""

    path: Path
    data: dict[str, Any]
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


@functools.cache
def project_schema() -> dict[str, Any]:
    """The JSON Schema of ``keel.yaml`` (shipped in the package, for editors too)."""
    from importlib.resources import files

    text = files("keel.cicd").joinpath("schemas/keel.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


#: Keywords that only annotate: beside a ``$ref`` they validate nothing.
_ANNOTATIONS = frozenset({"$comment", "default", "deprecated", "description", "examples", "title"})


@functools.cache
def _resolved_schema() -> dict[str, Any]:
    """The project schema with each ``#/$defs/NAME`` reference replaced by what it names.

    Validation gives the same errors (same instance paths, validators and sub-schemas), but
    jsonschema no longer resolves ~1,000 references per file through its registry: about half
    of the validation time. A reference of another form, or one inside its own definition,
    is left for jsonschema to resolve.
    """
    schema = project_schema()
    defs: dict[str, Any] = schema.get("$defs", {})
    resolving: list[str] = []

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        name = ref[len("#/$defs/") :] if isinstance(ref, str) and ref.startswith("#/$defs/") else ""
        if name in defs and name not in resolving:
            resolving.append(name)
            target = resolve(defs[name])
            resolving.pop()
            siblings = {k: resolve(v) for k, v in node.items() if k not in _ANNOTATIONS}
            del siblings["$ref"]
            # a sibling that validates still applies, as beside a reference (2020-12)
            return {"allOf": [target], **siblings} if siblings else target
        return {k: v if k == "$defs" else resolve(v) for k, v in node.items()}

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _schema_issues(doc: LocatedDocument) -> list[Issue]:
    import importlib

    # Imported by name: jsonschema ships no type hints (types-jsonschema is not a dependency).
    jsonschema: Any = importlib.import_module("jsonschema")
    validator = jsonschema.Draft202012Validator(_resolved_schema())
    issues: list[Issue] = []
    for error in sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.path))):
        issues.extend(explain(doc, error))
    return issues


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def _reference_issues(doc: LocatedDocument, root: Path) -> list[Issue]:
    data = doc.data
    declared = {name: set(_section(data, name)) for name in _SECTIONS}
    declared["environments"] |= set(BUILTIN_ENVIRONMENTS)
    issues: list[Issue] = []

    def check(section: str, key: str, target: str, *, many: bool = False) -> None:
        for name, entry in _section(data, section).items():
            if not isinstance(entry, dict) or key not in entry:
                continue
            values = entry[key] if many else [entry[key]]
            if not isinstance(values, list):
                continue
            for index, ref in enumerate(values):
                if not isinstance(ref, str) or ref in declared[target]:
                    continue
                path: list[str | int] = (
                    [section, name, key, index] if many else [section, name, key]
                )
                known = sorted(declared[target])
                issues.append(
                    Issue(
                        doc.file,
                        doc.line_of(path),
                        path_text(path),
                        f"{section[:-1].capitalize()} '{name}' refers to {target[:-1]} '{ref}', "
                        f"which is not declared.",
                        f"{suggest(ref, known)}Declare it under '{target}:' or use one of: "
                        f"{', '.join(known) or '(none declared)'}.",
                    )
                )

    check("datasets", "source", "sources")
    check("datasets", "derived_from", "datasets", many=True)
    check("datasets", "checks", "checks", many=True)
    check("triggers", "pipeline", "pipelines")
    check("triggers", "dataset", "datasets")
    check("triggers", "alert", "alerts")
    check("environments", "promote_from", "environments")
    check("models", "pipeline", "pipelines")
    check("models", "dataset", "datasets")
    check("deployments", "model", "models")
    check("deployments", "environment", "environments")
    check("monitors", "deployment", "deployments")
    check("monitors", "reference", "datasets")
    check("alerts", "monitor", "monitors")
    check("alerts", "retrain", "pipelines")
    for model, entry in _section(data, "models").items():
        promotion = entry.get("promotion") if isinstance(entry, dict) else None
        for env in promotion if isinstance(promotion, dict) else {}:
            if env not in declared["environments"]:
                path = ["models", model, "promotion", env]
                issues.append(
                    Issue(
                        doc.file,
                        doc.line_of(path, key=True),
                        path_text(path),
                        f"Model '{model}' has a promotion policy for environment '{env}', "
                        "which is not declared.",
                        f"{suggest(env, declared['environments'])}Declare it under "
                        "'environments:' or use dev, staging or production.",
                    )
                )
    issues.extend(
        semantic_issues(
            data,
            root,
            doc.line_of,
            lambda line, where, message, fix: Issue(doc.file, line, where, message, fix),
        )
    )
    issues.extend(_cycle_issues(doc, "datasets", "derived_from", many=True))
    environments: dict[str, Any] = {k: dict(v) for k, v in BUILTIN_ENVIRONMENTS.items()}
    for name, entry in _section(data, "environments").items():
        if isinstance(entry, dict):
            environments[name] = {**environments.get(name, {}), **entry}
    issues.extend(_cycle_issues(doc, "environments", "promote_from", graph=environments))
    return issues


_SECTIONS = (
    "sources",
    "datasets",
    "checks",
    "pipelines",
    "triggers",
    "environments",
    "models",
    "deployments",
    "monitors",
    "alerts",
)


def _cycle_issues(
    doc: LocatedDocument,
    section: str,
    key: str,
    *,
    many: bool = False,
    graph: Mapping[str, Any] | None = None,
) -> list[Issue]:
    entries = graph if graph is not None else _section(doc.data, section)
    edges: dict[str, list[str]] = {}
    for name, entry in entries.items():
        value = entry.get(key) if isinstance(entry, dict) else None
        targets = value if many and isinstance(value, list) else [value] if value else []
        edges[name] = [t for t in targets if isinstance(t, str) and t in entries]
    issues: list[Issue] = []
    reported: set[frozenset[str]] = set()
    for cycle in _cycles(edges):
        members = frozenset(cycle)
        if members in reported:
            continue
        reported.add(members)
        start = cycle[0]
        path = [section, start, key]
        issues.append(
            Issue(
                doc.file,
                doc.line_of(path),
                path_text(path),
                f"The {section} form a cycle through '{key}': {' -> '.join([*cycle, start])}.",
                f"Remove one of these '{key}' links so that the chain ends.",
            )
        )
    return issues


def _cycles(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each elementary cycle found by a depth-first search (one per back edge)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def validate_text(text: str, *, file: str, root: Path) -> tuple[LocatedDocument, list[Issue]]:
    """Parse and check a project file's text; every issue, sorted by line."""
    doc = parse_located(text, file=file)
    issues = _schema_issues(doc) + _reference_issues(doc, root)
    for path, key, first, second in doc.duplicate_keys():
        where = path_text([*path, key])
        issues.append(
            Issue(
                doc.file,
                second,
                where,
                f"'{key}' is given twice in the same mapping (lines {first} and {second}); "
                "only the last one would count.",
                f"Keep one '{key}:' (merge the two entries or delete one).",
            )
        )
    unique = {(i.line, i.path, i.message): i for i in issues}
    return doc, sorted(unique.values(), key=lambda i: (i.line, i.path))


def load_project(path: str | Path = "keel.yaml") -> ProjectFile:
    """Read and check ``path``; raise InvalidInputError listing every issue when it has any."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(
            f"There is no project file at {file}. Create one (see docs/project-file.md) or run "
            "`keel export > keel.yaml` to start from the current state.",
            file=str(file),
        )
    doc, issues = validate_text(
        file.read_text(encoding="utf-8"), file=str(file), root=file.resolve().parent
    )
    if issues:
        lines = "\n".join(f"  {issue}" for issue in issues)
        raise InvalidInputError(
            f"{file} has {len(issues)} problem{'s' if len(issues) != 1 else ''}; nothing was "
            f"applied:\n{lines}",
            file=str(file),
            issues=[issue.to_dict() for issue in issues],
        )
    return ProjectFile(
        path=file,
        data=doc.data,
        resources=desired_resources(
            doc.data, root=file.resolve().parent, builtin_environments=BUILTIN_ENVIRONMENTS
        ),
    )
