"""Pure DAG logic: topological order, cycles, and descendants (no I/O, no clock, no globals)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["descendants", "find_cycle", "topological_order"]


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle of ``edges`` (node → the nodes it depends on) as ``[a, b, …, a]``, or None."""
    graph = {node: sorted(set(deps)) for node, deps in edges.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for root in sorted(graph):
        if state.get(root):
            continue
        path: list[str] = [root]
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            node, index = stack[-1]
            deps = graph.get(node, [])
            if index < len(deps):
                stack[-1] = (node, index + 1)
                nxt = deps[index]
                mark = state.get(nxt)
                if mark == 1:
                    return [*path[path.index(nxt) :], nxt]
                if mark is None and nxt in graph:
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return None


def topological_order(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Every node after all the nodes it depends on; ties broken by name (deterministic).

    Raises:
        ValueError: If the graph has a cycle (use :func:`find_cycle` to name it).
    """
    deps = {node: set(d) & set(edges) for node, d in edges.items()}
    users: dict[str, set[str]] = {node: set() for node in deps}
    for node, needed in deps.items():
        for dep in needed:
            users[dep].add(node)
    waiting = {node: len(needed) for node, needed in deps.items()}
    ready = sorted(node for node, count in waiting.items() if count == 0)
    order: list[str] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        released = []
        for user in users[node]:
            waiting[user] -= 1
            if waiting[user] == 0:
                released.append(user)
        if released:
            ready = sorted([*ready, *released])
    if len(order) != len(deps):
        raise ValueError("the graph has a cycle")
    return order


def descendants(edges: Mapping[str, Iterable[str]], roots: Iterable[str]) -> set[str]:
    """The nodes that depend, directly or not, on any of ``roots`` (roots excluded)."""
    users: dict[str, set[str]] = {}
    for node, deps in edges.items():
        for dep in deps:
            users.setdefault(dep, set()).add(node)
    found: set[str] = set()
    frontier = list(roots)
    while frontier:
        node = frontier.pop()
        for user in users.get(node, ()):
            if user not in found:
                found.add(user)
                frontier.append(user)
    return found - set(roots)
