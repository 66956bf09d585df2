"""Pipelines: a named DAG of steps, checked once when it is built, and the project file."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigurationError, InvalidInputError, NotFoundError
from keel.pipelines._dag import find_cycle, topological_order
from keel.pipelines._definition import Step, check_param, definition_error
from keel.types import validate_name

if TYPE_CHECKING:
    from keel.pipelines._executors import Executor
    from keel.pipelines._model import RunResult

__all__ = ["PROJECT_FILE", "Pipeline", "load_pipeline", "project_pipelines"]

PROJECT_FILE = "keel.yaml"


def _caller() -> tuple[str | None, int | None]:
    """The file and line of the user's code that is building the pipeline."""
    frame = sys._getframe(1)
    here = __file__
    while frame is not None and frame.f_code.co_filename == here:
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None, None
    return frame.f_code.co_filename, frame.f_lineno


class Pipeline:
    """A DAG of steps wired by the names of their inputs and outputs.

    Everything is checked here, so a bad definition fails when the module is imported, naming
    the user's file and line: duplicate step names or outputs, inputs no step produces (and
    that are not pipeline inputs), cycles, and parameters of the wrong type or that no step has.

    Args:
        name: The pipeline's name (as in ``keel.yaml``).
        steps: The steps, in any order.
        inputs: Names the caller passes to ``run(inputs=...)`` rather than a step producing.
        params: Default parameter values: ``{"lr": 0.1}`` sets ``lr`` of every step that has
            it, ``{"train.lr": 0.1}`` only that step's.
        description: Free text shown by ``keel pipelines list``.
    """

    def __init__(
        self,
        name: str,
        *,
        steps: Iterable[Step],
        inputs: Iterable[str] = (),
        params: Mapping[str, Any] | None = None,
        description: str = "",
    ) -> None:
        self.file, self.line = _caller()
        try:
            self.name = validate_name(name, what="pipeline name")
        except InvalidInputError as exc:
            raise definition_error(str(exc), file=self.file, line=self.line) from None
        self.description = description
        self.steps: dict[str, Step] = {}
        for item in steps:
            if not isinstance(item, Step):
                raise self._error(
                    f"{item!r:.80} is not a step. Decorate the function with @keel.step."
                )
            if item.name in self.steps:
                raise self._error(
                    f"two steps are named '{item.name}' ({self.steps[item.name].where} and "
                    f"{item.where}). Rename one with @keel.step(name=...)."
                )
            self.steps[item.name] = item
        if not self.steps:
            raise self._error("it has no steps. Pass steps=[...].")
        self.inputs = tuple(inputs)
        self.producer: dict[str, str] = {}
        for item in self.steps.values():
            for output in item.outputs:
                if output in self.producer:
                    other = self.steps[self.producer[output]]
                    raise definition_error(
                        f"Pipeline '{self.name}': steps '{other.name}' ({other.where}) and "
                        f"'{item.name}' both produce '{output}'. Give one of the outputs "
                        "another name (@keel.step(outputs=...)).",
                        file=item.file,
                        line=item.line,
                    )
                if output in self.inputs:
                    raise self._error(
                        f"'{output}' is both a pipeline input and an output of step "
                        f"'{item.name}' ({item.where}). Drop it from inputs=."
                    )
                self.producer[output] = item.name
        self.edges: dict[str, set[str]] = {}
        for item in self.steps.values():
            deps = set()
            for needed in item.inputs:
                if needed in self.producer:
                    deps.add(self.producer[needed])
                elif needed not in self.inputs:
                    raise definition_error(
                        f"Step '{item.name}' reads '{needed}', which no step produces. Add a "
                        f"step that returns '{needed}' or pass it as a pipeline input "
                        f"(Pipeline(..., inputs=['{needed}'])).",
                        file=item.file,
                        line=item.line,
                    )
            self.edges[item.name] = deps
        cycle = find_cycle(self.edges)
        if cycle is not None:
            trail = " → ".join(f"'{n}' ({self.steps[n].where})" for n in reversed(cycle))
            first = self.steps[cycle[0]]
            raise definition_error(
                f"Pipeline '{self.name}' has a cycle: {trail}. A step cannot depend, directly "
                "or not, on its own output; split or rename an output to break it.",
                file=first.file,
                line=first.line,
            )
        self.order = topological_order(self.edges)
        self.defaults = self.resolve_params(params or {}, base=None)

    def _error(self, message: str) -> InvalidInputError:
        return definition_error(
            f"Pipeline '{getattr(self, 'name', '?')}': {message}", file=self.file, line=self.line
        )

    # -- parameters ----------------------------------------------------------------------

    def resolve_params(
        self, overrides: Mapping[str, Any], *, base: Mapping[str, Mapping[str, Any]] | None
    ) -> dict[str, dict[str, Any]]:
        """Every step's parameter values after ``overrides``, each checked against its type.

        Raises:
            InvalidInputError: For a parameter no step has, or a value of the wrong type.
        """
        if base is None:
            values = {
                name: {p.name: p.default for p in item.params.values()}
                for name, item in self.steps.items()
            }
        else:
            values = {name: dict(params) for name, params in base.items()}
        for key, value in overrides.items():
            step_name, dot, param_name = key.rpartition(".")
            targets = [step_name] if dot else [n for n, s in self.steps.items() if key in s.params]
            param_name = param_name if dot else key
            if dot and (
                step_name not in self.steps or param_name not in self.steps[step_name].params
            ):
                targets = []
            if not targets:
                known = sorted(
                    {f"{n}.{p}" for n, s in self.steps.items() for p in s.params}
                    | {p for s in self.steps.values() for p in s.params}
                )
                raise self._error(
                    f"no step has the parameter '{key}'. Known parameters: "
                    f"{', '.join(known) or 'none'}."
                )
            for target in targets:
                item = self.steps[target]
                try:
                    values[target][param_name] = check_param(
                        value, item.params[param_name], step_name=target
                    )
                except InvalidInputError as exc:
                    raise definition_error(str(exc), file=item.file, line=item.line) from None
        return values

    # -- running -------------------------------------------------------------------------

    def run(
        self,
        target: Any,
        /,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, Any] | None = None,
        executor: Executor | str | None = None,
        trigger: str = "manual",
        cause: Mapping[str, Any] | None = None,
        cancel: Any = None,
        progress: Any = None,
    ) -> RunResult:
        """Run the pipeline in a workspace (``ws``) or on ``ws.pipelines``; see Pipelines.run."""
        result: RunResult = _pipelines_of(target).run(
            self,
            params=params,
            inputs=inputs,
            executor=executor,
            trigger=trigger,
            cause=cause,
            cancel=cancel,
            progress=progress,
        )
        return result

    def resume(
        self,
        target: Any,
        /,
        run_id: str,
        *,
        executor: Executor | str | None = None,
        cancel: Any = None,
        progress: Any = None,
        force: bool = False,
    ) -> RunResult:
        """Continue a failed, cancelled or killed run of this pipeline from its unfinished steps."""
        resumed: RunResult = _pipelines_of(target).resume(
            run_id, pipeline=self, executor=executor, cancel=cancel, progress=progress, force=force
        )
        return resumed

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}: {' → '.join(self.order)}>"


def _pipelines_of(target: Any) -> Any:
    facade = getattr(target, "pipelines", target)
    if not callable(getattr(facade, "run", None)) or not callable(getattr(facade, "resume", None)):
        raise InvalidInputError(
            f"Run a pipeline in a workspace: pipeline.run(ws) with ws = keel.connect(), or "
            f"pipeline.run(ws.pipelines); got {type(target).__name__}."
        )
    return facade


# -- the project file -------------------------------------------------------------------------


def load_pipeline(reference: str, *, root: Path | None = None) -> Pipeline:
    """Import ``module:attribute`` (relative to ``root``, default the current folder).

    Raises:
        InvalidInputError: If the reference is malformed or names something that is not a
            Pipeline.
        NotFoundError: If the module or attribute does not exist.
    """
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidInputError(
            f"Pipeline reference {reference!r:.120} must look like 'package.module:attribute'."
        )
    folder = str((root or Path.cwd()).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise NotFoundError(
            f"Cannot import module '{module_name}' for pipeline {reference!r} ({exc}). Run "
            f"from the project folder or fix the reference in {PROJECT_FILE}.",
            reference=reference,
        ) from None
    value: Any = module
    for part in attribute.split("."):
        value = getattr(value, part, None)
    if value is None:
        raise NotFoundError(
            f"Module '{module_name}' has no attribute '{attribute}' (pipeline {reference!r}).",
            reference=reference,
        )
    if not isinstance(value, Pipeline):
        raise InvalidInputError(
            f"{reference!r} is a {type(value).__name__}, not a keel Pipeline. Point it at a "
            "Pipeline(...) object.",
            reference=reference,
        )
    return value


def read_project_file(root: Path | None = None) -> dict[str, Any]:
    """The parsed ``keel.yaml`` of ``root`` (default the current folder); {} when absent."""
    path = (root or Path.cwd()) / PROJECT_FILE
    if not path.exists():
        return {}
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - PyYAML is installed with the CLI
        from keel.errors import MissingDependencyError

        raise MissingDependencyError("pyyaml", extra="scheduler", purpose="keel.yaml") from exc
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML: {str(exc)[:300]}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} must hold a mapping at the top level.")
    return data


def project_pipelines(root: Path | None = None) -> dict[str, str]:
    """The ``pipelines:`` section of ``keel.yaml``: ``{name: "module:attribute"}``."""
    section = read_project_file(root).get("pipelines") or {}
    if not isinstance(section, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in section.items()
    ):
        raise ConfigurationError(
            f"The 'pipelines' section of {PROJECT_FILE} maps names to 'module:attribute' "
            "strings, e.g. pipelines: {train: 'flows.train:pipeline'}."
        )
    return dict(section)


def find_pipeline(name: str, root: Path | None = None) -> Pipeline:
    """The pipeline called ``name`` in ``keel.yaml`` (or a ``module:attribute`` reference)."""
    if ":" in name:
        return load_pipeline(name, root=root)
    known = project_pipelines(root)
    reference = known.get(name)
    if reference is None:
        raise NotFoundError(
            f"No pipeline '{name}' in {PROJECT_FILE} (known: {', '.join(sorted(known)) or 'none'}"
            "). Add it under 'pipelines:' as name: 'module:attribute', or pass module:attribute.",
            pipeline=name,
        )
    pipeline = load_pipeline(reference, root=root)
    if pipeline.name != name:
        raise ConfigurationError(
            f"{PROJECT_FILE} names '{name}' but {reference} is the pipeline "
            f"'{pipeline.name}'. Use the same name in both."
        )
    return pipeline
