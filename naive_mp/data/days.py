"""Days as the archive names them: ``YYYY-MM-DD``, and ranges ``FIRST..LAST``."""

from __future__ import annotations

import datetime as dt
import re

# date.fromisoformat alone would also take "20190601" or "2019-W22-6" on
# Python 3.11: the archive's names only ever use this one form.
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


class DayError(ValueError):
    """A day (or range) that is not written ``YYYY-MM-DD`` or ``YYYY-MM-DD..YYYY-MM-DD``."""


def parse_day(text: str) -> dt.date:
    """``2019-06-01`` -> ``date(2019, 6, 1)``; anything else is a :class:`DayError` naming it."""
    if not _DAY.match(text):
        raise DayError(f"{text!r} is not a day: expected YYYY-MM-DD (e.g. 2019-06-01)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise DayError(f"{text!r} is not a day of the calendar") from None


def parse_days(texts) -> list[dt.date]:
    """Every day named by `texts` (days or inclusive ranges), in the order given, each once."""
    days: dict[dt.date, None] = {}
    for text in texts:
        first, sep, last = text.strip().partition("..")
        start = parse_day(first)
        end = parse_day(last) if sep else start
        if end < start:
            raise DayError(f"{text!r}: the range ends before it starts")
        for offset in range((end - start).days + 1):
            days.setdefault(start + dt.timedelta(days=offset))
    return list(days)
