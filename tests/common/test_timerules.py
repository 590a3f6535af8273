"""common.timerules.parse_aware_instant: the instants of list filters (since, until), which may be in the past
but must say their own offset (docs/architecture.md#time)."""

from datetime import UTC, datetime

import pytest

from common.errors import ValidationError
from common.timerules import parse_aware_instant


def test_an_offset_is_converted_to_utc():
    assert parse_aware_instant(value="2026-05-09T08:00:00+07:00", field="since") == datetime(2026, 5, 9, 1, tzinfo=UTC)


def test_z_means_utc_and_the_past_is_allowed():
    assert parse_aware_instant(value="2001-01-01T00:00:00Z", field="since") == datetime(2001, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["2026-05-09T08:00:00", "2026-05-09", "yesterday", "", "0001-01-01T00:00:00+01:00", "x" * 100],
)
def test_naive_bare_dates_garbage_and_overflow_are_a_validation_error_naming_the_field(value):
    with pytest.raises(ValidationError) as caught:
        parse_aware_instant(value=value, field="until")
    assert list(caught.value.details) == ["until"]
