"""Who runs an erasure: the claiming process, and whether it still exists.

A running erasure is claimed by the process running it (a lease in the database, renewed as
it advances). A process killed outright (SIGKILL, the OOM killer, a power cut of a container)
cannot give its claim up. Its identity is kept with the erasure's plan: host name, boot id,
PID namespace, process id and the process's start time. A retry on the same machine (same
host, boot and PID namespace) sees that the claiming process is gone (no process with that
id, a zombie, or one started at another time: the id was reused) and takes the erasure over
at once instead of waiting for the lease to run out. From another machine, nothing can be
known about the process: only the lease's end frees the erasure.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from keel import clock
from keel.store._schema_compliance import ErasureRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from keel.governance import Context

__all__ = ["LEASE", "describe", "is_gone", "runner", "take_over"]

#: How long a running erasure stays claimed without news from the process running it.
LEASE = timedelta(minutes=30)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _machine() -> str | None:
    """This machine's boot and PID namespace (None where /proc does not tell them)."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return None if not boot else f"{boot}/{namespace}"


def _started(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks after boot); None when there is no
    such process, or it has ended and waits to be reaped (a zombie)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None or ")" not in stat:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is the state (3rd field of the file), fields[19] the start time (22nd)
    if len(fields) < 20 or fields[0] in ("Z", "X", "x"):
        return None
    return fields[19]


def runner(owner: str) -> dict[str, Any]:
    """The identity of this process as the runner of an erasure claimed by ``owner``."""
    pid = os.getpid()
    return {
        "owner": owner,
        "host": socket.gethostname()[:200],
        "machine": _machine(),
        "pid": pid,
        "started": _started(pid),
    }


def is_gone(holder: Mapping[str, Any]) -> bool:
    """Whether the process described by ``holder`` (a :func:`runner`) has ended. Known only
    on its own machine; anywhere else (or without /proc) it is taken as alive."""
    machine = _machine()
    pid = holder.get("pid")
    if (
        machine is None
        or holder.get("machine") != machine
        or holder.get("host") != socket.gethostname()[:200]
        or not isinstance(pid, int)
        or pid <= 0
        or holder.get("started") is None
    ):
        return False
    if pid == os.getpid():  # this very process (another thread runs it): alive
        return False
    return bool(_started(pid) != holder["started"])


def describe(holder: Mapping[str, Any] | None) -> str:
    """``process 123 on host h`` (or ``another process`` when unknown)."""
    if not holder or not isinstance(holder.get("pid"), int):
        return "another process"
    return f"process {holder['pid']} on host {str(holder.get('host', '?'))[:80]}"


def take_over(session: Session, ctx: Context, erasure_id: str, owner: str) -> bool:
    """Claim the running erasure for ``owner`` if the process holding it is gone (see
    :func:`is_gone`); whether it is ``owner``'s now."""
    row = session.get(ErasureRow, erasure_id)
    if row is None or row.project_id != ctx.project_id or row.state != "running":
        return False
    holder = (row.plan or {}).get("runner")
    if not isinstance(holder, dict) or holder.get("owner") != row.claimed_by:
        return False
    if row.claimed_by is None or not is_gone(holder):
        return False
    result = session.execute(
        update(ErasureRow)
        .where(
            ErasureRow.id == erasure_id,
            ErasureRow.state == "running",
            ErasureRow.claimed_by == row.claimed_by,  # unless another retry was first
        )
        .values(claimed_by=owner, claimed_until=clock.now() + LEASE)
        .execution_options(synchronize_session=False)
    )
    session.expire(row)
    return bool(getattr(result, "rowcount", 0))
