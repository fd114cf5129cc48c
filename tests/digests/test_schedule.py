"""When a digest is due (pure schedule arithmetic, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from apps.digests.schedule import (
    ScheduleError,
    due,
    latest_occurrence,
    period_key,
    previous_occurrence_day,
)

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
DAY = timedelta(hours=24)


def test_daily_before_and_after_the_hour():
    # given a daily 07:00 UTC schedule
    # when it is 06:59, the latest occurrence is yesterday's; at 07:00 it is today's
    before = latest_occurrence(
        frequency="daily", hour=7, time_zone="UTC", now=datetime(2024, 9, 30, 6, 59, tzinfo=UTC)
    )
    at = latest_occurrence(
        frequency="daily", hour=7, time_zone="UTC", now=datetime(2024, 9, 30, 7, 0, tzinfo=UTC)
    )
    assert before == (datetime(2024, 9, 29, 7, tzinfo=UTC), date(2024, 9, 29))
    assert at == (datetime(2024, 9, 30, 7, tzinfo=UTC), date(2024, 9, 30))


def test_weekly_in_a_time_zone_ahead_of_utc():
    # given Monday 07:00 in Tokyo (UTC+9) = Sunday 22:00 UTC
    now = datetime(2024, 9, 29, 22, 30, tzinfo=UTC)  # Monday 07:30 in Tokyo
    moment, day = latest_occurrence(
        frequency="weekly", weekday=0, hour=7, time_zone="Asia/Tokyo", now=now
    )
    assert day == date(2024, 9, 30)
    assert moment == datetime(2024, 9, 29, 22, 0, tzinfo=UTC)
    # and half an hour earlier, the latest is the Monday before
    _, earlier = latest_occurrence(
        frequency="weekly",
        weekday=0,
        hour=7,
        time_zone="Asia/Tokyo",
        now=now - timedelta(minutes=60),
    )
    assert earlier == date(2024, 9, 23)


def test_daylight_saving_moves_the_utc_hour():
    # 07:00 Europe/Berlin is 06:00 UTC in winter and 05:00 UTC in summer
    winter, _ = latest_occurrence(
        frequency="daily",
        hour=7,
        time_zone="Europe/Berlin",
        now=datetime(2024, 1, 15, 12, tzinfo=UTC),
    )
    summer, _ = latest_occurrence(
        frequency="daily",
        hour=7,
        time_zone="Europe/Berlin",
        now=datetime(2024, 7, 15, 12, tzinfo=UTC),
    )
    assert winter == datetime(2024, 1, 15, 6, tzinfo=UTC)
    assert summer == datetime(2024, 7, 15, 5, tzinfo=UTC)


def test_an_hour_skipped_by_the_spring_jump_happens_right_after_it():
    # 02:00 does not exist in Berlin on 31 March 2024 (clocks go 02:00 -> 03:00 CEST = 01:00 UTC)
    moment, day = latest_occurrence(
        frequency="daily",
        hour=2,
        time_zone="Europe/Berlin",
        now=datetime(2024, 3, 31, 1, 0, tzinfo=UTC),
    )
    assert (moment, day) == (datetime(2024, 3, 31, 1, 0, tzinfo=UTC), date(2024, 3, 31))


def test_an_hour_repeated_in_autumn_happens_the_first_time():
    # 02:00 happens twice in Berlin on 27 October 2024: first at 00:00 UTC (CEST)
    moment, _ = latest_occurrence(
        frequency="daily",
        hour=2,
        time_zone="Europe/Berlin",
        now=datetime(2024, 10, 27, 0, 30, tzinfo=UTC),
    )
    assert moment == datetime(2024, 10, 27, 0, 0, tzinfo=UTC)


def test_monthly_day_past_the_end_is_the_last_day():
    # day 31 in February 2024 (leap year) is the 29th; in April the 30th
    _, feb = latest_occurrence(
        frequency="monthly",
        day_of_month=31,
        hour=7,
        time_zone="UTC",
        now=datetime(2024, 3, 1, tzinfo=UTC),
    )
    _, apr = latest_occurrence(
        frequency="monthly",
        day_of_month=31,
        hour=7,
        time_zone="UTC",
        now=datetime(2024, 4, 30, 8, tzinfo=UTC),
    )
    assert feb == date(2024, 2, 29)
    assert apr == date(2024, 4, 30)
    assert previous_occurrence_day(
        "monthly", date(2024, 3, 31), weekday=None, day_of_month=31
    ) == date(2024, 2, 29)


def test_due_only_once_per_key_window_and_not_before_creation():
    now = datetime(2024, 9, 30, 7, 5, tzinfo=UTC)
    args = {
        "frequency": "weekly",
        "weekday": 0,
        "hour": 7,
        "time_zone": "UTC",
        "catch_up": 12 * DAY / 24,
    }
    assert due(now=now, created_at=LONG_AGO, **args) == (
        "weekly:2024-09-30",
        datetime(2024, 9, 30, 7, tzinfo=UTC),
    )
    # created after the occurrence: waits for the next one
    assert due(now=now, created_at=datetime(2024, 9, 30, 7, 1, tzinfo=UTC), **args) is None
    # thirteen hours late (an outage): skipped rather than sent stale
    assert due(now=now + timedelta(hours=13), created_at=LONG_AGO, **args) is None


def test_period_key_names_frequency_and_local_date():
    assert period_key("daily", date(2024, 9, 30)) == "daily:2024-09-30"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frequency": "weekly", "hour": 7, "time_zone": "UTC"}, "weekday"),
        (
            {"frequency": "monthly", "day_of_month": 0, "hour": 7, "time_zone": "UTC"},
            "day of the month",
        ),
        ({"frequency": "daily", "hour": 24, "time_zone": "UTC"}, "hour"),
        ({"frequency": "daily", "hour": 7, "time_zone": "Mars/Olympus"}, "time zone"),
        ({"frequency": "hourly", "hour": 7, "time_zone": "UTC"}, "frequency"),
    ],
)
def test_bad_schedules_are_refused(kwargs, message):
    with pytest.raises(ScheduleError, match=message):
        latest_occurrence(now=datetime(2024, 9, 30, tzinfo=UTC), **kwargs)


def test_naive_now_is_refused():
    with pytest.raises(ScheduleError, match="timezone-aware"):
        latest_occurrence(frequency="daily", hour=7, time_zone="UTC", now=datetime(2024, 9, 30))
