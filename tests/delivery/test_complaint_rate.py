"""The per-workspace complaint-rate figure, from `complained` and `sent` rows of the event table (the rows
the ESP webhooks and the send path write; inserted here directly)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.selectors import workspace_complaint_rate
from tests.factories import sent_and_complained

pytestmark = pytest.mark.django_db


def events(workspace, *, sent: int, complaints: int, age: timedelta = timedelta(hours=1)) -> None:
    sent_and_complained(workspace, sent=sent, complaints=complaints, occurred_at=timezone.now() - age)


def test_rate_is_complaints_over_sent(workspace):
    events(workspace, sent=2000, complaints=1)
    figure = workspace_complaint_rate(workspace=workspace)
    assert (figure.sent, figure.complaints, figure.rate, figure.level) == (2000, 1, 0.0005, "ok")


def test_above_one_in_a_thousand_warns(workspace):
    events(workspace, sent=1000, complaints=2)
    assert workspace_complaint_rate(workspace=workspace).level == "warn"


def test_exactly_one_in_a_thousand_does_not_warn(workspace):
    events(workspace, sent=1000, complaints=1)
    assert workspace_complaint_rate(workspace=workspace).level == "ok"


def test_above_three_in_a_thousand_holds(workspace):
    events(workspace, sent=1000, complaints=4)
    figure = workspace_complaint_rate(workspace=workspace)
    assert figure.level == "hold"
    assert "0.40%" in figure.message() and "held" in figure.message()


def test_too_few_sent_is_not_judged(workspace, settings):
    settings.COMPLAINT_RATE_MIN_SENT = 100
    events(workspace, sent=99, complaints=5)
    assert workspace_complaint_rate(workspace=workspace).level == "too_few_sent"


def test_events_older_than_the_window_do_not_count(workspace, settings):
    settings.COMPLAINT_RATE_WINDOW_DAYS = 7
    events(workspace, sent=1000, complaints=10, age=timedelta(days=8))
    events(workspace, sent=1000, complaints=0)
    figure = workspace_complaint_rate(workspace=workspace)
    assert (figure.sent, figure.complaints, figure.level) == (1000, 0, "ok")


def test_another_workspace_complaints_do_not_count(workspace, other_workspace):
    events(workspace, sent=1000, complaints=0)
    events(other_workspace, sent=1000, complaints=50)
    assert workspace_complaint_rate(workspace=workspace).complaints == 0
