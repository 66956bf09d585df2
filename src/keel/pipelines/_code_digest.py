"""What a step's cache key knows about its code.

A step's code digest covers its own source, read when the step is defined (so editing the file
after the module was imported does not relabel the code that runs), its module, qualified name,
outputs and ``version``, and — computed again for every cache key — what the function reaches
beyond its own source:

- the values of its closure variables;
- the globals its code names: functions, classes and steps of the step's own top-level package
  by their code (bytecode, constants, defaults, closures and, recursively, what they reach);
  plain values (None, booleans, numbers, strings, bytes, enum members, compiled patterns, and
  lists, tuples, sets and dicts of them) and dataclass instances by value; modules and the
  functions and classes of other packages by name (declare those packages in ``env`` to key
  on their installed versions).

Other objects enter by their type only: pass them as an input or a parameter, or bump
``version=`` when they change. Nothing here depends on memory addresses, hash seeds or file
paths, so the same code gives the same digest in every process and on every machine running
the same Python version (bytecode differs between Python versions).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import inspect
import re
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["reach_digest", "static_digest"]

#: Values digested per step; past this budget a value enters by its type and length only.
_BUDGET = 1_000_000
_MAX_DEPTH = 64
#: Class attributes that move when unrelated lines of the file move.
_CLASS_SKIP = frozenset({"__firstlineno__", "__static_attributes__"})


def _frame(tag: str | bytes, *parts: bytes) -> bytes:
    name = tag.encode() if isinstance(tag, str) else tag
    out = [len(name).to_bytes(4, "big"), name, len(parts).to_bytes(4, "big")]
    for part in parts:
        out += [len(part).to_bytes(8, "big"), part]
    return b"".join(out)


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def _named(obj: Any) -> bytes:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return _text(f"{module}:{qualname}")


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


@functools.lru_cache(maxsize=4096)
def code_digest(code: types.CodeType) -> tuple[bytes, tuple[str, ...]]:
    """The digest of a code object (no file name or line numbers) and the names it uses.

    Keyed by the code object itself: equal code objects have equal digests.
    """
    digest = hashlib.sha256()
    for item in _code_objects(code):
        consts = [_const(c) for c in item.co_consts if not isinstance(c, types.CodeType)]
        digest.update(
            _frame(
                "code",
                _text(item.co_name),
                item.co_code,
                item.co_exceptiontable if hasattr(item, "co_exceptiontable") else b"",
                _text(repr(item.co_names)),
                _text(repr(item.co_varnames)),
                _text(repr(item.co_freevars)),
                _text(repr(item.co_cellvars)),
                _text(
                    f"{item.co_argcount},{item.co_posonlyargcount},"
                    f"{item.co_kwonlyargcount},{item.co_flags}"
                ),
                *consts,
            )
        )
    names = sorted({name for item in _code_objects(code) for name in item.co_names})
    return digest.digest(), tuple(names)


def _const(value: Any) -> bytes:
    """A code constant: numbers, strings, bytes, None, Ellipsis, tuples and frozensets."""
    plain = _plain(value, [_BUDGET], 0)
    return plain if plain is not None else _frame("const", _text(type(value).__qualname__))


def _plain(value: Any, budget: list[int], depth: int) -> bytes | None:
    """Canonical bytes of a plain value, or None when it holds anything else.

    Subclasses of the plain types (a NamedTuple, an OrderedDict) count, tagged with their type.
    """
    budget[0] -= 1
    if budget[0] < 0 or depth > _MAX_DEPTH:
        size = len(value) if isinstance(value, list | tuple | dict | set | frozenset) else 0
        return _frame("big", _named(type(value)), _text(str(size)))
    kind = type(value)
    if value is None or value is Ellipsis:
        return _frame(repr(value))
    if isinstance(value, enum.Enum):
        inner = _plain(value.value, budget, depth + 1)
        return None if inner is None else _frame("enum", _named(kind), _text(value.name), inner)
    if isinstance(value, re.Pattern):
        return _frame("re", _text(repr(value.pattern)), _text(str(value.flags)))
    tag = _named(kind)
    if isinstance(value, bool):
        return _frame(tag, b"1" if value else b"0")
    if isinstance(value, int):
        return _frame(tag, _text(format(value, "x")))
    if isinstance(value, float):
        return _frame(tag, _text(value.hex()))
    if isinstance(value, complex):
        return _frame(tag, _text(value.real.hex()), _text(value.imag.hex()))
    if isinstance(value, str):
        return _frame(tag, _text(value))
    if isinstance(value, bytes | bytearray):
        return _frame(tag, bytes(value))
    if isinstance(value, list | tuple):
        items = _all_plain(value, budget, depth + 1)
        return None if items is None else _frame(tag, *items)
    if isinstance(value, set | frozenset):
        members = _all_plain(value, budget, depth + 1)
        return None if members is None else _frame(tag, *sorted(members))
    if isinstance(value, dict):
        pairs = []
        for key, item in value.items():
            k, v = _plain(key, budget, depth + 1), _plain(item, budget, depth + 1)
            if k is None or v is None:
                return None
            pairs.append(_frame("pair", k, v))
        return _frame(tag, *sorted(pairs))
    return None


def _all_plain(values: Any, budget: list[int], depth: int) -> list[bytes] | None:
    out = []
    for item in values:
        plain = _plain(item, budget, depth)
        if plain is None:
            return None
        out.append(plain)
    return out


class _Reach:
    """Walks what a function reaches, writing a canonical description into one hash."""

    def __init__(self, package: str) -> None:
        self._package = package
        self._hash = hashlib.sha256()
        self._seen: dict[int, int] = {}
        self._alive: list[Any] = []  # keeps walked objects alive, so their ids stay unique
        self._budget = [_BUDGET]

    def digest(self) -> str:
        return self._hash.hexdigest()

    def write(self, tag: str, *parts: bytes) -> None:
        self._hash.update(_frame(tag, *parts))

    def _ours(self, obj: Any) -> bool:
        module = getattr(obj, "__module__", None)
        if not isinstance(module, str) or not self._package:
            return False
        return module == self._package or module.startswith(self._package + ".")

    def _first_visit(self, obj: Any) -> bool:
        key = id(obj)
        if key in self._seen:
            self.write("seen", _text(str(self._seen[key])))
            return False
        self._seen[key] = len(self._seen)
        self._alive.append(obj)
        return True

    def value(self, obj: Any, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            self.write("deep", _text(type(obj).__qualname__))
            return
        plain = _plain(obj, self._budget, depth)
        if plain is not None:
            self.write("plain", plain)
            return
        if isinstance(obj, types.FunctionType):
            self.function(obj, depth)
        elif isinstance(obj, type):
            self._class(obj, depth)
        elif isinstance(obj, types.ModuleType):
            self.write("module", _text(obj.__name__))
        elif isinstance(obj, types.MethodType):
            self.write("method", _named(type(obj.__self__)))
            self.value(obj.__func__, depth + 1)
        elif isinstance(obj, functools.partial):
            self.write("partial")
            self.value(obj.func, depth + 1)
            self.value(obj.args, depth + 1)
            self.value(obj.keywords, depth + 1)
        elif isinstance(obj, staticmethod | classmethod):
            self.write(type(obj).__name__)
            self.value(obj.__func__, depth + 1)
        elif isinstance(obj, property):
            self.write("property")
            self.value(obj.fget, depth + 1)
            self.value(obj.fset, depth + 1)
            self.value(obj.fdel, depth + 1)
        elif isinstance(obj, list | tuple | dict):
            self._container(obj, depth)
        elif isinstance(obj, types.BuiltinFunctionType | types.BuiltinMethodType):
            self.write("builtin", _named(obj))
        elif dataclasses.is_dataclass(obj):  # an instance: classes were handled above
            self._dataclass(obj, depth)
        else:
            self._object(obj, depth)

    def _dataclass(self, obj: Any, depth: int) -> None:
        if not self._first_visit(obj):
            return
        self.write("dataclass", _named(type(obj)))
        for field in dataclasses.fields(obj):
            self.write("field", _text(field.name))
            self.value(getattr(obj, field.name, None), depth + 1)

    def _object(self, obj: Any, depth: int) -> None:
        """Any other object: its type, the name of a callable, what a Step or wrapper wraps."""
        label = ""
        if callable(obj):  # e.g. a NumPy ufunc: np.sqrt and np.exp share a type
            try:
                label = str(getattr(obj, "__qualname__", None) or getattr(obj, "__name__", ""))
            except Exception:  # an attribute that runs code and fails: the type is enough
                label = ""
        self.write("object", _named(type(obj)), _text(label))
        try:
            space = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            return
        wrapped = space.get("__wrapped__") if isinstance(space, dict) else None
        if wrapped is not None and self._ours(obj):  # a Step: what it wraps
            self.value(wrapped, depth + 1)

    def _container(self, obj: Any, depth: int) -> None:
        if not self._first_visit(obj):
            return
        if isinstance(obj, dict):
            pairs = []
            for key, item in obj.items():
                plain = _plain(key, self._budget, depth + 1)
                pairs.append((plain if plain is not None else _named(type(key)), item))
            self.write("mapping", _named(type(obj)), _text(str(len(pairs))))
            for key_bytes, item in sorted(pairs, key=lambda pair: pair[0]):
                self.write("key", key_bytes)
                self.value(item, depth + 1)
            return
        self.write("sequence", _named(type(obj)), _text(str(len(obj))))
        for item in obj:
            self.value(item, depth + 1)

    def function(self, fn: types.FunctionType, depth: int, *, root: bool = False) -> None:
        if not root and not self._ours(fn):
            self.write("ref", _named(fn))
            return
        if not self._first_visit(fn):
            return
        code, names = code_digest(fn.__code__)
        if not root:  # the step's own code is in its static digest (its source)
            self.write("fn", _named(fn), code)
            self.value(fn.__defaults__, depth + 1)
            self.value(fn.__kwdefaults__, depth + 1)
        for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            self.write("free", _text(var))
            try:
                contents = cell.cell_contents
            except ValueError:  # an empty cell (assigned later)
                self.write("empty")
                continue
            self.value(contents, depth + 1)
        scope = fn.__globals__
        modules = []
        for name in names:
            if name in scope:
                found = scope[name]
                self.write("global", _text(name))
                self.value(found, depth + 1)
                if isinstance(found, types.ModuleType) and self._ours_module(found):
                    modules.append(found)
        for module in modules:  # helpers reached as module.attribute
            space = vars(module)
            for name in names:
                if name in space:
                    self.write("attr", _text(module.__name__), _text(name))
                    self.value(space[name], depth + 1)

    def _ours_module(self, module: types.ModuleType) -> bool:
        name = module.__name__
        return bool(self._package) and (
            name == self._package or name.startswith(self._package + ".")
        )

    def _class(self, cls: type, depth: int) -> None:
        if not self._ours(cls):
            self.write("ref", _named(cls))
            return
        if not self._first_visit(cls):
            return
        self.write("class", _named(cls))
        for base in cls.__bases__:
            self.value(base, depth + 1)
        for name, attr in sorted(vars(cls).items()):
            if name not in _CLASS_SKIP:
                self.write("attr", _text(name))
                self.value(attr, depth + 1)


def read_source(fn: Callable[..., Any]) -> str | None:
    """The function's source as written (None when there is none, e.g. made by exec)."""
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return None


def static_digest(
    fn: Any,
    *,
    module: str,
    qualname: str,
    outputs: tuple[str, ...],
    version: str | None,
) -> bytes:
    """The part of the code digest fixed when the step is defined (source, names, version)."""
    source = read_source(fn)
    body = _text(source) if source is not None else code_digest(fn.__code__)[0]
    return _frame(
        "step",
        _text(module),
        _text(qualname),
        b"source" if source is not None else b"bytecode",
        body,
        _text(repr(outputs)),
        _text(version or ""),
    )


def reach_digest(fn: Any, *, module: str) -> str:
    """The digest of what ``fn`` reaches beyond its source (closure and globals it names)."""
    walker = _Reach(module.split(".", 1)[0])
    walker.function(fn, 0, root=True)
    return walker.digest()
