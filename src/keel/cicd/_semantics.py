"""Checks of keel.yaml that need more than its schema: paths, crons, policy files, ranges.

Everything ``keel apply`` would otherwise find out half-way is checked here first, with the
same parsers apply uses (the scheduler's cron parser, the governance policy loader), so a file
that validates cannot fail mid-apply for a reason validation could have caught.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

__all__ = ["path_problem", "semantic_issues"]

#: (line_of, make_issue) so this module needs neither the document type nor Issue.
LineOf = Callable[..., int]
MakeIssue = Callable[[int, str, str, str], Any]


def path_problem(value: str, root: Path) -> str | None:
    """Why ``value`` may not be used as a path relative to ``root`` (None when it may)."""
    if not value.strip():
        return "is empty"
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute():
        return "is an absolute path"
    if ".." in PurePosixPath(value.replace("\\", "/")).parts:
        return "goes up with '..'"
    try:
        (root / value).resolve().relative_to(root.resolve())
    except ValueError:
        return "leads outside the project folder (through a link)"
    return None


def _entries(data: Mapping[str, Any], section: str) -> Iterator[tuple[str, dict[str, Any]]]:
    value = data.get(section)
    if isinstance(value, dict):
        for name, entry in value.items():
            if isinstance(entry, dict):
                yield str(name), entry


def semantic_issues(
    data: Mapping[str, Any], root: Path, line_of: LineOf, issue: MakeIssue
) -> list[Any]:
    """Every problem of ``data`` the schema cannot see, as ``issue(line, path, message, fix)``."""
    found: list[Any] = []

    def add(path: list[str | int], message: str, fix: str, *, key: bool = False) -> None:
        where = ".".join(str(p) for p in path)
        found.append(issue(line_of(path, key=key), where, message, fix))

    # Paths: relative, inside the folder of keel.yaml.
    for env, entry in _entries(data, "environments"):
        files = entry.get("policies")
        for index, rel in enumerate(files if isinstance(files, list) else []):
            if not isinstance(rel, str):
                continue
            path: list[str | int] = ["environments", env, "policies", index]
            problem = path_problem(rel, root)
            if problem is not None:
                add(
                    path,
                    f"Policy file '{rel[:120]}' of environment '{env}' {problem}.",
                    "Put the policy file in the repository and name it relative to keel.yaml, "
                    "e.g. 'policies/production.yaml'.",
                )
                continue
            _policy_issues(root, rel, env, path, add)
    for name, entry in _entries(data, "sources"):
        uri = entry.get("uri")
        if entry.get("kind") in ("file", "folder") and isinstance(uri, str):
            local = uri[len("file://") :] if uri.startswith("file://") else uri
            if "://" in local:
                continue  # s3://, gs://, https://: not a local path
            problem = path_problem(local, root)
            if problem is not None:
                add(
                    ["sources", name, "uri"],
                    f"Source '{name}' reads '{uri[:120]}', which {problem}.",
                    "Name a file or folder relative to keel.yaml (e.g. 'data/customers.csv'), "
                    "or use a remote URI such as s3://bucket/key.",
                )
    # Crons: parsed by the scheduler's own parser.
    for name, entry in _entries(data, "triggers"):
        cron = entry.get("schedule")
        if isinstance(cron, str):
            cron_problem = _cron_problem(cron)
            if cron_problem is not None:
                add(["triggers", name, "schedule"], *cron_problem)
    # Roles: principals as the identity service accepts them.
    roles = data.get("roles")
    for principal in roles if isinstance(roles, dict) else {}:
        problem = _principal_problem(principal)
        if problem is not None:
            add(["roles", str(principal)], problem, _PRINCIPAL_FIX, key=True)
    # Ranges the schema cannot express.
    for name, entry in _entries(data, "deployments"):
        steps = entry.get("steps")
        if isinstance(steps, list) and all(isinstance(s, (int, float)) for s in steps):
            for index in range(1, len(steps)):
                if steps[index] <= steps[index - 1]:
                    add(
                        ["deployments", name, "steps", index],
                        f"Canary step {steps[index]} does not increase on {steps[index - 1]}.",
                        "List the traffic percentages in increasing order, e.g. [5, 25, 100].",
                    )
                    break
        target = entry.get("target")
        if isinstance(target, dict):
            low, high = target.get("replicas"), target.get("max_replicas")
            if isinstance(low, int) and isinstance(high, int) and low > high:
                add(
                    ["deployments", name, "target", "max_replicas"],
                    f"max_replicas {high} is below replicas {low}.",
                    f"Raise max_replicas to at least {low} or lower replicas.",
                )
    for model, entry in _entries(data, "models"):
        promotion = entry.get("promotion")
        for env, policy in promotion.items() if isinstance(promotion, dict) else ():
            metrics = policy.get("metrics") if isinstance(policy, dict) else None
            for metric, bounds in metrics.items() if isinstance(metrics, dict) else ():
                if not isinstance(bounds, dict):
                    continue
                low, high = bounds.get("min"), bounds.get("max")
                if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
                    add(
                        ["models", model, "promotion", env, "metrics", metric],
                        f"Metric '{metric}' needs min {low} > max {high}: no value can pass.",
                        "Swap the bounds or correct one of them so that min <= max.",
                    )
    return found


def _policy_issues(
    root: Path, rel: str, env: str, path: list[str | int], add: Callable[..., None]
) -> None:
    from keel.errors import InvalidInputError
    from keel.governance import load_policy_file

    file = root / rel
    if not file.is_file():
        add(
            path,
            f"Policy file '{rel}' of environment '{env}' does not exist.",
            f"Create {file} or correct the path (relative to the project file).",
        )
        return
    try:
        load_policy_file(file)
    except InvalidInputError as exc:
        add(
            path,
            f"Policy file '{rel}' of environment '{env}' is not a valid policy: "
            f"{exc.message[:400]}",
            "Correct the policy file (see docs/policies.md); `keel policies test` checks it.",
        )


def _cron_problem(cron: str) -> tuple[str, str] | None:
    # The check the scheduler makes (keel._cron is pure: neither the store nor pipelines).
    from keel import clock
    from keel._cron import next_fire_time
    from keel.errors import InvalidInputError, MissingDependencyError

    try:
        next_fire_time(cron, clock.now())
    except InvalidInputError as exc:
        return (exc.message, "Write five fields, minute hour day month weekday, in UTC.")
    except MissingDependencyError:
        return (
            "Schedules cannot be checked or created: croniter is not installed.",
            "Install the scheduler extra: pip install 'keel-mlops[scheduler]'.",
        )
    return None


_PRINCIPAL_FIX = (
    "Write user:NAME or service:NAME, NAME being 1-200 letters, digits, '_', '.', '@', '+' or '-'."
)


def _principal_problem(principal: object) -> str | None:
    from keel.errors import InvalidInputError
    from keel.governance._principals import check_principal_name

    try:
        check_principal_name(principal)
    except InvalidInputError:
        return f"{str(principal)[:80]!r} is not a principal."
    return None
