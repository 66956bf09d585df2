"""Search spaces for hyperparameter search, declared in code or in ``keel.yaml``.

In ``keel.yaml`` a search is named under ``hpo:``::

    hpo:
      bc-gbm:
        metric: valid.auc          # what to optimise (a metric of the trials)
        direction: maximize        # optional; by default from the metric's name
        n_trials: 50
        pruning: true
        space:
          n_estimators: {type: int, low: 20, high: 200, step: 10}
          learning_rate: {type: float, low: 0.01, high: 0.3, log: true}
          max_depth: {type: categorical, choices: [2, 3, 4]}

In code the same mapping goes to :meth:`SearchSpace.from_mapping`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from keel.errors import InvalidInputError, MissingDependencyError, NotFoundError
from keel.training._metrics import greater_is_better

__all__ = ["Param", "SearchConfig", "SearchSpace", "load_search_config"]

ParamType = Literal["int", "float", "categorical"]
_KEYS: dict[str, frozenset[str]] = {
    "int": frozenset({"type", "low", "high", "step", "log"}),
    "float": frozenset({"type", "low", "high", "step", "log"}),
    "categorical": frozenset({"type", "choices"}),
}


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: an int or float range, or a list of choices."""

    name: str
    type: ParamType
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out

    def distribution(self) -> Any:
        """The Optuna distribution of this parameter."""
        from optuna import distributions

        if self.type == "categorical":
            return distributions.CategoricalDistribution(list(self.choices))
        assert self.low is not None
        assert self.high is not None
        if self.type == "int":
            return distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)


def _param(name: str, spec: Any) -> Param:
    where = f"search space parameter '{name}'"
    if not isinstance(spec, Mapping):
        raise InvalidInputError(
            f"The {where} must be a mapping such as {{type: float, low: 0.01, high: 0.3}}; "
            f"got {spec!r:.80}.",
            param=name,
        )
    kind = spec.get("type")
    if kind not in _KEYS:
        raise InvalidInputError(
            f"The {where} has type {kind!r}; use int, float or categorical.", param=name
        )
    unknown = sorted(set(spec) - _KEYS[kind])
    if unknown:
        raise InvalidInputError(
            f"The {where} ({kind}) does not take {', '.join(unknown)}; it takes "
            f"{', '.join(sorted(_KEYS[kind]))}.",
            param=name,
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise InvalidInputError(f"The {where} needs a non-empty list of choices.", param=name)
        return Param(name, "categorical", choices=tuple(choices))
    low, high = spec.get("low"), spec.get("high")
    numbers = (int,) if kind == "int" else (int, float)
    if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in (low, high)):
        raise InvalidInputError(
            f"The {where} needs numeric low and high ({kind}); got low={low!r}, high={high!r}.",
            param=name,
        )
    assert isinstance(low, int | float)
    assert isinstance(high, int | float)
    if low > high:
        raise InvalidInputError(f"The {where} has low {low} above high {high}.", param=name)
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise InvalidInputError(f"The {where} is log-scaled, so low must be > 0.", param=name)
    step = spec.get("step")
    if step is not None and (log or not isinstance(step, numbers) or step <= 0):
        raise InvalidInputError(
            f"The {where} has step {step!r}: use a positive number, and no step with log.",
            param=name,
        )
    return Param(name, kind, float(low), float(high), None if step is None else float(step), log)


@dataclass(frozen=True)
class SearchSpace:
    """The hyperparameters a search explores (validated when built)."""

    params: tuple[Param, ...]

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> SearchSpace:
        """From ``{name: {type: ..., ...}}`` (the ``space:`` of keel.yaml)."""
        if not isinstance(mapping, Mapping) or not mapping:
            raise InvalidInputError("A search space needs at least one parameter.")
        return cls(tuple(_param(str(name), spec) for name, spec in mapping.items()))

    def distributions(self) -> dict[str, Any]:
        return {p.name: p.distribution() for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        return {p.name: p.to_dict() for p in self.params}


@dataclass(frozen=True)
class SearchConfig:
    """A named search from keel.yaml: its space, metric, direction, trials and pruning."""

    name: str
    space: SearchSpace
    metric: str
    direction: Literal["maximize", "minimize"]
    n_trials: int
    pruning: bool


def load_search_config(name: str, path: str | Path = "keel.yaml") -> SearchConfig:
    """Read the search ``name`` from the ``hpo:`` section of a project file."""
    file = Path(path)
    if not file.is_file():
        raise NotFoundError(f"Project file {file} does not exist.", path=str(file))
    try:
        import yaml
    except ImportError as exc:
        raise MissingDependencyError("pyyaml", extra="hpo", purpose="Reading keel.yaml") from exc
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{file} is not valid YAML: {exc}", path=str(file)) from exc
    searches = document.get("hpo") if isinstance(document, dict) else None
    if not isinstance(searches, dict) or name not in searches:
        known = ", ".join(sorted(searches)) if isinstance(searches, dict) else "none"
        raise NotFoundError(
            f"{file} declares no search '{name}' under 'hpo:' (searches: {known}).",
            path=str(file),
            search=name,
        )
    entry = searches[name]
    if not isinstance(entry, dict) or "space" not in entry:
        raise InvalidInputError(f"Search '{name}' in {file} needs a 'space:' mapping.")
    metric = str(entry.get("metric", "valid.auc"))
    default = "maximize" if greater_is_better(metric) else "minimize"
    direction = entry.get("direction", default)
    if direction not in ("maximize", "minimize"):
        raise InvalidInputError(
            f"Search '{name}' in {file}: direction must be maximize or minimize, not {direction!r}."
        )
    n_trials = entry.get("n_trials", 20)
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise InvalidInputError(f"Search '{name}' in {file}: n_trials must be a positive int.")
    return SearchConfig(
        name=name,
        space=SearchSpace.from_mapping(entry["space"]),
        metric=metric,
        direction=direction,
        n_trials=n_trials,
        pruning=bool(entry.get("pruning", True)),
    )
