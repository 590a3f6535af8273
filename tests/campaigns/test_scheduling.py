"""The time rules of scheduling (docs/architecture.md#time). Pure functions: no database, "now" passed in or frozen."""

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine
from dateutil.rrule import MO, WE, rrule
from dateutil.rrule import WEEKLY as WEEKLY_RRULE

from campaigns.scheduling import (
    RecurringConfig,
    next_runs,
    parse_recurring_config,
    upcoming_runs,
)
from common.errors import ValidationError
from common.timerules import NonexistentLocalTime, local_wall_time_to_utc, parse_instant, to_utc_iso

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def config(**overrides) -> RecurringConfig:
    data = {"frequency": "daily", "time": "09:00", "time_zone": "America/New_York"}
    data.update(overrides)
    return parse_recurring_config({k: v for k, v in data.items() if v is not None}, now=NOW)


def details(call) -> dict:
    with pytest.raises(ValidationError) as excinfo:
        call()
    return excinfo.value.details


# --- parse_instant ---------------------------------------------------------------------------------------


def test_offset_value_is_that_instant():
    assert parse_instant(value="2026-05-09T08:00:00+07:00", timezone_name=None, now=NOW) == utc(2026, 5, 9, 1)


def test_z_suffix_means_utc():
    assert parse_instant(value="2026-07-01T09:00:00Z", timezone_name=None, now=NOW) == utc(2026, 7, 1, 9)


def test_result_is_aware_utc():
    instant = parse_instant(value="2026-07-01T09:00:00+02:00", timezone_name=None, now=NOW)
    assert instant.utcoffset() == timedelta(0)


def test_naive_value_with_timezone_is_that_wall_clock_time():
    instant = parse_instant(value="2026-07-01T09:00:00", timezone_name="Asia/Jakarta", now=NOW)
    assert instant == utc(2026, 7, 1, 2)


def test_naive_value_with_timezone_follows_dst_of_that_date():
    instant = parse_instant(value="2026-12-01T09:00:00", timezone_name="America/New_York", now=NOW)
    assert instant == utc(2026, 12, 1, 14)


def test_offset_wins_over_timezone():
    instant = parse_instant(value="2026-07-01T09:00:00+07:00", timezone_name="America/New_York", now=NOW)
    assert instant == utc(2026, 7, 1, 2)


def test_naive_value_without_timezone_is_rejected():
    errors = details(lambda: parse_instant(value="2026-07-01T09:00:00", timezone_name=None, now=NOW))
    assert list(errors) == ["scheduled_at"]
    assert "must include a UTC offset or Z, or give a timezone" in errors["scheduled_at"][0]


def test_empty_timezone_counts_as_absent():
    errors = details(lambda: parse_instant(value="2026-07-01T09:00:00", timezone_name="", now=NOW))
    assert list(errors) == ["scheduled_at"]


def test_unknown_timezone_names_the_timezone_field():
    errors = details(lambda: parse_instant(value="2026-07-01T09:00:00", timezone_name="Mars/Olympus", now=NOW))
    assert list(errors) == ["timezone"]
    assert "Mars/Olympus" in errors["timezone"][0]


def test_unknown_timezone_is_rejected_even_when_the_value_has_an_offset():
    errors = details(lambda: parse_instant(value="2026-07-01T09:00:00Z", timezone_name="Not/AZone", now=NOW))
    assert list(errors) == ["timezone"]


def test_bad_value_and_bad_timezone_are_reported_together():
    errors = details(lambda: parse_instant(value="tomorrow", timezone_name="Not/AZone", now=NOW))
    assert set(errors) == {"scheduled_at", "timezone"}


@pytest.mark.parametrize("value", ["tomorrow at nine", "2026-13-01T09:00:00Z", "2026-07-01T09:00:00+25:00", 20260701])
def test_garbage_value_is_rejected_with_an_example(value):
    errors = details(lambda: parse_instant(value=value, timezone_name=None, now=NOW))
    assert "not a valid ISO 8601 date-time" in errors["scheduled_at"][0]


def test_date_without_time_is_rejected():
    errors = details(lambda: parse_instant(value="2026-07-01", timezone_name="UTC", now=NOW))
    assert "must include a time of day" in errors["scheduled_at"][0]


def test_missing_value_is_required():
    errors = details(lambda: parse_instant(value=None, timezone_name=None, now=NOW))
    assert errors == {"scheduled_at": ["scheduled_at is required."]}


def test_one_second_in_the_past_is_rejected():
    errors = details(lambda: parse_instant(value="2026-03-01T11:59:59Z", timezone_name=None, now=NOW))
    assert errors == {"scheduled_at": ["scheduled_at must be in the future."]}


def test_exactly_now_is_rejected():
    errors = details(lambda: parse_instant(value="2026-03-01T12:00:00Z", timezone_name=None, now=NOW))
    assert errors == {"scheduled_at": ["scheduled_at must be in the future."]}


def test_one_second_in_the_future_is_accepted():
    instant = parse_instant(value="2026-03-01T12:00:01Z", timezone_name=None, now=NOW)
    assert instant == utc(2026, 3, 1, 12, 0, 1)


def test_past_check_uses_the_current_time_by_default():
    with time_machine.travel(utc(2026, 7, 1, 9), tick=False):
        errors = details(lambda: parse_instant(value="2026-07-01T08:59:59Z", timezone_name=None))
        assert errors == {"scheduled_at": ["scheduled_at must be in the future."]}
        assert parse_instant(value="2026-07-01T09:00:01Z", timezone_name=None) == utc(2026, 7, 1, 9, 0, 1)


def test_local_time_in_spring_forward_gap_is_rejected():
    errors = details(lambda: parse_instant(value="2026-03-08T02:30", timezone_name="America/New_York", now=NOW))
    assert list(errors) == ["scheduled_at"]
    assert "does not exist in America/New_York" in errors["scheduled_at"][0]


def test_ambiguous_local_time_takes_the_first_occurrence_in_new_york():
    instant = parse_instant(value="2026-11-01T01:30", timezone_name="America/New_York", now=NOW)
    assert instant == utc(2026, 11, 1, 5, 30)  # 01:30 EDT; the second 01:30 (EST) would be 06:30Z


def test_ambiguous_local_time_takes_the_first_occurrence_in_london():
    instant = parse_instant(value="2026-10-25T01:30", timezone_name="Europe/London", now=NOW)
    assert instant == utc(2026, 10, 25, 0, 30)


def test_errors_name_the_given_field():
    errors = details(lambda: parse_instant(value="2020-01-01T00:00:00Z", timezone_name=None, field="send_at", now=NOW))
    assert errors == {"send_at": ["send_at must be in the future."]}


def test_instant_beyond_the_datetime_range_is_a_validation_error():
    errors = details(lambda: parse_instant(value="9999-12-31T23:59:59-05:00", timezone_name=None, now=NOW))
    assert "out of the supported date range" in errors["scheduled_at"][0]


# --- local_wall_time_to_utc and to_utc_iso ---------------------------------------------------------------


def test_gap_time_shifts_to_the_transition_in_new_york():
    shifted = local_wall_time_to_utc(local=datetime(2026, 3, 8, 2, 30), zone=NEW_YORK, on_gap="shift")
    assert shifted == utc(2026, 3, 8, 7)  # 03:00 EDT


def test_gap_time_shifts_to_the_transition_in_london():
    shifted = local_wall_time_to_utc(local=datetime(2026, 3, 29, 1, 30), zone=LONDON, on_gap="shift")
    assert shifted == utc(2026, 3, 29, 1)  # 02:00 BST


def test_gap_time_with_on_gap_error_raises_with_the_first_valid_instant():
    with pytest.raises(NonexistentLocalTime) as excinfo:
        local_wall_time_to_utc(local=datetime(2026, 3, 8, 2, 0), zone=NEW_YORK, on_gap="error")
    assert excinfo.value.first_valid == utc(2026, 3, 8, 7)


def test_time_just_after_the_gap_is_not_shifted():
    exact = local_wall_time_to_utc(local=datetime(2026, 3, 8, 3, 0), zone=NEW_YORK, on_gap="error")
    assert exact == utc(2026, 3, 8, 7)


def test_wall_time_helper_refuses_an_aware_datetime():
    with pytest.raises(ValueError):
        local_wall_time_to_utc(local=utc(2026, 7, 1, 9), zone=NEW_YORK, on_gap="error")


def test_to_utc_iso_renders_utc_with_z():
    assert to_utc_iso(datetime(2026, 7, 1, 16, 0, tzinfo=timezone(timedelta(hours=7)))) == "2026-07-01T09:00:00Z"


def test_to_utc_iso_keeps_microseconds():
    assert to_utc_iso(utc(2026, 7, 1, 9, 0, 0, 250)) == "2026-07-01T09:00:00.000250Z"


def test_to_utc_iso_refuses_a_naive_datetime():
    with pytest.raises(ValueError):
        to_utc_iso(datetime(2026, 7, 1, 9))


# --- parse_recurring_config ------------------------------------------------------------------------------

WEEKLY = {
    "frequency": "weekly",
    "interval": 2,
    "days_of_week": [1, 3],
    "time": "09:00",
    "time_zone": "America/New_York",
    "end_date": "2026-12-31",
}


def test_valid_weekly_config_is_parsed():
    parsed = parse_recurring_config(WEEKLY, now=NOW)
    assert parsed == RecurringConfig(
        frequency="weekly",
        interval=2,
        time=datetime(2026, 1, 1, 9).time(),
        time_zone="America/New_York",
        days_of_week=(1, 3),
        end_date=date(2026, 12, 31),
    )


def test_interval_defaults_to_one():
    assert parse_recurring_config({"frequency": "daily", "time": "09:00", "time_zone": "UTC"}, now=NOW).interval == 1


def test_duplicate_weekdays_are_merged_and_sorted():
    parsed = parse_recurring_config({**WEEKLY, "days_of_week": [5, 1, 5]}, now=NOW)
    assert parsed.days_of_week == (1, 5)


def test_null_optional_fields_count_as_absent():
    parsed = parse_recurring_config(
        {"frequency": "daily", "time": "09:00", "time_zone": "UTC", "days_of_week": None, "end_date": None}, now=NOW
    )
    assert parsed.end_date is None and parsed.days_of_week == ()


MONTHLY = {"frequency": "monthly", "day_of_month": 15, "time": "09:00", "time_zone": "UTC"}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**WEEKLY, "days_of_week": None}, "days_of_week"),
        ({k: v for k, v in WEEKLY.items() if k != "days_of_week"}, "days_of_week"),
        ({**WEEKLY, "days_of_week": []}, "days_of_week"),
        ({**WEEKLY, "days_of_week": [0]}, "days_of_week"),
        ({**WEEKLY, "days_of_week": [8]}, "days_of_week"),
        ({**WEEKLY, "days_of_week": [True]}, "days_of_week"),
        ({**WEEKLY, "days_of_week": "1,3"}, "days_of_week"),
        ({**MONTHLY, "days_of_week": [1]}, "days_of_week"),
        ({**MONTHLY, "day_of_month": 0}, "day_of_month"),
        ({**MONTHLY, "day_of_month": 32}, "day_of_month"),
        ({**MONTHLY, "day_of_month": None}, "day_of_month"),
        ({**MONTHLY, "day_of_month": "15"}, "day_of_month"),
        ({**WEEKLY, "day_of_month": 15}, "day_of_month"),
        ({**WEEKLY, "interval": 0}, "interval"),
        ({**WEEKLY, "interval": 366}, "interval"),
        ({**WEEKLY, "interval": True}, "interval"),
        ({**WEEKLY, "interval": "2"}, "interval"),
        ({**WEEKLY, "interval": 2.0}, "interval"),
        ({**WEEKLY, "time": "25:00"}, "time"),
        ({**WEEKLY, "time": "24:00"}, "time"),
        ({**WEEKLY, "time": "09:60"}, "time"),
        ({**WEEKLY, "time": "9:00"}, "time"),
        ({**WEEKLY, "time": "09:00:00"}, "time"),
        ({**WEEKLY, "time": None}, "time"),
        ({**WEEKLY, "time_zone": "America/Gotham"}, "time_zone"),
        ({**WEEKLY, "time_zone": None}, "time_zone"),
        ({**WEEKLY, "frequency": "hourly"}, "frequency"),
        ({**WEEKLY, "frequency": None}, "frequency"),
        ({**WEEKLY, "end_date": "2026-02-28"}, "end_date"),
        ({**WEEKLY, "end_date": "31/12/2026"}, "end_date"),
        ({**WEEKLY, "end_date": "2026-02-30"}, "end_date"),
        ({**WEEKLY, "end_date": "20261231"}, "end_date"),
        ({**WEEKLY, "starts_on": "2026-04-01"}, "starts_on"),
    ],
)
def test_invalid_recurring_config_names_the_field(data, field):
    errors = details(lambda: parse_recurring_config(data, now=NOW))
    assert list(errors) == [f"recurring_config.{field}"]


def test_unknown_key_says_unknown_field():
    errors = details(lambda: parse_recurring_config({**WEEKLY, "timezone": "UTC"}, now=NOW))
    assert errors == {"recurring_config.timezone": ["Unknown field."]}


def test_every_problem_is_reported_at_once():
    errors = details(lambda: parse_recurring_config({**WEEKLY, "interval": 0, "time": "25:00"}, now=NOW))
    assert set(errors) == {"recurring_config.interval", "recurring_config.time"}


def test_recurring_config_must_be_an_object():
    errors = details(lambda: parse_recurring_config(["weekly"], now=NOW))
    assert list(errors) == ["recurring_config"]


def test_end_date_today_is_allowed_while_a_run_remains():
    parsed = parse_recurring_config(
        {"frequency": "daily", "time": "23:00", "time_zone": "UTC", "end_date": "2026-03-01"}, now=NOW
    )
    assert parsed.end_date == date(2026, 3, 1)


def test_today_for_end_date_is_the_local_date_of_the_time_zone():
    late_evening_in_new_york = utc(2026, 7, 2, 2)  # 22:00 on 2026-07-01 in New York, already July 2 in UTC
    parsed = parse_recurring_config(
        {"frequency": "daily", "time": "23:00", "time_zone": "America/New_York", "end_date": "2026-07-01"},
        now=late_evening_in_new_york,
    )
    assert next_runs(config=parsed, after=late_evening_in_new_york) == [utc(2026, 7, 2, 3)]


def test_end_date_leaving_no_run_is_rejected():
    errors = details(
        lambda: parse_recurring_config(
            {"frequency": "daily", "time": "09:00", "time_zone": "UTC", "end_date": "2026-03-01"}, now=NOW
        )
    )
    assert list(errors) == ["recurring_config.end_date"]


def test_to_dict_and_from_dict_round_trip():
    parsed = parse_recurring_config(WEEKLY, now=NOW)
    assert RecurringConfig.from_dict(parsed.to_dict()) == parsed


def test_to_dict_is_accepted_back_as_client_input():
    parsed = parse_recurring_config({**MONTHLY, "interval": 3}, now=NOW)
    assert parsed.to_dict() == {
        "frequency": "monthly",
        "interval": 3,
        "day_of_month": 15,
        "time": "09:00",
        "time_zone": "UTC",
        "end_date": None,
    }
    assert parse_recurring_config(parsed.to_dict(), now=NOW) == parsed


def test_from_dict_accepts_an_end_date_that_has_since_passed():
    stored = {**WEEKLY, "end_date": "2020-01-01"}
    assert RecurringConfig.from_dict(stored).end_date == date(2020, 1, 1)


def test_from_dict_of_corrupt_data_is_a_value_error_not_a_400():
    with pytest.raises(ValueError) as excinfo:
        RecurringConfig.from_dict({**WEEKLY, "days_of_week": []})
    assert not isinstance(excinfo.value, ValidationError)


# --- next_runs -------------------------------------------------------------------------------------------


def test_daily_runs_at_the_wall_time_each_day():
    runs = next_runs(config=config(), after=NOW, count=3)  # NOW is 07:00 in New York: today's run is ahead
    assert runs == [utc(2026, 3, 1, 14), utc(2026, 3, 2, 14), utc(2026, 3, 3, 14)]


def test_runs_are_strictly_after_after():
    runs = next_runs(config=config(), after=utc(2026, 3, 2, 14), count=1)
    assert runs == [utc(2026, 3, 3, 14)]


def test_run_later_today_is_included():
    runs = next_runs(config=config(time="09:00"), after=utc(2026, 3, 2, 13, 59), count=1)
    assert runs == [utc(2026, 3, 2, 14)]


def test_daily_interval_counts_from_the_anchor():
    runs = next_runs(config=config(interval=3), after=NOW, count=3, anchor=date(2026, 2, 27))
    assert runs == [utc(2026, 3, 2, 14), utc(2026, 3, 5, 14), utc(2026, 3, 8, 13)]


def test_weekly_every_two_weeks_on_monday_and_wednesday():
    cfg = parse_recurring_config({**WEEKLY, "time_zone": "UTC"}, now=NOW)
    runs = next_runs(config=cfg, after=NOW, count=4, anchor=date(2026, 3, 2))
    assert runs == [utc(2026, 3, 2, 9), utc(2026, 3, 4, 9), utc(2026, 3, 16, 9), utc(2026, 3, 18, 9)]


def test_weekly_interval_matches_an_icalendar_rrule():
    cfg = parse_recurring_config({**WEEKLY, "time_zone": "UTC", "end_date": None}, now=NOW)
    start = datetime(2026, 3, 5, 9)  # a Thursday: the anchor week's Monday and Wednesday are already gone
    expected = [
        d.replace(tzinfo=UTC) for d in rrule(WEEKLY_RRULE, interval=2, byweekday=(MO, WE), dtstart=start, count=12)
    ]
    runs = next_runs(config=cfg, after=start.replace(tzinfo=UTC) - timedelta(seconds=1), count=12, anchor=start.date())
    assert runs == expected


def test_weekly_phase_is_stable_across_calls_with_the_same_anchor():
    cfg = parse_recurring_config(WEEKLY, now=NOW)
    anchor = date(2026, 3, 1)
    first = next_runs(config=cfg, after=NOW, count=10, anchor=anchor)
    later = next_runs(config=cfg, after=first[3], count=6, anchor=anchor)
    assert later == first[4:10]


def test_monthly_day_31_sends_on_the_last_day_of_short_months():
    runs = next_runs(
        config=config(frequency="monthly", day_of_month=31, time_zone="UTC"), after=utc(2026, 1, 1), count=4
    )
    assert runs == [utc(2026, 1, 31, 9), utc(2026, 2, 28, 9), utc(2026, 3, 31, 9), utc(2026, 4, 30, 9)]


def test_monthly_day_30_lands_on_february_29_in_a_leap_year():
    runs = next_runs(
        config=config(frequency="monthly", day_of_month=30, time_zone="UTC"), after=utc(2028, 2, 1), count=2
    )
    assert runs == [utc(2028, 2, 29, 9), utc(2028, 3, 30, 9)]


def test_monthly_interval_counts_months_from_the_anchor():
    runs = next_runs(
        config=config(frequency="monthly", day_of_month=15, interval=3, time_zone="UTC"),
        after=utc(2026, 1, 20),
        count=2,
        anchor=date(2026, 1, 20),
    )
    assert runs == [utc(2026, 4, 15, 9), utc(2026, 7, 15, 9)]


def test_nothing_runs_before_a_future_anchor():
    runs = next_runs(config=config(time_zone="UTC"), after=NOW, count=1, anchor=date(2026, 6, 1))
    assert runs == [utc(2026, 6, 1, 9)]


def test_weekly_days_before_a_future_anchor_in_its_week_do_not_run():
    cfg = config(frequency="weekly", days_of_week=[1, 3, 5], time_zone="UTC")
    runs = next_runs(config=cfg, after=NOW, count=2, anchor=date(2026, 3, 5))  # a Thursday
    assert runs == [utc(2026, 3, 6, 9), utc(2026, 3, 9, 9)]


def test_monthly_day_before_a_future_anchor_in_its_month_does_not_run():
    cfg = config(frequency="monthly", day_of_month=15, time_zone="UTC")
    runs = next_runs(config=cfg, after=utc(2026, 1, 1), count=1, anchor=date(2026, 1, 20))
    assert runs == [utc(2026, 2, 15, 9)]


def test_long_after_the_anchor_the_phase_is_kept():
    weekly_by_days = config(interval=7, time_zone="UTC")  # anchored on a Monday: every run is a Monday
    runs = next_runs(config=weekly_by_days, after=utc(2031, 5, 14), count=3, anchor=date(2026, 3, 2))
    assert [r.isoweekday() for r in runs] == [1, 1, 1]
    assert runs[0] == utc(2031, 5, 19, 9)


def test_new_york_spring_forward_keeps_the_wall_time():
    runs = next_runs(config=config(), after=utc(2026, 3, 7), count=3)
    assert runs == [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13), utc(2026, 3, 9, 13)]


def test_new_york_fall_back_keeps_the_wall_time():
    runs = next_runs(config=config(), after=utc(2026, 10, 31), count=3)
    assert runs == [utc(2026, 10, 31, 13), utc(2026, 11, 1, 14), utc(2026, 11, 2, 14)]


def test_london_spring_forward_keeps_the_wall_time():
    runs = next_runs(config=config(time_zone="Europe/London"), after=utc(2026, 3, 28), count=3)
    assert runs == [utc(2026, 3, 28, 9), utc(2026, 3, 29, 8), utc(2026, 3, 30, 8)]


def test_london_fall_back_keeps_the_wall_time():
    runs = next_runs(config=config(time_zone="Europe/London"), after=utc(2026, 10, 24), count=3)
    assert runs == [utc(2026, 10, 24, 8), utc(2026, 10, 25, 9), utc(2026, 10, 26, 9)]


def test_new_york_gap_time_moves_to_the_end_of_the_gap():
    runs = next_runs(config=config(time="02:30"), after=utc(2026, 3, 7), count=3)
    assert runs == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]


def test_london_gap_time_moves_to_the_end_of_the_gap():
    runs = next_runs(config=config(time="01:30", time_zone="Europe/London"), after=utc(2026, 3, 28), count=3)
    assert runs == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]


def test_new_york_ambiguous_time_runs_once_at_the_first_occurrence():
    runs = next_runs(config=config(time="01:30"), after=utc(2026, 10, 31), count=3)
    assert runs == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_london_ambiguous_time_runs_once_at_the_first_occurrence():
    runs = next_runs(config=config(time="01:30", time_zone="Europe/London"), after=utc(2026, 10, 24), count=3)
    assert runs == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_end_date_is_inclusive_and_stops_the_sequence():
    runs = next_runs(config=config(end_date="2026-03-03"), after=NOW, count=5)
    assert runs == [utc(2026, 3, 1, 14), utc(2026, 3, 2, 14), utc(2026, 3, 3, 14)]


def test_no_runs_once_end_date_has_passed():
    cfg = RecurringConfig.from_dict(
        {"frequency": "daily", "time": "09:00", "time_zone": "UTC", "end_date": "2026-03-01"}
    )
    assert next_runs(config=cfg, after=NOW, count=5) == []


def test_end_date_is_read_on_the_local_calendar():
    # 20:00 New York on March 4 is already March 5 in UTC; the end date is a New York date.
    runs = next_runs(config=config(time="20:00", end_date="2026-03-04"), after=utc(2026, 3, 3, 12), count=5)
    assert runs == [utc(2026, 3, 4, 1), utc(2026, 3, 5, 1)]


def test_count_zero_gives_no_runs():
    assert next_runs(config=config(), after=NOW, count=0) == []


@pytest.mark.parametrize("count", [-1, 1001, True])
def test_out_of_range_count_is_a_programming_error(count):
    with pytest.raises(ValueError):
        next_runs(config=config(), after=NOW, count=count)


def test_naive_after_is_a_programming_error():
    with pytest.raises(ValueError):
        next_runs(config=config(), after=datetime(2026, 3, 1), count=1)


@pytest.mark.parametrize(
    "frequency_fields", [{}, {"frequency": "monthly", "day_of_month": 31}, {"frequency": "weekly", "days_of_week": [7]}]
)
def test_runs_stop_at_the_end_of_the_calendar_without_error(frequency_fields):
    cfg = config(time_zone="UTC", **frequency_fields)
    runs = next_runs(config=cfg, after=utc(9999, 12, 1), count=1000)
    assert len(runs) < 40
    assert all(run.year == 9999 for run in runs)


def test_upcoming_runs_are_the_next_five_after_now():
    with time_machine.travel(NOW, tick=False):
        runs = upcoming_runs(config=config())
    assert runs == [utc(2026, 3, d, 14) for d in range(1, 6)]
