"""Report figures from the hand-built event set of conftest.build_known_campaign: exact numbers."""

import pytest

from common import errors
from reports import selectors
from reports.services import reports_aggregate
from tests.factories import CampaignRunFactory, EventFactory, LabelFactory
from tests.reports.conftest import URL1, URL2, at, build_known_campaign

pytestmark = pytest.mark.django_db


def test_basic_counts_unique_and_total_opens_and_clicks_apart(workspace, known):
    figures = selectors.report_basic(workspace=workspace, campaign_id=known.campaign.pk)
    assert {k: figures[k] for k in ("recipients", "sent", "delivered", "bounced", "failed")} == {
        "recipients": 6, "sent": 5, "delivered": 2, "bounced": 1, "failed": 0,
    }  # fmt: skip
    assert (figures["opens"], figures["unique_opens"]) == (4, 4)
    assert (figures["clicks"], figures["unique_clicks"]) == (5, 3)
    assert (figures["unsubscribes"], figures["complaints"]) == (1, 1)


def test_machine_opens_are_counted_apart_and_not_in_the_open_rate(workspace, known):
    figures = selectors.report_basic(workspace=workspace, campaign_id=known.campaign.pk)
    assert figures["machine_opens"] == 2
    # c's only open was a machine's, yet its click makes it a unique open; d opened by a human too.
    assert figures["unique_opens"] == 4


def test_rates_are_unique_counts_over_sent(workspace, known):
    figures = selectors.report_basic(workspace=workspace, campaign_id=known.campaign.pk)
    assert figures["open_rate"] == 0.8
    assert figures["click_rate"] == 0.6
    assert figures["unsubscribe_rate"] == 0.2
    assert figures["bounce_rate"] == round(1 / 6, 4)


def test_a_recipient_with_only_machine_opens_is_not_a_unique_open(workspace):
    run = CampaignRunFactory(workspace=workspace, campaign__workspace=workspace)
    for _ in range(3):
        EventFactory(workspace=workspace, type="opened", email="x@example.org", campaign_id=run.campaign_id,
                     run_id=run.pk, data={"machine": True})  # fmt: skip
    EventFactory(workspace=workspace, type="sent", email="x@example.org", campaign_id=run.campaign_id, run_id=run.pk)
    reports_aggregate()
    figures = selectors.report_basic(workspace=workspace, campaign_id=run.campaign_id)
    assert (figures["opens"], figures["machine_opens"], figures["unique_opens"], figures["open_rate"]) == (0, 3, 0, 0)


def test_links_most_clicked_first_with_unique_clickers(workspace, known):
    links = selectors.report_links(workspace=workspace, campaign_id=known.campaign.pk)["links"]
    assert links == [
        {"url": URL1, "clicks": 3, "unique_clicks": 2},
        {"url": URL2, "clicks": 2, "unique_clicks": 2},
    ]


def test_open_time_in_new_york_follows_the_dst_change(workspace, known):
    report = selectors.report_open_time(workspace=workspace, campaign_id=known.campaign.pk, zone="America/New_York")
    expected = [0] * 24
    expected[9], expected[1] = 2, 2  # a at 09:10 EDT and 09:20 EST; b at 01:30 EDT and d at 01:30 EST
    assert report["by_hour"] == expected
    nonzero = {(day, hour): n for day, row in enumerate(report["by_day_hour"]) for hour, n in enumerate(row) if n}
    assert nonzero == {(5, 9): 1, (0, 9): 1, (6, 1): 2}  # Saturday, Monday, Sunday (Monday is 0)


def test_open_time_in_utc_is_the_stored_hours(workspace, known):
    by_hour = selectors.report_open_time(workspace=workspace, campaign_id=known.campaign.pk, zone="UTC")["by_hour"]
    assert {hour: n for hour, n in enumerate(by_hour) if n} == {13: 1, 14: 1, 5: 1, 6: 1}


def test_open_time_in_a_quarter_hour_zone_puts_each_open_in_its_local_hour(workspace):
    # Kathmandu is UTC+05:45: 13:14Z is 18:59 there, 13:16Z is 19:01.
    run = CampaignRunFactory(workspace=workspace, campaign__workspace=workspace)
    for minute, email in ((14, "p@example.org"), (16, "q@example.org")):
        EventFactory(workspace=workspace, type="opened", occurred_at=at(f"2026-06-01T13:{minute}:00"), email=email,
                     campaign_id=run.campaign_id, run_id=run.pk)  # fmt: skip
    reports_aggregate()
    by_hour = selectors.report_open_time(workspace=workspace, campaign_id=run.campaign_id, zone="Asia/Kathmandu")
    assert {hour: n for hour, n in enumerate(by_hour["by_hour"]) if n} == {18: 1, 19: 1}


def test_a_recurring_campaign_reports_per_run_and_in_total(workspace):
    first = CampaignRunFactory(workspace=workspace, campaign__workspace=workspace, total=2)
    second = CampaignRunFactory(workspace=workspace, campaign=first.campaign, total=3)
    for run, emails in ((first, ["a", "b"]), (second, ["a", "b", "c"])):
        for name in emails:
            EventFactory(workspace=workspace, type="sent", email=f"{name}@example.org", campaign_id=run.campaign_id,
                         run_id=run.pk)  # fmt: skip
        EventFactory(workspace=workspace, type="opened", email="a@example.org", campaign_id=run.campaign_id,
                     run_id=run.pk)  # fmt: skip
    reports_aggregate()
    total = selectors.report_basic(workspace=workspace, campaign_id=first.campaign_id)
    one = selectors.report_basic(workspace=workspace, campaign_id=first.campaign_id, run_id=second.pk)
    assert (total["recipients"], total["sent"], total["unique_opens"]) == (5, 5, 2)
    assert (one["recipients"], one["sent"], one["unique_opens"], one["open_rate"]) == (3, 3, 1, round(1 / 3, 4))


def test_a_run_of_another_campaign_is_404(workspace, known):
    other = CampaignRunFactory(workspace=workspace, campaign__workspace=workspace)
    with pytest.raises(errors.NotFound):
        selectors.report_basic(workspace=workspace, campaign_id=known.campaign.pk, run_id=other.pk)


def test_another_workspaces_campaign_is_404(other_workspace, known):
    with pytest.raises(errors.NotFound):
        selectors.report_basic(workspace=other_workspace, campaign_id=known.campaign.pk)


def test_label_and_category_sum_their_campaigns(workspace, known):
    label = LabelFactory(workspace=workspace)
    known.campaign.labels.add(label)
    known.campaign.category = "newsletter"
    known.campaign.save()
    second = build_known_campaign(workspace, domain="example.net")
    second.campaign.category = "newsletter"
    second.campaign.save()
    reports_aggregate()
    by_label = selectors.report_label(workspace=workspace, label_id=label.pk)
    by_category = selectors.report_category(workspace=workspace, category="newsletter")
    assert (by_label["campaigns"], by_label["sent"], by_label["unique_clicks"]) == (1, 5, 3)
    assert (by_category["campaigns"], by_category["sent"], by_category["unique_opens"], by_category["open_rate"]) == (
        2, 10, 8, 0.8,
    )  # fmt: skip


def test_a_campaign_with_no_events_yet_has_zero_figures(workspace):
    run = CampaignRunFactory(workspace=workspace, campaign__workspace=workspace, total=7)
    figures = selectors.report_basic(workspace=workspace, campaign_id=run.campaign_id)
    assert (figures["recipients"], figures["sent"], figures["open_rate"]) == (7, 0, 0.0)
