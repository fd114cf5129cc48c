"""When a digest is due: pure date arithmetic, no Django import.

A schedule is a frequency (daily; weekly on a weekday; monthly on a day of the month), an
hour and an IANA time zone. Its *occurrences* are the local moments it names; the
dispatcher sends the latest occurrence that has passed, once, keyed by its local date.

- A day of the month past the month's end means the month's last day (31 -> 30 April,
  28 or 29 February).
- Hours are wall-clock hours of the time zone: 07:00 Europe/Berlin is 06:00 UTC in winter
  and 05:00 UTC in summer. An hour skipped by a daylight-saving jump (02:00 on the spring
  Sunday) happens at the first instant after the jump; an hour that occurs twice happens
  the first time.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAILY, WEEKLY, MONTHLY = "daily", "weekly", "monthly"


class ScheduleError(ValueError):
    """A schedule that cannot be evaluated (unknown time zone, bad day or hour)."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"Unknown time zone {name!r}; use an IANA name such as Europe/Berlin."
        ) from None


def time_zone_names() -> list[str]:
    """Every IANA time zone name, sorted (for choice lists)."""
    return sorted(available_timezones())


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _at(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The local ``hour`` on ``day`` as an aware UTC datetime. With fold=0 a repeated wall
    time is its first instance, and a skipped one (spring forward) is read with the offset
    before the jump, which for a whole hour is exactly the first instant after it."""
    return datetime.combine(day, time(hour), tzinfo=tz).astimezone(UTC)


def _check(frequency: str, weekday: int | None, day_of_month: int | None, hour: int) -> None:
    if not 0 <= hour <= 23:
        raise ScheduleError("The hour must be between 0 and 23.")
    if frequency == WEEKLY and (weekday is None or not 0 <= weekday <= 6):
        raise ScheduleError("A weekly digest needs a weekday (Monday to Sunday).")
    if frequency == MONTHLY and (day_of_month is None or not 1 <= day_of_month <= 31):
        raise ScheduleError("A monthly digest needs a day of the month between 1 and 31.")
    if frequency not in (DAILY, WEEKLY, MONTHLY):
        raise ScheduleError(f"Unknown frequency {frequency!r}.")


def latest_occurrence(
    *,
    frequency: str,
    hour: int,
    time_zone: str,
    now: datetime,
    weekday: int | None = None,
    day_of_month: int | None = None,
) -> tuple[datetime, date]:
    """The latest occurrence at or before ``now`` (aware): (moment in UTC, local date)."""
    _check(frequency, weekday, day_of_month, hour)
    if now.tzinfo is None:
        raise ScheduleError("now must be timezone-aware.")
    tz = zone(time_zone)
    today = now.astimezone(tz).date()
    if frequency == DAILY:
        candidates = [today - timedelta(days=k) for k in range(3)]
    elif frequency == WEEKLY:
        assert weekday is not None
        back = (today.weekday() - weekday) % 7
        last = today - timedelta(days=back)
        candidates = [last, last - timedelta(days=7)]
    else:
        assert day_of_month is not None
        candidates = []
        year, month = today.year, today.month
        for _ in range(3):
            candidates.append(_clamped(year, month, day_of_month))
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    for day in candidates:
        moment = _at(day, hour, tz)
        if moment <= now:
            return moment, day
    raise AssertionError("an occurrence within three periods always exists")  # pragma: no cover


def period_key(frequency: str, local_day: date) -> str:
    """The delivery key of an occurrence: the frequency and its local date."""
    return f"{frequency}:{local_day.isoformat()}"


def previous_occurrence_day(
    frequency: str, local_day: date, *, weekday: int | None, day_of_month: int | None
) -> date:
    """The local date of the occurrence before the one on ``local_day``."""
    if frequency == DAILY:
        return local_day - timedelta(days=1)
    if frequency == WEEKLY:
        return local_day - timedelta(days=7)
    assert day_of_month is not None
    year, month = (
        (local_day.year, local_day.month - 1) if local_day.month > 1 else (local_day.year - 1, 12)
    )
    return _clamped(year, month, day_of_month)


def due(
    *,
    frequency: str,
    hour: int,
    time_zone: str,
    now: datetime,
    created_at: datetime,
    catch_up: timedelta,
    weekday: int | None = None,
    day_of_month: int | None = None,
) -> tuple[str, datetime] | None:
    """(period key, occurrence) when a digest is due at ``now``, else None.

    Due means: the latest occurrence has passed, it is not older than ``catch_up`` (after
    an outage a stale digest is skipped rather than sent late) and the subscription
    existed at that moment (a new subscription waits for its first occurrence)."""
    moment, day = latest_occurrence(
        frequency=frequency,
        hour=hour,
        time_zone=time_zone,
        now=now,
        weekday=weekday,
        day_of_month=day_of_month,
    )
    if moment < created_at or now - moment > catch_up:
        return None
    return period_key(frequency, day), moment
