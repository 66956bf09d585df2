"""The garbage collector's settings for a ``keel`` process.

A command's start-up creates ~150,000 long-lived objects (modules, classes, SQLAlchemy tables
and mappers). With Python's default first-generation threshold (700) the collector ran ~250
times during `keel plan` and twice walked every object: 100-150 ms, 10-15% of the command.
:func:`start` raises the threshold; the count is of container objects allocated and not yet
freed, so a process whose objects are freed by reference counting still collects its cycles.
A command that then serves for long (the API server, the scheduler, the model server) calls
:func:`steady_state` once it is set up.

At exit the objects left are frozen (:func:`gc.freeze`) after the exit hooks have run: the
interpreter's last collections then skip them instead of tearing down every module's classes,
functions and tables one by one only to free memory the operating system takes back anyway
(100-150 ms after `keel plan`). Exit hooks and ``weakref.finalize`` callbacks still run; as
Python documents, ``__del__`` of objects still alive at exit may not.
"""

from __future__ import annotations

import atexit
import gc

__all__ = ["GC_THRESHOLD", "start", "steady_state"]

#: The first-generation threshold while a command starts (Python's default is 700).
GC_THRESHOLD = 100_000

_before: tuple[int, int, int] | None = None  # the process's thresholds before the first start


def start() -> None:
    """Raise the first-generation threshold to :data:`GC_THRESHOLD`; freeze at exit."""
    global _before
    current = gc.get_threshold()
    if _before is None:
        _before = current
        atexit.register(gc.freeze)  # runs after the exit hooks registered later (LIFO)
    gc.set_threshold(max(current[0], GC_THRESHOLD), *current[1:])


def steady_state() -> None:
    """Before serving for long: collect the start-up's garbage, freeze what is left (it lives
    as long as the process, so later collections need not walk it), and give the collector
    back the thresholds it had before :func:`start`."""
    gc.collect()
    gc.freeze()
    if _before is not None:
        gc.set_threshold(*_before)
