"""Names a package loads on first use (PEP 562), so a command imports only the modules it calls.

A package lists where each of its lazy names lives and binds the two module hooks::

    __getattr__, __dir__ = lazy_names(__name__, __all__, {"Pipeline": "keel.pipelines._pipeline"})

The first ``package.Name`` imports the module, caches the value in the package's namespace (so
later look-ups are plain attribute reads) and returns it; an unknown name is an
``AttributeError``, as for any module.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, public: Sequence[str], where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, loading each name of ``where`` on use.

    ``where`` maps a name to the module that defines it; ``public`` is the package's
    ``__all__``, which ``dir()`` lists. Every lazy name must be public.
    """
    unlisted = sorted(set(where) - set(public))
    if unlisted:
        raise ValueError(f"{package}: lazy names missing from __all__: {', '.join(unlisted)}")
    listing = sorted(public)

    def module_getattr(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def module_dir() -> list[str]:
        return list(listing)

    return module_getattr, module_dir
