"""What the machine a benchmark runs on can do, printed beside its figures.

The VMs these benchmarks run on differ (SHA-256 in hardware or not, the speed at which the
kernel hands out and fills fresh memory) and change speed for minutes at a time, so a figure
means little without them. Imported by the benchmark scripts (run as
``python bench/<script>.py``, so this folder is on the path).
"""

from __future__ import annotations

import hashlib
import os
import platform
import time

__all__ = ["describe"]


def _sha256_mb_s(size: int = 64 << 20, repeats: int = 3) -> float:
    data = os.urandom(1 << 20) * (size >> 20)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        hashlib.sha256(data).digest()
        times.append(time.perf_counter() - started)
    return size / 1e6 / min(times)


def _fresh_memory_mb_s(size: int = 256 << 20, repeats: int = 3) -> float:
    """Filling newly allocated memory: the kernel zeroes every fresh page first (page cache
    writes and large buffers pay the same on this machine)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        buffer = bytearray(size)  # calloc: fresh, zeroed pages, touched below
        buffer[::4096] = b"\x01" * (size // 4096)
        times.append(time.perf_counter() - started)
        del buffer
    return size / 1e6 / min(times)


def _cpu() -> str:
    name, flags = platform.processor() or "?", ""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name") and name in ("", "?", platform.machine()):
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, SHA extensions {'yes' if ' sha_ni' in flags else 'no'}"


def describe() -> str:
    """One line: the CPU, a SHA-256 and a fresh-memory probe, and the load average."""
    return (
        f"machine: {_cpu()}; SHA-256 {_sha256_mb_s():,.0f} MB/s (one thread); fresh memory "
        f"{_fresh_memory_mb_s():,.0f} MB/s; load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    print(describe())
