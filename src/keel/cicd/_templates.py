"""``keel ci init``: CI workflow files for GitHub Actions, GitLab CI, Jenkins and Azure Pipelines.

The templates ship in ``keel/cicd/templates``; ``@@name@@`` placeholders are filled from the
options, whose defaults come from keel.yaml (its first pipeline, model and deployment).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel.cicd._report import write_atomic
from keel.errors import AlreadyExistsError, InvalidInputError

__all__ = ["PROVIDERS", "CiOptions", "render_workflow", "write_workflow"]

#: provider -> (template inside the package, path written in the repository)
PROVIDERS: dict[str, tuple[str, str]] = {
    "github": ("github/keel.yml", ".github/workflows/keel.yml"),
    "gitlab": ("gitlab/gitlab-ci.yml", ".gitlab-ci.yml"),
    "jenkins": ("jenkins/Jenkinsfile", "Jenkinsfile"),
    "azure": ("azure/azure-pipelines.yml", "azure-pipelines.yml"),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
_CRON = re.compile(r"^[0-9*/,\-]+( [0-9*/,\-A-Za-z]+){4}$")
_PLACEHOLDER = re.compile(r"@@([a-z_]+)@@")


@dataclass(frozen=True, slots=True)
class CiOptions:
    """What the generated workflow runs: which pipeline, model and deployment, and when."""

    pipeline: str = "train"
    model: str = "model"
    deployment: str = "model-staging"
    environment: str = "staging"
    schedule: str = "0 3 * * 1"
    python: str = "3.11"
    extras: str = "cli,data,serving,supplychain"
    data_pipeline: str = "data-ingestion"

    @classmethod
    def from_project(cls, data: Mapping[str, Any], **overrides: Any) -> CiOptions:
        """Defaults from a project file's first pipeline, model and deployment."""

        def first(section: str) -> str | None:
            value = data.get(section)
            return sorted(value)[0] if isinstance(value, dict) and value else None

        found: dict[str, Any] = {}
        for key, section in (
            ("pipeline", "pipelines"),
            ("model", "models"),
            ("deployment", "deployments"),
        ):
            name = first(section)
            if name:
                found[key] = name
        deployment = (data.get("deployments") or {}).get(found.get("deployment", ""), {})
        if isinstance(deployment, dict) and deployment.get("environment"):
            found["environment"] = deployment["environment"]
        found.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**found)

    def check(self) -> None:
        for key in ("pipeline", "model", "deployment", "environment", "data_pipeline"):
            value = getattr(self, key)
            if not _NAME.match(value):
                raise InvalidInputError(
                    f"--{key.replace('_', '-')} {value!r} is not a name (letters, digits, "
                    "'_', '.', '-').",
                    option=key,
                )
        if not _CRON.match(self.schedule):
            raise InvalidInputError(
                f"--schedule {self.schedule!r} is not a five-field cron expression such as "
                "'0 3 * * 1'.",
            )
        if not re.match(r"^3\.[0-9]{1,2}$", self.python):
            raise InvalidInputError(f"--python {self.python!r} is not a version such as 3.11.")
        if not re.match(r"^[a-z0-9,_-]+$", self.extras):
            raise InvalidInputError(f"--extras {self.extras!r} is not a comma-separated list.")


def render_workflow(provider: str, options: CiOptions) -> tuple[str, str]:
    """(relative path, text) of the workflow file for ``provider``."""
    from importlib.resources import files

    if provider not in PROVIDERS:
        raise InvalidInputError(
            f"Unknown CI provider {provider!r}; use one of {', '.join(PROVIDERS)}.",
            provider=provider,
        )
    options.check()
    template, target = PROVIDERS[provider]
    text = files("keel.cicd").joinpath(f"templates/{template}").read_text(encoding="utf-8")
    values = {k: str(getattr(options, k)) for k in CiOptions.__dataclass_fields__}

    def fill(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return target, _PLACEHOLDER.sub(fill, text)


def write_workflow(provider: str, options: CiOptions, *, root: Path, force: bool = False) -> Path:
    """Write the workflow file under ``root``; an existing file is kept unless ``force``."""
    target, text = render_workflow(provider, options)
    path = root / target
    if path.exists() and not force:
        raise AlreadyExistsError(
            f"{path} already exists. Compare it with `keel ci init --provider {provider} "
            "--stdout`, or overwrite it with --force.",
            path=str(path),
        )
    write_atomic(path, text)
    return path
