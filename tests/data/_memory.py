"""Measuring the memory a piece of test code takes."""

from __future__ import annotations

import tracemalloc

__all__ = ["PeakMemory"]


class PeakMemory:
    """The most bytes Python held at once inside ``with`` (tracemalloc counts from its start,
    so what was built before is not counted; liblzma and zlib allocate through Python's
    allocator, so their buffers count too)."""

    bytes = 0

    def __enter__(self) -> PeakMemory:
        tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
