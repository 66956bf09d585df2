"""Steps: typed Python functions wired by the names of their inputs and outputs.

A function argument without a default is an *input*: the output of another step with that name,
or an input of the pipeline. An argument with a default is a *parameter*: a JSON value that a
run may override, checked against the annotation. Errors in a definition are raised when it is
made, naming the user's file and line.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, overload

from keel.errors import InvalidInputError
from keel.pipelines._code_digest import reach_digest, static_digest
from keel.types import validate_name

__all__ = ["Param", "Step", "check_param", "definition_error", "split_outputs", "step"]

_MAX_RETRIES = 20


def definition_error(message: str, *, file: str | None, line: int | None) -> InvalidInputError:
    """An InvalidInputError for a bad definition, pointing at ``file:line``."""
    where = f" ({file}:{line})" if file else ""
    return InvalidInputError(f"{message}{where}", file=file, line=line)


@dataclass(frozen=True, slots=True)
class Param:
    """A step parameter: its name, annotation (``Any`` when absent) and default."""

    name: str
    annotation: Any
    default: Any


def _type_name(annotation: Any) -> str:
    if annotation is Any:
        return "any value"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _matches(value: Any, annotation: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits ``annotation`` and the value to use (ints widen to float)."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True, value
    if annotation is None or annotation is type(None):
        return value is None, value
    origin = get_origin(annotation)
    if origin is Literal:
        return value in get_args(annotation), value
    if origin in (typing.Union, types.UnionType):
        for option in get_args(annotation):
            ok, converted = _matches(value, option)
            if ok:
                return True, converted
        return False, value
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, list | tuple):
            return False, value
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        if not args:
            return True, list(value)
        out = []
        for index, item in enumerate(value):
            arg = (
                args[index] if origin is tuple and len(args) > 1 and index < len(args) else args[0]
            )
            ok, converted = _matches(item, arg)
            if not ok:
                return False, value
            out.append(converted)
        return True, out
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return False, value
        pair = get_args(annotation)
        if len(pair) == 2:
            out_map = {}
            for key, item in value.items():
                ok, converted = _matches(item, pair[1])
                if not ok:
                    return False, value
                out_map[key] = converted
            return True, out_map
        return True, value
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if isinstance(annotation, type):
        return isinstance(value, annotation), value
    return True, value


def _json_form(value: Any, depth: int = 0) -> Any:
    """``value`` as the JSON value it is recorded as: what the step sees, fresh or resumed.

    Tuples become lists, dicts get their keys sorted (the cache key does not see a dict's
    order, so the step must not either), subclasses of numbers and strings their base type.

    Raises:
        TypeError: For a value that is not JSON (a non-string dict key, a set, an object).
        ValueError: For NaN or infinity, or nesting deeper than 100 levels.
    """
    if depth > 100:
        raise ValueError("nested deeper than 100 levels")
    if value is None or type(value) in (bool, int, float, str):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("NaN and infinity are not JSON")
        return value
    if isinstance(value, int):  # an IntEnum, a NumPy-like int subclass (bool is final)
        return int(value)
    if isinstance(value, float):
        return _json_form(float(value), depth)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_form(item, depth + 1) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(
                    f"the dict key {key!r:.40} is a {type(key).__name__}; JSON objects have "
                    "string keys"
                )
        return {str(key): _json_form(value[key], depth + 1) for key in sorted(value)}
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


def check_param(value: Any, param: Param, *, step_name: str) -> Any:
    """Return ``value`` checked against ``param``, in its JSON form (ints widen to float).

    The result is what the step is called with and what the run records, so a fresh run and
    a resumed one (whose parameters come back from the store) see the same value.

    Raises:
        InvalidInputError: If the value does not fit the annotation or is not JSON.
    """
    ok, converted = _matches(value, param.annotation)
    if not ok:
        raise InvalidInputError(
            f"Parameter '{param.name}' of step '{step_name}' must be "
            f"{_type_name(param.annotation)}, got {value!r:.80} ({type(value).__name__}). "
            "Pass a value of that type.",
            step=step_name,
            param=param.name,
        )
    try:
        return _json_form(converted)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(
            f"Parameter '{param.name}' of step '{step_name}' is {value!r:.80}, which is not "
            f"a JSON value ({exc}): use numbers, strings, booleans, None, lists, and dicts "
            "with string keys. Parameters are recorded with the run and part of the cache key.",
            step=step_name,
            param=param.name,
        ) from None


class Step:
    """A pipeline step: a function with named inputs, parameters and outputs.

    Calling a step calls the function, so steps stay plain functions in tests.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        outputs: str | tuple[str, ...] | list[str] | None,
        retries: int,
        backoff: float,
        timeout: float | None,
        cache: bool,
        env: tuple[str, ...] | list[str],
        version: str | None,
    ) -> None:
        code = getattr(fn, "__code__", None)
        self.file: str | None = code.co_filename if code is not None else None
        self.line: int | None = code.co_firstlineno if code is not None else None
        if not callable(fn) or code is None:
            raise definition_error(
                f"@step decorates plain Python functions, not {type(fn).__name__}.",
                file=self.file,
                line=self.line,
            )
        self.fn = fn
        self.name = self._name(name or fn.__name__)
        self.module: str = getattr(fn, "__module__", "") or ""
        self.qualname: str = getattr(fn, "__qualname__", fn.__name__)
        self.outputs = self._outputs(outputs)
        self.retries = self._count(retries, "retries", 0, _MAX_RETRIES)
        if not isinstance(backoff, int | float) or isinstance(backoff, bool) or backoff < 0:
            raise self._error(f"backoff is {backoff!r}; use seconds, 0 or more.")
        self.backoff = float(backoff)
        if timeout is not None and (
            not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0
        ):
            raise self._error(f"timeout is {timeout!r}; use seconds greater than 0, or None.")
        self.timeout = None if timeout is None else float(timeout)
        self.cache = bool(cache)
        self.env = tuple(sorted(set(env)))
        self.version = version
        self.inputs, self.params = self._signature()
        # Read the source now, while it is the code being imported: a file edited later must
        # not relabel the code that runs (and caches) in this process.
        self._static = static_digest(
            fn, module=self.module, qualname=self.qualname, outputs=self.outputs, version=version
        )
        functools.update_wrapper(self, fn)

    # -- construction helpers ------------------------------------------------------------

    def _error(self, message: str) -> InvalidInputError:
        return definition_error(
            f"Step '{getattr(self, 'name', '?')}': {message}", file=self.file, line=self.line
        )

    def _name(self, value: str) -> str:
        try:
            return validate_name(value, what="step name")
        except InvalidInputError as exc:
            raise definition_error(str(exc), file=self.file, line=self.line) from None

    def _count(self, value: Any, what: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._error(f"{what} is {value!r}; use a whole number from {low} to {high}.")
        return value

    def _outputs(self, outputs: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
        names = (
            (self.name,) if outputs is None else (outputs,) if isinstance(outputs, str) else outputs
        )
        if not isinstance(names, tuple | list):
            raise self._error("outputs is a name or a tuple of names.")
        clean = []
        for value in names:
            try:
                clean.append(validate_name(value, what="output name"))
            except InvalidInputError as exc:
                raise self._error(str(exc)) from None
        if len(set(clean)) != len(clean):
            raise self._error(f"outputs {clean} name the same output twice.")
        return tuple(clean)

    def _signature(self) -> tuple[tuple[str, ...], dict[str, Param]]:
        signature = inspect.signature(self.fn)
        try:
            hints = typing.get_type_hints(self.fn)
        except Exception:  # unresolvable forward references: check nothing
            hints = {}
        inputs: list[str] = []
        params: dict[str, Param] = {}
        for arg in signature.parameters.values():
            if arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD):
                raise self._error(
                    f"*{arg.name} / **{arg.name} cannot be wired; name every input and parameter."
                )
            if arg.default is inspect.Parameter.empty:
                inputs.append(arg.name)
                continue
            param = Param(arg.name, hints.get(arg.name, Any), arg.default)
            try:  # the default as a run sees it: `rate: float = 1` runs with 1.0
                default = check_param(arg.default, param, step_name=self.name)
            except InvalidInputError as exc:
                raise self._error(f"the default of {exc}") from None
            params[arg.name] = Param(arg.name, param.annotation, default)
        return tuple(inputs), params

    # -- identity ------------------------------------------------------------------------

    @property
    def code_digest(self) -> str:
        """SHA-256 of the step's code: its source (or bytecode), module, qualified name,
        outputs and declared version (fixed when it is defined), and what it reaches beyond
        its source — closure values and the helpers, classes and constants it names (read
        now: see keel.pipelines._code_digest)."""
        digest = hashlib.sha256(self._static)
        digest.update(reach_digest(self.fn, module=self.module).encode())
        return "sha256:" + digest.hexdigest()

    def environment(self) -> dict[str, str | None]:
        """The installed versions of the packages this step declares (None when missing)."""
        return {package: _installed_version(package) for package in self.env}

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    # -- behaviour -----------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # By reference when importable (the process pool and Ray import the user's module);
        # otherwise by value of the function (works with cloudpickle, e.g. on Ray).
        target = _importable(self.module, self.qualname)
        if target is self:
            return (_load_step, (self.module, self.qualname))
        return (
            _rebuild_step,
            (
                self.fn,
                self.name,
                self.outputs,
                self.retries,
                self.backoff,
                self.timeout,
                self.cache,
                self.env,
                self.version,
            ),
        )

    def __repr__(self) -> str:
        return f"<step {self.name} {self.inputs} -> {self.outputs} at {self.where}>"


@functools.lru_cache(maxsize=256)
def _installed_version(package: str) -> str | None:
    """The installed version of ``package`` (read once per process; the lookup scans)."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _importable(module: str, qualname: str) -> Any:
    import sys

    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        if target is None or part == "<locals>":
            return None
        target = getattr(target, part, None)
    return target


def _load_step(module: str, qualname: str) -> Step:
    import importlib

    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not isinstance(target, Step):
        raise InvalidInputError(f"{module}:{qualname} is no longer a step.")
    return target


def _rebuild_step(
    fn: Callable[..., Any],
    name: str,
    outputs: tuple[str, ...],
    retries: int,
    backoff: float,
    timeout: float | None,
    cache: bool,
    env: tuple[str, ...],
    version: str | None,
) -> Step:
    return Step(
        fn,
        name=name,
        outputs=outputs,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
        cache=cache,
        env=env,
        version=version,
    )


@overload
def step(fn: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    outputs: str | tuple[str, ...] | list[str] | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    env: tuple[str, ...] | list[str] = (),
    version: str | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    outputs: str | tuple[str, ...] | list[str] | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
    cache: bool = True,
    env: tuple[str, ...] | list[str] = (),
    version: str | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Mark a function as a pipeline step.

    Args:
        fn: The function (when used as ``@step`` without parentheses).
        name: The step's name (default: the function's name).
        outputs: The output name(s); default one output named like the step. With several,
            the function returns a tuple in this order or a dict with these keys; with
            ``()`` it returns None.
        retries: Extra attempts after a failure.
        backoff: Seconds before the first retry; doubled for each further retry.
        timeout: Seconds an attempt may run before it counts as failed.
        cache: Reuse the outputs of an earlier run with the same cache key.
        env: Packages whose installed versions are part of the cache key.
        version: A label to change the cache key by hand, when something its code digest
            cannot see changed (code in another package, an object that is not a plain value).

    Example:
        >>> @step
        ... def features(raw: list[int], *, scale: float = 2.0) -> list[float]:
        ...     return [x * scale for x in raw]
    """

    def wrap(function: Callable[..., Any]) -> Step:
        return Step(
            function,
            name=name,
            outputs=outputs,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            cache=cache,
            env=env,
            version=version,
        )

    if fn is not None:
        return wrap(fn)
    return wrap


def split_outputs(step_: Step, result: Any) -> dict[str, Any]:
    """The step's return value as ``{output name: value}``, checked against its outputs."""
    names = step_.outputs
    if not names:
        if result is not None:
            raise InvalidInputError(
                f"Step '{step_.name}' declares no outputs but returned "
                f"{type(result).__name__}. Return None, or declare outputs=... ({step_.where})."
            )
        return {}
    if len(names) == 1:
        return {names[0]: result}
    if isinstance(result, Mapping):
        if set(result) != set(names):
            raise InvalidInputError(
                f"Step '{step_.name}' returned the keys {sorted(map(str, result))} but declares "
                f"the outputs {list(names)}. Return exactly those ({step_.where})."
            )
        return {name: result[name] for name in names}
    if isinstance(result, tuple) and len(result) == len(names):
        return dict(zip(names, result, strict=True))
    raise InvalidInputError(
        f"Step '{step_.name}' declares {len(names)} outputs {list(names)} but returned "
        f"{type(result).__name__}. Return a tuple of {len(names)} values or a dict with "
        f"those keys ({step_.where})."
    )
