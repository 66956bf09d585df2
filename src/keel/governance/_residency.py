"""Data residency: regions on storage locations and deployment targets, allowed regions on data.

Pure: :func:`check_residency` takes the regions as arguments and says whether a copy, a
training run or a deployment may happen where it is about to happen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from keel.errors import InvalidInputError

__all__ = ["ResidencyResult", "check_residency", "normalise_region"]

_REGION = re.compile(r"^[a-z][a-z0-9\-]{0,31}$")


def normalise_region(value: object) -> str:
    """A region code in lower case (``ae``, ``eu-west-1``), or InvalidInputError."""
    text = str(value).strip().lower() if isinstance(value, str) else ""
    if not _REGION.match(text):
        raise InvalidInputError(
            f"Invalid region {str(value)[:40]!r}: use a short code of letters, digits and "
            "'-', starting with a letter (for example 'ae' or 'eu-west-1').",
            region=str(value)[:40],
        )
    return text


@dataclass(frozen=True, slots=True)
class ResidencyResult:
    """Whether every place data goes to is allowed for it, and which places are not."""

    allowed: bool
    violations: tuple[str, ...]
    allowed_regions: tuple[str, ...] | None

    def to_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "violations": list(self.violations),
            "allowed_regions": None if self.allowed_regions is None else list(self.allowed_regions),
        }


def check_residency(
    *,
    destinations: Mapping[str, str | None],
    data_allowed: Iterable[Iterable[str]] = (),
    policy_allowed: Iterable[str] | None = None,
) -> ResidencyResult:
    """Check that every destination region lies in every allowed set.

    Args:
        destinations: what the data goes to, by role (``{"storage": "ae", "target": "eu"}``);
            a role whose region is unknown (None) is a violation when anything restricts it.
        data_allowed: the allowed regions of each dataset involved (empty: unrestricted).
        policy_allowed: the regions a policy allows (None: unrestricted).

    Returns:
        The result; ``allowed_regions`` is the intersection of every restriction (None when
        nothing restricts).
    """
    allowed: set[str] | None = None
    for regions in data_allowed:
        chosen = {normalise_region(r) for r in regions}
        allowed = chosen if allowed is None else allowed & chosen
    if policy_allowed is not None:
        chosen = {normalise_region(r) for r in policy_allowed}
        allowed = chosen if allowed is None else allowed & chosen
    if allowed is None:
        return ResidencyResult(allowed=True, violations=(), allowed_regions=None)
    violations: list[str] = []
    for role, region in sorted(destinations.items()):
        if region is None:
            violations.append(f"{role} region unknown")
        elif normalise_region(region) not in allowed:
            violations.append(f"{role} in '{normalise_region(region)}'")
    return ResidencyResult(
        allowed=not violations, violations=tuple(violations), allowed_regions=tuple(sorted(allowed))
    )
