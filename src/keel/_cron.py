"""Cron schedules: standard (Vixie) five-field expressions in UTC, checked by Keel's own rules
(seconds, years, ``?``/``L``/``W``/``#`` and backward ranges refused with the reason) and
stepped through with croniter. Pure: no store, so ``keel validate`` checks a schedule without
importing the scheduler."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from keel.errors import InvalidInputError, MissingDependencyError

__all__ = ["check_cron", "cron_step", "next_fire_time"]

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_Field = tuple[str, int, int, tuple[str, ...]]
_FIELDS: tuple[_Field, ...] = (  # what the field is, its range, names of its first values
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


def _bad_cron(cron: object, problem: str) -> InvalidInputError:
    return InvalidInputError(
        f"{cron!r:.80} is not a cron expression: {problem}. Write five fields, minute hour "
        "day-of-month month day-of-week, in UTC (e.g. '0 3 * * *' for 03:00 UTC every "
        "day), or @hourly, @daily, @weekly, @monthly, @yearly.",
        field="cron",
    )


def _cron_value(text: str, field: _Field, cron: str) -> int:
    what, low, high, names = field
    if text.upper() in names:
        return low + names.index(text.upper())
    if not text.isdigit():
        named = f" or a name ({names[0]}-{names[-1]})" if names else ""
        raise _bad_cron(cron, f"the {what} {text!r:.20} is not a number{named}")
    if not low <= int(text) <= high:
        raise _bad_cron(cron, f"the {what} {text} is outside {low}-{high}")
    return int(text)


def _check_cron_field(text: str, field: _Field, cron: str) -> None:
    what, low, high, _ = field
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and (not step.isdigit() or not 1 <= int(step) <= high - low + 1):
            raise _bad_cron(cron, f"the {what} step {step!r:.20} is not 1-{high - low + 1}")
        if base == "*":
            continue
        first, dash, last = base.partition("-")
        if slash and not dash:
            raise _bad_cron(
                cron, f"{item!r:.30} steps from one {what}; write '{first}-{high}/{step}'"
            )
        if _cron_value(first, field, cron) > (_cron_value(last, field, cron) if dash else high):
            sunday = " (7 is Sunday too)" if what == "day of week" else ""
            raise _bad_cron(
                cron, f"the {what} range {base!r:.30} runs backwards; write low-high{sunday}"
            )


def check_cron(cron: object) -> str:
    """The five fields of a schedule, a macro (``@daily``, ``@hourly``, …) expanded.

    Standard (Vixie) cron, in UTC: numbers, ``*``, ranges ``a-b``, steps ``*/n`` and ``a-b/n``,
    lists ``a,b``, month and weekday names (``JAN``, ``MON``; 0 and 7 are Sunday). When both day
    fields are restricted a day matching either fires; a day field that starts with ``*`` (like
    ``*/2``) is unrestricted, so the other one decides.

    Raises:
        InvalidInputError: If ``cron`` is not such an expression.
    """
    if not isinstance(cron, str) or not cron.strip() or len(cron) > 200:
        raise _bad_cron(cron, "it is not a non-empty string of up to 200 characters")
    text = cron.strip()
    if text.startswith("@"):
        if text.lower() not in _MACROS:
            raise _bad_cron(cron, "not a macro Keel knows (@reboot is not a schedule)")
        return _MACROS[text.lower()]
    fields = text.split()
    if len(fields) != len(_FIELDS):
        count = f"{len(fields)} field{'s' if len(fields) > 1 else ''}"
        raise _bad_cron(cron, f"it has {count}, not five (no seconds, no years)")
    for part, field in zip(fields, _FIELDS, strict=True):
        if not re.fullmatch(r"[0-9A-Za-z*,/-]+", part):
            raise _bad_cron(
                cron,
                f"the {field[0]} {part!r:.30} has characters other than digits, names and * , - /",
            )
        _check_cron_field(part, field, cron)
    return " ".join(fields)


def _croniter() -> Any:
    try:
        import croniter  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise MissingDependencyError("croniter", extra="scheduler", purpose="Schedules") from exc
    return croniter


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def cron_step(expression: str, cron: object, moment: datetime, *, back: bool = False) -> datetime:
    module = _croniter()
    try:
        # implement_cron_bug: a day field starting with '*' (like */2) is unrestricted, so
        # the two day fields are ANDed, as Vixie cron does; both restricted, they are ORed
        found = module.croniter(expression, _utc(moment), implement_cron_bug=True)
        result = found.get_prev(datetime) if back else found.get_next(datetime)
    except module.CroniterBadDateError as exc:
        raise _bad_cron(
            cron, "it never occurs (no date in 50 years matches, like 30 February)"
        ) from exc
    except (ValueError, KeyError) as exc:
        raise _bad_cron(cron, f"croniter does not take it ({str(exc)[:100]})") from exc
    assert isinstance(result, datetime)
    return _utc(result)


def next_fire_time(cron: str, after: datetime) -> datetime:
    """The first occurrence of ``cron`` (UTC) strictly after ``after``.

    Raises:
        InvalidInputError: If ``cron`` is not a valid cron expression (see
            :func:`check_cron`) or never occurs.
        MissingDependencyError: If croniter is not installed.
    """
    return cron_step(check_cron(cron), cron, after)
